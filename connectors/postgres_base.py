"""The PostgreSQL queue's helpers (transaction, row lock, journaled state change) and its reads
(the bytes of a job, checked against their hashes, and its rows).

Kept apart from `postgres_store` (lifecycle and writes) so each module stays short;
`PostgresStore` inherits all of it. No logging here: this module handles health
data (payloads).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from bridge.jobs import Job, JobEvent, JobState, check_transition
from bridge.store_port import PayloadPurged, UnknownJob
from connectors.postgres_schema import BLOB_SQL, aware, job_from_row
from connectors.sqlite_schema import ERROR_STATES
from connectors.store_blobs import BlobChecks

Cursor = psycopg.Cursor[DictRow]

COUNTS_SQL = "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"
RECEIVED_SQL = "SELECT value FROM counters WHERE name = 'received'"
SNAPSHOT_SQL = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"


class PostgresBase(BlobChecks):
    """What `PostgresStore` builds on: transactions, row helpers, reads."""

    _pool: ConnectionPool[Any]

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Cursor]:
        """One transaction: all of it is committed when the block ends, or none of it is."""
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            # Leaving `pool.connection()` commits (rolls back on an exception) before returning.
            yield cur

    # -- helpers (called inside a transaction) -----------------------------------------------

    @staticmethod
    def _locked_state(cur: Cursor, job_id: int) -> JobState:
        """The job's state, its row locked until the transaction ends; UnknownJob if none."""
        cur.execute("SELECT state FROM jobs WHERE id = %s FOR UPDATE", (job_id,))
        row = cur.fetchone()
        if row is None:
            raise UnknownJob(job_id)
        return JobState(row["state"])

    @staticmethod
    def _event(
        cur: Cursor,
        job_id: int,
        *,
        at: datetime,
        old: JobState | None,
        new: JobState,
        code: str,
        message_fr: str,
    ) -> None:
        cur.execute(
            "INSERT INTO events (job_id, at, from_state, to_state, code, message_fr)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (job_id, at, None if old is None else old.value, new.value, code, message_fr),
        )

    def _move(
        self,
        cur: Cursor,
        job_id: int,
        old: JobState,
        new: JobState,
        *,
        code: str,
        message_fr: str,
        at: datetime,
        next_attempt_at: datetime | None = None,
        count_attempt: bool = False,
        lease: timedelta | None = None,
    ) -> Job:
        """The one state change (claim, transition, recovery), on a row locked by the caller."""
        check_transition(old, new)  # raises before anything is written
        activate = new is JobState.ACTIVE
        # Entering an error state sets the reason shown to the user; DONE clears it.
        errors = "set" if new in ERROR_STATES else "clear" if new is JobState.DONE else "keep"
        cur.execute(
            "UPDATE jobs SET state = %(new)s, updated_at = %(at)s,"
            " attempts = attempts + %(attempt)s,"
            " next_attempt_at = %(next)s,"
            " lease_until = %(lease_until)s,"
            " leases = leases + CASE WHEN %(activate)s THEN 1 ELSE 0 END,"
            " leased_from = CASE WHEN %(activate)s THEN %(old)s ELSE leased_from END,"
            " last_error_code = CASE %(errors)s WHEN 'set' THEN %(code)s WHEN 'clear' THEN NULL"
            "   ELSE last_error_code END,"
            " last_error_fr = CASE %(errors)s WHEN 'set' THEN %(message)s"
            "   WHEN 'clear' THEN NULL ELSE last_error_fr END"
            " WHERE id = %(id)s RETURNING *",
            {
                "new": new.value,
                "at": at,
                "attempt": 1 if count_attempt else 0,
                "next": None if next_attempt_at is None else aware(next_attempt_at),
                "lease_until": at + lease if activate and lease is not None else None,
                "activate": activate,
                "old": old.value,
                "errors": errors,
                "code": code,
                "message": message_fr,
                "id": job_id,
            },
        )
        row = cur.fetchone()
        assert row is not None  # locked by the caller: it cannot have vanished
        self._event(cur, job_id, at=at, old=old, new=new, code=code, message_fr=message_fr)
        return job_from_row(row)

    def _blob(self, job_id: int, column: str) -> tuple[bytes | None, str | None]:
        """The bytes and their recorded hash; UnknownJob if the job does not exist."""
        query = BLOB_SQL[column] + (
            " FROM jobs j LEFT JOIN payloads p ON p.job_id = j.id WHERE j.id = %s"
        )
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(query, (job_id,))
            row = cur.fetchone()
        if row is None:
            raise UnknownJob(job_id)
        if row[2] is not None:
            raise PayloadPurged(job_id)
        return row[0], row[1]

    def get(self, job_id: int) -> Job | None:
        with self._tx() as cur:
            cur.execute("SELECT * FROM jobs WHERE id = %s", (job_id,))
            row = cur.fetchone()
        return None if row is None else job_from_row(row)

    def find_by_key(self, idempotency_key: str) -> Job | None:
        with self._tx() as cur:
            cur.execute("SELECT * FROM jobs WHERE idempotency_key = %s", (idempotency_key,))
            row = cur.fetchone()
        return None if row is None else job_from_row(row)

    def list_jobs(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        with self._tx() as cur:
            if state is None:
                cur.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT %s", (limit,))
            else:
                cur.execute(
                    "SELECT * FROM jobs WHERE state = %s ORDER BY id DESC LIMIT %s",
                    (state.value, limit),
                )
            rows = cur.fetchall()
        return [job_from_row(r) for r in rows]

    def events(self, job_id: int) -> list[JobEvent]:
        with self._tx() as cur:
            cur.execute("SELECT * FROM events WHERE job_id = %s ORDER BY id", (job_id,))
            rows = cur.fetchall()
        return [
            JobEvent(
                job_id=int(r["job_id"]),
                at=aware(r["at"]),
                from_state=None if r["from_state"] is None else JobState(r["from_state"]),
                to_state=JobState(r["to_state"]),
                code=r["code"],
                message_fr=r["message_fr"],
            )
            for r in rows
        ]

    def counts(self) -> dict[JobState, int]:
        with self._tx() as cur:
            cur.execute(COUNTS_SQL)
            rows = cur.fetchall()
        return _counts(rows)

    def received(self) -> int:
        """Jobs ever received, counted apart from the rows: a vanished row breaks conservation."""
        with self._tx() as cur:
            cur.execute(RECEIVED_SQL)
            row = cur.fetchone()
        return _received(row)

    def tally(self) -> tuple[dict[JobState, int], int]:
        """`counts()` and `received()` read together: one REPEATABLE READ transaction, so both
        statements see the same snapshot and no intake committed meanwhile falls between them
        (read only: it can neither write nor fail to serialize)."""
        with self._tx() as cur:
            cur.execute(SNAPSHOT_SQL)  # first statement of the transaction, as it must be
            cur.execute(COUNTS_SQL)
            rows = cur.fetchall()
            cur.execute(RECEIVED_SQL)
            row = cur.fetchone()
        return _counts(rows), _received(row)


def _counts(rows: list[DictRow]) -> dict[JobState, int]:
    """Every state, 0 for those without a job, from the rows of `COUNTS_SQL`."""
    result = dict.fromkeys(JobState, 0)
    for r in rows:
        result[JobState(r["state"])] = int(r["n"])
    return result


def _received(row: DictRow | None) -> int:
    """The row of `RECEIVED_SQL` (made by the first migration, never deleted)."""
    assert row is not None
    return int(row["value"])
