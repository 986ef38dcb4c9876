"""Establishment certificates as the IGC Santé delivers them: two PKCS#12 (.p12) files and a
passphrase kept alone in a private file (connectors/software_credentials.py, from_pkcs12).

The .p12 files are real, built from the test PKI; the TLS identity is checked by a real
mutual-TLS server on 127.0.0.1. The passphrase is a canary that must never leak."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import ssl
import stat
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from lxml import etree
from signxml import XMLVerifier  # type: ignore[attr-defined]

from connectors.software_credentials import CredentialsError, SoftwareCredentials
from service.test_pki import CertPair, generate_test_pki
from service.test_pki import TestPki as Pki
from tests.test_software_credentials import exchange, mtls_echo_server

STRUCTURE_ID = "499700366240007"
CANARY = "canari-PhraseDePasse-93f1c7"  # the passphrase: must appear nowhere


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return generate_test_pki(tmp_path_factory.mktemp("pki"), structure_id=STRUCTURE_ID)


# -- building .p12 files as the IGC Santé delivers them -------------------------------------------


def load_pair(pair: CertPair) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key, x509.load_pem_x509_certificate(pair.cert.read_bytes())


def ca_of(pki: Pki) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return load_pair(CertPair(pki.ca_cert, pki.ca_key))


def p12_bytes(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None,
              cert: x509.Certificate | None, authorities: list[x509.Certificate],
              passphrase: str = CANARY) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"certificat IGC Sante", key, cert, authorities or None,
        serialization.BestAvailableEncryption(passphrase.encode()))


def reissued(pki: Pki, cert: x509.Certificate,
             public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, *,
             not_before: dt.datetime, not_after: dt.datetime) -> x509.Certificate:
    """The same subject, issued by the test authority for `public_key` and these dates."""
    ca_key, ca_cert = ca_of(pki)
    return (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(ca_cert.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .sign(ca_key, hashes.SHA256()))


def write_private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@dataclass
class Delivered:
    """What the structure received and where the service keeps it."""

    tls_p12: Path
    sign_p12: Path
    passphrase_file: Path
    server_ca: Path
    work_dir: Path

    def load(self) -> SoftwareCredentials:
        return SoftwareCredentials.from_pkcs12(
            tls_p12=self.tls_p12, sign_p12=self.sign_p12, passphrase_file=self.passphrase_file,
            server_ca=self.server_ca, work_dir=self.work_dir)


@pytest.fixture
def delivered(pki: Pki, tmp_path: Path) -> Delivered:
    folder = tmp_path / "pki"
    folder.mkdir()
    work_dir = tmp_path / "donnees"
    work_dir.mkdir()
    _, ca_cert = ca_of(pki)
    return Delivered(
        tls_p12=write_private(folder / "auth.p12", p12_bytes(*load_pair(pki.org_auth), [ca_cert])),
        sign_p12=write_private(folder / "sign.p12", p12_bytes(*load_pair(pki.org_sign), [ca_cert])),
        passphrase_file=write_private(folder / "phrase-p12.txt", f"{CANARY}\n".encode()),
        server_ca=pki.ca_cert,
        work_dir=work_dir,
    )


def refusal(delivered: Delivered) -> CredentialsError:
    with pytest.raises(CredentialsError) as caught:
        delivered.load()
    assert caught.value.code == "CREDENTIALS"
    return caught.value


# -- what the .p12 files give ---------------------------------------------------------------------


def test_the_p12_files_give_the_same_identity_as_the_pem_pairs(
        pki: Pki, delivered: Delivered) -> None:
    from_pem = SoftwareCredentials(
        tls_cert=pki.org_auth.cert, tls_key=pki.org_auth.key,
        sign_cert=pki.org_sign.cert, sign_key=pki.org_sign.key, server_ca=pki.ca_cert)

    creds = delivered.load()

    assert creds.issuer_dn == from_pem.issuer_dn
    assert creds.issuer_dn.endswith("ORG SIGN")
    assert creds.signing_certificate == from_pem.signing_certificate
    assert creds.structure_ids == {STRUCTURE_ID}


def test_the_org_sign_key_of_the_p12_signs_verifiably(pki: Pki, delivered: Delivered) -> None:
    _, sign_cert = load_pair(pki.org_sign)
    public_key = sign_cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    data = b"<ds:SignedInfo>lot de soumission</ds:SignedInfo>"

    creds = delivered.load()

    public_key.verify(creds.sign(data), data, padding.PKCS1v15(), hashes.SHA256())
    assertion = etree.fromstring(b'<Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion" '
                                 b'ID="_vihf1"><Issuer>structure</Issuer></Assertion>')
    signed = etree.tostring(creds.sign_vihf(assertion))
    XMLVerifier().verify(signed, x509_cert=pki.org_sign.cert.read_text("ascii"),
                         id_attribute="ID", expect_references=1)


# -- mutual TLS: the key goes to `ssl` through a one-call private file ----------------------------


@dataclass
class Deletion:
    path: Path
    content: bytes
    mode: int


@dataclass
class DeletionWatch:
    """Files deleted while active, read just before they go (a Python audit hook)."""

    active: bool = False
    seen: list[Deletion] = field(default_factory=list)


WATCH = DeletionWatch()


def _on_audit(event: str, args: tuple[object, ...]) -> None:
    if WATCH.active and event == "os.remove" and isinstance(args[0], str | os.PathLike):
        path = Path(args[0])
        with contextlib.suppress(OSError):
            WATCH.seen.append(Deletion(path, path.read_bytes(), stat.S_IMODE(path.stat().st_mode)))


sys.addaudithook(_on_audit)  # audit hooks cannot be removed: it records only while watching


@contextlib.contextmanager
def watching_deletions() -> Iterator[list[Deletion]]:
    WATCH.seen, WATCH.active = [], True
    try:
        yield WATCH.seen
    finally:
        WATCH.active = False


async def test_the_p12_tls_identity_completes_a_mutual_tls_handshake(
        pki: Pki, delivered: Delivered) -> None:
    creds = delivered.load()

    with watching_deletions() as deleted:
        context = creds.ssl_context()
    async with mtls_echo_server(pki) as server:
        answer = await asyncio.wait_for(exchange(server.port, context), 10)

    assert answer == b"ping"
    [peer] = server.peers
    subject = {key: value for rdn in peer["subject"] for key, value in rdn}  # type: ignore[attr-defined]
    assert subject["organizationalUnitName"] == STRUCTURE_ID
    assert subject["commonName"].endswith("ORG AUTH_CLI")
    # The key reached `ssl` through one file in the data folder, private, key encrypted, gone.
    [handed] = deleted
    assert handed.path.parent == delivered.work_dir
    if os.name == "posix":
        assert handed.mode == 0o600
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in handed.content
    assert b"-----BEGIN PRIVATE KEY-----" not in handed.content
    assert b"BEGIN RSA PRIVATE KEY" not in handed.content
    assert handed.content.count(b"-----BEGIN CERTIFICATE-----") == 2  # ORG AUTH_CLI + its CA
    assert list(delivered.work_dir.iterdir()) == []


async def test_the_p12_tls_identity_still_refuses_a_server_of_another_authority(
        tmp_path: Path, delivered: Delivered) -> None:
    stranger = generate_test_pki(tmp_path / "autre-ac", structure_id=STRUCTURE_ID)

    async with mtls_echo_server(stranger) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.wait_for(exchange(server.port, delivered.load().ssl_context()), 10)

    assert server.peers == []


def test_a_missing_data_folder_for_the_tls_file_is_said_in_french(delivered: Delivered) -> None:
    delivered.work_dir.rmdir()
    creds = delivered.load()

    with pytest.raises(CredentialsError) as caught:
        creds.ssl_context()

    assert str(delivered.work_dir) in caught.value.message_fr
    assert "dossier de données existe" in caught.value.message_fr


# -- the passphrase file --------------------------------------------------------------------------


@pytest.mark.parametrize("content", [
    f"{CANARY}\n", f"{CANARY}", f"{CANARY}\r\n", f"\ufeff{CANARY}\n",
], ids=["newline", "no-newline", "windows-line-end", "notepad-bom"])
def test_one_line_end_is_not_part_of_the_passphrase(content: str, delivered: Delivered) -> None:
    delivered.passphrase_file.write_bytes(content.encode())

    assert delivered.load().structure_ids == {STRUCTURE_ID}


@pytest.mark.parametrize("content", [f"{CANARY}\n\n", f" {CANARY}\n", f"{CANARY} \n"],
                         ids=["two-newlines", "leading-space", "trailing-space"])
def test_only_one_line_end_is_removed(content: str, delivered: Delivered) -> None:
    delivered.passphrase_file.write_bytes(content.encode())

    error = refusal(delivered)

    assert "ne s'ouvre pas avec la phrase de passe" in error.message_fr


@pytest.mark.skipif(os.name != "posix", reason="Windows: the file's ACL decides, not mode bits")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660, 0o644])
def test_a_passphrase_file_open_to_other_accounts_is_refused(
        mode: int, delivered: Delivered) -> None:
    delivered.passphrase_file.chmod(mode)

    error = refusal(delivered)

    assert f"« chmod 600 {delivered.passphrase_file} »" in error.message_fr
    assert "d'autres comptes" in error.message_fr
    delivered.passphrase_file.chmod(0o600)
    assert delivered.load().structure_ids == {STRUCTURE_ID}


def test_a_missing_passphrase_file_says_how_to_create_it(delivered: Delivered) -> None:
    delivered.passphrase_file.unlink()

    error = refusal(delivered)

    assert str(delivered.passphrase_file) in error.message_fr
    assert "introuvable" in error.message_fr and "chmod 600" in error.message_fr


@pytest.mark.parametrize("content", [b"", b"\n", b"\r\n"], ids=["empty", "newline", "crlf"])
def test_an_empty_passphrase_file_is_refused(content: bytes, delivered: Delivered) -> None:
    delivered.passphrase_file.write_bytes(content)

    error = refusal(delivered)

    assert "est vide" in error.message_fr and str(delivered.passphrase_file) in error.message_fr


# -- unusable .p12 files --------------------------------------------------------------------------


def test_a_wrong_passphrase_names_the_file_and_what_to_check(delivered: Delivered) -> None:
    delivered.passphrase_file.write_text("pas-la-bonne-phrase\n", encoding="utf-8")

    error = refusal(delivered)

    message = error.message_fr
    assert str(delivered.tls_p12) in message and "d'authentification (ORG AUTH_CLI)" in message
    assert str(delivered.passphrase_file) in message and "IGC Santé" in message
    assert "pas-la-bonne-phrase" not in message


def test_a_sign_p12_with_another_passphrase_names_the_sign_file(
        pki: Pki, delivered: Delivered) -> None:
    _, ca_cert = ca_of(pki)
    delivered.sign_p12.write_bytes(p12_bytes(*load_pair(pki.org_sign), [ca_cert], "autre"))

    error = refusal(delivered)

    assert str(delivered.sign_p12) in error.message_fr
    assert "de signature (ORG SIGN)" in error.message_fr


def test_a_pem_certificate_given_as_p12_is_recognised(pki: Pki, delivered: Delivered) -> None:
    delivered.tls_p12.write_bytes(pki.org_auth.cert.read_bytes())

    error = refusal(delivered)

    assert "n'est pas un fichier PKCS#12" in error.message_fr
    assert "tls_p12" in error.message_fr and str(delivered.tls_p12) in error.message_fr


def test_a_missing_p12_names_the_setting(delivered: Delivered) -> None:
    delivered.sign_p12.unlink()

    error = refusal(delivered)

    assert "illisible" in error.message_fr and "« sign_p12 »" in error.message_fr


def test_a_p12_without_its_private_key_is_refused(pki: Pki, delivered: Delivered) -> None:
    _, cert = load_pair(pki.org_auth)
    _, ca_cert = ca_of(pki)
    delivered.tls_p12.write_bytes(p12_bytes(None, cert, [ca_cert]))

    error = refusal(delivered)

    assert "ne contient pas de clé privée" in error.message_fr
    assert str(delivered.tls_p12) in error.message_fr


def test_a_p12_with_a_non_rsa_key_is_refused(pki: Pki, delivered: Delivered) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    _, auth_cert = load_pair(pki.org_auth)
    now = dt.datetime.now(dt.UTC)
    cert = reissued(pki, auth_cert, key.public_key(), not_before=now - dt.timedelta(days=1),
                    not_after=now + dt.timedelta(days=365))
    delivered.sign_p12.write_bytes(p12_bytes(key, cert, []))

    error = refusal(delivered)

    assert "n'est pas une clé RSA" in error.message_fr and "RSA-SHA256" in error.message_fr
    assert str(delivered.sign_p12) in error.message_fr


def test_a_p12_whose_certificate_is_not_its_keys_is_refused(
        pki: Pki, delivered: Delivered) -> None:
    # A key with someone else's certificate (the PKCS#12 writer refuses to pair them, so the
    # stranger certificate rides along as an extra one, as a bad export does).
    auth_key, _ = load_pair(pki.org_auth)
    _, sign_cert = load_pair(pki.org_sign)
    delivered.tls_p12.write_bytes(p12_bytes(auth_key, None, [sign_cert]))

    error = refusal(delivered)

    assert "ne contient pas le certificat qui correspond à sa clé privée" in error.message_fr
    assert str(delivered.tls_p12) in error.message_fr


@pytest.mark.parametrize(("start", "end", "expected"), [
    (-400, -2, "a expiré le"),
    (3, 400, "n'est valable qu'à partir du"),
], ids=["expired", "not-yet-valid"])
def test_a_certificate_outside_its_validity_is_refused(
        start: int, end: int, expected: str, pki: Pki, delivered: Delivered) -> None:
    key, cert = load_pair(pki.org_sign)
    now = dt.datetime.now(dt.UTC)
    dated = reissued(pki, cert, key.public_key(), not_before=now + dt.timedelta(days=start),
                     not_after=now + dt.timedelta(days=end))
    delivered.sign_p12.write_bytes(p12_bytes(key, dated, []))

    error = refusal(delivered)

    message = error.message_fr
    assert expected in message and "sign.p12" in message and "de signature (ORG SIGN)" in message
    shown = dated.not_valid_after_utc if start < 0 else dated.not_valid_before_utc
    assert f"{shown:%d/%m/%Y}" in message
    if start < 0:
        assert "portail IGC Santé" in message and str(delivered.passphrase_file) in message
    else:
        assert "date et l'heure du poste" in message


# -- the passphrase never leaks -------------------------------------------------------------------


def damage(case: str, pki: Pki, delivered: Delivered) -> None:
    """Make `delivered` unusable in one way; "" leaves it fine."""
    auth_key, auth_cert = load_pair(pki.org_auth)
    if case == "wrong-passphrase":
        delivered.tls_p12.write_bytes(p12_bytes(auth_key, auth_cert, [], CANARY + "-ancienne"))
    elif case == "no-key":
        delivered.tls_p12.write_bytes(p12_bytes(None, auth_cert, []))
    elif case == "not-its-certificate":
        delivered.tls_p12.write_bytes(p12_bytes(auth_key, None, [load_pair(pki.org_sign)[1]]))
    elif case == "open-to-others" and os.name == "posix":
        delivered.passphrase_file.chmod(0o644)
    elif case == "not-p12":
        delivered.tls_p12.write_text(CANARY, encoding="utf-8")


@pytest.mark.parametrize("case", [
    "", "wrong-passphrase", "no-key", "not-its-certificate", "open-to-others", "not-p12",
])
def test_the_passphrase_appears_in_no_file_log_or_error(
        case: str, pki: Pki, delivered: Delivered, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    damage(case, pki, delivered)
    canary = CANARY.encode()
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []

    with structlog.testing.capture_logs() as events, watching_deletions() as deleted:
        try:
            creds = delivered.load()
            creds.sign(b"donnees")
            creds.ssl_context()
        except CredentialsError as exc:
            errors.append(exc)

    assert bool(errors) == (case != "" and (case != "open-to-others" or os.name == "posix"))
    for error in errors:
        shown = "".join(traceback.format_exception(error)) + repr(error.__context__)
        assert CANARY not in shown and CANARY not in repr(error.args)
    assert CANARY not in caplog.text and CANARY not in repr(events)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != delivered.passphrase_file and (
                before.get(path) != path.read_bytes()):
            assert canary not in path.read_bytes(), path
    assert all(canary not in gone.content for gone in deleted)
    if not errors:
        assert deleted, "the TLS file was written and deleted"


# -- expiry ---------------------------------------------------------------------------------------


def test_both_certificates_validities_say_where_the_renewed_p12_goes(
        pki: Pki, delivered: Delivered) -> None:
    creds = delivered.load()

    auth, sign = creds.certificate_validities()

    assert auth.role == "certificat d'authentification (ORG AUTH_CLI)"
    assert sign.role == "certificat de signature (ORG SIGN)"
    assert auth.not_after == load_pair(pki.org_auth)[1].not_valid_after_utc
    assert sign.not_after == load_pair(pki.org_sign)[1].not_valid_after_utc
    assert str(delivered.tls_p12) in auth.renewal_fr and "« tls_p12 »" in auth.renewal_fr
    assert str(delivered.sign_p12) in sign.renewal_fr and "« sign_p12 »" in sign.renewal_fr
    assert "portail IGC Santé" in sign.renewal_fr


def test_a_certificate_a_week_from_its_end_is_warned_about_once(
        pki: Pki, delivered: Delivered) -> None:
    key, cert = load_pair(pki.org_sign)
    now = dt.datetime.now(dt.UTC)
    ending = reissued(pki, cert, key.public_key(), not_before=now - dt.timedelta(days=700),
                      not_after=now + dt.timedelta(days=6))
    delivered.sign_p12.write_bytes(p12_bytes(key, ending, []))
    creds = delivered.load()

    first = creds.expiry_warnings(now, frozenset())

    [warning] = first.warnings
    assert warning.role == "certificat de signature (ORG SIGN)" and warning.threshold_days == 7
    assert f"{ending.not_valid_after_utc:%d/%m/%Y}" in warning.message_fr
    assert str(delivered.sign_p12) in warning.message_fr
    assert creds.expiry_warnings(now + dt.timedelta(hours=1), first.announced).warnings == ()
