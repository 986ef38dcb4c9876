"""Business acknowledgments ZAM^Z01 to the HL7 sender, once the DMP outcome is final.

How it fits (the dispatcher and the store are not changed):
1. at reception, the MLLP server calls `ZamNotifier.remember(job, document)` after the commit
   and before its ACK: when the message asked for it (MetaDMPMSS `ACK_RECEPTION = Y`), what the
   ZAM needs (`ZamRequest`: the original MSH, no health data) is stored in the `zam_requests`
   table, keyed by job id. A failure there gets the sender an AR, so it resends; the job already
   exists and the second `remember` is a no-op;
2. the dispatcher's `on_finished` hook calls `notify_soon(job, decision)`: for an MLLP job that
   is `done` (Y) or `dead` (N) the outcome is stored, then, when the ZAM was asked for, a task
   sends it over MLLP to the configured destination, retrying with backoff; the dispatcher never
   waits;
3. delivered (AA/CA from the receiver): marked, never sent again for that outcome. A receiver
   that refuses it (AE/CE) is logged and not retried. Undelivered after every retry: kept,
   `resume()` sends it again at the next start.

`remember` and `notify` commute. The job is committed before `remember` runs, and the dispatcher
may take it at once: a document refused locally, or sent very fast, can be finished before its
request is stored. So an outcome that finds no request is kept, keyed by job id, in the
`zam_outcomes` table, and the `remember` that comes later finds it and sends the ZAM at once.
Each side is one `BEGIN IMMEDIATE` transaction (SQLite serialises writers), so whichever comes
second sees what the first wrote: exactly one of them sends. Outcomes of jobs that never asked
for a ZAM are forgotten after `UNCLAIMED_OUTCOME_RETENTION` (purged as new ones are kept, and at
`resume()`).

Logs carry job ids, attempt numbers and error kinds: never the message, never patient data.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import structlog

from bridge.dmp_answer import Decision
from bridge.hl7v2 import HL7Document, frame
from bridge.hl7v2.mllp import MllpDecoder
from bridge.hl7v2.zam import ZamOutcome, ZamRequest, build_zam, zam_request, zam_requested
from bridge.jobs import Job, JobState

log = structlog.get_logger("dmp_bridge.zam")

_SCHEMA = (
    """
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
    """,
    # Final outcomes not (yet) claimed by a request: the job finished before its `remember`, or
    # it never asked for a ZAM. recorded_at is UTC ISO 8601, so it sorts as text.
    """
    CREATE TABLE IF NOT EXISTS zam_outcomes (
        job_id INTEGER PRIMARY KEY,
        outcome_received INTEGER NOT NULL,
        outcome_code TEXT NOT NULL,
        outcome_fr TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS zam_outcomes_recorded_at ON zam_outcomes (recorded_at)",
)
FINAL_STATES = {JobState.DONE: True, JobState.DEAD: False}
UNCLAIMED_OUTCOME_RETENTION = dt.timedelta(days=1)


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


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
    """The ZAM requests and their outcomes, in the queue's SQLite file, own tables."""

    def __init__(self, path: Path, *,
                 unclaimed_retention: dt.timedelta = UNCLAIMED_OUTCOME_RETENTION) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._retention = unclaimed_retention
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                     timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        with self._transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before the first read: another connection on the same
        file (or thread here) waits, so what it writes next is based on what we committed."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def remember(self, job_id: int, request: ZamRequest, *, now: dt.datetime
                 ) -> ZamOutcome | None:
        """Keep the request (a no-op when already kept). When the job's outcome was recorded
        first, it is attached to the request and returned: that ZAM must be sent now."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO zam_requests (job_id, request, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (job_id) DO NOTHING", (job_id, request.to_json(), _utc(now)))
            row = conn.execute(
                "SELECT outcome_received, outcome_code, outcome_fr, recorded_at "
                "FROM zam_outcomes WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM zam_outcomes WHERE job_id = ?", (job_id,))
            outcome = ZamOutcome(bool(row[0]), row[1], row[2])
            return outcome if _attach(conn, job_id, outcome, recorded_at=row[3]) else None

    def request(self, job_id: int) -> ZamRequest | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT request FROM zam_requests WHERE job_id = ?", (job_id,)).fetchone()
        return ZamRequest.from_json(row[0]) if row else None

    def record_outcome(self, job_id: int, outcome: ZamOutcome, *, now: dt.datetime
                       ) -> ZamRequest | None:
        """Store a final outcome. Returns the request when a ZAM must be sent now (asked for,
        not yet delivered with this same answer); without a request yet, the outcome waits for
        `remember` (or the retention) and None is returned."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT request FROM zam_requests WHERE job_id = ?", (job_id,)).fetchone()
            if row is not None:
                sent = _attach(conn, job_id, outcome, recorded_at=_utc(now))
                return ZamRequest.from_json(row[0]) if sent else None
            conn.execute(
                "INSERT INTO zam_outcomes (job_id, outcome_received, outcome_code, outcome_fr, "
                "recorded_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET "
                "outcome_received = excluded.outcome_received, "
                "outcome_code = excluded.outcome_code, outcome_fr = excluded.outcome_fr, "
                "recorded_at = excluded.recorded_at",
                (job_id, int(outcome.received), outcome.code, outcome.message_fr, _utc(now)))
            self._purge(conn, now)
        return None

    def mark_delivered(self, job_id: int, outcome: ZamOutcome, *, now: dt.datetime) -> None:
        """The receiver answered for this outcome (a newer outcome stays pending)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE zam_requests SET delivered_received = ?, delivered_at = ? "
                "WHERE job_id = ? AND outcome_received = ?",
                (int(outcome.received), _utc(now), job_id, int(outcome.received)))

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

    def unclaimed(self) -> list[int]:
        """Job ids whose outcome is kept without a request (yet)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT job_id FROM zam_outcomes ORDER BY job_id").fetchall()
        return [row[0] for row in rows]

    def purge_unclaimed(self, *, now: dt.datetime) -> int:
        """Forget the outcomes no request claimed within the retention; how many."""
        with self._transaction() as conn:
            return self._purge(conn, now)

    def _purge(self, conn: sqlite3.Connection, now: dt.datetime) -> int:
        return conn.execute("DELETE FROM zam_outcomes WHERE recorded_at < ?",
                            (_utc(now - self._retention),)).rowcount


