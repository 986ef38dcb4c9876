"""Business acknowledgments ZAM^Z01 to the HL7 sender, once the DMP outcome is final.

How it fits (the dispatcher is not changed):
1. at reception, the MLLP server calls `ZamNotifier.remember(job, document)` after the commit
   and before its ACK: when the message asked for it (MetaDMPMSS `ACK_RECEPTION = Y`), what the
   ZAM needs (`ZamRequest`: the original MSH, no health data) is stored in the `zam_requests`
   table, keyed by job id. A failure there gets the sender an AR, so it resends; the job already
   exists and the second `remember` is a no-op;
2. the dispatcher's `on_finished` hook calls `notify_soon(job, decision)`: for a job that is
   `done` (Y) or `dead` (N) and was remembered, the outcome is stored, then a task sends the ZAM
   over MLLP to the configured destination, retrying with backoff; the dispatcher never waits;
3. delivered (AA/CA from the receiver): marked, never sent again for that outcome. A receiver
   that refuses it (AE/CE) is logged and not retried. Undelivered after every retry: kept,
   `resume()` sends it again at the next start.

Logs carry job ids, attempt numbers and error kinds: never the message, never patient data.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import structlog

from bridge.dmp_answer import Decision
from bridge.hl7v2 import HL7Document, frame
from bridge.hl7v2.mllp import MllpDecoder
from bridge.hl7v2.zam import ZamOutcome, ZamRequest, build_zam, zam_request, zam_requested
from bridge.jobs import Job, JobState

log = structlog.get_logger("dmp_bridge.zam")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS zam_requests (
    job_id INTEGER PRIMARY KEY,
    request TEXT NOT NULL,
    outcome_received INTEGER,
    outcome_code TEXT,
    outcome_fr TEXT,
    outcome_at TEXT,
    delivered_received INTEGER,
    delivered_at TEXT,
    created_at TEXT NOT NULL
)
"""
FINAL_STATES = {JobState.DONE: True, JobState.DEAD: False}


@dataclass(frozen=True)
class ZamDestination:
    """The sender's own MLLP listener that receives ZAM messages."""

    host: str
    port: int
    attempts: int = 5  # sends per outcome before waiting for the next start
    first_delay: float = 2.0  # seconds; doubles after each failed attempt
    max_delay: float = 120.0
    timeout: float = 10.0  # connect + ACK, per attempt


@dataclass(frozen=True)
class PendingZam:
    job_id: int
    request: ZamRequest
    outcome: ZamOutcome


class SqliteZamOutbox:
    """The ZAM requests and their outcomes, in the queue's SQLite file, own table."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                     timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def remember(self, job_id: int, request: ZamRequest, *, now: dt.datetime) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO zam_requests (job_id, request, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (job_id) DO NOTHING", (job_id, request.to_json(), now.isoformat()))

    def request(self, job_id: int) -> ZamRequest | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT request FROM zam_requests WHERE job_id = ?", (job_id,)).fetchone()
        return ZamRequest.from_json(row[0]) if row else None

    def set_outcome(self, job_id: int, outcome: ZamOutcome, *, now: dt.datetime) -> bool:
        """Store the outcome; True when a ZAM must be sent (requested, not yet delivered with
        this same answer)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT delivered_received FROM zam_requests WHERE job_id = ?",
                (job_id,)).fetchone()
            if row is None or row[0] == int(outcome.received):
                return False
            self._conn.execute(
                "UPDATE zam_requests SET outcome_received = ?, outcome_code = ?, "
                "outcome_fr = ?, outcome_at = ? WHERE job_id = ?",
                (int(outcome.received), outcome.code, outcome.message_fr, now.isoformat(),
                 job_id))
        return True

    def mark_delivered(self, job_id: int, outcome: ZamOutcome, *, now: dt.datetime) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE zam_requests SET delivered_received = ?, delivered_at = ? "
                "WHERE job_id = ?", (int(outcome.received), now.isoformat(), job_id))

    def pending(self) -> list[PendingZam]:
        """Outcomes known but not delivered (after a restart, or retries exhausted)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT job_id, request, outcome_received, outcome_code, outcome_fr "
                "FROM zam_requests WHERE outcome_received IS NOT NULL AND "
                "(delivered_received IS NULL OR delivered_received != outcome_received) "
                "ORDER BY job_id").fetchall()
        return [PendingZam(row[0], ZamRequest.from_json(row[1]),
                           ZamOutcome(bool(row[2]), row[3] or "", row[4] or ""))
                for row in rows]


class ZamRefused(Exception):
    """The receiver answered AE/CE: sending the same ZAM again would not help."""


async def send_over_mllp(destination: ZamDestination, message: bytes) -> str:
    """Send one message and return MSA-1 of the receiver's ACK (OSError/TimeoutError else)."""
    async with asyncio.timeout(destination.timeout):
        reader, writer = await asyncio.open_connection(destination.host, destination.port)
        try:
            writer.write(frame(message))
            await writer.drain()
            decoder = MllpDecoder(max_frame=1024 * 1024)
            while True:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("closed before its ACK")
                for event in decoder.feed(data):
                    payload = getattr(event, "data", b"")
                    return _msa_1(payload)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _msa_1(ack: bytes) -> str:
    for line in ack.replace(b"\n", b"\r").split(b"\r"):
        if line.startswith(b"MSA"):
            parts = line.decode("latin-1").split(line[3:4].decode("latin-1") or "|")
            return parts[1].strip().upper() if len(parts) > 1 else ""
    return ""


