"""The PIN goes to C_Login and nowhere else (spec/card-auth.md A5, DESIGN.md §6).

Two canary PINs — the token's real one and a wrong one — go through the connector with the
service's real logging pipeline switched on; then every file the run wrote (SoftHSM's
configuration and token store, the log file), what reached stdout/stderr and the logging
records, the environment, and the errors with their tracebacks and local variables are searched
for them.
"""

from __future__ import annotations

import logging
import os
import traceback
from contextlib import closing
from pathlib import Path

import pytest
import structlog

from bridge.card_port import KeyRole, WrongPin, sha256_digest_info
from service.logs import configure_logging
from tests.pkcs11.softhsm import SoftHsmHome, provision_token

PIN = "90817263"
WRONG_PIN = "36271809"
CANARIES = (PIN, WRONG_PIN)

pytestmark = pytest.mark.usefixtures("restore_logging")


def assert_no_canary(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"a PIN reached {where}"


def test_the_pin_never_reaches_files_logs_environment_or_errors(
        softhsm: SoftHsmHome, pki_dir: Path, tmp_path: Path,
        capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    log_file = tmp_path / "journaux" / "dmp-bridge.jsonl"
    configure_logging(log_file, level="debug")
    caplog.set_level(logging.DEBUG)
    card = provision_token(softhsm, pki_dir, pin=PIN)

    with closing(card.open()) as session:
        with pytest.raises(WrongPin) as refused:
            session.login(WRONG_PIN)
        structlog.get_logger("dmp_bridge.test").error(
            "card_login_failed", exc_info=refused.value, code=refused.value.code)
        session.login(PIN)
        session.sign_digest_info(KeyRole.SIGNATURE, sha256_digest_info(b"vihf"))
        session.situations()

    error = refused.value
    assert_no_canary(f"{error} {error!r} {error.message_fr} {vars(error)}", "the error")
    with_locals = traceback.TracebackException.from_exception(error, capture_locals=True)
    assert_no_canary("".join(with_locals.format()), "the traceback's local variables")

    written = [path for path in softhsm.root.rglob("*") if path.is_file()]
    assert any(path.is_relative_to(softhsm.tokens) for path in written)  # the store was searched
    for path in [*written, log_file]:
        data = path.read_bytes()
        for canary in CANARIES:
            assert canary.encode() not in data, f"a PIN reached {path}"
    assert "card_pin_wrong" in log_file.read_text(encoding="utf-8")

    out, err = capfd.readouterr()
    assert_no_canary(out + err, "stdout/stderr")
    assert_no_canary(caplog.text + repr([r.__dict__ for r in caplog.records]), "log records")
    assert_no_canary(repr(dict(os.environ)), "the environment")
