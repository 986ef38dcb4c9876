"""signxml signs through the card (connectors/card_signing_key.py, spec/card-auth.md B4): a
SAML assertion shaped like the VIHF, signed by the token's signature key, verifies against the
card's certificate; tampering is caught; nothing but RSA PKCS#1 v1.5 SHA-256 is accepted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from lxml import etree
from signxml import InvalidDigest, XMLVerifier  # type: ignore[attr-defined]
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import XMLSigner

from bridge.card_port import KeyRole, NotLoggedIn
from connectors.card_signing_key import CardRsaKey, CardSignatureUnsupported
from connectors.pkcs11_card import Pkcs11CardSession
from tests.pkcs11.softhsm import NURSE, NURSE_PIN

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
ASSERTION_ID = "_6f1c2a9e-5b7d-4c1e-9a3f-0d2b8e4c7a15"


def assertion(national_id: str) -> etree._Element:
    """A VIHF-like assertion with the signature placeholder right after Issuer."""
    root = etree.Element(f"{{{SAML}}}Assertion", nsmap={"saml2": SAML},
                         ID=ASSERTION_ID, IssueInstant="2026-01-15T10:35:00Z", Version="2.0")
    issuer = etree.SubElement(
        root, f"{{{SAML}}}Issuer",
        Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName")
    issuer.text = f"C=FR, O=CPS TEST DMP-BRIDGE, CN={national_id}"
    etree.SubElement(root, f"{{{DS}}}Signature", nsmap={"ds": DS}, Id="placeholder")
    subject = etree.SubElement(root, f"{{{SAML}}}Subject")
    name_id = etree.SubElement(subject, f"{{{SAML}}}NameID")
    name_id.text = national_id
    return root


def sign(element: etree._Element, key: CardRsaKey, cert_pem: str) -> etree._Element:
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed: etree._Element = signer.sign(
        element, key=key.as_private_key(), cert=cert_pem,
        reference_uri="#" + ASSERTION_ID, id_attribute="ID")
    return signed


def verify(data: bytes, cert_pem: str) -> None:
    XMLVerifier().verify(data, x509_cert=cert_pem, id_attribute="ID", expect_references=1)


@pytest.fixture
def logged_in(nurse_session: Pkcs11CardSession) -> Iterator[Pkcs11CardSession]:
    nurse_session.login(NURSE_PIN)
    yield nurse_session


@pytest.fixture
def signature_pem(nurse_session: Pkcs11CardSession) -> str:
    key = CardRsaKey(nurse_session, KeyRole.SIGNATURE)
    return key.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def test_a_saml_assertion_signed_by_the_card_verifies_with_its_certificate(
        logged_in: Pkcs11CardSession, signature_pem: str) -> None:
    key = CardRsaKey(logged_in, KeyRole.SIGNATURE)
    signed = sign(assertion(NURSE.national_id), key, signature_pem)

    children = [etree.QName(child).localname for child in signed]
    assert children == ["Issuer", "Signature", "Subject"]  # the placeholder was filled in
    assert len(signed.findall(f".//{{{DS}}}Signature")) == 1
    method = signed.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod")
    assert method is not None
    assert method.get("Algorithm") == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    verify(etree.tostring(signed), signature_pem)


def test_a_tampered_name_id_is_rejected(
        logged_in: Pkcs11CardSession, signature_pem: str) -> None:
    signed = sign(assertion(NURSE.national_id),
                  CardRsaKey(logged_in, KeyRole.SIGNATURE), signature_pem)
    name_id = signed.find(f"{{{SAML}}}Subject/{{{SAML}}}NameID")
    assert name_id is not None
    name_id.text = "810999999999"
    with pytest.raises(InvalidDigest):
        verify(etree.tostring(signed), signature_pem)


def test_the_key_describes_the_card_key_without_exposing_it(
        nurse_session: Pkcs11CardSession) -> None:
    key = CardRsaKey(nurse_session, KeyRole.SIGNATURE)
    assert key.key_size == 2048
    assert key.role is KeyRole.SIGNATURE
    assert key.public_key().public_numbers() == \
        key.certificate.public_key().public_numbers()  # type: ignore[union-attr]
    with pytest.raises(CardSignatureUnsupported, match="reste sur la carte"):
        key.private_numbers()
    with pytest.raises(CardSignatureUnsupported):
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())


def test_the_card_signs_pkcs1v15_sha256_and_nothing_else(
        logged_in: Pkcs11CardSession) -> None:
    key = CardRsaKey(logged_in, KeyRole.SIGNATURE)
    data = b"signed info"
    key.public_key().verify(key.sign(data, padding.PKCS1v15(), hashes.SHA256()), data,
                            padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(CardSignatureUnsupported, match="SHA256"):
        key.sign(data, padding.PKCS1v15(), hashes.SHA1())
    with pytest.raises(CardSignatureUnsupported, match="SHA256"):
        key.sign(hashlib.sha256(data).digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    with pytest.raises(CardSignatureUnsupported, match=r"PKCS#1 v1\.5"):
        key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())


def test_signing_before_the_pin_asks_for_it(
        nurse_session: Pkcs11CardSession, signature_pem: str) -> None:
    key = CardRsaKey(nurse_session, KeyRole.SIGNATURE)
    with pytest.raises(NotLoggedIn):
        sign(assertion(NURSE.national_id), key, signature_pem)
