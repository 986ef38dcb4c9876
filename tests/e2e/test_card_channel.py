"""The CPS card path, end to end: a real `dmp-bridge run` in card mode, pcscd with vpcd readers
and the project's emulated cards, the PIN typed through `dmp-bridge card login`, and the
embedded DMP simulator over mutual TLS with the card's authentication key.

What the simulator must see: the card's certificate in TLS, a VIHF in DIRECTE mode signed by the
card's signature certificate, and a XAdES signed by it too — and each document sent by the card
of its own author.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from bridge.jobs import JobState
from connectors.sqlite_store import SqliteStore
from service.config import load_config
from tests.card.pcsc_env import EmulatedCard, PcscEnvironment, make_test_card, shared_environment
from tests.e2e.conftest import DMP_BRIDGE, Installation, run_bridge_process, wait_for
from tests.factories import make_sidecar_dict

NURSE_PIN = "4711"
GP_PIN = "2580"
NURSE_ID, GP_ID = "899700366240", "810001234567"
DS = "http://www.w3.org/2000/09/xmldsig#"


@pytest.fixture(scope="module")
def pcsc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscEnvironment]:
    with shared_environment(tmp_path_factory.mktemp("pcsc")) as environment:
        yield environment


@pytest.fixture
def readers(pcsc: PcscEnvironment) -> Iterator[PcscEnvironment]:
    yield pcsc
    pcsc.remove_all()


@pytest.fixture
def card_installation(installation: Installation) -> Installation:
    """The e2e installation switched to card mode, with the emulated card's APDU access."""
    text = installation.config_path.read_text(encoding="utf-8")
    text = (text.replace('mode = "etablissement"', 'mode = "carte"')
            .replace('acces = "pkcs11"', 'acces = "apdu"'))
    installation.config_path.write_text(text, encoding="utf-8")
    return Installation(installation.config_path, load_config(installation.config_path))


def nurse_card(installation: Installation, tmp_path: Path) -> EmulatedCard:
    return make_test_card(tmp_path / "cartes", pki_dir=installation.config_path.parent / "pki",
                          pin=NURSE_PIN, national_id=NURSE_ID)


def gp_card(installation: Installation, tmp_path: Path) -> EmulatedCard:
    return make_test_card(tmp_path / "cartes", pki_dir=installation.config_path.parent / "pki",
                          pin=GP_PIN, national_id=GP_ID, family_name="MEDECIN",
                          given_name="PAUL", profession_code="10", specialty_code="SM54")


def nurse_sidecar() -> dict[str, object]:
    sidecar = make_sidecar_dict()
    sidecar["author"] = {**sidecar["author"],  # type: ignore[dict-item]
                         "rpps": NURSE_ID[1:], "family_name": "INFIRMIERE",
                         "given_name": "CLAIRE"}
    return sidecar


def gp_sidecar() -> dict[str, object]:
    sidecar = make_sidecar_dict()
    sidecar["author"] = {"rpps": GP_ID[1:], "family_name": "MEDECIN", "given_name": "PAUL",
                         "profession": "10", "specialty": "G15_10/SM54",
                         "structure_id": "499700366240007",
                         "structure_name": "Cabinet médical Médecin", "sector": "SA07"}
    sidecar["document"] = {"kind": "MG-02", "title": "Synthèse médicale",
                           "date": "2024-01-15T10:30:00+01:00"}
    return sidecar


