"""The SQLite queue's schema (as migrations) and the mapping of its rows to domain values.

Kept apart from `sqlite_store` so the store module reads as the operations on the queue.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from typing import Final

from bridge.jobs import Job, JobState

TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"  # fixed width, so text order = time order in SQL
STATES_SQL = ", ".join(f"'{s.value}'" for s in JobState)
# States whose event reason is the one shown to the user as "last error".
ERROR_STATES = frozenset(
    {JobState.DEFERRED, JobState.AMBIGUOUS, JobState.HELD, JobState.DEAD, JobState.CORRUPT}
)

# Each entry moves the schema one version up; never edit a released entry, append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, even after a purge
            state TEXT NOT NULL CHECK (state IN ({STATES_SQL})),
            channel TEXT NOT NULL,
            source_ref TEXT NOT NULL,
            idempotency_key TEXT NOT NULL UNIQUE,
            payload_sha256 TEXT NOT NULL,
            received_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            lease_until TEXT,
            document_unique_id TEXT,
            submission_unique_id TEXT,
            last_error_code TEXT,
            last_error_fr TEXT,
            author_key TEXT,
            leases INTEGER NOT NULL DEFAULT 0,  -- how many times the job was made active
            sent_lease INTEGER,                 -- value of `leases` when mark_sent was called
            leased_from TEXT                    -- state the current lease was taken from
        )""",
        """CREATE TABLE payloads (
            job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
            payload BLOB NOT NULL,
            metadata BLOB NOT NULL,
            package BLOB,
            package_sha256 TEXT
        )""",
        f"""CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            at TEXT NOT NULL,
            from_state TEXT CHECK (from_state IS NULL OR from_state IN ({STATES_SQL})),
            to_state TEXT NOT NULL CHECK (to_state IN ({STATES_SQL})),
            code TEXT NOT NULL,
            message_fr TEXT NOT NULL
        )""",
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO counters (name, value) VALUES ('received', 0)",
        "CREATE INDEX jobs_by_state ON jobs (state, id)",
        "CREATE INDEX events_by_job ON events (job_id, id)",
    ),
    # 2: lots of one patient and one author, and the purge of done jobs after retention.
    (
        "ALTER TABLE jobs ADD COLUMN patient_key TEXT",  # pseudonymous (bridge.lot_keys)
        "ALTER TABLE jobs ADD COLUMN purged_at TEXT",
        "CREATE INDEX jobs_by_lot ON jobs (patient_key, author_key, state, id)",
        "CREATE INDEX jobs_by_submission ON jobs (submission_unique_id)",
    ),
    # 3: fewer pages written per intake. A job's reception is read from its row (the RECEIVED
    # event is made from `received_at` and `channel`), and the count of jobs ever received is
    # the AUTOINCREMENT sequence of `jobs` (ids are never reused, and it counts a row deleted
    # behind the store's back as the counter did); the index of submission ids skips the jobs
    # not yet packaged.
    (
        "DELETE FROM events WHERE code = 'RECEIVED' AND from_state IS NULL",
        # The count carries over: the sequence is raised to the counter if it is behind (never
        # lowered: ids are never reused).
        "UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT value FROM counters"
        " WHERE name = 'received')) WHERE name = 'jobs'",
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'jobs', value FROM counters"
        " WHERE name = 'received' AND value > 0"
        " AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'jobs')",
        "DROP TABLE counters",
        "DROP INDEX jobs_by_submission",
        "CREATE INDEX jobs_by_submission ON jobs (submission_unique_id)"
        " WHERE submission_unique_id IS NOT NULL",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

# Each blob with the hash it is checked against (metadata carries none).
BLOB_SQL: Final = {
    "payload": "SELECT p.payload, j.payload_sha256, j.purged_at",
    "metadata": "SELECT p.metadata, NULL, j.purged_at",
    "package": "SELECT p.package, p.package_sha256, j.purged_at",
}


def to_text(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: the store only takes timezone-aware datetimes")
    return value.astimezone(UTC).strftime(TS_FORMAT)


def from_text(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def job_from_row(row: sqlite3.Row) -> Job:
    received_at = from_text(row["received_at"])
    updated_at = from_text(row["updated_at"])
    assert received_at is not None and updated_at is not None  # NOT NULL columns
    return Job(
        id=row["id"],
        state=JobState(row["state"]),
        channel=row["channel"],
        source_ref=row["source_ref"],
        idempotency_key=row["idempotency_key"],
        payload_sha256=row["payload_sha256"],
        received_at=received_at,
        updated_at=updated_at,
        attempts=row["attempts"],
        next_attempt_at=from_text(row["next_attempt_at"]),
        lease_until=from_text(row["lease_until"]),
        document_unique_id=row["document_unique_id"],
        submission_unique_id=row["submission_unique_id"],
        last_error_code=row["last_error_code"],
        last_error_fr=row["last_error_fr"],
        author_key=row["author_key"],
        patient_key=row["patient_key"],
        purged_at=from_text(row["purged_at"]),
    )