def _attach(conn: sqlite3.Connection, job_id: int, outcome: ZamOutcome, *,
            recorded_at: str) -> bool:
    """Set the request's outcome; False when this same answer was already delivered."""
    row = conn.execute("SELECT delivered_received FROM zam_requests WHERE job_id = ?",
                       (job_id,)).fetchone()
    if row is None or row[0] == int(outcome.received):
        return False
    conn.execute(
        "UPDATE zam_requests SET outcome_received = ?, outcome_code = ?, outcome_fr = ?, "
        "outcome_at = ? WHERE job_id = ?",
        (int(outcome.received), outcome.code, outcome.message_fr, recorded_at, job_id))
    return True


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
        self._sending: set[tuple[int, bool]] = set()  # (job id, Y/N) being delivered

    # -- reception side (MllpServer on_committed) ----------------------------------------------
    async def remember(self, job: Job, document: HL7Document) -> None:
        """Keep what the ZAM will need, if the message asked for one (before the sender's ACK).
        When the job already finished, its ZAM is sent from a task: the ACK does not wait."""
        if not zam_requested(document.flags):
            return
        request = zam_request(document.header)
        outcome = await asyncio.to_thread(self._outbox.remember, job.id, request,
                                          now=self._clock())
        if outcome is not None:
            log.info("zam_outcome_before_request", job_id=job.id)
            self._spawn(self._deliver(PendingZam(job.id, request, outcome)), job.id)

    # -- dispatcher side (on_finished) ---------------------------------------------------------
    def notify_soon(self, job: Job, outcome: Decision) -> None:
        """For a synchronous hook: schedule `notify` and return at once."""
        self._spawn(self.notify(job, outcome), job.id)

    async def notify(self, job: Job, outcome: Decision) -> bool:
        """Send the ZAM for this final outcome if one was asked; True once delivered. Without a
        request yet, the outcome is kept for the `remember` that may follow."""
        zam = _outcome(job, outcome)
        if zam is None or job.channel != "mllp":
            return False
        request = await asyncio.to_thread(self._outbox.record_outcome, job.id, zam,
                                          now=self._clock())
        if request is None:
            return False
        return await self._deliver(PendingZam(job.id, request, zam))

    async def resume(self) -> int:
        """Send the outcomes left undelivered (call once at start); how many were delivered.
        Forgets the outcomes that no request claimed within the retention."""
        purged = await asyncio.to_thread(self._outbox.purge_unclaimed, now=self._clock())
        if purged:
            log.info("zam_unclaimed_outcomes_purged", count=purged)
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

    def _spawn(self, work: Coroutine[Any, Any, bool], job_id: int) -> None:
        task = asyncio.get_running_loop().create_task(work, name=f"zam-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, item: PendingZam) -> bool:
        """Send one ZAM with retries; False at once when the same one is already on its way
        (an outcome heard twice, or `resume` meeting a send in progress)."""
        key = (item.job_id, item.outcome.received)
        if key in self._sending:
            return False
        self._sending.add(key)
        try:
            return await self._send_with_retries(item)
        finally:
            self._sending.discard(key)

    async def _send_with_retries(self, item: PendingZam) -> bool:
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
