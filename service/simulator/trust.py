"""Certificates and XML signatures: does a signing certificate chain to the test CA, and does a
`ds:Signature` verify with it (signxml, SHA-1 and SHA-256 accepted as the spec asks, §2.3/§4.3).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from lxml import etree
from signxml import (  # type: ignore[attr-defined]
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureMethod,
    XMLVerifier,
)
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature
from signxml.verifier import SignatureConfiguration, VerifyResult

from service.simulator.namespaces import DS, q

ACCEPTED_SIGNATURE_METHODS = frozenset(
    {
        SignatureMethod.RSA_SHA1,
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.ECDSA_SHA256,
    }
)
ACCEPTED_DIGESTS = frozenset(
    {DigestAlgorithm.SHA1, DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
)


class SignatureRefused(ValueError):
    """The signature or its certificate is refused; `message_fr` says why (no health data)."""

    def __init__(self, message_fr: str) -> None:
        super().__init__(message_fr)
        self.message_fr = message_fr


class Trust:
    """The CA the simulator trusts (the test IGC Santé)."""

    def __init__(self, ca_cert: x509.Certificate) -> None:
        self.ca_cert = ca_cert

    @classmethod
    def from_file(cls, path: Path) -> Trust:
        return cls(x509.load_pem_x509_certificate(path.read_bytes()))

    def check_certificate(self, cert: x509.Certificate, now: dt.datetime) -> None:
        """Raise SignatureRefused unless `cert` is issued by the CA and valid at `now`."""
        if cert.issuer != self.ca_cert.subject:
            raise SignatureRefused("Le certificat de signature n'est pas émis par une AC reconnue.")
        key = self.ca_cert.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(
                    cert.signature,
                    cert.tbs_certificate_bytes,
                    padding.PKCS1v15(),
                    cert.signature_hash_algorithm,  # type: ignore[arg-type]
                )
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(
                    cert.signature,
                    cert.tbs_certificate_bytes,
                    ec.ECDSA(cert.signature_hash_algorithm),  # type: ignore[arg-type]
                )
            else:
                raise SignatureRefused("Type de clé de l'AC non pris en charge.")
        except CryptoInvalidSignature as exc:
            raise SignatureRefused(
                "Le certificat de signature ne chaîne pas vers une AC reconnue."
            ) from exc
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise SignatureRefused("Le certificat de signature est expiré ou pas encore valide.")


def keyinfo_certificate(signature: etree._Element) -> x509.Certificate:
    """The one certificate in `ds:KeyInfo/ds:X509Data/ds:X509Certificate`."""
    found = signature.findall(f"{q(DS, 'KeyInfo')}/{q(DS, 'X509Data')}/{q(DS, 'X509Certificate')}")
    if len(found) != 1:
        raise SignatureRefused("KeyInfo doit contenir exactement un X509Certificate.")
    text = "".join((found[0].text or "").split())
    pem = "-----BEGIN CERTIFICATE-----\n" + text + "\n-----END CERTIFICATE-----\n"
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise SignatureRefused("Certificat X509 illisible dans KeyInfo.") from exc


def verify_signature(
    root: etree._Element,
    *,
    trust: Trust,
    now: dt.datetime,
    expect_references: int,
    id_attribute: str | None = None,
    location: str = ".//",
    validate_schema: bool = True,
) -> tuple[x509.Certificate, list[VerifyResult]]:
    """Check the KeyInfo certificate against the CA, then the signature with signxml.

    `validate_schema=False` skips signxml's xmldsig schema check (the IHE DSG signature puts
    bare text in ds:SignatureProperty, which that schema refuses).
    """
    signature = root if root.tag == q(DS, "Signature") else root.find(f".//{q(DS, 'Signature')}")
    if signature is None:
        raise SignatureRefused("Aucune signature ds:Signature trouvée.")
    cert = keyinfo_certificate(signature)
    trust.check_certificate(cert, now)
    config = SignatureConfiguration(
        expect_references=expect_references,
        signature_methods=ACCEPTED_SIGNATURE_METHODS,
        digest_algorithms=ACCEPTED_DIGESTS,
        location=location,
        # XML-DSig 1.0: a same-document reference without a c14n transform is c14n 1.0.
        default_reference_c14n_method=CanonicalizationMethod.CANONICAL_XML_1_0,
    )
    try:
        results = XMLVerifier().verify(
            root, x509_cert=cert, id_attribute=id_attribute, expect_config=config,
            validate_schema=validate_schema,
        )
    except etree.DocumentInvalid as exc:
        raise SignatureRefused("Signature non conforme au schéma XML-DSig.") from exc
    except InvalidDigest as exc:
        raise SignatureRefused("Empreinte d'une référence signée incorrecte.") from exc
    except (InvalidSignature, InvalidCertificate) as exc:
        raise SignatureRefused("Signature cryptographiquement invalide.") from exc
    except (InvalidInput, ValueError, KeyError) as exc:
        raise SignatureRefused("Signature mal formée ou algorithme non accepté.") from exc
    listed = results if isinstance(results, list) else [results]
    return cert, listed
