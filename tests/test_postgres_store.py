"""The PostgreSQL queue on a real server (issue "Exactly once, through crashes and outages", 6).

Needs `DMP_BRIDGE_TEST_PG_DSN` (`eval "$(scripts/postgres_for_tests.sh)"` starts a throwaway
server and sets it); skipped without it. Each test gets its own PostgreSQL schema, dropped after.
The `Store` contract (tests/store_contract.py) runs first, then what only PostgreSQL has: live
leases of other workers, concurrent first starts, reconnection, schema checks.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from bridge.jobs import Job, JobState
from bridge.store_port import StoreError
from connectors.postgres_store import PostgresStore
from tests.store_contract import EXPIRED, LEASE, T0, StoreContract, intake
from tests.store_contract_lots import LotStoreContract

DSN = os.environ.get("DMP_BRIDGE_TEST_PG_DSN", "")

pytestmark = pytest.mark.skipif(
    not DSN,
    reason='DMP_BRIDGE_TEST_PG_DSN is not set: run eval "$(scripts/postgres_for_tests.sh)" first',
)

OpenPg = Callable[[], PostgresStore]
SETTINGS = ("synchronous_commit", "TimeZone")


def connect(schema: str) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(DSN, autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:16]}"
    yield name
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def open_store(schema: str) -> Iterator[OpenPg]:
    opened: list[PostgresStore] = []

    def factory() -> PostgresStore:
        store = PostgresStore.open(DSN, schema=schema)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


class PgBackdoor:
    def __init__(self, schema: str) -> None:
        self.schema = schema

    def set_blob(self, job_id: int, column: str, data: bytes) -> None:
        with connect(self.schema) as conn:
            conn.execute(
                sql.SQL("UPDATE payloads SET {} = %s WHERE job_id = %s").format(
                    sql.Identifier(column)
                ),
                (data, job_id),
            )

    def count_rows(self, table: str) -> int:
        with connect(self.schema) as conn:
            row = conn.execute(
                sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()
        assert row is not None
        return int(str(row[0]))


@pytest.fixture
def backdoor(schema: str) -> PgBackdoor:
    return PgBackdoor(schema)


class TestPostgresStoreContract(StoreContract, LotStoreContract):
    pass


# -- PostgreSQL only --------------------------------------------------------------------------


def test_recover_leaves_live_leases_to_their_worker(open_store: OpenPg) -> None:
    """Another machine's worker still holds its lease: a starting worker must not take it."""
    running = open_store()
    job, _ = running.enqueue(intake(1))
    running.claim(T0, LEASE)
    starting = open_store()
    assert starting.recover_on_start(T0 + timedelta(minutes=1)) == 0
    assert starting.get(job.id).state is JobState.ACTIVE  # type: ignore[union-attr]
    assert starting.claim(T0 + timedelta(minutes=1), LEASE) is None
    # The worker died without finishing: once its lease has run out, anyone takes it back.
    assert starting.recover_on_start(EXPIRED) == 1
    assert starting.get(job.id).state is JobState.QUEUED  # type: ignore[union-attr]


def test_first_starts_at_once_create_the_schema_once(schema: str, open_store: OpenPg) -> None:
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)
    lock = threading.Lock()

    def start() -> None:
        try:
            barrier.wait()
            store = open_store()
            with lock:
                stores.append(store)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(stores) == 4
    with connect(schema) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
        assert conn.execute("SELECT name, value FROM counters").fetchall() == [("received", 0)]


def test_sessions_are_durable_and_utc(open_store: OpenPg) -> None:
    store = open_store()
    with store._pool.connection() as conn:  # the test server runs synchronous_commit = off
        settings = [conn.execute(f"SHOW {name}").fetchone() for name in SETTINGS]
    assert settings == [("on",), ("UTC",)]


def test_enqueue_waits_for_a_concurrent_insert_of_the_same_key(
    schema: str, open_store: OpenPg
) -> None:
    """Another worker inserted the key but has not committed: ours waits, then returns its job."""
    store = open_store()
    result: list[tuple[Job, bool]] = []
    with connect(schema) as other:
        with other.transaction():
            row = other.execute(
                "INSERT INTO jobs (state, channel, source_ref, idempotency_key, payload_sha256,"
                " received_at, updated_at) VALUES ('queued', 'http', 'x', 'key-1', 'ab', %s, %s)"
                " RETURNING id",
                (T0, T0),
            ).fetchone()
            assert row is not None
            thread = threading.Thread(target=lambda: result.append(store.enqueue(intake(1))))
            thread.start()
            thread.join(0.3)
            assert thread.is_alive()  # blocked on the uncommitted row, not duplicating it
        thread.join(5)
    [(job, created)] = result
    assert (job.id, job.channel, created) == (row[0], "http", False)
    assert store.received() == 0  # counted by the worker that committed it (here: nobody)


def test_schema_types_and_placement(schema: str, open_store: OpenPg) -> None:
    open_store()
    with connect(schema) as conn:
        types = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = 'jobs'",
                (schema,),
            ).fetchall()
        }
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchall()
        }
    for column in ("received_at", "updated_at", "next_attempt_at", "lease_until"):
        assert types[column] == "timestamp with time zone"
    assert tables == {"schema_version", "jobs", "payloads", "events", "counters"}


def test_refuses_a_newer_schema(schema: str, open_store: OpenPg) -> None:
    open_store().close()
    with connect(schema) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError) as info:
        open_store()
    assert info.value.code == "STORE_TOO_NEW"


def test_unreachable_server_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as info:
        PostgresStore.open(
            "postgresql://someone:s3cret-pw@127.0.0.1:1/nothing?connect_timeout=1", timeout=1
        )
    assert info.value.code == "STORE_UNREACHABLE"
    assert "s3cret-pw" not in str(info.value)


def test_connections_killed_by_the_server_are_replaced(open_store: OpenPg) -> None:
    """A server restart (or a DBA) closes our connections: the next call still works."""
    store = open_store()
    job, _ = store.enqueue(intake(1))
    with psycopg.connect(DSN, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid()"
            " AND datname = current_database() AND usename = current_user"
        )
    assert store.get(job.id) == job
    assert store.claim(T0, LEASE) is not None
