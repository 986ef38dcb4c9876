"""The VIHF: the SAML 2.0 assertion that tells the DMP who is feeding, for whom, and how
(spec/dmp-protocol.md §2.3). Built unsigned here; the credentials sign it (enveloped XML-DSig)
in place of the `ds:Signature` placeholder that sits right after `Issuer`, where SAML wants it.
In direct mode the card's signature key signs it (spec/card-auth.md A1–A2: the GIE SESAM-Vitale
TLSi sample signs with CPS_PRIV_SIG, and the DMP is reported to reject a VIHF signed by the
authentication key — so it checks a signature in direct mode too; dmp-protocol.md §2.3's
"unsigned in direct mode" is INFERRED only).

Also here: the access modes (normal, bris de glace, centre 15 for a SAMU regulator only), the
authentication modes and their AuthnContext, and the clock check that refuses to build or sign
anything when the local clock is obviously wrong.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from lxml import etree

from bridge.domain import OID_PROFESSION, Author, Ins
from bridge.errors import BridgeError

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
DS = "http://www.w3.org/2000/09/xmldsig#"
OID_ACCESS_MODE = "1.2.250.1.213.1.1.4.248"  # TRE_R248 ModeAcces
OID_SAVOIR_FAIRE = "1.2.250.1.71.4.2.5"  # TRE_R01, second role of médecins
OID_CNOP_SECTION = "1.2.250.1.71.4.2.6"  # TRE_G05, second role of pharmaciens
VIHF_VERSION = "3.0"  # every known implementation sends 3.0 (spec §2.3, §7.1)
AC_CLASSES = "urn:oasis:names:tc:SAML:2.0:ac:classes:"
AIR_AUTHN_DECL = "APP_BROWSER_AUTH"  # AuthnContextDecl of the AIR mode [DRIM], [CSKIT]
CONFIDENTIALITY_ATTRIBUTE = "urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code"
MAX_VALIDITY = dt.timedelta(hours=2)
# No certificate this bridge can hold, nor any build of it, predates this: a clock showing an
# earlier date is wrong, whatever the certificate says.
EARLIEST_PLAUSIBLE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

PROFESSION_DISPLAY = {
    "10": "Médecin",
    "21": "Pharmacien",
    "40": "Chirurgien-Dentiste",
    "50": "Sage-Femme",
    "60": "Infirmier",
    "70": "Masseur-Kinésithérapeute",
}


class AuthMode(StrEnum):
    """Authentification_Mode."""

    DIRECTE = "DIRECTE"  # the professional's CPS card
    INDIRECTE = "INDIRECTE"  # the structure's software certificates
    INDIRECTE_RENFORCEE = "INDIRECTE_RENFORCEE"  # AIR: indirect plus strong user authentication

    @property
    def authn_class_ref(self) -> str:
        """The AuthnContextClassRef that names how the user authenticated (spec §2.3)."""
        return AC_CLASSES + {
            AuthMode.DIRECTE: "SmartcardPKI",  # the CPS card [CSKIT]
            AuthMode.INDIRECTE: "TLSClient",  # the structure's certificate [DRIM]
            AuthMode.INDIRECTE_RENFORCEE: "MobileTwoFactorUnregistered",  # e-CPS / PSC [PSC]
        }[self]


class AccessMode(StrEnum):
    """purposeofuse (TRE_R248), with the display names of the ANS IG."""

    NORMAL = "normal"
    BRIS_DE_GLACE = "bris_de_glace"
    CENTRE_15 = "centre_15"

    @property
    def display(self) -> str:
        return {
            AccessMode.NORMAL: "Accès normal",
            AccessMode.BRIS_DE_GLACE: "Accès en bris de glace",
            AccessMode.CENTRE_15: "Accès par un centre de régulation médicale",
        }[self]


class VihfRefused(BridgeError):
    """The assertion cannot be issued as asked (access mode, validity)."""

    code = "VIHF_REFUSE"
    event = "vihf_refused"


class ClockSkew(BridgeError):
    """The local clock is obviously wrong: nothing may be signed or sent (environment error)."""

    code = "CLOCK_SKEW"
    event = "clock_skew"


def check_clock(
    now: dt.datetime, *, certificate_not_before: dt.datetime, certificate_not_after: dt.datetime
) -> None:
    """Refuse a clock outside the signing certificate's validity or before 2025-01-01.

    A VIHF or a XAdES dated by a wrong clock is refused by the DMP, or worse accepted with a
    false date; pausing until the clock is fixed costs nothing (spec §2.3: PRE_TPS).
    """
    for value in (now, certificate_not_before, certificate_not_after):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("check_clock needs timezone-aware datetimes")
    fix = (
        " Aucun envoi n'est fait tant que l'horloge n'est pas corrigée : réglez la date et "
        "l'heure du poste (synchronisation automatique avec un serveur de temps)."
    )
    if now < EARLIEST_PLAUSIBLE:
        raise ClockSkew(
            f"L'horloge du poste indique le {now:%d/%m/%Y}, une date impossible (antérieure au "
            f"01/01/2025).{fix}"
        )
    if now < certificate_not_before:
        raise ClockSkew(
            f"L'horloge du poste ({now:%d/%m/%Y %H:%M} UTC) est antérieure au début de validité "
            f"du certificat de signature ({certificate_not_before:%d/%m/%Y %H:%M} UTC).{fix}"
        )
    if now > certificate_not_after:
        raise ClockSkew(
            f"L'horloge du poste ({now:%d/%m/%Y %H:%M} UTC) est postérieure à la fin de validité "
            f"du certificat de signature ({certificate_not_after:%d/%m/%Y %H:%M} UTC) : soit "
            f"l'horloge est fausse, soit le certificat a expiré et doit être renouvelé.{fix}"
        )


@dataclass(frozen=True)
class Software:
    """The LPS_* attributes: who we are to the DMP."""

    name: str
    version: str
    installation_id: str
    homologation_id: str


@dataclass(frozen=True)
class VihfRequest:
    """Everything one assertion says."""

    assertion_id: str  # "_" + uuid, an XML ID
    issue_instant: dt.datetime  # aware, from the clock port
    issuer_dn: str  # DN of the certificate that signs the assertion
    author: Author
    patient: Ins
    auth_mode: AuthMode
    access_mode: AccessMode
    software: Software
    validity: dt.timedelta = dt.timedelta(minutes=10)  # NotBefore .. NotOnOrAfter
    # How a SAMU regulator is recognised: the caller says so, from the installation's
    # configuration (a regulation centre's workstation), never from the document. Only then
    # may the access mode be centre_15.
    samu_regulator: bool = False
    # "Connexion secrète" (spec §2.3): sent only when asked; the value format is not public.
    confidentiality_code: str | None = None
    authn_class_ref: str | None = None  # overrides the mode's default AuthnContextClassRef


def check_request(req: VihfRequest) -> None:
    """The rules an assertion must follow before it is built."""
    if req.access_mode is AccessMode.CENTRE_15 and not req.samu_regulator:
        raise VihfRefused(
            "Le mode d'accès « centre 15 » est réservé aux médecins régulateurs d'un SAMU "
            "(centre de régulation médicale). Utilisez le mode d'accès normal, ou déclarez ce "
            "poste comme poste de régulation dans la configuration."
        )
    if not dt.timedelta(0) < req.validity <= MAX_VALIDITY:
        raise VihfRefused(
            "La durée de validité du VIHF doit être comprise entre 0 et 2 heures ; "
            "corrigez la configuration."
        )


def second_role(author: Author) -> tuple[str, str, str] | None:
    """(code, display, codeSystem) of the 2nd role, mandatory for médecins and pharmaciens only."""
    if author.profession_code == "10":
        savoir_faire = author.specialty_code.partition("/")[2] or "SM54"
        return savoir_faire, author.specialty_display, OID_SAVOIR_FAIRE
    if author.profession_code == "21":
        section = author.specialty_code.partition("/")[2] or "A"
        return section, author.specialty_display, OID_CNOP_SECTION
    return None


def _instant(t: dt.datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("VIHF instants must be timezone-aware")
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_vihf(req: VihfRequest) -> etree._Element:
    """The unsigned assertion, with a `ds:Signature Id="placeholder"` after `Issuer` when the
    mode signs it (every mode but DIRECTE). Raises VihfRefused when `check_request` does."""
    check_request(req)
    saml = f"{{{SAML}}}"
    root = etree.Element(
        saml + "Assertion",
        nsmap={"saml2": SAML, "xsi": XSI, "hl7": HL7},
        ID=req.assertion_id,
        IssueInstant=_instant(req.issue_instant),
        Version="2.0",
    )
    issuer = etree.SubElement(
        root, saml + "Issuer", Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
    )
    issuer.text = req.issuer_dn
    etree.SubElement(root, f"{{{DS}}}Signature", nsmap={"ds": DS}, Id="placeholder")
    subject = etree.SubElement(root, saml + "Subject")
    etree.SubElement(subject, saml + "NameID").text = req.author.ps_idnat
    etree.SubElement(
        root,
        saml + "Conditions",
        NotBefore=_instant(req.issue_instant),
        NotOnOrAfter=_instant(req.issue_instant + req.validity),
    )
    authn = etree.SubElement(
        root, saml + "AuthnStatement", AuthnInstant=_instant(req.issue_instant)
    )
    context = etree.SubElement(authn, saml + "AuthnContext")
    etree.SubElement(context, saml + "AuthnContextClassRef").text = (
        req.authn_class_ref or req.auth_mode.authn_class_ref
    )
    if req.auth_mode is AuthMode.INDIRECTE_RENFORCEE:
        etree.SubElement(context, saml + "AuthnContextDecl").text = AIR_AUTHN_DECL
    statement = etree.SubElement(root, saml + "AttributeStatement")

    def attribute(name: str, *values: str) -> None:
        attr = etree.SubElement(statement, saml + "Attribute", Name=name)
        for value in values:
            etree.SubElement(attr, saml + "AttributeValue").text = value

    def coded(
        name: str, tag: str, codes: list[tuple[str, str, str]], system_name: str = ""
    ) -> None:
        attr = etree.SubElement(statement, saml + "Attribute", Name=name)
        for code, display, system in codes:
            value = etree.SubElement(attr, saml + "AttributeValue")
            element = etree.SubElement(
                value, f"{{{HL7}}}{tag}", code=code, codeSystem=system, displayName=display
            )
            if system_name:
                element.set("codeSystemName", system_name)
            element.set(f"{{{XSI}}}type", "hl7:CE")

    author = req.author
    attribute("VIHF_Version", VIHF_VERSION)
    attribute("Authentification_Mode", req.auth_mode.value)
    attribute("Identifiant_Structure", author.structure_id)
    attribute("Secteur_Activite", f"{author.sector_code}^1.2.250.1.71.4.2.4")
    attribute(
        "urn:oasis:names:tc:xspa:1.0:subject:subject-id",
        f"{author.given_name} {author.family_name}",
    )
    roles = [
        (
            author.profession_code,
            PROFESSION_DISPLAY.get(author.profession_code, author.profession_code),
            OID_PROFESSION,
        )
    ]
    extra = second_role(author)
    if extra is not None:
        roles.append(extra)
    coded("urn:oasis:names:tc:xacml:2.0:subject:role", "Role", roles)
    coded(
        "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse",
        "PurposeOfUse",
        [(req.access_mode.value, req.access_mode.display, OID_ACCESS_MODE)],
        system_name="mode acces VIHF 1.0",
    )
    attribute("urn:oasis:names:tc:xacml:2.0:resource:resource-id", req.patient.cx())
    attribute("Ressource_URN", "urn:dmp")
    if req.confidentiality_code:
        attribute(CONFIDENTIALITY_ATTRIBUTE, req.confidentiality_code)
    attribute("LPS_ID", req.software.installation_id)
    attribute("LPS_Nom", req.software.name)
    attribute("LPS_Version", req.software.version)
    attribute("LPS_ID_HOMOLOGATION_DMP", req.software.homologation_id)
    return root