def _outcome(job: Job, decision: Decision) -> ZamOutcome | None:
    received = FINAL_STATES.get(decision.state)
    if received is None:
        return None
    return ZamOutcome(received, "" if received else (decision.code or job.last_error_code or ""),
                      decision.message_fr or job.last_error_fr or "")


class ZamNotifier:
    """Sends ZAM^Z01 for the documents that asked for one; never blocks its caller for long."""

    def __init__(self, outbox: SqliteZamOutbox, destination: ZamDestination, *,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self._outbox = outbox
        self._destination = destination
        self._clock = clock or (lambda: dt.datetime.now().astimezone())
        self._tasks: set[asyncio.Task[bool]] = set()

    # -- reception side (MllpServer on_committed) ----------------------------------------------
    async def remember(self, job: Job, document: HL7Document) -> None:
        """Keep what the ZAM will need, if the message asked for one (before the sender's ACK)."""
        if not zam_requested(document.flags):
            return
        await asyncio.to_thread(self._outbox.remember, job.id, zam_request(document.header),
                                now=self._clock())

    # -- dispatcher side (on_finished) ---------------------------------------------------------
    def notify_soon(self, job: Job, outcome: Decision) -> None:
        """For a synchronous hook: schedule `notify` and return at once."""
        task = asyncio.get_running_loop().create_task(self.notify(job, outcome),
                                                      name=f"zam-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def notify(self, job: Job, outcome: Decision) -> bool:
        """Send the ZAM for this final outcome if one was asked; True once delivered."""
        zam = _outcome(job, outcome)
        if zam is None or job.channel != "mllp":
            return False
        request = await asyncio.to_thread(self._outbox.request, job.id)
        if request is None:
            return False
        if not await asyncio.to_thread(self._outbox.set_outcome, job.id, zam, now=self._clock()):
            return False
        return await self._deliver(PendingZam(job.id, request, zam))

    async def resume(self) -> int:
        """Send the outcomes left undelivered (call once at start); how many were delivered."""
        pending = await asyncio.to_thread(self._outbox.pending)
        results = [await self._deliver(item) for item in pending]
        return sum(results)

    async def aclose(self) -> None:
        """Stop the sends in progress (their outcomes stay pending for `resume`)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait for the scheduled sends to end (tests, graceful stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _deliver(self, item: PendingZam) -> bool:
        d = self._destination
        delay = d.first_delay
        for attempt in range(1, d.attempts + 1):
            message = build_zam(item.request, item.outcome, now=self._clock(),
                                control_id=uuid.uuid4().hex[:20])
            try:
                answer = await send_over_mllp(d, message)
                if answer in {"AE", "CE"}:
                    raise ZamRefused(answer)
                if answer not in {"AA", "CA"}:
                    raise ConnectionError(f"ack {answer or 'unreadable'}")
            except ZamRefused as exc:
                log.warning("zam_refused_by_receiver", job_id=item.job_id, ack=str(exc))
                await asyncio.to_thread(self._outbox.mark_delivered, item.job_id, item.outcome,
                                        now=self._clock())
                return False
            except (OSError, TimeoutError) as exc:
                log.info("zam_send_failed", job_id=item.job_id, attempt=attempt,
                         error=type(exc).__name__)
                if attempt < d.attempts:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, d.max_delay)
                continue
            await asyncio.to_thread(self._outbox.mark_delivered, item.job_id, item.outcome,
                                    now=self._clock())
            log.info("zam_sent", job_id=item.job_id, received=item.outcome.received,
                     attempt=attempt)
            return True
        log.warning("zam_undelivered", job_id=item.job_id, attempts=d.attempts, alert=True)
        return False
