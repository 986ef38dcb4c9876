"""The SQLite queue on a real file (DESIGN.md §4, spec/reliability-security.md §1.6).

The `Store` contract (tests/store_contract.py) runs here against SQLite, followed by what only
SQLite has: WAL pragmas, an owner-only file, one process owning every lease.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.jobs import JobState
from connectors.sqlite_schema import MIGRATIONS
from connectors.sqlite_store import SqliteStore
from tests.store_contract import LEASE, T0, StoreContract, intake
from tests.store_contract_lots import LotStoreContract


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "queue.sqlite3"


@pytest.fixture
def open_store(db_path: Path) -> Iterator[Callable[[], SqliteStore]]:
    opened: list[SqliteStore] = []

    def factory() -> SqliteStore:
        store = SqliteStore.open(db_path)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


class SqliteBackdoor:
    def __init__(self, path: Path) -> None:
        self.path = path

    def set_blob(self, job_id: int, column: str, data: bytes) -> None:
        assert column in {"payload", "metadata", "package"}
        with raw(self.path) as conn:
            conn.execute(f"UPDATE payloads SET {column} = ? WHERE job_id = ?", (data, job_id))

    def count_rows(self, table: str) -> int:
        assert table.isidentifier()
        with raw(self.path) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.fixture
def backdoor(db_path: Path) -> SqliteBackdoor:
    return SqliteBackdoor(db_path)


class TestSqliteStoreContract(StoreContract, LotStoreContract):
    pass


# -- SQLite only ------------------------------------------------------------------------------


@pytest.fixture
def store(open_store: Callable[[], SqliteStore]) -> SqliteStore:
    return open_store()


def test_pragmas_and_schema(store: SqliteStore, db_path: Path) -> None:
    conn = store._conn  # the store's own connection: synchronous is per connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    with raw(db_path) as other:  # WAL is persistent in the file itself
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("SELECT version FROM schema_version").fetchall() == [(2,)]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_file_is_owner_only(store: SqliteStore, db_path: Path) -> None:
    store.enqueue(intake(1))
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        side = db_path.with_name(db_path.name + suffix)
        if side.exists():
            assert stat.S_IMODE(os.stat(side).st_mode) & 0o077 == 0


def test_recover_takes_back_every_active_job(open_store: Callable[[], SqliteStore]) -> None:
    """One process owns the file: at start every lease is dead, even one not yet expired."""
    first = open_store()
    job, _ = first.enqueue(intake(1))
    first.claim(T0, LEASE)
    first.close()
    second = open_store()
    assert second.recover_on_start(T0 + timedelta(seconds=1)) == 1
    assert second.get(job.id).state is JobState.QUEUED  # type: ignore[union-attr]


def test_a_version_1_queue_is_migrated_and_keeps_its_jobs(db_path: Path) -> None:
    """Migration 2 (lot keys, purge) on a file written by the previous version."""
    db_path.parent.mkdir(parents=True)
    with raw(db_path) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute(
            "INSERT INTO jobs (state, channel, source_ref, idempotency_key, payload_sha256,"
            " received_at, updated_at) VALUES ('queued', 'folder', 'a.pdf', 'k', 'h',"
            " '2025-03-04T09:30:00.000000+00:00', '2025-03-04T09:30:00.000000+00:00')")
    with SqliteStore.open(db_path) as store:
        [job] = store.list_jobs()
        assert (job.idempotency_key, job.patient_key, job.purged_at) == ("k", None, None)
        store.enqueue(intake(2))
    with raw(db_path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
