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
from pathlib import Path
from typing import Generic, TypeVar

from bridge.jobs import Job, JobEvent, JobState, reception_message_fr
from bridge.store_port import PayloadPurged, UnknownJob
from connectors.sqlite_schema import (
    BLOB_SQL,
    ERROR_STATES,
    from_text,
    job_from_row,
)
from connectors.store_blobs import BlobChecks

COUNTS_SQL = "SELECT state, COUNT(*) FROM jobs GROUP BY state"
RECEIVED_SQL = "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"

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


class WalCheckpointer:
    """Checkpoints the queue's WAL from a daemon thread and a connection of its own, so that no
    COMMIT on the intake path copies the WAL into the database file (and fsyncs it) itself.

    Writers call `wrote()` after each COMMIT (it only sets a flag). The thread, woken by it,
    lets writes gather for `pause` seconds, then runs a PASSIVE checkpoint: it copies committed
    pages into the database file and fsyncs it while writers go on appending to the WAL. Once
    the WAL holds `restart_pages` frames, the thread finishes that checkpoint holding `lock` (the
    writers' lock): only the frames committed meanwhile are left to copy, and with everything
    copied the next write transaction starts the WAL over from its beginning instead of making
    it longer (SQLite restarts a WAL only then). Idle, the thread waits without a timeout.

    Durability does not depend on it: a COMMIT is durable once fsync'ed in the WAL
    (`synchronous=FULL`, the writers' connection). This connection is `synchronous=FULL` too:
    SQLite then fsyncs the database file before it marks frames as copied, so the WAL is never
    overwritten while the only durable copy of a page is in it. If the thread falls behind or a
    checkpoint fails (disk full, I/O error), the writers' own automatic checkpoint, set at a
    larger WAL size, bounds the WAL as before; a failed checkpoint is tried again after the next
    writes. Threads only: no process, no signal (Windows).
    """

    CATCH_UP_PASSES = 3
    CATCH_UP_FRAMES = 100

    def __init__(self, path: Path, lock: threading.Lock, *, restart_pages: int,
                 pause: float) -> None:
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute("PRAGMA synchronous = FULL")  # fsync the file before a restart
            self.synchronous: int = self._conn.execute("PRAGMA synchronous").fetchone()[0]
        except BaseException:
            self._conn.close()
            raise
        self._lock = lock
        self._restart_pages = restart_pages
        self._pause = pause
        self._cond = threading.Condition()
        self._written = False
        self._stopping = False
        self._asked = 0  # drain() calls, and how many of them a checkpoint has answered
        self._answered = 0
        self._thread = threading.Thread(target=self._run, name="sqlite-wal-checkpointer",
                                        daemon=True)
        self._thread.start()

    def wrote(self) -> None:
        """A COMMIT put frames in the WAL: checkpoint them soon."""
        with self._cond:
            if not self._written:
                self._written = True
                self._cond.notify_all()

    def drain(self) -> None:
        """Checkpoint now (no pause) and return once every frame committed before the call was
        copied, as far as readers allow; at once if the thread is stopped."""
        with self._cond:
            self._asked += 1
            ticket = self._asked
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._answered >= ticket or self._stopping)

    def stop(self) -> None:
        """Ask the thread to end (it ends after the checkpoint it may be running)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the thread and wait for it; its connection is closed. Must not be called with
        `lock` held (the thread may be waiting for it)."""
        self.stop()
        self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while (ticket := self._wait_for_work()) is not None:
                # On failure the writers' own checkpoint bounds the WAL; tried after next writes.
                with contextlib.suppress(sqlite3.Error):
                    self._checkpoint()
                with self._cond:
                    self._answered = ticket
                    self._cond.notify_all()
        finally:
            self._conn.close()

    def _wait_for_work(self) -> int | None:
        """The drain() calls the coming checkpoint answers, once there are writes to checkpoint
        or a drain() waits; None when asked to stop."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._written or self._stopping or self._asked > self._answered)
            if self._asked == self._answered:  # let more writes join this checkpoint
                self._cond.wait_for(lambda: self._stopping or self._asked > self._answered,
                                    timeout=self._pause)
            self._written = False
            return None if self._stopping else self._asked

    def _checkpoint(self) -> None:
        busy, frames, _ = self._passive()
        if busy or frames < self._restart_pages:
            return
        # SQLite starts the WAL over only in a write transaction that began with every frame
        # copied; a busy writer is always in one that began before the last copy. So the last
        # frames are copied between two transactions, holding the writers' lock; first, copies
        # without it take what was committed during the previous copy (fewer each time), so
        # that the writers wait for the copy of a few frames only.
        for _ in range(self.CATCH_UP_PASSES):
            busy, after, _ = self._passive()
            if busy or after - frames <= self.CATCH_UP_FRAMES:
                break
            frames = after
        with self._lock:
            self._passive()

    def _passive(self) -> tuple[int, int, int]:
        """(1 if another checkpoint was running, frames in the WAL, frames copied in all)."""
        busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(frames), int(copied)


class SqliteBase(BlobChecks):
    """What `SqliteStore` builds on: the write transaction, row helpers, reads."""

    _conn: sqlite3.Connection
    _lock: threading.Lock
    _checkpointer: WalCheckpointer

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
        self._checkpointer.wrote()

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
        """The job's history, oldest first; [] for an unknown job. Its reception is not an
        events row (schema 3): it is made from the job row, written in the same COMMIT."""
        with self._lock:
            job = self._conn.execute(
                "SELECT channel, received_at FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            rows = self._conn.execute(
                "SELECT * FROM events WHERE job_id = ? ORDER BY id", (job_id,)
            ).fetchall()
        if job is None:
            return []
        received_at = from_text(job["received_at"])
        assert received_at is not None
        result = [JobEvent(job_id=job_id, at=received_at, from_state=None,
                           to_state=JobState.QUEUED, code="RECEIVED",
                           message_fr=reception_message_fr(job["channel"]))]
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
            rows = self._conn.execute(COUNTS_SQL).fetchall()
        return _counts(rows)

    def received(self) -> int:
        """Jobs ever received, counted apart from the rows: a vanished row breaks conservation.

        The AUTOINCREMENT sequence of `jobs`: each intake's INSERT raises it by one in the
        intake's own transaction (a rolled-back intake does not), and a deleted row does not
        lower it. Unlike PostgreSQL's counter, a row inserted behind the store's back raises it
        too (conservation then holds for that row, as it holds for the store's own)."""
        with self._lock:
            row = self._conn.execute(RECEIVED_SQL).fetchone()
        return _received(row)

    def tally(self) -> tuple[dict[JobState, int], int]:
        """`counts()` and `received()` read together, in one read transaction: both from the
        same snapshot of the WAL, so no intake committed meanwhile (by this store's writers,
        held off by the lock, or by another process) can fall between them and make a
        balanced queue look unbalanced."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")  # deferred: the snapshot is taken by the first SELECT
            try:
                rows = conn.execute(COUNTS_SQL).fetchall()
                row = conn.execute(RECEIVED_SQL).fetchone()
                conn.execute("COMMIT")  # ends the read transaction (nothing was written)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return _counts(rows), _received(row)


def _counts(rows: list[sqlite3.Row]) -> dict[JobState, int]:
    """Every state, 0 for those without a job, from the rows of `COUNTS_SQL`."""
    result = dict.fromkeys(JobState, 0)
    for state, n in rows:
        result[JobState(state)] = int(n)
    return result


def _received(row: sqlite3.Row | None) -> int:
    """The row of `RECEIVED_SQL`: none before the first intake ever."""
    return 0 if row is None else int(row[0])
