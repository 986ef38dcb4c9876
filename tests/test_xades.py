"""The XAdES signature of a submission set (IHE DSG manifest, spec/dmp-protocol.md §4.3)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml import InvalidSignature, XMLVerifier  # type: ignore[attr-defined]

from bridge.schemas import SchemaName, validation_errors
from bridge.xades import DS, XADES, build_unsigned_xades
from bridge.xmlsafe import parse_xml
from connectors.software_credentials import SoftwareCredentials
from tests.factories import PARIS_WINTER, make_packaged_document, make_software_credentials

NS = {"ds": DS, "xades": XADES}
SUBMISSION_UID = "1.2.250.1.999.1.1.4242.2"
SIGNING_TIME = dt.datetime(2024, 1, 15, 10, 35, 0, tzinfo=PARIS_WINTER)
CDA = make_packaged_document().cda
SECOND = b"<ClinicalDocument>second document, other bytes</ClinicalDocument>"
DOCUMENTS = [("1.2.250.1.999.1.1.4242.1", CDA), ("1.2.250.1.999.1.1.4243.1", SECOND)]


def signed_xades(credentials: SoftwareCredentials,
                 signing_time: dt.datetime = SIGNING_TIME) -> bytes:
    unsigned = build_unsigned_xades(
        submission_unique_id=SUBMISSION_UID,
        documents=DOCUMENTS,
        certificate=credentials.signing_certificate,
        signing_time=signing_time,
    )
    return unsigned.complete(credentials.sign(unsigned.signed_info_c14n()))


@pytest.fixture(scope="module")
def signed(credentials: SoftwareCredentials) -> bytes:
    return signed_xades(credentials)


def one(root: etree._Element, path: str) -> etree._Element:
    found = root.xpath(path, namespaces=NS)
    assert isinstance(found, list) and len(found) == 1, f"{path}: {found}"
    element = found[0]
    assert isinstance(element, etree._Element)
    return element


def verify(data: bytes, cert_pem: str) -> None:
    XMLVerifier().verify(data, x509_cert=cert_pem, expect_references=2)


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def test_the_signature_verifies_with_the_org_sign_certificate(signed: bytes,
                                                             sign_cert_pem: str) -> None:
    verify(signed, sign_cert_pem)


def test_signed_info_references_the_manifest_and_the_signed_properties(signed: bytes) -> None:
    root = parse_xml(signed)
    refs = root.xpath("ds:SignedInfo/ds:Reference", namespaces=NS)
    assert isinstance(refs, list)
    assert [(r.get("URI"), r.get("Type")) for r in refs if isinstance(r, etree._Element)] == [
        ("#IHEManifest", "http://www.w3.org/2000/09/xmldsig#Manifest"),
        ("#S0-SignedProperties", "http://uri.etsi.org/01903/v1.1.1#SignedProperties"),
    ]


def test_the_manifest_has_one_reference_for_the_set_and_one_per_document(signed: bytes) -> None:
    manifest = one(parse_xml(signed), "ds:Object/ds:Manifest[@Id='IHEManifest']")
    uris = [r.get("URI") for r in manifest.iterchildren(f"{{{DS}}}Reference")]
    assert uris == [f"urn:oid:{SUBMISSION_UID}"] + [f"urn:oid:{uid}" for uid, _ in DOCUMENTS]


@pytest.mark.parametrize("index", [0, 1])
def test_each_document_digest_is_the_sha256_of_its_exact_bytes(signed: bytes, index: int) -> None:
    unique_id, content = DOCUMENTS[index]
    ref = one(parse_xml(signed), f"//ds:Manifest/ds:Reference[@URI='urn:oid:{unique_id}']")
    method = one(ref, "ds:DigestMethod")
    assert method.get("Algorithm") == "http://www.w3.org/2001/04/xmlenc#sha256"
    assert one(ref, "ds:DigestValue").text == b64_sha256(content)


def test_the_signed_properties_name_the_signing_time_in_utc_and_the_certificate(
        signed: bytes, credentials: SoftwareCredentials, sign_cert_pem: str) -> None:
    props = one(parse_xml(signed), "//xades:SignedProperties[@Id='S0-SignedProperties']")
    assert one(props, ".//xades:SigningTime").text == "2024-01-15T09:35:00Z"
    cert = x509.load_pem_x509_certificate(sign_cert_pem.encode("ascii"))
    der = cert.public_bytes(serialization.Encoding.DER)
    assert one(props, ".//xades:CertDigest/xades:DigestValue").text == b64_sha256(der)
    assert one(props, ".//ds:X509SerialNumber").text == str(cert.serial_number)
    assert one(props, ".//ds:X509IssuerName").text == cert.issuer.rfc4514_string()
    one(props, ".//xades:SignaturePolicyIdentifier/xades:SignaturePolicyImplied")
    key_info_cert = one(parse_xml(signed), "ds:KeyInfo/ds:X509Data/ds:X509Certificate").text
    assert key_info_cert == base64.b64encode(der).decode("ascii")


def test_the_qualifying_properties_target_the_signature(signed: bytes) -> None:
    root = parse_xml(signed)
    qualifying = one(root, "ds:Object/xades:QualifyingProperties")
    assert qualifying.get("Target") == f"#{root.get('Id')}"


def test_tampering_a_document_digest_breaks_the_signature(signed: bytes,
                                                          sign_cert_pem: str) -> None:
    root = parse_xml(signed)
    digest = one(root, f"//ds:Manifest/ds:Reference[@URI='urn:oid:{DOCUMENTS[0][0]}']"
                       "/ds:DigestValue")
    digest.text = b64_sha256(b"another document")
    with pytest.raises(InvalidSignature):
        verify(etree.tostring(root), sign_cert_pem)


def test_tampering_the_signing_time_breaks_the_signature(signed: bytes,
                                                         sign_cert_pem: str) -> None:
    root = parse_xml(signed)
    one(root, "//xades:SigningTime").text = "2024-01-16T09:35:00Z"
    with pytest.raises(InvalidSignature):
        verify(etree.tostring(root), sign_cert_pem)


def test_a_signature_by_another_key_does_not_verify_with_the_org_sign_certificate(
        tmp_path: Path, sign_cert_pem: str) -> None:
    other = make_software_credentials(tmp_path)
    with pytest.raises(InvalidSignature):
        verify(signed_xades(other), sign_cert_pem)


def test_the_qualifying_properties_are_valid_xades_111(signed: bytes) -> None:
    qualifying = one(parse_xml(signed), "ds:Object/xades:QualifyingProperties")
    assert validation_errors(qualifying, SchemaName.XADES111) == []


def test_the_whole_signature_is_valid_xmldsig(signed: bytes) -> None:
    # The XAdES 1.1.1 schema imports the XML-DSig core schema: ds:Signature is a global element.
    assert validation_errors(parse_xml(signed), SchemaName.XADES111) == []


def test_the_signature_document_is_utf8_xml_with_a_declaration(signed: bytes) -> None:
    assert signed.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


def test_a_naive_signing_time_is_refused(credentials: SoftwareCredentials) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        signed_xades(credentials, signing_time=dt.datetime(2024, 1, 15, 10, 35))


def test_the_same_inputs_give_the_same_bytes(credentials: SoftwareCredentials,
                                             signed: bytes) -> None:
    # Identifiers and times come in: a rebuilt package is byte for byte the one first sent.
    assert signed_xades(credentials) == signed
