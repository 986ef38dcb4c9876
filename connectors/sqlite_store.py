"""The durable queue on a local SQLite file (implements `bridge.store_port.Store`).

Durability (spec/reliability-security.md §1.6): WAL with `synchronous=FULL`, so a commit that
returned survives a crash or a power loss; every write is one `BEGIN IMMEDIATE` transaction, so
two processes (or two stores in one process) never interleave writes and never lease the same
job. The file must live on a local disk: WAL does not work over SMB/NFS.

Intake uses group commit (`CommitGroups`): `enqueue` calls from several threads at once share
one transaction and one COMMIT (one fsync), and each returns only after that COMMIT; a caller
alone commits alone, at once. Same durability per document, fewer fsyncs under load.

One connection per store, shared by worker threads (`check_same_thread=False`) behind a lock.
No logging here: this module handles health data (payloads), and the caller logs outcomes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import threading
import weakref
from datetime import datetime, timedelta
from pathlib import Path
from typing import Self

from bridge.jobs import Intake, Job, JobState, check_transition, storable
from bridge.store_port import JobNotActive, StoreError
from connectors.sqlite_base import CommitGroups, SqliteBase, WalCheckpointer
from connectors.sqlite_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    from_text,
    job_from_row,
    sha256_hex,
    to_text,
)
from connectors.store_texts import (
    CLAIMED_FOR_LOT,
    CLAIMED_WITH_LOT,
    PACKAGE_DISCARDED,
    PURGED,
)

BUSY_TIMEOUT_MS = 10_000
# Checkpoints (copying the WAL into the database file, with an fsync of it) run in the store's
# own thread (`WalCheckpointer`), not in the COMMIT of whoever writes: an intake's COMMIT is its
# INSERTs and one fsync of the WAL, like a raw SQLite transaction. The thread checkpoints
# `CHECKPOINT_PAUSE` seconds after writes, and once the WAL reaches `WAL_RESTART_PAGES` frames
# it makes the WAL start over.
WAL_RESTART_PAGES = 4000
CHECKPOINT_PAUSE = 0.02
# Backstop: WAL pages after which a writer's COMMIT checkpoints itself (SQLite's automatic
# checkpoint, default 1000), should the thread fall behind or fail. Durability is unchanged
# either way: a COMMIT is durable once in the fsync'ed WAL, checkpointed or not.
WAL_AUTOCHECKPOINT_PAGES = 8000


class SqliteStore(SqliteBase):
    """The job queue in one SQLite file. Open with `SqliteStore.open(path)`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._intake_groups: CommitGroups[tuple[Job, bool]] = CommitGroups(self._write)
        self.path = path
        self._checkpointer = WalCheckpointer(path, self._lock, restart_pages=WAL_RESTART_PAGES,
                                             pause=CHECKPOINT_PAUSE)
        # A store dropped without close() does not leave its thread waiting forever.
        weakref.finalize(self, self._checkpointer.stop)

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> SqliteStore:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file ourselves so it is owner-only from its first byte (SQLite creates its
        # -wal and -shm files with the database file's permissions).
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        with contextlib.suppress(OSError):  # on Windows chmod only toggles read-only
            os.chmod(path, 0o600)
        conn = sqlite3.connect(
            str(path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
            check_same_thread=False,  # worker threads; every use is behind self._lock
        )
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"La file d'attente {path.name} ne peut pas passer en mode WAL : placez-la "
                    "sur un disque local (pas sur un partage réseau).",
                    code="STORE_NO_WAL",
                )
            conn.execute("PRAGMA synchronous = FULL")  # commit = fsync of the WAL
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            conn.execute("PRAGMA foreign_keys = ON")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(
                    f"Le fichier de la file d'attente {path.name} est endommagé : restaurez la "
                    "dernière sauvegarde.",
                    code="STORE_DAMAGED",
                )
            store = cls(conn, path)
        except BaseException:
            conn.close()
            raise
        try:
            store._migrate()
        except BaseException:
            store.close()
            raise
        return store

    def checkpoint(self) -> None:
        """Copy what is committed into the database file now, and return once it is done.

        The store's thread does it by itself shortly after writes; this is for benchmarks and
        tests that must not leave that work running in the background.
        """
        self._checkpointer.drain()

    def close(self) -> None:
        self._checkpointer.close()  # first, and without the lock: the thread may wait for it
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        with self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            current = 0 if row is None else int(row[0])
            if current > SCHEMA_VERSION:
                raise StoreError(
                    "La file d'attente a été créée par une version plus récente de dmp-bridge : "
                    "mettez le logiciel à jour.",
                    code="STORE_TOO_NEW",
                )
            for statements in MIGRATIONS[current:]:
                for statement in statements:
                    conn.execute(statement)
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            else:
                conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    # -- writes ------------------------------------------------------------------------------

    def enqueue(self, intake: Intake) -> tuple[Job, bool]:
        # Hash and texts in the caller's thread: callers hash in parallel (hashlib releases the
        # GIL) while a COMMIT is being fsync'ed, and a bad input fails here, alone (a text
        # SQLite cannot take would fail the whole group commit: see `storable`).
        intake = storable(intake)
        received_at = to_text(intake.received_at)
        at = from_text(received_at)
        assert at is not None
        new_job = Job(
            id=0,  # given by the INSERT
            state=JobState.QUEUED,
            channel=intake.channel,
            source_ref=intake.source_ref,
            idempotency_key=intake.idempotency_key,
            payload_sha256=intake.payload_sha256 or sha256_hex(intake.payload),
            received_at=at,
            updated_at=at,
            author_key=intake.author_key,
            patient_key=intake.patient_key,
        )
        def insert(conn: sqlite3.Connection) -> tuple[Job, bool]:
            existing = conn.execute(
                "SELECT * FROM jobs WHERE idempotency_key = ?", (intake.idempotency_key,)
            ).fetchone()
            if existing is not None:
                return job_from_row(existing), False  # same input again: one job, payload kept once
            cur = conn.execute(
                "INSERT INTO jobs (state, channel, source_ref, idempotency_key, payload_sha256,"
                " received_at, updated_at, patient_key, author_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (JobState.QUEUED.value, new_job.channel, new_job.source_ref,
                 new_job.idempotency_key, new_job.payload_sha256, received_at, received_at,
                 new_job.patient_key, new_job.author_key),
            )
            job_id = cur.lastrowid
            assert job_id is not None
            conn.execute(
                "INSERT INTO payloads (job_id, payload, metadata) VALUES (?, ?, ?)",
                (job_id, intake.payload, intake.metadata),
            )
            # Nothing else: the job row is the record of its reception (`events` shows it as
            # the RECEIVED event) and its AUTOINCREMENT id the count of jobs ever received
            # (`received`). Fewer pages per COMMIT make intake faster (benchmarks/intake_rate).
            # The row as just inserted (every other column at its default): no read back.
            return dataclasses.replace(new_job, id=job_id), True

        # Returns once the COMMIT holding this job (and maybe other callers' jobs, group commit)
        # has returned: row and payload are on disk. Only now may the caller acknowledge
        # the source (ACK, HTTP 202, move of the file). A crash before leaves no job and no
        # acknowledgement, so the source sends it again; a failed group raises in every caller.
        return self._intake_groups.run(insert)

    def claim(self, now: datetime, lease: timedelta) -> Job | None:
        at = to_text(now)
        with self._write() as conn:
            # Inside BEGIN IMMEDIATE: no other connection can write between this SELECT and the
            # UPDATE, so no two workers (or processes) ever lease the same job.
            row = conn.execute(
                "SELECT id, state FROM jobs WHERE state = ? OR (state = ? AND next_attempt_at <= ?)"
                " ORDER BY id LIMIT 1",
                (JobState.QUEUED.value, JobState.DEFERRED.value, at),
            ).fetchone()
            if row is None:
                return None
            old = JobState(row["state"])
            check_transition(old, JobState.ACTIVE)
            self._activate(conn, row["id"], old, at, to_text(now + lease))
            self._event(
                conn,
                row["id"],
                at=at,
                old=old,
                new=JobState.ACTIVE,
                code="CLAIMED",
                message_fr="Pris en charge pour l'envoi.",
            )
            return job_from_row(self._row(conn, row["id"]))

    def claim_related(self, job: Job, now: datetime, lease: timedelta, limit: int) -> list[Job]:
        at = to_text(now)
        if limit <= 0:
            return []
        with self._write() as conn:
            row = self._row(conn, job.id)
            if row["state"] != JobState.ACTIVE.value:
                raise JobNotActive(job.id, JobState(row["state"]))
            if row["submission_unique_id"] is not None:
                # Its package was built: whoever shares it goes with it (one send, one answer).
                rows = conn.execute(
                    "SELECT id, state FROM jobs WHERE submission_unique_id = ? AND id != ?"
                    " AND state IN (?, ?) ORDER BY id LIMIT ?",
                    (row["submission_unique_id"], job.id, JobState.QUEUED.value,
                     JobState.DEFERRED.value, limit),
                ).fetchall()
                code, message = CLAIMED_WITH_LOT
            elif row["patient_key"] and row["author_key"] and row["document_unique_id"] is None:
                rows = conn.execute(
                    "SELECT id, state FROM jobs WHERE patient_key = ? AND author_key = ?"
                    " AND state = ? AND document_unique_id IS NULL AND id != ?"
                    " ORDER BY id LIMIT ?",
                    (row["patient_key"], row["author_key"], JobState.QUEUED.value, job.id,
                     limit),
                ).fetchall()
                code, message = CLAIMED_FOR_LOT
            else:
                return []
            # Inside BEGIN IMMEDIATE, as `claim`: no other worker can lease these meanwhile.
            for other in rows:
                old = JobState(other["state"])
                check_transition(old, JobState.ACTIVE)
                self._activate(conn, other["id"], old, at, to_text(now + lease))
                self._event(conn, other["id"], at=at, old=old, new=JobState.ACTIVE, code=code,
                            message_fr=message)
            return [job_from_row(self._row(conn, other["id"])) for other in rows]

    def discard_refused_package(
        self, job_id: int, submission_unique_id: str, *, now: datetime
    ) -> bool:
        at = to_text(now)
        with self._write() as conn:
            row = self._row(conn, job_id)
            if row["state"] != JobState.ACTIVE.value:
                raise JobNotActive(job_id, JobState(row["state"]))
            if row["submission_unique_id"] != submission_unique_id:
                return False
            # One transaction: the package, its submission id and the "sent" mark go together
            # (a crash leaves either the old package, resent as is, or none, rebuilt alone with
            # the kept document uniqueId). The document uniqueId stays: it is the document's.
            conn.execute(
                "UPDATE payloads SET package = NULL, package_sha256 = NULL WHERE job_id = ?",
                (job_id,),
            )
            conn.execute(
                "UPDATE jobs SET submission_unique_id = NULL, sent_lease = NULL WHERE id = ?",
                (job_id,),
            )
            code, message = PACKAGE_DISCARDED
            self._event(conn, job_id, at=at, old=JobState.ACTIVE, new=JobState.ACTIVE,
                        code=code, message_fr=message)
            return True

    def note(self, job_id: int, *, code: str, message_fr: str, now: datetime) -> None:
        at = to_text(now)
        with self._write() as conn:
            state = JobState(self._row(conn, job_id)["state"])
            self._event(conn, job_id, at=at, old=state, new=state, code=code,
                        message_fr=message_fr)

    def purge_done(self, before: datetime, *, now: datetime) -> int:
        limit, at = to_text(before), to_text(now)
        with self._write() as conn:
            ids = [r["id"] for r in conn.execute(
                "SELECT id FROM jobs WHERE state = ? AND updated_at < ? AND purged_at IS NULL"
                " ORDER BY id",
                (JobState.DONE.value, limit),
            ).fetchall()]
            code, message = PURGED
            for job_id in ids:
                # Empty bytes rather than a deleted row: the hashes (payload_sha256 on the job,
                # package_sha256 here) stay as the proof of what was sent.
                conn.execute(
                    "UPDATE payloads SET payload = x'', metadata = x'', package = NULL"
                    " WHERE job_id = ?",
                    (job_id,),
                )
                conn.execute("UPDATE jobs SET purged_at = ? WHERE id = ?", (at, job_id))
                self._event(conn, job_id, at=at, old=JobState.DONE, new=JobState.DONE,
                            code=code, message_fr=message)
            return len(ids)

    def save_package(
        self, job_id: int, document_unique_id: str, submission_unique_id: str, package: bytes
    ) -> None:
        with self._write() as conn:
            self._row(conn, job_id)
            # Identifiers are minted once (DESIGN.md §4): a package already saved wins, so a
            # retry resends exactly the bytes (and uniqueIds) the DMP may already have.
            cur = conn.execute(
                "UPDATE payloads SET package = ?, package_sha256 = ?"
                " WHERE job_id = ? AND package IS NULL",
                (package, sha256_hex(package), job_id),
            )
            if cur.rowcount == 1:
                conn.execute(
                    "UPDATE jobs SET document_unique_id = COALESCE(document_unique_id, ?),"
                    " submission_unique_id = COALESCE(submission_unique_id, ?) WHERE id = ?",
                    (document_unique_id, submission_unique_id, job_id),
                )

    def mark_sent(self, job_id: int) -> None:
        with self._write() as conn:
            row = self._row(conn, job_id)
            if row["state"] != JobState.ACTIVE.value:
                raise JobNotActive(job_id, JobState(row["state"]))
            # Committed before the request leaves: if the process dies from here on, we cannot
            # know whether the DMP registered it, so recovery makes the job AMBIGUOUS.
            conn.execute("UPDATE jobs SET sent_lease = leases WHERE id = ?", (job_id,))

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
        at = to_text(now)
        if new is JobState.DEFERRED and next_attempt_at is None:
            raise ValueError("a deferred job needs next_attempt_at, or it would never be retried")
        if new is JobState.ACTIVE and lease is None:
            raise ValueError("an active job needs a lease")
        with self._write() as conn:
            old = JobState(self._row(conn, job_id)["state"])
            check_transition(old, new, expected=expected)  # raises before anything is written
            if new is JobState.ACTIVE:
                assert lease is not None
                self._activate(conn, job_id, old, at, to_text(now + lease))
            conn.execute(
                "UPDATE jobs SET state = ?, updated_at = ?, attempts = attempts + ?,"
                " next_attempt_at = ?, lease_until = CASE WHEN ? THEN lease_until END,"
                " last_error_code = CASE ? WHEN 'set' THEN ? WHEN 'clear' THEN NULL"
                "   ELSE last_error_code END,"
                " last_error_fr = CASE ? WHEN 'set' THEN ? WHEN 'clear' THEN NULL"
                "   ELSE last_error_fr END"
                " WHERE id = ?",
                (
                    new.value,
                    at,
                    1 if count_attempt else 0,
                    None if next_attempt_at is None else to_text(next_attempt_at),
                    new is JobState.ACTIVE,
                    *self._error_update(new, code),
                    *self._error_update(new, message_fr),
                    job_id,
                ),
            )
            self._event(conn, job_id, at=at, old=old, new=new, code=code, message_fr=message_fr)
            return job_from_row(self._row(conn, job_id))

    def recover_on_start(self, now: datetime) -> int:
        """Every ACTIVE job's lease died with the previous process (single owner of the file).

        A job whose request may have left (mark_sent during this lease), or whose lease was
        taken from AMBIGUOUS, becomes AMBIGUOUS: the DMP is asked before anything is resent.
        """
        at = to_text(now)
        with self._write() as conn:
            rows = conn.execute(
                "SELECT id, leases, sent_lease, leased_from FROM jobs WHERE state = ? ORDER BY id",
                (JobState.ACTIVE.value,),
            ).fetchall()
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
                check_transition(JobState.ACTIVE, new)
                conn.execute(
                    "UPDATE jobs SET state = ?, updated_at = ?, lease_until = NULL,"
                    " last_error_code = CASE WHEN ? THEN ? ELSE last_error_code END,"
                    " last_error_fr = CASE WHEN ? THEN ? ELSE last_error_fr END WHERE id = ?",
                    (new.value, at, maybe_sent, code, maybe_sent, msg, row["id"]),
                )
                self._event(
                    conn, row["id"], at=at, old=JobState.ACTIVE, new=new, code=code, message_fr=msg
                )
            return len(rows)
