"""Retention of the audit journal in the running service: a first pass at start, then one every
few hours, purges the records older than `bridge.audit_retention_days` behind a checkpoint; what
is kept still verifies. A pass that fails (journal damaged, file unreadable) is logged without
any record's content, and the next pass tries again: the service never stops for it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from structlog.testing import capture_logs

from bridge.audit import AuditAction
from bridge.jobs import JobState
from service.audit_care import keep_audit_retention
from service.audit_trail import AuditTrail
from tests.ops.conftest import CANARY_INS, T0, Installation

WAIT = 20.0  # seconds to wait for the loop before failing (never a pass/fail timing)
DAY = dt.timedelta(days=1)
OLD = [T0 - 4000 * DAY, T0 - 3900 * DAY, T0 - 3700 * DAY]  # older than 10 years
MIDDLE = [T0 - 2000 * DAY, T0 - 1500 * DAY]  # within the retention today
RECENT = [T0 - 10 * DAY]


class Calendar:
    """The service's clock, moved by the test; it counts the loop's passes (one reading each)."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self.readings = 0

    def __call__(self) -> dt.datetime:
        self.readings += 1
        return self.now

    async def passes_done(self, count: int) -> None:
        """Wait until `count` passes are over: the loop has read the clock for the next one."""
        await until(lambda: self.readings > count)


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout=WAIT)


def fill(trail: AuditTrail, dates: list[dt.datetime], first_job: int = 1) -> None:
    """One attempt and its outcome per date (2 records each)."""
    for n, at in enumerate(dates, start=first_job):
        trail.attempt([n], f"1.2.250.1.999.7.{n}", "10101010101", CANARY_INS, at=at)
        trail.outcome(n, JobState.DONE, "REGISTERED", document_unique_id=f"1.2.250.1.9.{n}",
                      at=at + dt.timedelta(seconds=1))


@asynccontextmanager
async def running(trail: AuditTrail, days: int, calendar: Calendar, *,
                  every: dt.timedelta) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(keep_audit_retention(trail, days, every=every, clock=calendar))
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def no_record_content_in(logs: list[dict[str, Any]], trail: AuditTrail) -> None:
    text = json.dumps(logs, default=str)
    pseudonyms = {r.patient_pseudonym for r in trail.records() if r.patient_pseudonym}
    for secret in (CANARY_INS, "10101010101", "1.2.250.1", *pseudonyms):
        assert secret not in text


async def test_the_first_pass_at_start_purges_what_is_past_the_retention(
        installation: Installation) -> None:
    days = installation.config.bridge.audit_retention_days
    assert days == 3650  # ten years unless the practice says otherwise
    calendar = Calendar(T0)
    with AuditTrail.for_config(installation.config) as trail, capture_logs() as logs:
        fill(trail, OLD + MIDDLE + RECENT)
        witness = trail.witness()
        async with running(trail, days, calendar, every=dt.timedelta(hours=6)) as task:
            await until(lambda: bool(events(logs, "audit_purged")))
            assert calendar.readings == 1  # at start, not six hours later
            assert not task.done()
        records = trail.records()
        assert records[0].action is AuditAction.PURGE and records[0].purged_count == 6
        assert records[0].at == T0  # the checkpoint says when, by the service's clock
        assert [r.at for r in records[1::2]] == MIDDLE + RECENT
        assert trail.verify().ok and trail.verify().count == 1 + 6
        assert trail.witness() == witness  # a purge keeps the head hash
        assert events(logs, "audit_purged") == [
            {"event": "audit_purged", "records": 6, "retention_days": 3650, "log_level": "info"}]
        no_record_content_in(logs, trail)


async def test_later_passes_purge_as_time_goes_by_and_keep_the_chain(
        installation: Installation) -> None:
    calendar = Calendar(T0)
    with AuditTrail.for_config(installation.config) as trail, capture_logs() as logs:
        fill(trail, OLD + MIDDLE + RECENT)
        async with running(trail, 3650, calendar, every=dt.timedelta(milliseconds=10)):
            await calendar.passes_done(2)
            assert len(trail.records()) == 1 + 6
            fill(trail, [T0 + DAY], first_job=10)  # the service keeps writing meanwhile
            calendar.now = T0 + 1700 * DAY  # 10 years after the first MIDDLE, not the second
            reached = calendar.readings
            await calendar.passes_done(reached + 1)
        records = trail.records()
        assert records[0].action is AuditAction.PURGE and records[0].purged_count == 2
        assert [r.at for r in records[1::2]] == MIDDLE[1:] + RECENT + [T0 + DAY]
        result = trail.verify()
        assert result.ok and result.count == 1 + 6
        assert [e["records"] for e in events(logs, "audit_purged")] == [6, 2]
        trail.operator_action("operateur:marie", AuditAction.RENVOI, 3, "ok")  # still writable
        assert trail.verify().ok


async def test_a_damaged_journal_is_not_purged_logged_and_tried_again(
        installation: Installation) -> None:
    calendar = Calendar(T0)
    with AuditTrail.for_config(installation.config) as trail, capture_logs() as logs:
        fill(trail, OLD + RECENT)
        original = trail.journal_path.read_bytes()
        lines = original.splitlines(keepends=True)
        record = json.loads(lines[1])
        record["outcome"] = "XDSRegistryError"  # someone rewrites a result
        lines[1] = (json.dumps(record, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False) + "\n").encode()
        tampered = b"".join(lines)
        trail.journal_path.write_bytes(tampered)

        async with running(trail, 3650, calendar, every=dt.timedelta(milliseconds=10)) as task:
            await calendar.passes_done(3)
            assert not task.done()  # the service goes on
            assert trail.journal_path.read_bytes() == tampered  # a purge never hides tampering
            failures = events(logs, "audit_purge_failed")
            assert len(failures) >= 3
            assert failures[0] == {"event": "audit_purge_failed", "code": "AUDIT_DAMAGED",
                                   "retention_days": 3650, "alert": True, "log_level": "error"}

            trail.journal_path.write_bytes(original)  # restored from the backup
            await until(lambda: bool(events(logs, "audit_purged")))
        assert trail.verify().ok
        assert trail.records()[0].purged_count == 6
        no_record_content_in(logs, trail)


async def test_an_unreadable_journal_file_is_logged_and_tried_again(
        installation: Installation) -> None:
    calendar = Calendar(T0)
    with AuditTrail.for_config(installation.config) as trail, capture_logs() as logs:
        fill(trail, OLD + RECENT)
        trail.close()
        aside = trail.journal_path.with_name("copie.jsonl")
        trail.journal_path.rename(aside)
        trail.journal_path.mkdir()  # a folder where the journal should be

        async with running(trail, 3650, calendar, every=dt.timedelta(milliseconds=10)) as task:
            await calendar.passes_done(2)
            assert not task.done()
            failures = events(logs, "audit_purge_failed")
            assert failures and failures[0]["error_type"] in ("IsADirectoryError",
                                                              "PermissionError")  # Windows

            shutil.rmtree(trail.journal_path)
            aside.rename(trail.journal_path)
            await until(lambda: bool(events(logs, "audit_purged")))
        assert trail.verify().ok
        assert [e["records"] for e in events(logs, "audit_purged")] == [6]
