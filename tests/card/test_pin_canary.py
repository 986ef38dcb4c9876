"""A PIN typed into the card never lands in a log, a file, an argv or an environment."""

from pathlib import Path

from structlog.testing import capture_logs

from bridge.card_port import KeyRole, WrongPin, sha256_digest_info
from connectors.apdu_card import open_apdu_session

CANARY_PIN = "73915824"
WRONG_CANARY_PIN = "73915825"


def spellings(pin: str) -> list[bytes]:
    """The PIN as text and as the hex an APDU trace would print (pcscd -a: "37 33 39 …")."""
    raw = pin.encode()
    return [raw, raw.hex().encode(), raw.hex().upper().encode(),
            raw.hex(" ").encode(), raw.hex(" ").upper().encode()]


def leaks(content: bytes, pin: str) -> bool:
    return any(needle in content for needle in spellings(pin))


def test_the_canary_pin_is_nowhere_after_a_wrong_and_a_right_login(pcsc, make_card, tmp_path):
    card = make_card(pin=CANARY_PIN)
    handle = pcsc.insert(card.json_path, reader=1)
    with capture_logs() as logs, open_apdu_session(pcsc.readers[1]) as session:
        try:
            session.login(WRONG_CANARY_PIN)
        except WrongPin as wrong:
            assert not leaks(str(wrong).encode(), WRONG_CANARY_PIN)
        session.login(CANARY_PIN)
        session.sign_digest_info(KeyRole.SIGNATURE, sha256_digest_info(b"x"))
    assert any(entry["event"] == "card_pin_accepted" for entry in logs)
    assert not any(leaks(repr(entry).encode(), pin)
                   for entry in logs for pin in (CANARY_PIN, WRONG_CANARY_PIN))

    processes = [pcsc.pcscd_pid, handle.process.pid]
    process_views = [Path(f"/proc/{pid}/{part}").read_bytes()
                     for pid in processes for part in ("cmdline", "environ")]
    pcsc.remove(handle)
    files = pcsc.written_files() + sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert pcsc.pcscd_log in files and handle.log in files and card.json_path in files
    for pin in (CANARY_PIN, WRONG_CANARY_PIN):
        assert [f for f in files if leaks(f.read_bytes(), pin)] == []
        assert not any(leaks(view, pin) for view in process_views)
