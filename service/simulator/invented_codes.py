"""Invented DMP-like error codes — THE ONE TABLE of codes the simulator makes up.

The real DMP error codes (errorCode / codeContext of RegistryError, SOAP Fault subcodes) are
documented only in the non-public DMPi guide (spec/dmp-protocol.md §1.4 and §9). Where an IHE
code fits, the simulator uses it (see `problems.IheCode`); for everything IHE does not name, it
uses the codes below. They are NOT the real DMP codes: the bridge must not hard-wire them beyond
its tests, and they must be replaced as soon as the real list is known. `ERRORS.md` says when
each one is emitted.
"""

from __future__ import annotations

from enum import StrEnum


class InventedCode(StrEnum):
    """Codes for what IHE does not name (invented; the real DMP codes are not public)."""

    TLS_CERTIFICAT = "DMP_TLS_CERTIFICAT"  # no or unacceptable TLS client certificate
    MODE_AUTHENTIFICATION = "DMP_MODE_AUTHENTIFICATION"  # VIHF mode ≠ kind of TLS certificate
    WSA_MANQUANT = "DMP_WSA_MANQUANT"  # a WS-Addressing header (MessageID, To, Action) is absent
    WSA_ACTION = "DMP_WSA_ACTION"  # wsa:Action is not served on this endpoint
    SOAP_INVALIDE = "DMP_SOAP_INVALIDE"  # the body is not a readable SOAP 1.2 / MTOM message
    VIHF_ABSENT = "DMP_VIHF_ABSENT"  # no wsse:Security/saml2:Assertion in the header
    VIHF_INVALIDE = "DMP_VIHF_INVALIDE"  # schema, attribute or value problem in the VIHF
    VIHF_SIGNATURE = "DMP_VIHF_SIGNATURE"  # VIHF signature or signing certificate refused
    VIHF_HORODATAGE = "DMP_VIHF_HORODATAGE"  # IssueInstant outside the clock window, or expired
    VIHF_PATIENT = "DMP_VIHF_PATIENT"  # VIHF resource-id is not the request's patient
    XADES_INVALIDE = "DMP_XADES_INVALIDE"  # signature document unreadable or badly shaped
    XADES_SIGNATURE = "DMP_XADES_SIGNATURE"  # XAdES cryptographic check or certificate refused
    XADES_DIGEST = "DMP_XADES_DIGEST"  # a manifest digest does not match the document bytes
    CDA_INVALIDE = "DMP_CDA_INVALIDE"  # CDA not valid against the schema or the N1 header rules
    TD02_INVALIDE = "DMP_TD02_INVALIDE"  # TD0.2 request (PRPA_IN201307UV02) badly formed
    SUPPRESSION_NON_AUTEUR = "DMP_SUPPRESSION_NON_AUTEUR"  # delete asked by a non-author
    DOSSIER_FERME = "DMP_DOSSIER_FERME"  # the patient's DMP is closed
    OPPOSITION_PATIENT = "DMP_OPPOSITION_PATIENT"  # the patient opposed feeding / access
    PS_BLOQUE = "DMP_PS_BLOQUE"  # the professional was blocked by the patient
    AUTORISATION_ABSENTE = "DMP_AUTORISATION_ABSENTE"  # consultation without authorisation
    SERVICE_INDISPONIBLE = "DMP_SERVICE_INDISPONIBLE"  # injected HTTP 500 (Receiver Fault)
    INJECTION = "DMP_SIMULATEUR_INJECTION"  # an error injected on purpose by a test
