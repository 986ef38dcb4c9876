"""The VIHF's enveloped XML-DSig, whoever holds the key (spec/dmp-protocol.md §2.3,
spec/card-auth.md B4): exclusive c14n, RSA-SHA256, the signing certificate in X509Data, in place
of the `ds:Signature` placeholder that `bridge.vihf` puts right after `Issuer`.

`key` is a software RSA key (establishment certificates) or a card key object that only signs
(`connectors.card_signing_key.CardRsaKey`): signxml calls nothing but `key.sign(...)` when a
certificate is given.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree


def sign_vihf(assertion: etree._Element, key: rsa.RSAPrivateKey,
              certificate: x509.Certificate) -> etree._Element:
    """The assertion, signed (enveloped, reference to its `ID`)."""
    # Imported here: signxml costs memory the idle service does not need (benchmarks/).
    from signxml.algorithms import (
        CanonicalizationMethod,
        DigestAlgorithm,
        SignatureConstructionMethod,
        SignatureMethod,
    )
    from signxml.signer import XMLSigner

    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed: etree._Element = signer.sign(
        assertion,
        key=key,
        cert=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        reference_uri="#" + assertion.get("ID", ""),
        id_attribute="ID",
    )
    return signed
