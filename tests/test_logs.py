"""Operational logs (service/logs.py): JSON lines that never carry health data (DESIGN.md §6).

Canary values go through the real structlog pipeline into a real file, and the whole file is
scanned for them.
"""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
import structlog

from service.logs import configure_logging

NIR = "279035121518989"
CANARIES = {
    "ins": NIR,
    "name": "PAT-TROIS Dominique",
    "birth_date": "1979-03-28",
}


pytestmark = pytest.mark.usefixtures("restore_logging")


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_identity_and_nir_never_reach_the_log_file(tmp_path: Path) -> None:
    log_file = tmp_path / "journaux" / "dmp-bridge.jsonl"
    configure_logging(log_file, stderr=False)
    log = structlog.get_logger("dmp_bridge.test")

    log.info("document_received", job_id=7, **CANARIES,
             note=f"INS du patient : {NIR}, relu deux fois")
    log.warning(f"ins_mismatch {NIR}", detail=f"NIR {NIR[:13]} sans clé")
    try:
        raise ValueError(f"INS {NIR} refusé")
    except ValueError:
        log.exception("document_failed")

    text = log_file.read_text(encoding="utf-8")
    for value in [*CANARIES.values(), NIR[:13]]:
        assert value not in text
    lines = read_lines(log_file)
    assert [line["event"] for line in lines] == [
        "document_received", "ins_mismatch [nir masqué]", "document_failed"]
    first = lines[0]
    assert first["job_id"] == 7 and first["level"] == "info" and "timestamp" in first
    assert first["ins"] == first["name"] == first["birth_date"] == "[retiré]"
    assert first["note"] == "INS du patient : [nir masqué], relu deux fois"
    assert "ValueError" in str(lines[2]["exception"])


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"details": {"ins": NIR}}, id="nested-dict"),
        pytest.param({"values": [NIR]}, id="list"),
        pytest.param({"source_ref": f"patient_{NIR}.pdf"}, id="glued-to-underscore"),
    ],
)
def test_a_nir_anywhere_in_an_event_is_masked(fields: dict[str, object],
                                              tmp_path: Path) -> None:
    log_file = tmp_path / "dmp-bridge.jsonl"
    configure_logging(log_file, stderr=False)

    structlog.get_logger("dmp_bridge.test").info("document_received", **fields)

    assert NIR not in log_file.read_text(encoding="utf-8")


def test_the_log_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    log_file = tmp_path / "journaux" / "dmp-bridge.jsonl"

    configure_logging(log_file, stderr=False)

    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600


def test_the_level_filters_what_is_written(tmp_path: Path) -> None:
    log_file = tmp_path / "dmp-bridge.jsonl"
    configure_logging(log_file, "warning", stderr=False)
    log = structlog.get_logger("dmp_bridge.test")

    log.info("routine")
    log.warning("attention")

    assert [line["event"] for line in read_lines(log_file)] == ["attention"]


def test_configuring_again_replaces_and_closes_the_previous_handlers(tmp_path: Path) -> None:
    first, second = tmp_path / "premier.jsonl", tmp_path / "second.jsonl"
    configure_logging(first, stderr=False)
    [first_handler] = logging.getLogger().handlers
    assert isinstance(first_handler, logging.FileHandler)

    configure_logging(second, stderr=False)
    structlog.get_logger("dmp_bridge.test").info("after_reconfiguration")

    [handler] = logging.getLogger().handlers
    assert isinstance(handler, logging.FileHandler)
    assert Path(handler.baseFilename) == second
    assert first_handler.stream is None  # closed, not left for the garbage collector
    assert first.read_text(encoding="utf-8") == ""
    assert [line["event"] for line in read_lines(second)] == ["after_reconfiguration"]


def test_stderr_output_can_be_added(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(tmp_path / "dmp-bridge.jsonl", stderr=True)

    structlog.get_logger("dmp_bridge.test").info("bridge_started", ins=NIR)

    err = capsys.readouterr().err
    assert json.loads(err.splitlines()[-1])["event"] == "bridge_started"
    assert NIR not in err
