"""A test PKI for the simulator tests: the layout of `service.test_pki` plus a "CPS-like"
client certificate (subject with an RPPS PS_IdNat), which the shared test PKI does not issue.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from service.test_pki import CertPair, TestPki

CPS_RPPS = "899700366240"


@dataclass(frozen=True)
class SimPki(TestPki):
    """The test PKI plus a CPS-like TLS client certificate."""

    cps: CertPair


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def _issue(directory: Path, stem: str, subject: x509.Name, ca: tuple[x509.Certificate,
           rsa.RSAPrivateKey] | None, *, usage: x509.ObjectIdentifier | None = None,
           ip: str | None = None) -> tuple[x509.Certificate, rsa.RSAPrivateKey, CertPair]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer_name, issuer_key = (subject, key) if ca is None else (ca[0].subject, ca[1])
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None),
                              critical=True))
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ip is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    pair = CertPair(directory / f"{stem}.pem", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert, key, pair


def make_pki(directory: Path) -> SimPki:
    """CA, simulator server, ORG AUTH_CLI, ORG SIGN and a CPS card certificate."""
    ca_cert, ca_key, ca_pair = _issue(directory, "ac", _name(
        (NameOID.COUNTRY_NAME, "FR"), (NameOID.COMMON_NAME, "AC TEST SIMULATEUR")), None)
    ca = (ca_cert, ca_key)
    org = ((NameOID.COUNTRY_NAME, "FR"), (NameOID.ORGANIZATION_NAME, "CABINET INFIRMIER DEMO"),
           (NameOID.ORGANIZATIONAL_UNIT_NAME, "499700366240007"))
    server = _issue(directory, "serveur", _name((NameOID.COMMON_NAME, "127.0.0.1")), ca,
                    usage=ExtendedKeyUsageOID.SERVER_AUTH, ip="127.0.0.1")[2]
    auth = _issue(directory, "org-auth", _name(*org, (NameOID.COMMON_NAME, "DEMO ORG AUTH_CLI")),
                  ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH)[2]
    sign = _issue(directory, "org-sign", _name(*org, (NameOID.COMMON_NAME, "DEMO ORG SIGN")), ca)[2]
    cps = _issue(directory, "cps", _name((NameOID.COUNTRY_NAME, "FR"),
                                         (NameOID.COMMON_NAME, f"{CPS_RPPS}/Alex SOIGNANT")),
                 ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH)[2]
    return SimPki(ca_cert=ca_pair.cert, ca_key=ca_pair.key, server=server, org_auth=auth,
                  org_sign=sign, cps=cps)