@dataclass
class CardBridge:
    installation: Installation
    process: subprocess.Popen[bytes]
    output: Path

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(DMP_BRIDGE), *args, "--config", str(self.installation.config_path)],
            input=stdin, capture_output=True, text=True, timeout=60, check=False)

    def login(self, pin: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli("card", "login", "--pin-stdin", *extra, stdin=pin + "\n")

    def job(self, stem: str) -> object:
        with SqliteStore.open(self.installation.config.store_path) as store:
            found = [j for j in store.list_jobs(limit=1000) if j.source_ref.startswith(stem)]
        assert len(found) <= 1
        return found[0] if found else None

    def state(self, stem: str) -> JobState | None:
        job = self.job(stem)
        return None if job is None else job.state  # type: ignore[attr-defined]


def run_card_bridge(installation: Installation, env: dict[str, str],
                    tmp_path: Path) -> Iterator[CardBridge]:
    """`dmp-bridge run` of `installation` with `env`, until its card API listens."""
    for process in run_bridge_process(installation, tmp_path, env=env,
                                      ready_port=installation.config.dashboard.port):
        yield CardBridge(installation, process, tmp_path / "bridge.out")


@pytest.fixture
def card_bridge(card_installation: Installation, readers: PcscEnvironment,
                tmp_path: Path) -> Iterator[CardBridge]:
    yield from run_card_bridge(card_installation, {**os.environ, **readers.env}, tmp_path)


def card_status(bridge: CardBridge) -> str:
    result = bridge.cli("card", "status")
    assert result.returncode == 0, result.stderr
    return result.stdout


def simulator_entries(installation: Installation) -> list[sqlite3.Row]:
    with sqlite3.connect(installation.config.simulator_db_path) as db:
        db.row_factory = sqlite3.Row
        return list(db.execute(
            "SELECT author_id, tls_dn, is_signature, content FROM entries ORDER BY rowid"))


def xades_certificate(signature_xml: bytes) -> x509.Certificate:
    root = etree.fromstring(signature_xml)
    text = root.findtext(f".//{{{DS}}}X509Certificate")
    assert text, "no signing certificate in the XAdES"
    import base64

    return x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_insert_login_send_remove_reinsert(card_bridge: CardBridge, readers: PcscEnvironment,
                                            tmp_path: Path) -> None:
    installation = card_bridge.installation
    card = nurse_card(installation, tmp_path)
    handle = readers.insert(card.json_path, reader=0)
    wait_for(lambda: "code PIN attendu" in card_status(card_bridge), timeout=20,
             what="the card to be seen")

    installation.drop("avant-pin", nurse_sidecar())
    wait_for(lambda: card_bridge.state("avant-pin") is JobState.DEFERRED, timeout=30,
             what="the document to wait for the card")
    waiting = card_bridge.job("avant-pin")
    assert waiting.attempts == 0  # type: ignore[attr-defined]
    assert waiting.last_error_code == "AWAITING_CREDENTIALS"  # type: ignore[attr-defined]

    wrong = card_bridge.login("9999")
    assert wrong.returncode == 1
    assert "Il reste 2 essais" in wrong.stderr
    assert card_bridge.state("avant-pin") is JobState.DEFERRED

    right = card_bridge.login(NURSE_PIN)
    assert right.returncode == 0, right.stderr
    started = time.monotonic()
    wait_for(lambda: card_bridge.state("avant-pin") is JobState.DONE, timeout=30,
             what="the document to reach the DMP through the card")
    print(f"\nlogin → done: {time.monotonic() - started:.2f} s")

    entries = simulator_entries(installation)
    documents = [e for e in entries if not e["is_signature"]]
    signatures = [e for e in entries if e["is_signature"]]
    assert len(documents) == 1 and len(signatures) == 1
    assert documents[0]["author_id"] == NURSE_ID
    assert f"CN={NURSE_ID}" in documents[0]["tls_dn"]  # the card's certificate in TLS
    assert der(xades_certificate(signatures[0]["content"])) == der(card.sign_cert)

    readers.remove(handle)  # the card is pulled out
    wait_for(lambda: "carte CPS" not in card_status(card_bridge)
             and "code PIN attendu" not in card_status(card_bridge), timeout=20,
             what="the removal to be seen")
    installation.drop("carte-retiree", nurse_sidecar())
    wait_for(lambda: card_bridge.state("carte-retiree") is JobState.DEFERRED, timeout=30,
             what="the document to wait for the card again")
    assert card_bridge.job("carte-retiree").attempts == 0  # type: ignore[attr-defined]

    readers.insert(card.json_path, reader=0)
    wait_for(lambda: "code PIN attendu" in card_status(card_bridge), timeout=20,
             what="the card to be seen again")
    assert card_bridge.login(NURSE_PIN).returncode == 0
    started = time.monotonic()
    wait_for(lambda: card_bridge.state("carte-retiree") is JobState.DONE, timeout=30,
             what="the waiting document to leave after the new login")
    print(f"reinsertion + login → done: {time.monotonic() - started:.2f} s")
    assert len([e for e in simulator_entries(installation) if not e["is_signature"]]) == 2


def test_a_blocked_card_is_reported_and_never_retried(card_bridge: CardBridge,
                                                      readers: PcscEnvironment,
                                                      tmp_path: Path) -> None:
    card = nurse_card(card_bridge.installation, tmp_path)
    readers.insert(card.json_path, reader=0)
    wait_for(lambda: "code PIN attendu" in card_status(card_bridge), timeout=20,
             what="the card to be seen")
    answers = [card_bridge.login("0000").stderr for _ in range(3)]
    assert "Il reste 2 essais" in answers[0]
    assert "UN seul essai" in answers[1]
    assert "bloquée" in answers[2]
    refused = card_bridge.login(NURSE_PIN)
    assert refused.returncode == 1 and "bloquée" in refused.stderr
    assert "BLOQUÉE" in card_status(card_bridge)


def test_two_cards_each_send_their_own_holders_documents(card_bridge: CardBridge,
                                                         readers: PcscEnvironment,
                                                         tmp_path: Path) -> None:
    installation = card_bridge.installation
    nurse, gp = nurse_card(installation, tmp_path), gp_card(installation, tmp_path)
    readers.insert(nurse.json_path, reader=0)
    readers.insert(gp.json_path, reader=1)
    wait_for(lambda: card_status(card_bridge).count("code PIN attendu") == 2, timeout=20,
             what="both cards to be seen")
    for n in range(2):
        installation.drop(f"soins-{n}", nurse_sidecar())
        installation.drop(f"synthese-{n}", gp_sidecar())
    reader_names = readers.readers
    assert card_bridge.login(NURSE_PIN, "--lecteur", reader_names[0]).returncode == 0
    assert card_bridge.login(GP_PIN, "--lecteur", reader_names[1]).returncode == 0
    for stem in ("soins-0", "soins-1", "synthese-0", "synthese-1"):
        wait_for(lambda stem=stem: card_bridge.state(stem) is JobState.DONE, timeout=60,
                 what=f"{stem} to reach the DMP")

    documents = [e for e in simulator_entries(installation) if not e["is_signature"]]
    assert sorted(e["author_id"] for e in documents) == [GP_ID, GP_ID, NURSE_ID, NURSE_ID]
    for entry in documents:  # each sent over the TLS session of its own author's card
        assert f"CN={entry['author_id']}" in entry["tls_dn"]
    signers = {der(xades_certificate(e["content"])) for e in simulator_entries(installation)
               if e["is_signature"]}
    assert signers == {der(nurse.sign_cert), der(gp.sign_cert)}


def test_the_pin_is_written_nowhere(card_bridge: CardBridge, readers: PcscEnvironment,
                                    tmp_path: Path) -> None:
    installation = card_bridge.installation
    canary = "73519"  # a valid PIN shape, found nowhere else
    card = make_test_card(tmp_path / "cartes", pki_dir=installation.config_path.parent / "pki",
                          pin=canary, national_id=NURSE_ID)
    readers.insert(card.json_path, reader=0)
    wait_for(lambda: "code PIN attendu" in card_status(card_bridge), timeout=20,
             what="the card to be seen")
    assert card_bridge.login("97153").returncode == 1  # a wrong one too
    assert card_bridge.login(canary).returncode == 0
    installation.drop("canari", nurse_sidecar())
    wait_for(lambda: card_bridge.state("canari") is JobState.DONE, timeout=30,
             what="the document to be sent")
    pid = card_bridge.process.pid
    for proc_file in ("environ", "cmdline"):
        content = Path(f"/proc/{pid}/{proc_file}").read_bytes()
        assert canary.encode() not in content and b"97153" not in content
    card_bridge.process.send_signal(signal.SIGTERM)
    card_bridge.process.wait(timeout=15)
    written = [p for p in installation.config_path.parent.rglob("*") if p.is_file()]
    written += [card_bridge.output]
    assert len(written) > 10
    for path in written:
        data = path.read_bytes()
        for secret in (canary, "97153"):
            assert secret.encode() not in data, f"PIN found in {path}"
            assert secret.encode("utf-16-le") not in data, f"PIN found in {path}"
    print(f"\nPIN searched in {len(written)} files and the process's environment: not found")


def test_a_staff_card_is_refused_for_clinical_feeding(card_bridge: CardBridge,
                                                      readers: PcscEnvironment,
                                                      tmp_path: Path) -> None:
    card = make_test_card(tmp_path / "cartes",
                          pki_dir=card_bridge.installation.config_path.parent / "pki",
                          pin=NURSE_PIN, national_id="310123456700010", kind="CPE",
                          profession_code="  ")
    readers.insert(card.json_path, reader=0)
    wait_for(lambda: "personnel d'établissement" in card_status(card_bridge), timeout=20,
             what="the staff card to be refused")
    result = card_bridge.login(NURSE_PIN)
    assert result.returncode == 1
    assert json.dumps(result.stderr)  # a French sentence, not a traceback
    assert "Traceback" not in card_bridge.output.read_text()


async def test_the_pin_typed_in_the_dashboard_logs_the_real_card_in(
        card_bridge: CardBridge, readers: PcscEnvironment, tmp_path: Path) -> None:
    """The Carte page of the running bridge, in headless Chromium, with the emulated card."""
    from tests.browser import Browser

    installation = card_bridge.installation
    card = nurse_card(installation, tmp_path)
    readers.insert(card.json_path, reader=0)
    wait_for(lambda: "code PIN attendu" in card_status(card_bridge), timeout=20,
             what="the card to be seen")
    installation.drop("par-la-page", nurse_sidecar())
    url = f"http://127.0.0.1:{installation.config.dashboard.port}/"
    token = installation.config.api_token_path.read_text(encoding="ascii").strip()
    async with Browser.launch(tmp_path / "chromium") as browser:
        await browser.goto(url)
        await browser.fill("#jeton", token)
        await browser.click_and_wait("form.connexion button[type=submit]")
        await browser.goto(f"{url}carte")
        assert "INFIRMIERE" in await browser.text()
        await browser.fill("#pin", NURSE_PIN)
        await browser.click_and_wait("form.code-pin button[type=submit]")
        text = await browser.text()
        assert "Carte connectée" in text
        assert NURSE_PIN not in await browser.html()
        await browser.screenshot("carte-reelle-connectee")
    wait_for(lambda: card_bridge.state("par-la-page") is JobState.DONE, timeout=30,
             what="the document to leave once the card is logged in from the page")
    assert NURSE_PIN.encode() not in card_bridge.output.read_bytes()


def test_the_pcsc_service_restarting_drops_the_card_until_a_new_login(
        card_bridge: CardBridge, readers: PcscEnvironment, tmp_path: Path) -> None:
    """pcscd stops and starts again under the running bridge: the session is dropped, the
    holder's documents wait (no attempt used), and the card works again after a new PIN entry —
    without restarting the bridge."""
    installation = card_bridge.installation
    card = nurse_card(installation, tmp_path)
    readers.insert(card.json_path, reader=0)
    wait_for(lambda: "code PIN attendu" in card_status(card_bridge), timeout=20,
             what="the card to be seen")
    assert card_bridge.login(NURSE_PIN).returncode == 0
    wait_for(lambda: "connectée" in card_status(card_bridge), timeout=20,
             what="the card to be logged in")

    readers.restart_pcscd()
    wait_for(lambda: "code PIN attendu" in card_status(card_bridge), timeout=30,
             what="the card to be seen again, logged out, after the PC/SC restart")
    installation.drop("apres-redemarrage", nurse_sidecar())
    wait_for(lambda: card_bridge.state("apres-redemarrage") is JobState.DEFERRED, timeout=30,
             what="the document to wait for a new login")
    assert card_bridge.job("apres-redemarrage").attempts == 0  # type: ignore[attr-defined]
    assert card_bridge.login(NURSE_PIN).returncode == 0
    wait_for(lambda: card_bridge.state("apres-redemarrage") is JobState.DONE, timeout=30,
             what="the document to leave after the new login")
