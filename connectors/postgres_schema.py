"""The PostgreSQL queue's schema (as migrations) and the mapping of its rows to domain values.

Same tables and columns as the SQLite queue (`connectors.sqlite_schema`), in PostgreSQL types:
`timestamptz` for every time, `bytea` for the bytes, identity columns for the ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from bridge.jobs import Job, JobState

STATES_SQL = ", ".join(f"'{s.value}'" for s in JobState)

# Each entry moves the schema one version up; never edit a released entry, append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE jobs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- never reused
            state text NOT NULL CHECK (state IN ({STATES_SQL})),
            channel text NOT NULL,
            source_ref text NOT NULL,
            idempotency_key text NOT NULL UNIQUE,
            payload_sha256 text NOT NULL,
            received_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz,
            lease_until timestamptz,
            document_unique_id text,
            submission_unique_id text,
            last_error_code text,
            last_error_fr text,
            author_key text,
            leases integer NOT NULL DEFAULT 0,  -- how many times the job was made active
            sent_lease integer,                 -- value of `leases` when mark_sent was called
            leased_from text                    -- state the current lease was taken from
        )""",
        """CREATE TABLE payloads (
            job_id bigint PRIMARY KEY REFERENCES jobs(id),
            payload bytea NOT NULL,
            metadata bytea NOT NULL,
            package bytea,
            package_sha256 text
        )""",
        f"""CREATE TABLE events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id bigint NOT NULL REFERENCES jobs(id),
            at timestamptz NOT NULL,
            from_state text CHECK (from_state IS NULL OR from_state IN ({STATES_SQL})),
            to_state text NOT NULL CHECK (to_state IN ({STATES_SQL})),
            code text NOT NULL,
            message_fr text NOT NULL
        )""",
        "CREATE TABLE counters (name text PRIMARY KEY, value bigint NOT NULL)",
        "INSERT INTO counters (name, value) VALUES ('received', 0)",
        "CREATE INDEX jobs_by_state ON jobs (state, id)",
        "CREATE INDEX jobs_deferred_due ON jobs (next_attempt_at) WHERE state = 'deferred'",
        "CREATE INDEX jobs_active_lease ON jobs (lease_until) WHERE state = 'active'",
        "CREATE INDEX events_by_job ON events (job_id, id)",
    ),
    # 2: lots of one patient and one author, and the purge of done jobs after retention.
    (
        "ALTER TABLE jobs ADD COLUMN patient_key text",  # pseudonymous (bridge.lot_keys)
        "ALTER TABLE jobs ADD COLUMN purged_at timestamptz",
        "CREATE INDEX jobs_by_lot ON jobs (patient_key, author_key, state, id)",
        "CREATE INDEX jobs_by_submission ON jobs (submission_unique_id)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

# Each blob with the hash it is checked against (metadata carries none).
BLOB_SQL: Final = {
    "payload": "SELECT p.payload, j.payload_sha256, j.purged_at",
    "metadata": "SELECT p.metadata, NULL::text, j.purged_at",
    "package": "SELECT p.package, p.package_sha256, j.purged_at",
}


def aware(value: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are refused (as by the SQLite store)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: the store only takes timezone-aware datetimes")
    return value.astimezone(UTC)


def utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def job_from_row(row: Mapping[str, Any]) -> Job:
    return Job(
        id=int(row["id"]),
        state=JobState(row["state"]),
        channel=row["channel"],
        source_ref=row["source_ref"],
        idempotency_key=row["idempotency_key"],
        payload_sha256=row["payload_sha256"],
        received_at=row["received_at"].astimezone(UTC),
        updated_at=row["updated_at"].astimezone(UTC),
        attempts=int(row["attempts"]),
        next_attempt_at=utc(row["next_attempt_at"]),
        lease_until=utc(row["lease_until"]),
        document_unique_id=row["document_unique_id"],
        submission_unique_id=row["submission_unique_id"],
        last_error_code=row["last_error_code"],
        last_error_fr=row["last_error_fr"],
        author_key=row["author_key"],
        patient_key=row["patient_key"],
        purged_at=utc(row["purged_at"]),
    )
