"""The durable queue in PostgreSQL, for regional deployments with several workers on several
machines (implements `bridge.store_port.Store` with the semantics of `SqliteStore`).

`PostgresStore.open(dsn)` connects (psycopg 3, synchronous API, a small `psycopg_pool` pool that
worker threads share and that replaces connections broken by a server restart), then creates the
schema if absent (tables in their own PostgreSQL schema, `dmp_bridge` by default, versioned by a
`schema_version` table like SQLite's; concurrent first starts are serialised by an advisory
lock). Every method is one transaction, committed before it returns; sessions force
`synchronous_commit = on`, so a method that returned has its change on the server's disk (and on
a synchronous standby, if the server has one).

What differs from SQLite:

- **Claims** lock one row with `SELECT … FOR UPDATE SKIP LOCKED` instead of taking the whole
  database's write lock (`BEGIN IMMEDIATE`): workers in any number of processes and machines claim
  disjoint jobs without waiting for each other. Every other write locks the job's row
  (`FOR UPDATE`), so two workers never interleave changes to one job.
- **`recover_on_start` takes back only the ACTIVE jobs whose lease has expired**
  (`lease_until <= now`). With SQLite one process owns the file, so at start every ACTIVE lease
  is dead and all are taken back; here other workers may be running and their live leases are
  left alone. Any worker may take back the expired leases of a machine that died, at its start
  or periodically (calling it again is harmless). Consequences: after a crash a job waits until
  its lease ends (the dispatcher's lease is 5 minutes) before it is sent again, the lease must be
  longer than the longest send (the DMP timeout), and the workers' clocks must be synchronised
  (NTP): leases are compared with the `now` of the caller, as with SQLite.
- **Ids** come from an identity sequence: never reused, but a rolled-back enqueue leaves a gap,
  and with concurrent writers the id order is the order inserts began, not the order of commits.
- **Times** are `timestamptz` (microseconds), returned in UTC; bytes are `bytea`.
- **Access control** is PostgreSQL's (a role and its password, TLS with `sslmode` in the DSN)
  instead of the file's 0600 mode; where the data lives (HDS hosting) is the deployment's matter.
- Losing the server raises `psycopg.OperationalError` (a pool timeout, `psycopg_pool.PoolTimeout`,
  is one) from the method that was running, as SQLite raises `sqlite3.OperationalError`; nothing
  was committed unless the method returned. `open` raises `StoreError` when it cannot connect.

No logging here: this module handles health data (payloads), and the caller logs outcomes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Self

import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from bridge.jobs import Intake, Job, JobEvent, JobState, check_transition
from bridge.store_port import CorruptPayload, JobNotActive, StoreError, UnknownJob
from connectors.postgres_schema import (
    BLOB_SQL,
    MIGRATIONS,
    SCHEMA_VERSION,
    aware,
    job_from_row,
)
from connectors.sqlite_schema import ERROR_STATES, sha256_hex

DEFAULT_SCHEMA = "dmp_bridge"
MAX_CONNECTIONS = 4  # per store (per process): the dispatcher and intake threads
CONNECT_TIMEOUT_S = 10.0  # at open, and to get a connection from the pool later

Cursor = psycopg.Cursor[DictRow]


class PostgresStore:
    """The job queue in one PostgreSQL schema. Open with `PostgresStore.open(dsn)`."""

    def __init__(self, pool: ConnectionPool[Any], schema: str) -> None:
        self._pool = pool
        self.schema = schema

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        dsn: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        max_connections: int = MAX_CONNECTIONS,
        timeout: float = CONNECT_TIMEOUT_S,
    ) -> PostgresStore:
        """Connect to `dsn` and create (or migrate) the queue's tables in `schema` if needed."""
        setup = sql.SQL(
            "SET search_path TO {}; SET TIME ZONE 'UTC'; SET synchronous_commit TO on"
        ).format(sql.Identifier(schema))

        def configure(conn: psycopg.Connection[Any]) -> None:
            conn.execute(setup)
            conn.commit()

        pool: ConnectionPool[Any] = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections,
            timeout=timeout,
            configure=configure,
            check=ConnectionPool.check_connection,  # a server restart breaks no later call
            name=f"dmp-bridge-store-{schema}",
            open=False,
        )
        try:
            try:
                pool.open(wait=True, timeout=timeout)
            except PoolTimeout:
                # No detail: the DSN holds a password, and the pool has logged the cause.
                raise StoreError(
                    "La base PostgreSQL de la file d'attente est injoignable : vérifiez "
                    "l'adresse, l'utilisateur et le mot de passe, et que le serveur tourne.",
                    code="STORE_UNREACHABLE",
                ) from None
            store = cls(pool, schema)
            store._migrate()
        except BaseException:
            pool.close()
            raise
        return store

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Cursor]:
        """One transaction: all of it is committed when the block ends, or none of it is."""
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            # Leaving `pool.connection()` commits (rolls back on an exception) before returning.
            yield cur

    def _migrate(self) -> None:
        with self._tx() as cur:
            # Two workers starting on an empty database: the second waits, then finds it done.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('dmp-bridge schema migration'))")
            cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,))
            if cur.fetchone() is None:  # checked first: CREATE needs a right an owner may lack
                cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            cur.execute("SELECT version FROM schema_version")
            row = cur.fetchone()
            current = 0 if row is None else int(row["version"])
            if current > SCHEMA_VERSION:
                raise StoreError(
                    "La file d'attente a été créée par une version plus récente de dmp-bridge : "
                    "mettez le logiciel à jour.",
                    code="STORE_TOO_NEW",
                )
            for statements in MIGRATIONS[current:]:
                for statement in statements:
                    cur.execute(statement)
            if row is None:
                cur.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
            else:
                cur.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))

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
        return row[0], row[1]

    # -- writes ------------------------------------------------------------------------------

    def enqueue(self, intake: Intake) -> tuple[Job, bool]:
        received_at = aware(intake.received_at)
        key = intake.idempotency_key
        with self._tx() as cur:
            cur.execute("SELECT * FROM jobs WHERE idempotency_key = %s", (key,))
            existing = cur.fetchone()
            if existing is not None:
                return job_from_row(existing), False  # same input again: one job, payload kept once
            cur.execute(
                "INSERT INTO jobs (state, channel, source_ref, idempotency_key, payload_sha256,"
                " received_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
                (
                    JobState.QUEUED.value,
                    intake.channel,
                    intake.source_ref,
                    key,
                    sha256_hex(intake.payload),
                    received_at,
                    received_at,
                ),
            )
            row = cur.fetchone()
            if row is None:
                # Another worker committed the same key since our SELECT (the INSERT waited for
                # it): its job is the one, exactly as if it had been found above.
                cur.execute("SELECT * FROM jobs WHERE idempotency_key = %s", (key,))
                other = cur.fetchone()
                assert other is not None
                return job_from_row(other), False
            job = job_from_row(row)
            cur.execute(
                "INSERT INTO payloads (job_id, payload, metadata) VALUES (%s, %s, %s)",
                (job.id, intake.payload, intake.metadata),
            )
            cur.execute("UPDATE counters SET value = value + 1 WHERE name = 'received'")
            self._event(
                cur,
                job.id,
                at=received_at,
                old=None,
                new=JobState.QUEUED,
                code="RECEIVED",
                message_fr=f"Document reçu ({intake.channel}) et mis en file d'attente.",
            )
        # The COMMIT has returned: row, payload and event are on the server's disk. Only now may
        # the caller acknowledge the source (ACK, HTTP 202, move of the file). A failure before
        # this line leaves no job and no acknowledgement, so the source sends it again.
        return job, True

    def claim(self, now: datetime, lease: timedelta) -> Job | None:
        at = aware(now)
        with self._tx() as cur:
            # SKIP LOCKED: a row another worker is claiming (or changing) right now is passed
            # over, not waited for; the row we get stays locked until our COMMIT, so no two
            # workers, on any machine, ever lease the same job.
            cur.execute(
                "SELECT id, state FROM jobs"
                " WHERE state = %s OR (state = %s AND next_attempt_at <= %s)"
                " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                (JobState.QUEUED.value, JobState.DEFERRED.value, at),
            )
            row = cur.fetchone()
            if row is None:
                return None
            job = self._move(
                cur,
                int(row["id"]),
                JobState(row["state"]),
                JobState.ACTIVE,
                code="CLAIMED",
                message_fr="Pris en charge pour l'envoi.",
                at=at,
                lease=lease,
            )
        return job

    def save_package(
        self, job_id: int, document_unique_id: str, submission_unique_id: str, package: bytes
    ) -> None:
        with self._tx() as cur:
            self._locked_state(cur, job_id)
            # Identifiers are minted once (DESIGN.md §4): a package already saved wins, so a
            # retry resends exactly the bytes (and uniqueIds) the DMP may already have.
            cur.execute(
                "UPDATE payloads SET package = %s, package_sha256 = %s"
                " WHERE job_id = %s AND package IS NULL",
                (package, sha256_hex(package), job_id),
            )
            if cur.rowcount == 1:
                cur.execute(
                    "UPDATE jobs SET document_unique_id = COALESCE(document_unique_id, %s),"
                    " submission_unique_id = COALESCE(submission_unique_id, %s) WHERE id = %s",
                    (document_unique_id, submission_unique_id, job_id),
                )

    def mark_sent(self, job_id: int) -> None:
        with self._tx() as cur:
            state = self._locked_state(cur, job_id)
            if state is not JobState.ACTIVE:
                raise JobNotActive(job_id, state)
            # Committed before the request leaves: if the worker dies from here on, we cannot
            # know whether the DMP registered it, so recovery makes the job AMBIGUOUS.
            cur.execute("UPDATE jobs SET sent_lease = leases WHERE id = %s", (job_id,))

    def transition(
        self,
        job_id: int,
        new: JobState,
        *,
        code: str,
        message_fr: str,
        now: datetime,
        next_attempt_at: datetime | None = None,
        count_attempt: bool = False,
        lease: timedelta | None = None,
    ) -> Job:
        at = aware(now)
        if new is JobState.DEFERRED and next_attempt_at is None:
            raise ValueError("a deferred job needs next_attempt_at, or it would never be retried")
        if new is JobState.ACTIVE and lease is None:
            raise ValueError("an active job needs a lease")
        with self._tx() as cur:
            old = self._locked_state(cur, job_id)
            job = self._move(
                cur,
                job_id,
                old,
                new,
                code=code,
                message_fr=message_fr,
                at=at,
                next_attempt_at=next_attempt_at,
                count_attempt=count_attempt,
                lease=lease,
            )
        return job

    def recover_on_start(self, now: datetime) -> int:
        """Take back the ACTIVE jobs whose lease has expired (their worker is gone).

        Live leases belong to workers still running elsewhere and are left alone (see the module
        docstring). A job whose request may have left (mark_sent during this lease), or whose
        lease was taken from AMBIGUOUS, becomes AMBIGUOUS: the DMP is asked before any resend.
        """
        at = aware(now)
        with self._tx() as cur:
            cur.execute(
                "SELECT id, leases, sent_lease, leased_from FROM jobs"
                " WHERE state = %s AND (lease_until IS NULL OR lease_until <= %s)"
                " ORDER BY id FOR UPDATE SKIP LOCKED",
                (JobState.ACTIVE.value, at),
            )
            rows = cur.fetchall()
            for row in rows:
                maybe_sent = (
                    row["sent_lease"] == row["leases"]
                    or row["leased_from"] == JobState.AMBIGUOUS.value
                )
                if maybe_sent:
                    new, code = JobState.AMBIGUOUS, "RESTART_AFTER_SEND"
                    msg = (
                        "Interruption pendant l'envoi : le DMP sera interrogé avant tout "
                        "nouvel envoi."
                    )
                else:
                    new, code = JobState.QUEUED, "RESTART_REQUEUED"
                    msg = "Interruption avant l'envoi : le document sera traité à nouveau."
                self._move(
                    cur, int(row["id"]), JobState.ACTIVE, new, code=code, message_fr=msg, at=at
                )
        return len(rows)

    # -- reads -------------------------------------------------------------------------------

    def payload(self, job_id: int) -> bytes:
        data, sha = self._blob(job_id, "payload")
        if data is None or sha is None or sha256_hex(data) != sha:
            raise CorruptPayload(job_id, "payload")
        return bytes(data)

    def metadata(self, job_id: int) -> bytes:
        data, _ = self._blob(job_id, "metadata")
        if data is None:
            raise CorruptPayload(job_id, "metadata")
        return bytes(data)

    def package(self, job_id: int) -> bytes | None:
        data, sha = self._blob(job_id, "package")
        if data is None:
            return None
        if sha is None or sha256_hex(data) != sha:
            raise CorruptPayload(job_id, "package")
        return bytes(data)

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
            cur.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            rows = cur.fetchall()
        result = dict.fromkeys(JobState, 0)
        for r in rows:
            result[JobState(r["state"])] = int(r["n"])
        return result

    def received(self) -> int:
        """Jobs ever received, counted apart from the rows: a vanished row breaks conservation."""
        with self._tx() as cur:
            cur.execute("SELECT value FROM counters WHERE name = 'received'")
            row = cur.fetchone()
        assert row is not None
        return int(row["value"])
