"""Establishment software certificates (connectors/software_credentials.py) on a real test PKI,
and their TLS identity checked by a real mutual-TLS server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shutil
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connectors.software_credentials import CredentialsError, SoftwareCredentials
from service.test_pki import TestPki as Pki
from service.test_pki import generate_test_pki
from tests.factories import make_author

STRUCTURE_ID = "499700366240007"
STRUCTURE_NAME = "CABINET INFIRMIER DEMO"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    # RSA key generation is the slow part: one PKI for the module.
    return generate_test_pki(tmp_path_factory.mktemp("pki"), structure_id=STRUCTURE_ID,
                             structure_name=STRUCTURE_NAME)


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Another test authority: same names, different keys, not trusted by the first one."""
    return generate_test_pki(tmp_path_factory.mktemp("autre-pki"), structure_id=STRUCTURE_ID,
                             structure_name=STRUCTURE_NAME)


def credentials(pki: Pki, *, server_ca: Path | None = None) -> SoftwareCredentials:
    return SoftwareCredentials(
        tls_cert=pki.org_auth.cert, tls_key=pki.org_auth.key,
        sign_cert=pki.org_sign.cert, sign_key=pki.org_sign.key,
        server_ca=server_ca or pki.ca_cert,
    )


# -- public data and signature ------------------------------------------------------------------


def test_issuer_dn_names_country_organisation_structure_and_common_name(pki: Pki) -> None:
    assert credentials(pki).issuer_dn == (
        f"C=FR, O={STRUCTURE_NAME}, OU={STRUCTURE_ID}, CN={STRUCTURE_NAME} ORG SIGN")


def test_signing_certificate_is_the_org_sign_certificate(pki: Pki) -> None:
    cert = x509.load_pem_x509_certificate(pki.org_sign.cert.read_bytes())

    signing = credentials(pki).signing_certificate

    assert signing.der == cert.public_bytes(serialization.Encoding.DER)
    assert signing.serial_number == cert.serial_number
    assert signing.issuer_name == cert.issuer.rfc4514_string()
    assert "DMP-BRIDGE TEST" in signing.issuer_name


def test_sign_is_rsa_sha256_verifiable_with_the_certificate_public_key(pki: Pki) -> None:
    public_key = x509.load_pem_x509_certificate(pki.org_sign.cert.read_bytes()).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    data = b"<ds:SignedInfo>lot de soumission</ds:SignedInfo>"

    signature = credentials(pki).sign(data)

    public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        public_key.verify(signature, data + b" altered", padding.PKCS1v15(), hashes.SHA256())


# -- unusable files -----------------------------------------------------------------------------


def test_establishment_certificates_send_only_for_their_own_structure(
        pki: Pki, tmp_path: Path) -> None:
    creds = credentials(pki)
    assert creds.structure_ids == {STRUCTURE_ID}
    assert creds.may_send_as(make_author(structure_id=STRUCTURE_ID))
    assert not creds.may_send_as(make_author(structure_id="410101010101999"))
    # TLS identity of one structure, signer of another: it may send for neither.
    other = generate_test_pki(tmp_path / "autre", structure_id="410101010101999")
    mixed = SoftwareCredentials(
        tls_cert=pki.org_auth.cert, tls_key=pki.org_auth.key,
        sign_cert=other.org_sign.cert, sign_key=other.org_sign.key, server_ca=pki.ca_cert)
    assert mixed.structure_ids == frozenset()
    assert not mixed.may_send_as(make_author(structure_id=STRUCTURE_ID))


def test_a_key_that_does_not_match_its_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(CredentialsError) as caught:
        SoftwareCredentials(tls_cert=pki.org_auth.cert, tls_key=pki.org_sign.key,
                            sign_cert=pki.org_sign.cert, sign_key=pki.org_sign.key,
                            server_ca=pki.ca_cert)

    message = caught.value.message_fr
    assert "ne correspond pas au certificat" in message
    assert pki.org_sign.key.name in message and pki.org_auth.cert.name in message
    assert caught.value.code == "CREDENTIALS"


