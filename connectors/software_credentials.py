"""Establishment software certificates (indirect mode): "ORG AUTH_CLI" authenticates the
structure in mutual TLS, "ORG SIGN" (certificat de cachet) signs the VIHF and the XAdES.

The keys are PEM files readable by the service account only. This module is the only place that
holds them; the core sees a `sign(bytes) -> bytes` operation and the certificate's public data,
so a CPS card (PKCS#11) can take its place without the core noticing.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import XMLSigner

from bridge.domain import Author
from bridge.errors import BridgeError
from bridge.xades import SigningCertificate

_DN_LABELS = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    NameOID.TITLE: "title",
}


class CredentialsError(BridgeError):
    """The certificates cannot be used: missing, unreadable, not matching, expired."""

    code = "CREDENTIALS"
    event = "credentials_unusable"


def subject_dn(cert: x509.Certificate) -> str:
    """The DN as the VIHF Issuer shows it: 'C=FR, O=…, OU=…, CN=…' in certificate order."""
    return ", ".join(
        f"{_DN_LABELS.get(attr.oid, attr.oid.dotted_string)}={attr.value!s}"
        for rdn in cert.subject.rdns
        for attr in rdn
    )


def _structure_id(cert: x509.Certificate) -> str | None:
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(values[0].value) if len(values) == 1 else None


@dataclass(frozen=True)
class _KeyPair:
    cert: x509.Certificate
    cert_pem: bytes
    key: rsa.RSAPrivateKey


def _load_pair(cert_path: Path, key_path: Path, role: str) -> _KeyPair:
    try:
        cert_pem = cert_path.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise CredentialsError(
            f"Le certificat {role} ({cert_path.name}) ou sa clé est illisible : {exc}. "
            "Vérifiez les chemins dans la configuration, ou régénérez les certificats de test "
            "avec « dmp-bridge init --test-pki »."
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialsError(f"La clé du certificat {role} n'est pas une clé RSA.")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise CredentialsError(
            f"La clé {key_path.name} ne correspond pas au certificat {cert_path.name} ({role})."
        )
    return _KeyPair(cert, cert_pem, key)


class SoftwareCredentials:
    """ORG AUTH_CLI + ORG SIGN from PEM files, and the CA that the DMP server must present."""

    def __init__(
        self, *, tls_cert: Path, tls_key: Path, sign_cert: Path, sign_key: Path, server_ca: Path
    ) -> None:
        self._tls_cert, self._tls_key = tls_cert, tls_key
        self._auth = _load_pair(tls_cert, tls_key, "d'authentification (ORG AUTH_CLI)")
        self._sign = _load_pair(sign_cert, sign_key, "de signature (ORG SIGN)")
        self._server_ca = server_ca
        if not server_ca.is_file():
            raise CredentialsError(
                f"Le certificat de l'autorité du DMP ({server_ca}) est introuvable."
            )

    @property
    def issuer_dn(self) -> str:
        """DN of the certificate that signs the VIHF."""
        return subject_dn(self._sign.cert)

    @property
    def signing_certificate(self) -> SigningCertificate:
        cert = self._sign.cert
        return SigningCertificate(
            der=cert.public_bytes(serialization.Encoding.DER),
            issuer_name=cert.issuer.rfc4514_string(),
            serial_number=cert.serial_number,
        )

    def sign(self, data: bytes) -> bytes:
        """RSA PKCS#1 v1.5 with SHA-256 over `data` (the XAdES SignedInfo)."""
        return self._sign.key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def sign_vihf(self, assertion: etree._Element) -> etree._Element:
        """Enveloped XML-DSig of the assertion (exc-c14n, RSA-SHA256), replacing its placeholder."""
        signer = XMLSigner(
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm=SignatureMethod.RSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )
        signed: etree._Element = signer.sign(
            assertion,
            key=self._sign.key,
            cert=self._sign.cert_pem.decode("ascii"),
            reference_uri="#" + assertion.get("ID", ""),
            id_attribute="ID",
        )
        return signed

    @property
    def structure_ids(self) -> frozenset[str]:
        """Struct_IdNat of the structure, from the OU of BOTH certificates (IGC Santé
        personne-morale DN); empty when they do not name the same one."""
        tls, signer = (_structure_id(pair.cert) for pair in (self._auth, self._sign))
        return frozenset({tls}) if tls is not None and tls == signer else frozenset()

    def may_send_as(self, author: Author) -> bool:
        """Establishment certificates send only for their own structure: the TLS identity and
        the VIHF/XAdES signer must both be the author's structure."""
        return author.structure_id in self.structure_ids

    def ssl_context(self) -> ssl.SSLContext:
        """TLS 1.2+ client context: our ORG AUTH_CLI certificate, and only the DMP's CA trusted."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self._server_ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self._tls_cert), str(self._tls_key))
        return context
