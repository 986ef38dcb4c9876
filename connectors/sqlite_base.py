"""The SQLite queue's helpers (write transaction, group commit, row and event helpers) and its
reads (the bytes of a job, checked against their hashes, and its rows).

Kept apart from `sqlite_store` (lifecycle and operations) so each module stays short;
`SqliteStore` inherits all of it. Every use of the connection is behind the store's lock.
No logging here: this module handles health data (payloads).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from bridge.jobs import Job, JobEvent, JobState
from bridge.store_port import PayloadPurged, UnknownJob
from connectors.sqlite_schema import (
    BLOB_SQL,
    ERROR_STATES,
    from_text,
    job_from_row,
)
from connectors.store_blobs import BlobChecks

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], T]


class _Request(Generic[T]):
    """One caller's part of a group: its work, then its result or the group's error."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Work[T]) -> None:
        self.work = work
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False


class CommitGroups(Generic[T]):
    """Group commit: the writes of concurrent callers share one transaction and one COMMIT.

    A caller hands its work (statements to run inside the transaction) and waits. If no group
    is being written, the caller leads: it opens the write transaction (`write`), takes every
    request waiting at that moment (its own included: callers that arrived while the previous
    COMMIT was being fsync'ed join it), runs their work in arrival order, and commits. Each
    caller returns only once the COMMIT holding its work has returned — durable, as with a
    transaction of its own — and gets its own result. If anything in the group fails (a
    statement, the COMMIT), the transaction is rolled back and every caller of the group gets
    that error: nothing of the group was written, so nothing may be acknowledged.

    One caller alone is a group of one (no waiting, no delay): it leads at once.
    Work must not raise for its own input (check it before): one failure fails the group.
    """

    def __init__(self, write: Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]]
                 ) -> None:
        self._write = write
        self._cond = threading.Condition()
        self._waiting: list[_Request[T]] = []
        self._leading = False

    @property
    def waiting(self) -> int:
        """Requests not yet taken into a group (those of a group being written are not)."""
        with self._cond:
            return len(self._waiting)

    def run(self, work: Work[T]) -> T:
        """`work(conn)`'s result, once the transaction that ran it is committed."""
        request = _Request(work)
        with self._cond:
            self._waiting.append(request)
            while self._leading and not request.done:
                self._cond.wait()
            # No group is being written and ours is not done, so it is still waiting: lead.
            lead = not request.done
            if lead:
                self._leading = True
        if lead:
            self._lead(request)
        if request.error is not None:
            raise request.error  # each caller raises the group's error (as Future.result does)
        return request.result  # type: ignore[return-value]  # set with done, no error

    def _lead(self, own: _Request[T]) -> None:
        group: list[_Request[T]] = []
        try:
            with self._write() as conn:
                with self._cond:
                    group, self._waiting = self._waiting, []
                results = [request.work(conn) for request in group]
            # The COMMIT returned: every request of the group is durable.
            for request, result in zip(group, results, strict=True):
                request.result = result
        except BaseException as exc:
            if not group:  # failed before taking the group: only the leader's own request
                with self._cond:
                    self._waiting.remove(own)
                group = [own]
            for request in group:
                request.error = exc
        finally:
            with self._cond:
                for request in group:
                    request.done = True
                self._leading = False
                self._cond.notify_all()


class SqliteBase(BlobChecks):
    """What `SqliteStore` builds on: the write transaction, row helpers, reads."""

    _conn: sqlite3.Connection
    _lock: threading.Lock

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is durable after the COMMIT, or none of it is."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no lost update
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- helpers (called with the lock held) -------------------------------------------------

    def _row(self, conn: sqlite3.Connection, job_id: int) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise UnknownJob(job_id)
        return row

    @staticmethod
    def _event(
        conn: sqlite3.Connection,
        job_id: int,
        *,
        at: str,
        old: JobState | None,
        new: JobState,
        code: str,
        message_fr: str,
    ) -> None:
        conn.execute(
            "INSERT INTO events (job_id, at, from_state, to_state, code, message_fr) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, at, None if old is None else old.value, new.value, code, message_fr),
        )

    @staticmethod
    def _activate(
        conn: sqlite3.Connection, job_id: int, old: JobState, at: str, lease_until: str
    ) -> None:
        conn.execute(
            "UPDATE jobs SET state = ?, updated_at = ?, lease_until = ?, next_attempt_at = NULL,"
            " leases = leases + 1, leased_from = ? WHERE id = ?",
            (JobState.ACTIVE.value, at, lease_until, old.value, job_id),
        )

    @staticmethod
    def _error_update(new: JobState, value: str) -> tuple[str, str]:
        if new in ERROR_STATES:
            return "set", value
        return ("clear" if new is JobState.DONE else "keep"), value

    # -- reads -------------------------------------------------------------------------------

    def _blob(self, job_id: int, column: str) -> tuple[bytes | None, str | None]:
        """The bytes and their recorded hash; UnknownJob if the job does not exist."""
        sql = BLOB_SQL[column] + (
            " FROM jobs j LEFT JOIN payloads p ON p.job_id = j.id WHERE j.id = ?"
        )
        with self._lock:
            row = self._conn.execute(sql, (job_id,)).fetchone()
        if row is None:
            raise UnknownJob(job_id)
        if row[2] is not None:
            raise PayloadPurged(job_id)
        return row[0], row[1]

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else job_from_row(row)

    def find_by_key(self, idempotency_key: str) -> Job | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
        return None if row is None else job_from_row(row)

    def list_jobs(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        with self._lock:
            if state is None:
                rows = self._conn.execute(
                    "SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT * FROM jobs WHERE state = ? ORDER BY id DESC LIMIT ?",
                    (state.value, limit),
                ).fetchall()
        return [job_from_row(r) for r in rows]

    def events(self, job_id: int) -> list[JobEvent]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM events WHERE job_id = ? ORDER BY id", (job_id,)
            ).fetchall()
        result = []
        for r in rows:
            at = from_text(r["at"])
            assert at is not None
            result.append(
                JobEvent(
                    job_id=r["job_id"],
                    at=at,
                    from_state=None if r["from_state"] is None else JobState(r["from_state"]),
                    to_state=JobState(r["to_state"]),
                    code=r["code"],
                    message_fr=r["message_fr"],
                )
            )
        return result

    def counts(self) -> dict[JobState, int]:
        with self._lock:
            rows = self._conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        result = dict.fromkeys(JobState, 0)
        for state, n in rows:
            result[JobState(state)] = int(n)
        return result

    def received(self) -> int:
        """Jobs ever received, counted apart from the rows: a vanished row breaks conservation."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM counters WHERE name = 'received'"
            ).fetchone()
        return int(row[0])
