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

from datetime import datetime, timedelta
from typing import Any, Self

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from bridge.jobs import Intake, Job, JobState, StateChanged, reception_message_fr, storable
from bridge.store_port import JobNotActive, StoreError, UnknownJob
from connectors.postgres_base import PostgresBase
from connectors.postgres_schema import MIGRATIONS, SCHEMA_VERSION, aware, job_from_row
from connectors.sqlite_schema import sha256_hex
from connectors.store_texts import CLAIMED_FOR_LOT, CLAIMED_WITH_LOT, PACKAGE_DISCARDED, PURGED

DEFAULT_SCHEMA = "dmp_bridge"
MAX_CONNECTIONS = 4  # per store (per process): the dispatcher and intake threads
CONNECT_TIMEOUT_S = 10.0  # at open, and to get a connection from the pool later


class PostgresStore(PostgresBase):
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

    # -- writes ------------------------------------------------------------------------------

    def enqueue(self, intake: Intake) -> tuple[Job, bool]:
        intake = storable(intake)  # PostgreSQL's UTF-8 refuses what SQLite's does
        received_at = aware(intake.received_at)
        key = intake.idempotency_key
        with self._tx() as cur:
            cur.execute("SELECT * FROM jobs WHERE idempotency_key = %s", (key,))
            existing = cur.fetchone()
            if existing is not None:
                return job_from_row(existing), False  # same input again: one job, payload kept once
            cur.execute(
                "INSERT INTO jobs (state, channel, source_ref, idempotency_key, payload_sha256,"
                " received_at, updated_at, patient_key, author_key)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
                (
                    JobState.QUEUED.value,
                    intake.channel,
                    intake.source_ref,
                    key,
                    intake.payload_sha256 or sha256_hex(intake.payload),
                    received_at,
                    received_at,
                    intake.patient_key,
                    intake.author_key,
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
                message_fr=reception_message_fr(intake.channel),
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

    def claim_related(self, job: Job, now: datetime, lease: timedelta, limit: int) -> list[Job]:
        at = aware(now)
        if limit <= 0:
            return []
        with self._tx() as cur:
            cur.execute("SELECT * FROM jobs WHERE id = %s FOR UPDATE", (job.id,))
            row = cur.fetchone()
            if row is None:
                raise UnknownJob(job.id)
            if row["state"] != JobState.ACTIVE.value:
                raise JobNotActive(job.id, JobState(row["state"]))
            # SKIP LOCKED, as `claim`: a companion another worker holds right now is left to it.
            if row["submission_unique_id"] is not None:
                cur.execute(
                    "SELECT id, state FROM jobs WHERE submission_unique_id = %s AND id != %s"
                    " AND state IN (%s, %s) ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                    (row["submission_unique_id"], job.id, JobState.QUEUED.value,
                     JobState.DEFERRED.value, limit),
                )
                code, message = CLAIMED_WITH_LOT
            elif row["patient_key"] and row["author_key"] and row["document_unique_id"] is None:
                cur.execute(
                    "SELECT id, state FROM jobs WHERE patient_key = %s AND author_key = %s"
                    " AND state = %s AND document_unique_id IS NULL AND id != %s"
                    " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                    (row["patient_key"], row["author_key"], JobState.QUEUED.value, job.id,
                     limit),
                )
                code, message = CLAIMED_FOR_LOT
            else:
                return []
            others = cur.fetchall()
            return [
                self._move(cur, int(other["id"]), JobState(other["state"]), JobState.ACTIVE,
                           code=code, message_fr=message, at=at, lease=lease)
                for other in others
            ]

    def discard_refused_package(
        self, job_id: int, submission_unique_id: str, *, now: datetime
    ) -> bool:
        at = aware(now)
        with self._tx() as cur:
            cur.execute(
                "SELECT state, submission_unique_id FROM jobs WHERE id = %s FOR UPDATE", (job_id,)
            )
            row = cur.fetchone()
            if row is None:
                raise UnknownJob(job_id)
            if row["state"] != JobState.ACTIVE.value:
                raise JobNotActive(job_id, JobState(row["state"]))
            if row["submission_unique_id"] != submission_unique_id:
                return False
            # One transaction (see SqliteStore.discard_refused_package): the document uniqueId
            # stays, the package, its submission id and the "sent" mark go.
            cur.execute(
                "UPDATE payloads SET package = NULL, package_sha256 = NULL WHERE job_id = %s",
                (job_id,),
            )
            cur.execute(
                "UPDATE jobs SET submission_unique_id = NULL, sent_lease = NULL WHERE id = %s",
                (job_id,),
            )
            code, message = PACKAGE_DISCARDED
            self._event(cur, job_id, at=at, old=JobState.ACTIVE, new=JobState.ACTIVE,
                        code=code, message_fr=message)
        return True

    def note(self, job_id: int, *, code: str, message_fr: str, now: datetime) -> None:
        at = aware(now)
        with self._tx() as cur:
            state = self._locked_state(cur, job_id)
            self._event(cur, job_id, at=at, old=state, new=state, code=code,
                        message_fr=message_fr)

    def purge_done(self, before: datetime, *, now: datetime) -> int:
        limit, at = aware(before), aware(now)
        with self._tx() as cur:
            cur.execute(
                "SELECT id FROM jobs WHERE state = %s AND updated_at < %s AND purged_at IS NULL"
                " ORDER BY id FOR UPDATE SKIP LOCKED",
                (JobState.DONE.value, limit),
            )
            ids = [int(r["id"]) for r in cur.fetchall()]
            code, message = PURGED
            for job_id in ids:
                # Empty bytes rather than a deleted row: the hashes stay (see SqliteStore).
                cur.execute(
                    "UPDATE payloads SET payload = ''::bytea, metadata = ''::bytea,"
                    " package = NULL WHERE job_id = %s",
                    (job_id,),
                )
                cur.execute("UPDATE jobs SET purged_at = %s WHERE id = %s", (at, job_id))
                self._event(cur, job_id, at=at, old=JobState.DONE, new=JobState.DONE,
                            code=code, message_fr=message)
        return len(ids)

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
        expected: JobState | None = None,
    ) -> Job:
        at = aware(now)
        if new is JobState.DEFERRED and next_attempt_at is None:
            raise ValueError("a deferred job needs next_attempt_at, or it would never be retried")
        if new is JobState.ACTIVE and lease is None:
            raise ValueError("an active job needs a lease")
        with self._tx() as cur:
            old = self._locked_state(cur, job_id)
            if expected is not None and old is not expected:
                raise StateChanged(expected, old)
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
