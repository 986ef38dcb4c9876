"""The VIHF: a signed SAML 2.0 assertion saying who feeds whose DMP (spec/dmp-protocol.md §2.3)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from lxml import etree
from signxml import InvalidSignature, XMLVerifier  # type: ignore[attr-defined]

from bridge.domain import Author
from bridge.schemas import SchemaName, validation_errors
from bridge.vihf import AccessMode, AuthMode, Software, VihfRequest, build_vihf
from bridge.xmlsafe import parse_xml
from connectors.software_credentials import SoftwareCredentials
from tests.factories import PARIS_WINTER, make_author, make_patient

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
HL7 = "urn:hl7-org:v3"
DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"saml": SAML, "hl7": HL7, "ds": DS}
ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
OID_TRE_G15 = "1.2.250.1.71.1.2.7"
INS_CX = "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
ISSUED = dt.datetime(2024, 1, 15, 10, 35, 0, tzinfo=PARIS_WINTER)
SOFTWARE = Software(name="dmp-bridge", version="0.1.0", installation_id="1.2.250.1.999.7.1",
                    homologation_id="BCO-465897-tmp2")
DOCTOR = dict(profession_code="10", specialty_code="G15_10/SM54",
              specialty_display="Médecin - Médecine Générale (SM)")
PHARMACIST = dict(profession_code="21", specialty_code="G15_21/A",
                  specialty_display="Pharmacien titulaire d'officine")


def request(credentials: SoftwareCredentials, author: Author | None = None,
            issued: dt.datetime = ISSUED) -> VihfRequest:
    return VihfRequest(
        assertion_id=f"_{uuid.UUID(int=42)}",
        issue_instant=issued,
        issuer_dn=credentials.issuer_dn,
        author=author or make_author(),
        patient=make_patient().ins,
        auth_mode=AuthMode.INDIRECTE,
        access_mode=AccessMode.NORMAL,
        software=SOFTWARE,
    )


def signed_bytes(credentials: SoftwareCredentials, author: Author | None = None) -> bytes:
    """The signed assertion as it travels (serialised, then read back by the receiver)."""
    return bytes(etree.tostring(credentials.sign_vihf(build_vihf(request(credentials, author)))))


@pytest.fixture(scope="module")
def nurse_vihf(credentials: SoftwareCredentials) -> bytes:
    return signed_bytes(credentials)


def verify(data: bytes, cert_pem: str) -> None:
    XMLVerifier().verify(data, x509_cert=cert_pem, id_attribute="ID", expect_references=1)


def values(assertion: etree._Element, name: str) -> list[etree._Element]:
    found = assertion.xpath(f"saml:AttributeStatement/saml:Attribute[@Name='{name}']"
                            "/saml:AttributeValue", namespaces=NS)
    assert isinstance(found, list)
    return [v for v in found if isinstance(v, etree._Element)]


def text_of(assertion: etree._Element, name: str) -> str | None:
    found = values(assertion, name)
    assert len(found) == 1, f"{name}: {len(found)} values"
    text = found[0].text
    return None if text is None else str(text)


def roles(data: bytes) -> list[dict[str, str]]:
    found = [v.find(f"{{{HL7}}}Role") for v in values(parse_xml(data), ROLE)]
    return [dict(r.attrib) for r in found if r is not None]


def test_the_signed_assertion_is_valid_against_the_vihf_schema(nurse_vihf: bytes) -> None:
    assert validation_errors(parse_xml(nurse_vihf), SchemaName.VIHF) == []


def test_the_signature_verifies_with_the_org_sign_certificate(nurse_vihf: bytes,
                                                             sign_cert_pem: str) -> None:
    verify(nurse_vihf, sign_cert_pem)


def test_the_signature_covers_the_whole_assertion_by_its_id(nurse_vihf: bytes) -> None:
    assertion = parse_xml(nurse_vihf)
    reference = assertion.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}Reference")
    assert reference is not None
    assert reference.get("URI") == f"#{assertion.get('ID')}"


def test_the_signature_replaces_the_placeholder_right_after_issuer(nurse_vihf: bytes) -> None:
    children = [child.tag for child in parse_xml(nurse_vihf)]
    assert children[:3] == [f"{{{SAML}}}Issuer", f"{{{DS}}}Signature", f"{{{SAML}}}Subject"]
    assert children.count(f"{{{DS}}}Signature") == 1
    assert b'Id="placeholder"' not in nurse_vihf


def test_tampering_the_name_id_after_signing_breaks_the_signature(nurse_vihf: bytes,
                                                                  sign_cert_pem: str) -> None:
    assertion = parse_xml(nurse_vihf)
    name_id = assertion.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")
    assert name_id is not None
    name_id.text = "899999999999"
    with pytest.raises(InvalidSignature):
        verify(etree.tostring(assertion), sign_cert_pem)


def test_the_header_names_the_certificate_the_user_and_the_instant(
        nurse_vihf: bytes, credentials: SoftwareCredentials) -> None:
    assertion = parse_xml(nurse_vihf)
    assert assertion.get("Version") == "2.0"
    assert assertion.get("IssueInstant") == "2024-01-15T09:35:00Z"
    issuer = assertion.find(f"{{{SAML}}}Issuer")
    assert issuer is not None
    assert issuer.get("Format") == "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
    assert issuer.text == credentials.issuer_dn
    assert issuer.text.startswith("C=FR, O=CABINET INFIRMIER DEMO, OU=499700366240007, CN=")
    assert assertion.findtext(f"{{{SAML}}}Subject/{{{SAML}}}NameID") == "810101010101"
    assert assertion.find(f".//{{{SAML}}}AudienceRestriction") is None  # spec: do not fill


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("VIHF_Version", "3.0"),
        ("Authentification_Mode", "INDIRECTE"),
        ("Ressource_URN", "urn:dmp"),
        (RESOURCE_ID, INS_CX),
        ("Identifiant_Structure", "499700366240007"),
        ("Secteur_Activite", "SA07^1.2.250.1.71.4.2.4"),
        (SUBJECT_ID, "Hélène SOIGNANTE"),
        ("LPS_Nom", "dmp-bridge"),
        ("LPS_Version", "0.1.0"),
        ("LPS_ID", "1.2.250.1.999.7.1"),
        ("LPS_ID_HOMOLOGATION_DMP", "BCO-465897-tmp2"),
    ],
)
def test_each_mandatory_attribute_has_its_value(nurse_vihf: bytes, name: str,
                                                expected: str) -> None:
    assert text_of(parse_xml(nurse_vihf), name) == expected


def test_the_access_mode_is_normal_in_the_tre_r248_code_system(nurse_vihf: bytes) -> None:
    (value,) = values(parse_xml(nurse_vihf), PURPOSE)
    purpose = value.find(f"{{{HL7}}}PurposeOfUse")
    assert purpose is not None
    assert purpose.get("code") == "normal"
    assert purpose.get("codeSystem") == "1.2.250.1.213.1.1.4.248"
    assert purpose.get("displayName") == "Accès normal"


def test_a_nurse_has_exactly_one_role_her_profession(nurse_vihf: bytes) -> None:
    assert [(r["code"], r["codeSystem"]) for r in roles(nurse_vihf)] == [("60", OID_TRE_G15)]


@pytest.mark.parametrize("profession", ["40", "50", "70"])
def test_other_non_doctor_professions_have_a_single_role(credentials: SoftwareCredentials,
                                                         profession: str) -> None:
    author = make_author(profession_code=profession, specialty_code=f"G15_{profession}")
    assert [r["code"] for r in roles(signed_bytes(credentials, author))] == [profession]


def test_a_doctor_has_a_second_role_with_the_savoir_faire(credentials: SoftwareCredentials) -> None:
    found = roles(signed_bytes(credentials, make_author(**DOCTOR)))
    assert [(r["code"], r["codeSystem"]) for r in found] == [
        ("10", OID_TRE_G15), ("SM54", "1.2.250.1.71.4.2.5")]


def test_a_pharmacist_has_a_second_role_with_the_cnop_section(
        credentials: SoftwareCredentials) -> None:
    found = roles(signed_bytes(credentials, make_author(**PHARMACIST)))
    assert [(r["code"], r["codeSystem"]) for r in found] == [
        ("21", OID_TRE_G15), ("A", "1.2.250.1.71.4.2.6")]


def test_a_doctors_assertion_is_schema_valid_and_verifies(credentials: SoftwareCredentials,
                                                          sign_cert_pem: str) -> None:
    data = signed_bytes(credentials, make_author(**DOCTOR))
    assert validation_errors(parse_xml(data), SchemaName.VIHF) == []
    verify(data, sign_cert_pem)


def test_a_naive_issue_instant_is_refused(credentials: SoftwareCredentials) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_vihf(request(credentials, issued=dt.datetime(2024, 1, 15, 10, 35)))
