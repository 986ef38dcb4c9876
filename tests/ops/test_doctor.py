"""`dmp-bridge doctor`: one ✔/✘ line per check, in French, with what to do; exit 1 on any ✘.

Against the real embedded simulator (mutual TLS on 127.0.0.1), a real SQLite queue and the
test PKI of `dmp-bridge init --test-pki`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bridge.jobs import JobState
from service.audit_trail import AuditTrail
from service.config import BridgeConfig, load_config
from service.doctor import check_dmp, clock_check
from service.runner import simulator_config
from service.simulator.server import start_simulator
from service.test_pki import pki_layout
from tests.ops.conftest import CANARY_INS, Installation, add_job
from tests.ops.file_attributes import attribute


def run_doctor(installation: Installation, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = installation.cli("doctor")
    return code, capsys.readouterr().out


def line(text: str, label: str) -> str:
    """The line (and its « → what to do » continuation) of one check."""
    match = re.search(rf"^([✔✘]) {re.escape(label)} : .*(\n    → .*)?", text, re.MULTILINE)
    assert match, f"no line for {label!r} in:\n{text}"
    return match.group(0)


def reissue_client_certificate(installation: Installation, *, expired: bool = False,
                               foreign: bool = False) -> None:
    """Re-issue ORG AUTH_CLI with the same key: ended yesterday (`expired`), or signed by an
    authority the DMP does not know (`foreign`)."""
    pki = pki_layout(installation.config.path(installation.config.dmp.server_ca).parent)
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    issuer = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()).subject
    old = x509.load_pem_x509_certificate(pki.org_auth.cert.read_bytes())
    if foreign:
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AC INCONNUE")])
    now = dt.datetime.now(dt.UTC)
    end = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=300)
    builder = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(issuer)
               .public_key(old.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=400)).not_valid_after(end))
    for extension in old.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    pki.org_auth.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


async def test_a_healthy_installation_gets_only_ticks(installation: Installation,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with installation.store() as store:
        add_job(store, 1, JobState.DONE)
    with AuditTrail.for_config(installation.config) as trail:
        trail.attempt([1], "1.2.250.1.999.7.1", "10101010101", CANARY_INS)
    code, text = await run_doctor_with_simulator(installation, capsys)
    assert code == 0, text
    assert "✘" not in text and text.rstrip().endswith("Tout est en ordre.")
    port = installation.config.simulator.port
    assert f"✔ Simulateur du DMP (TLS) : 127.0.0.1:{port} joignable (TLS mutuel" in text
    assert "conservation vérifiée" in line(text, "File d'attente")
    assert "intègre (1 enregistrements)" in line(text, "Journal d'audit")
    assert re.search(r"écart de \d+ s avec le serveur", line(text, "Horloge du poste"))
    assert "valable jusqu'au" in line(text, "Certificat d'authentification (ORG AUTH_CLI)")
    assert "Mo libres" in line(text, "Espace disque")


def test_a_broken_installation_gets_one_cross_per_problem_with_what_to_do(
        installation: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    config = installation.config
    for path in sorted(config.path(config.intake.folder).rglob("*"), reverse=True):
        path.rmdir()
    config.path(config.intake.folder).rmdir()  # the inbox was deleted
    config.store_path.write_bytes(b"ceci n'est pas une base SQLite " * 200)  # corrupt queue
    reissue_client_certificate(installation, expired=True)
    # …and no simulator runs: the DMP is unreachable.
    code, text = run_doctor(installation, capsys)
    assert code == 1
    inbox = line(text, "Dossier de dépôt")
    assert inbox.startswith("✘") and "introuvable" in inbox and "dmp-bridge init" in inbox
    queue = line(text, "File d'attente")
    assert queue.startswith("✘") and "endommagé" in queue and "restaurez" in queue
    cert = line(text, "Certificat d'authentification (ORG AUTH_CLI)")
    assert cert.startswith("✘") and "a expiré le" in cert and "nouveau certificat" in cert
    dmp = line(text, "Simulateur du DMP (TLS)")
    assert dmp.startswith("✘") and "injoignable" in dmp and "dmp-bridge run" in dmp
    assert line(text, "Dossier des données").startswith("✔")
    assert line(text, "Certificat de signature (ORG SIGN)").startswith("✔")
    assert "4 problème(s) à corriger" in text


async def run_doctor_with_simulator(installation: Installation,
                                    capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    simulator = await start_simulator(simulator_config(installation.config))
    try:
        return await asyncio.to_thread(run_doctor, installation, capsys)
    finally:
        await simulator.close()


async def test_a_certificate_from_another_authority_is_refused_by_the_dmp_and_said_so(
        installation: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    reissue_client_certificate(installation, foreign=True)
    code, text = await run_doctor_with_simulator(installation, capsys)
    assert code == 1
    tls = line(text, "Simulateur du DMP (TLS)")
    assert tls.startswith("✘") and "a refusé notre certificat" in tls
    assert "bonne autorité" in tls


async def test_an_expired_certificate_is_told_apart_from_an_unreachable_dmp(
        installation: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    reissue_client_certificate(installation, expired=True)
    code, text = await run_doctor_with_simulator(installation, capsys)
    assert code == 1
    tls = line(text, "Simulateur du DMP (TLS)")
    assert tls.startswith("✘") and "joignable, mais TLS mutuel impossible" in tls
    assert "a expiré" in tls


def test_a_missing_configuration_says_how_to_create_one(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from service.cli import main

    assert main(["doctor", "--config", str(tmp_path / "absent.toml")]) == 1
    text = capsys.readouterr().out
    assert line(text, "Configuration").startswith("✘") and "dmp-bridge init" in text


@pytest.mark.parametrize(("offset", "ok", "words"), [
    (0, True, "écart de 0 s"),
    (-45, True, "écart de 45 s"),
    (300, False, "300 s en avance"),
    (-3600, False, "3600 s en retard"),
])
def test_the_clock_is_compared_with_the_server_date(offset: int, ok: bool, words: str) -> None:
    server = dt.datetime(2025, 6, 2, 10, 0, 0, tzinfo=dt.UTC)
    header = email.utils.format_datetime(server, usegmt=True)
    check = clock_check(header, server.timestamp() + offset)
    assert check.ok is ok and words in check.detail
    assert ok or "serveur de temps" in check.fix


def test_card_mode_checks_the_pkcs11_module_and_the_pcsc_service(
        installation: Installation, tmp_path: Path) -> None:
    text = installation.config_path.read_text(encoding="utf-8")
    text = text.replace('mode = "etablissement"', 'mode = "carte"').replace(
        '# module = "/usr/lib/libcps3_pkcs11_lux.so"', 'module = "absent/libcps3_pkcs11_lux.so"')
    installation.config_path.write_text(text, encoding="utf-8")
    # In a process of its own pointed at a PC/SC socket nobody serves (this test process may
    # already talk to the card tests' pcscd, and the PC/SC client reads its socket once).
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dmp-bridge")), "doctor", "--config",
         str(installation.config_path)], capture_output=True, text=True, timeout=120,
        check=False, env={**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "aucun.comm")})
    out = done.stdout
    assert done.returncode == 1
    module = line(out, "Module PKCS#11")
    assert module.startswith("✘") and "Cryptolib CPS" in module
    pcsc = line(out, "Service PC/SC (lecteurs de carte)")  # nobody serves that socket
    assert pcsc.startswith("✘") and ("pcscd" in pcsc or "lecteur" in pcsc or "pyscard" in pcsc)
    assert "Certificat d'authentification" not in out  # the card carries it


# -- the audit journal, every export folder, card mode ---------------------------------------------


def test_a_deleted_journal_whose_witness_remains_is_a_cross(
        installation: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    with AuditTrail.for_config(installation.config) as trail:
        trail.attempt([1], "1.2.250.1.999.7.1", "10101010101", CANARY_INS)
    installation.journal.unlink()  # « dernier-sceau » stays
    code, text = run_doctor(installation, capsys)
    audit = line(text, "Journal d'audit")
    assert code == 1
    assert audit.startswith("✘") and "a disparu" in audit and "AUDIT_TRUNCATED" in audit
    assert "sauvegarde" in audit


def test_a_journal_never_written_is_fine(installation: Installation,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _, text = run_doctor(installation, capsys)
    assert line(text, "Journal d'audit") == "✔ Journal d'audit : vide (rien n'a encore été envoyé)"


def test_every_export_folder_of_the_profiles_is_checked_for_writing(
        installation: Installation, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked, missing, fine = (tmp_path / "export-verrouille", tmp_path / "export-absent",
                             tmp_path / "export-ok")
    locked.mkdir()
    fine.mkdir()
    with installation.config_path.open("a", encoding="utf-8") as toml:
        for folder in (locked, missing, fine):
            toml.write(f'\n[[intake.profiles]]\nfolder = "{folder.as_posix()}"\n')
    with attribute(locked, "i"):  # nobody may create a file in it, not even root
        _, text = run_doctor(installation, capsys)
    refused = line(text, f"Dossier de dépôt « {locked.as_posix()} »")
    assert refused.startswith("✘") and "n'est pas accessible en écriture" in refused
    assert "donnez au compte du service le droit d'écrire" in refused
    absent = line(text, f"Dossier de dépôt « {missing.as_posix()} »")
    assert absent.startswith("✘") and "introuvable" in absent
    assert line(text, f"Dossier de dépôt « {fine.as_posix()} »").startswith("✔")
    assert line(text, "Dossier de dépôt").startswith("✔")  # the main one


def card_mode(installation: Installation) -> BridgeConfig:
    text = installation.config_path.read_text(encoding="utf-8")
    installation.config_path.write_text(text.replace('mode = "etablissement"', 'mode = "carte"'),
                                        encoding="utf-8")
    return load_config(installation.config_path)


async def test_in_card_mode_the_dmp_is_checked_without_a_client_certificate(
        installation: Installation) -> None:
    """The simulator demands a client certificate (mutual TLS) that only the card holds."""
    config = card_mode(installation)
    simulator = await start_simulator(simulator_config(config))
    try:
        [dmp] = await asyncio.to_thread(check_dmp, config)
    finally:
        await simulator.close()
    assert dmp.ok, dmp.line
    assert f"127.0.0.1:{config.simulator.port} joignable, certificat du serveur vérifié" in (
        dmp.detail)
    assert "dmp-bridge card login" in dmp.detail


def test_in_card_mode_a_tls_1_2_server_asking_for_the_card_is_reachable(
        installation: Installation) -> None:
    """TLS 1.2 refuses the handshake itself without a client certificate (TLS 1.3 only later):
    a real TLS 1.2 server on 127.0.0.1 that requires one."""
    config = card_mode(installation)
    pki = pki_layout(config.path(config.dmp.server_ca).parent)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.maximum_version = ssl.TLSVersion.TLSv1_2
    server.load_cert_chain(pki.server.cert, pki.server.key)
    server.load_verify_locations(pki.ca_cert)
    server.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(ssl.SSLError, OSError):
            server.wrap_socket(conn, server_side=True).close()

    worker = threading.Thread(target=serve_once)
    worker.start()
    text = installation.config_path.read_text(encoding="utf-8")
    installation.config_path.write_text(
        text.replace(f"127.0.0.1:{config.simulator.port}", f"127.0.0.1:{port}"), encoding="utf-8")
    try:
        [dmp] = check_dmp(load_config(installation.config_path))
    finally:
        worker.join(timeout=30)
        listener.close()
    assert dmp.ok, dmp.line
    assert "certificat du serveur vérifié" in dmp.detail


async def test_in_card_mode_a_server_of_another_authority_is_a_cross(
        installation: Installation) -> None:
    config = card_mode(installation)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "AC INCONNUE")])
    now = dt.datetime.now(dt.UTC)
    other = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(days=1))
             .not_valid_after(now + dt.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .sign(key, hashes.SHA256()))
    config.path(config.dmp.server_ca).write_bytes(other.public_bytes(serialization.Encoding.PEM))
    simulator = await start_simulator(simulator_config(config))
    try:
        [dmp] = await asyncio.to_thread(check_dmp, config)
    finally:
        await simulator.close()
    assert not dmp.ok
    assert "certificat du serveur non vérifié" in dmp.detail and "dmp.server_ca" in dmp.fix