def test_a_missing_key_file_is_refused_with_what_to_do(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(CredentialsError) as caught:
        SoftwareCredentials(tls_cert=pki.org_auth.cert, tls_key=tmp_path / "absente.key",
                            sign_cert=pki.org_sign.cert, sign_key=pki.org_sign.key,
                            server_ca=pki.ca_cert)

    message = caught.value.message_fr
    assert "illisible" in message and "Vérifiez les chemins dans la configuration" in message


def test_a_missing_server_ca_is_refused(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(CredentialsError) as caught:
        credentials(pki, server_ca=tmp_path / "ac-absente.pem")

    assert "est introuvable" in caught.value.message_fr


@pytest.mark.parametrize("damaged", ["cert", "key"])
def test_a_garbage_pem_is_refused(damaged: str, pki: Pki, tmp_path: Path) -> None:
    cert, key = tmp_path / "org-sign.pem", tmp_path / "org-sign.key"
    shutil.copy(pki.org_sign.cert, cert)
    shutil.copy(pki.org_sign.key, key)
    garbage = (b"-----BEGIN CERTIFICATE-----\nce n'est pas un certificat\n"
               b"-----END CERTIFICATE-----\n")
    (cert if damaged == "cert" else key).write_bytes(garbage)

    with pytest.raises(CredentialsError) as caught:
        SoftwareCredentials(tls_cert=pki.org_auth.cert, tls_key=pki.org_auth.key,
                            sign_cert=cert, sign_key=key, server_ca=pki.ca_cert)

    message = caught.value.message_fr
    assert "de signature (ORG SIGN)" in message and "illisible" in message


# -- mutual TLS against a real server ------------------------------------------------------------


@dataclass
class EchoServer:
    port: int
    peers: list[dict[str, object]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def mtls_echo_server(pki: Pki) -> AsyncIterator[EchoServer]:
    """An echo server on 127.0.0.1 that requires a client certificate issued by `pki`'s CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.server.cert), str(pki.server.key))
    context.verify_mode = ssl.CERT_REQUIRED
    peers: list[dict[str, object]] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peers.append(writer.get_extra_info("peercert"))
            writer.write(await reader.readexactly(4))
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=context)
    try:
        yield EchoServer(server.sockets[0].getsockname()[1], peers)
    finally:
        server.close()
        await server.wait_closed()


async def exchange(port: int, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        writer.write(b"ping")
        await writer.drain()
        return await reader.readexactly(4)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def test_ssl_context_completes_a_mutual_tls_handshake(pki: Pki) -> None:
    async with mtls_echo_server(pki) as server:
        answer = await asyncio.wait_for(exchange(server.port, credentials(pki).ssl_context()), 10)

    assert answer == b"ping"
    [peer] = server.peers
    subject = {key: value for rdn in peer["subject"] for key, value in rdn}  # type: ignore[attr-defined]
    assert subject["organizationalUnitName"] == STRUCTURE_ID
    assert subject["commonName"].endswith("ORG AUTH_CLI")


async def test_a_client_certificate_from_another_authority_is_refused(
        pki: Pki, other_pki: Pki) -> None:
    # The stranger trusts our server, but its own certificate comes from another authority.
    stranger = credentials(other_pki, server_ca=pki.ca_cert)

    async with mtls_echo_server(pki) as server:
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(exchange(server.port, stranger.ssl_context()), 10)

    assert server.peers == []


async def test_ssl_context_refuses_a_server_from_another_authority(
        pki: Pki, other_pki: Pki) -> None:
    async with mtls_echo_server(other_pki) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.wait_for(exchange(server.port, credentials(pki).ssl_context()), 10)

    assert server.peers == []


# -- validity ------------------------------------------------------------------------------------


def test_an_expired_pem_certificate_is_refused_with_what_to_do(pki: Pki, tmp_path: Path) -> None:
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    current = x509.load_pem_x509_certificate(pki.org_sign.cert.read_bytes())
    now = dt.datetime.now(dt.UTC)
    expired = (x509.CertificateBuilder().subject_name(current.subject)
               .issuer_name(ca_cert.subject).public_key(current.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=800))
               .not_valid_after(now - dt.timedelta(days=1))
               .sign(ca_key, hashes.SHA256()))
    cert = tmp_path / "org-sign.pem"
    cert.write_bytes(expired.public_bytes(serialization.Encoding.PEM))

    with pytest.raises(CredentialsError) as caught:
        SoftwareCredentials(tls_cert=pki.org_auth.cert, tls_key=pki.org_auth.key,
                            sign_cert=cert, sign_key=pki.org_sign.key, server_ca=pki.ca_cert)

    message = caught.value.message_fr
    assert f"a expiré le {expired.not_valid_after_utc:%d/%m/%Y}" in message
    assert "de signature (ORG SIGN)" in message and str(cert) in message


def test_pem_credentials_report_both_validities(pki: Pki) -> None:
    auth, sign = credentials(pki).certificate_validities()

    assert auth.role.endswith("(ORG AUTH_CLI)") and sign.role.endswith("(ORG SIGN)")
    assert sign.not_after == x509.load_pem_x509_certificate(
        pki.org_sign.cert.read_bytes()).not_valid_after_utc
    assert str(pki.org_sign.key) in sign.renewal_fr
    assert credentials(pki).expiry_warnings(dt.datetime.now(dt.UTC), frozenset()).warnings == ()
