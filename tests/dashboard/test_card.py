"""Carte: the PIN goes from the form to the card once, and nowhere else — not in a page, a
header, a log line or the store."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from connectors.sqlite_store import SqliteStore
from service.config import BridgeConfig
from service.logs import configure_logging
from tests.dashboard.conftest import Visitor, Woken
from tests.dashboard.panels import CARD_PIN, READER, EmulatedCard


@pytest.fixture
def log_file(tmp_path: Path, restore_logging: None) -> Path:
    """The real logging pipeline (redaction, JSON file), with aiohttp's loggers at debug."""
    path = tmp_path / "journaux" / "dmp-bridge.jsonl"
    configure_logging(path, "debug", stderr=False)
    return path


def pin_form(csrf: str, pin: str, situation: str = "1") -> dict[str, str]:
    return {"csrf": csrf, "lecteur": READER, "situation": situation, "pin": pin}


async def test_the_pin_logs_the_card_in_and_is_never_written_anywhere(
        log_file: Path, signed_in: Visitor, card: EmulatedCard, woken: Woken,
        config: BridgeConfig, store: SqliteStore) -> None:
    logging.getLogger("aiohttp").setLevel(logging.DEBUG)
    _, page = await signed_in.get("/carte")
    assert "Hélène SOIGNANTE (CPS)" in page and "code PIN à saisir" in page
    assert 'type="password" name="pin"' in page
    assert "Centre de soins du Port" in page  # two situations: the user chooses
    csrf = await signed_in.csrf("/carte")

    response, page = await signed_in.post("/carte/code", pin_form(csrf, CARD_PIN, "2"))
    assert response.url.path == "/carte"
    assert "Carte connectée" in page and "code PIN validé" in page
    assert card.logged_in and card.chosen == 2 and card.logins == 1
    assert woken.count == 1
    assert 'name="pin"' not in page  # logged in: no PIN form any more

    for history in (*response.history, response):
        assert CARD_PIN not in str(history.url)
        assert all(CARD_PIN not in value for value in history.headers.values())
        assert history.headers["Cache-Control"] == "no-store"
    assert CARD_PIN not in page
    for path in ("/", "/carte", "/documents"):
        _, other = await signed_in.get(path)
        assert CARD_PIN not in other
    logging.shutdown()
    written = log_file.read_text(encoding="utf-8")
    assert "dashboard_card_login" in written  # the log is real, and the PIN is not in it
    assert CARD_PIN not in written
    for written_file in config.store_path.parent.rglob("*"):
        if written_file.is_file():
            assert CARD_PIN.encode() not in written_file.read_bytes(), written_file


async def test_a_wrong_pin_says_how_many_tries_are_left_and_is_never_retried(
        signed_in: Visitor, card: EmulatedCard, woken: Woken) -> None:
    csrf = await signed_in.csrf("/carte")
    _, page = await signed_in.post("/carte/code", pin_form(csrf, "000000"))
    assert "Code PIN incorrect. Il reste 2 essai(s)" in page
    assert "Essais restants avant blocage : 2." in page
    assert card.logins == 1 and not card.logged_in and woken.count == 0
    assert "000000" not in page
    _, page = await signed_in.post("/carte/code", pin_form(csrf, "111111"))
    assert "il ne reste qu'UN essai" in page
    assert card.logins == 2  # one presentation per submitted form, never more


async def test_an_empty_or_oversized_pin_never_reaches_the_card(
        signed_in: Visitor, card: EmulatedCard) -> None:
    csrf = await signed_in.csrf("/carte")
    for pin in ("", "1" * 17):
        _, page = await signed_in.post("/carte/code", pin_form(csrf, pin))
        assert "Saisissez le code PIN de la carte" in page
    assert card.logins == 0


async def test_the_pin_form_refuses_other_sites_and_stale_forms(
        signed_in: Visitor, card: EmulatedCard) -> None:
    csrf = await signed_in.csrf("/carte")
    response, _ = await signed_in.post("/carte/code", pin_form(csrf, CARD_PIN),
                                       origin="http://evil.example")
    assert response.status == 403
    response, _ = await signed_in.post("/carte/code", pin_form("perime", CARD_PIN))
    assert response.status == 403
    assert card.logins == 0


async def test_a_blocked_card_offers_no_pin_form(signed_in: Visitor, card: EmulatedCard) -> None:
    card.tries_left = 0
    _, page = await signed_in.get("/carte")
    assert "carte BLOQUÉE" in page and "code PUK" in page
    assert 'name="pin"' not in page


async def test_no_card_in_the_reader(signed_in: Visitor, card: EmulatedCard) -> None:
    card.present = False
    _, page = await signed_in.get("/carte")
    assert f"{READER} : aucune carte." in page and 'name="pin"' not in page
