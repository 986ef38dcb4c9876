"""The VIHF: the SAML 2.0 assertion that tells the DMP who is feeding, for whom, and how
(spec/dmp-protocol.md §2.3). Built unsigned here; the credentials sign it (enveloped XML-DSig)
in place of the `ds:Signature` placeholder that sits right after `Issuer`, where SAML wants it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from lxml import etree

from bridge.domain import OID_PROFESSION, Author, Ins

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
DS = "http://www.w3.org/2000/09/xmldsig#"
OID_ACCESS_MODE = "1.2.250.1.213.1.1.4.248"  # TRE_R248 ModeAcces
OID_SAVOIR_FAIRE = "1.2.250.1.71.4.2.5"  # TRE_R01, second role of médecins
OID_CNOP_SECTION = "1.2.250.1.71.4.2.6"  # TRE_G05, second role of pharmaciens
VIHF_VERSION = "3.0"  # every known implementation sends 3.0 (spec §2.3, §7.1)

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
    validity: dt.timedelta = dt.timedelta(minutes=10)


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
    """The unsigned assertion, with a `ds:Signature Id="placeholder"` after `Issuer`."""
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
        "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI"
        if req.auth_mode is AuthMode.DIRECTE
        else "urn:oasis:names:tc:SAML:2.0:ac:classes:TLSClient"
    )
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
    attribute("LPS_ID", req.software.installation_id)
    attribute("LPS_Nom", req.software.name)
    attribute("LPS_Version", req.software.version)
    attribute("LPS_ID_HOMOLOGATION_DMP", req.software.homologation_id)
    return root
