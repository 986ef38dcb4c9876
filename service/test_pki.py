"""A local test certification authority, for the simulator and the demo only.

It plays the role of the IGC Santé: one CA, a server certificate for the simulator (127.0.0.1),
and the two establishment certificates a structure holds for indirect mode — "ORG AUTH_CLI" for
mutual TLS and "ORG SIGN" (certificat de cachet) for the VIHF and XAdES signatures. Every file is
written readable by its owner only. Nothing here is ever trusted by the production profile.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TEST_CA_NAME = "AC TEST DMP-BRIDGE (ne pas utiliser en production)"
VALIDITY = dt.timedelta(days=825)


@dataclass(frozen=True)
class CertPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class TestPki:
    """Where the test authority's files are."""

    ca_cert: Path
    ca_key: Path  # kept so test CPS cards can be issued later (tests, `card` demo)
    server: CertPair
    org_auth: CertPair
    org_sign: CertPair


def pki_layout(directory: Path) -> TestPki:
    """The file names of a test PKI in `directory` (generated or not)."""

    def pair(stem: str) -> CertPair:
        return CertPair(directory / f"{stem}.pem", directory / f"{stem}.key")

    return TestPki(
        ca_cert=directory / "ac-test.pem",
        ca_key=directory / "ac-test.key",
        server=pair("simulateur-serveur"),
        org_auth=pair("org-auth-cli"),
        org_sign=pair("org-sign"),
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a file that only the service account may read (0600 where the OS supports it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    subject: x509.Name,
    key: rsa.RSAPrivateKey | rsa.RSAPublicKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    digital_signature_only: bool = False,
    ip_san: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=digital_signature_only,
                key_encipherment=not digital_signature_only,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ip_san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(ip_san)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _org_name(structure_id: str, structure_name: str, role: str) -> x509.Name:
    # Shape of an IGC Santé personne-morale DN: OU carries the structure's national id.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, structure_name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, structure_id),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{structure_name} {role}"),
        ]
    )


def generate_test_pki(
    directory: Path,
    *,
    structure_id: str = "499700366240007",
    structure_name: str = "CABINET INFIRMIER DEMO",
) -> TestPki:
    """Create the test authority and its certificates in `directory`, unless they exist.

    Safe to call twice: existing files are kept, so a running simulator keeps trusting the
    credentials it was started with.
    """
    layout = pki_layout(directory)
    wanted = [
        layout.ca_cert,
        layout.server.cert,
        layout.server.key,
        layout.org_auth.cert,
        layout.org_auth.key,
        layout.org_sign.cert,
        layout.org_sign.key,
    ]
    if all(path.exists() for path in wanted):
        return layout

    ca_key = _new_key()
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DMP-BRIDGE TEST"),
            x509.NameAttribute(NameOID.COMMON_NAME, TEST_CA_NAME),
        ]
    )
    ca_cert = _issue(ca_name, ca_key, ca_name, ca_key, ca=True)

    server_key = _new_key()
    server_cert = _issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
        server_key,
        ca_name,
        ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        ip_san="127.0.0.1",
    )
    auth_key = _new_key()
    auth_cert = _issue(
        _org_name(structure_id, structure_name, "ORG AUTH_CLI"),
        auth_key,
        ca_name,
        ca_key,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    sign_key = _new_key()
    sign_cert = _issue(
        _org_name(structure_id, structure_name, "ORG SIGN"),
        sign_key,
        ca_name,
        ca_key,
        digital_signature_only=True,
    )

    pem = serialization.Encoding.PEM
    _write_private(layout.server.key, _key_pem(server_key))
    _write_private(layout.server.cert, server_cert.public_bytes(pem))
    _write_private(layout.org_auth.key, _key_pem(auth_key))
    _write_private(layout.org_auth.cert, auth_cert.public_bytes(pem))
    _write_private(layout.org_sign.key, _key_pem(sign_key))
    _write_private(layout.org_sign.cert, sign_cert.public_bytes(pem))
    _write_private(layout.ca_key, _key_pem(ca_key))
    # The CA certificate last: its presence is what marks the set as complete.
    _write_private(layout.ca_cert, ca_cert.public_bytes(pem))
    return layout


def issue_card_certificate(
    layout: TestPki,
    public_key: rsa.RSAPublicKey,
    *,
    national_id: str,
    family_name: str,
    given_name: str,
    authentication: bool,
) -> x509.Certificate:
    """A TEST CPS certificate for a key held by a card or a token (the key never leaves it).

    Subject shaped like a CPS certificate (spec/card-auth.md A3): CN = PS_IdNat, SN, GN.
    `authentication`: the TLS key (digitalSignature, keyEncipherment, clientAuth); otherwise
    the signature key (digitalSignature, nonRepudiation).
    """
    try:
        ca_key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    except (OSError, ValueError):
        raise ValueError(
            f"L'autorité de test ({layout.ca_key}) est absente : régénérez la PKI de test "
            "(dmp-bridge init --test-pki --force)."
        ) from None
    if not isinstance(ca_key, rsa.RSAPrivateKey):
        raise ValueError("La clé de l'autorité de test n'est pas une clé RSA.")
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CPS TEST DMP-BRIDGE"),
        x509.NameAttribute(NameOID.SURNAME, family_name),
        x509.NameAttribute(NameOID.GIVEN_NAME, given_name),
        x509.NameAttribute(NameOID.COMMON_NAME, national_id),
    ])
    return _issue(
        subject, public_key, ca_cert.subject, ca_key,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH if authentication else None,
        digital_signature_only=not authentication,
    )
