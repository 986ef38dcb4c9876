"""The SQLite queue on a real file (DESIGN.md §4, spec/reliability-security.md §1.6).

The `Store` contract (tests/store_contract.py) runs here against SQLite, followed by what only
SQLite has: WAL pragmas, an owner-only file, one process owning every lease, group commit of
concurrent intakes, WAL checkpoints in the store's own thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bridge.jobs import Intake, Job, JobState
from bridge.store_port import StoreError
from connectors.sqlite_schema import MIGRATIONS
from connectors.sqlite_store import WAL_AUTOCHECKPOINT_PAGES, WAL_RESTART_PAGES, SqliteStore
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
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_AUTOCHECKPOINT_PAGES
    with raw(db_path) as other:  # WAL is persistent in the file itself
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = other.execute("SELECT version FROM schema_version").fetchall()
        assert version == [(len(MIGRATIONS),)]


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
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(len(MIGRATIONS),)]


@contextlib.contextmanager
def version_2_file(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A queue file as version 2 of the schema left it, open for the test to fill."""
    db_path.parent.mkdir(parents=True)
    with raw(db_path) as conn:
        for statements in MIGRATIONS[:2]:
            for statement in statements:
                conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (2)")
        yield conn


def test_a_version_2_queue_is_migrated_and_keeps_its_history_and_count(db_path: Path) -> None:
    """Migration 3: the reception is read from the job row and the count of received jobs from
    the `jobs` sequence; a version 2 file had both as rows (an event, a counter). Its jobs keep
    one RECEIVED event each and its count, even with a row deleted behind the store's back."""
    with version_2_file(db_path) as conn:
        for n, at in ((1, "2025-03-04T09:30:00.000000+00:00"),
                      (2, "2025-03-04T09:31:00.000000+00:00")):
            conn.execute(
                "INSERT INTO jobs (state, channel, source_ref, idempotency_key, payload_sha256,"
                " received_at, updated_at) VALUES ('queued', 'http', ?, ?, 'h', ?, ?)",
                (f"{n}.pdf", f"k{n}", at, at))
            conn.execute(
                "INSERT INTO events (job_id, at, from_state, to_state, code, message_fr)"
                " VALUES (?, ?, NULL, 'queued', 'RECEIVED', 'Document reçu (http) et mis en"
                " file d''attente.')", (n, at))
            conn.execute("UPDATE counters SET value = value + 1 WHERE name = 'received'")
        conn.execute(
            "INSERT INTO events (job_id, at, from_state, to_state, code, message_fr)"
            " VALUES (1, '2025-03-04T09:32:00.000000+00:00', 'queued', 'active', 'CLAIMED',"
            " 'Pris en charge pour l''envoi.')")
        conn.execute("DELETE FROM jobs WHERE id = 2")  # vanished: conservation must see it
    with SqliteStore.open(db_path) as store:
        assert [(e.from_state, e.to_state, e.code, e.message_fr) for e in store.events(1)] == [
            (None, JobState.QUEUED, "RECEIVED", "Document reçu (http) et mis en file d'attente."),
            (JobState.QUEUED, JobState.ACTIVE, "CLAIMED", "Pris en charge pour l'envoi."),
        ]
        assert store.received() == 2
        assert sum(store.counts().values()) == 1
        job, _ = store.enqueue(intake(3))
        assert job.id == 3  # never a vanished job's id
        assert store.received() == 3
    with raw(db_path) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert "counters" not in tables
        stored = conn.execute("SELECT COUNT(*) FROM events WHERE code = 'RECEIVED'").fetchone()
        assert stored == (0,)


@pytest.mark.parametrize("jobs", [0, 2])
def test_migration_3_keeps_a_count_larger_than_the_jobs_sequence(db_path: Path,
                                                                 jobs: int) -> None:
    """The count of received jobs moves from the counter to the `jobs` sequence: a counter
    ahead of the sequence (however it came to be) is what the queue said, so it is kept, and
    no id is reused after it."""
    with version_2_file(db_path) as conn:
        for n in range(jobs):
            conn.execute(
                "INSERT INTO jobs (state, channel, source_ref, idempotency_key, payload_sha256,"
                " received_at, updated_at) VALUES ('done', 'folder', 'a.pdf', ?, 'h',"
                " '2025-03-04T09:30:00.000000+00:00', '2025-03-04T09:30:00.000000+00:00')",
                (f"k{n}",))
        conn.execute("UPDATE counters SET value = 7 WHERE name = 'received'")
    with SqliteStore.open(db_path) as store:
        assert store.received() == 7
        job, _ = store.enqueue(intake(1))
        assert job.id == 8
        assert store.received() == 8


def test_an_intake_writes_the_job_and_its_payload_and_nothing_else(db_path: Path) -> None:
    """Pages per COMMIT are the cost of intake (benchmarks/intake_rate.py): an intake adds a
    job row and a payload row, no event row; jobs not yet packaged are not in the index of
    submission ids."""
    with SqliteStore.open(db_path) as store:
        store.enqueue(intake(1))
    with raw(db_path) as conn:
        rows = {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("jobs", "payloads", "events")}
        assert rows == {"jobs": 1, "payloads": 1, "events": 0}
        plan = " ".join(row[3] for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE submission_unique_id = 'x'"))
        assert "jobs_by_submission" in plan
        [(index_sql,)] = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'jobs_by_submission'").fetchall()
        assert "WHERE submission_unique_id IS NOT NULL" in index_sql


# -- group commit: concurrent enqueues share one COMMIT -----------------------------------------


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.005)


Outcome = tuple[Job, bool] | BaseException


def enqueue_in_threads(store: SqliteStore, intakes: list[Intake], db_path: Path, *,
                       refused: int = 0) -> list[Outcome]:
    """Each intake enqueued by its own thread, all of them waiting for one group: the write lock
    is held by another connection (as another process would) until every caller waits (all
    but the `refused` ones, which fail before joining), so the first caller leads and takes all
    of them when the lock comes free. Returns each caller's result or error, in the order of
    `intakes`."""
    outcomes: list[Outcome | None] = [None] * len(intakes)

    def call(i: int) -> None:
        try:
            outcomes[i] = store.enqueue(intakes[i])
        except BaseException as exc:  # the outcome under test
            outcomes[i] = exc

    with raw(db_path) as other:
        other.execute("BEGIN IMMEDIATE")  # the file's write lock
        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(intakes))]
        for t in threads:
            t.start()
        expected = len(intakes) - refused
        wait_until(lambda: store._intake_groups.waiting == expected,
                   f"{expected} waiting enqueues")
        other.execute("ROLLBACK")
    for t in threads:
        t.join()
    assert all(o is not None for o in outcomes)
    return outcomes  # type: ignore[return-value]  # all set, checked above


def count_commits(store: SqliteStore) -> list[str]:
    """The COMMIT statements the store's connection runs from now on (SQLite's trace)."""
    commits: list[str] = []
    store._conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    return commits


def test_concurrent_enqueues_share_one_commit_and_all_survive_reopen(
    open_store: Callable[[], SqliteStore], db_path: Path,
) -> None:
    store = open_store()
    commits = count_commits(store)
    intakes = [intake(n) for n in range(10)]
    outcomes = enqueue_in_threads(store, intakes, db_path)

    assert commits == ["COMMIT"]  # ten documents, one COMMIT (one fsync)
    jobs = []
    for n, outcome in enumerate(outcomes):
        assert not isinstance(outcome, BaseException)
        job, created = outcome
        assert created and job.idempotency_key == f"key-{n}" and job.state is JobState.QUEUED
        jobs.append(job)
    assert len({job.id for job in jobs}) == 10
    store.close()

    reopened = open_store()
    assert reopened.received() == 10
    for n, job in enumerate(jobs):
        assert reopened.get(job.id) == job  # what each caller was told is what is on disk
        assert reopened.payload(job.id) == f"%PDF-1.4 document {n}".encode()
        assert [e.code for e in reopened.events(job.id)] == ["RECEIVED"]


def test_a_failed_commit_fails_every_caller_of_its_group_and_keeps_nothing(
    open_store: Callable[[], SqliteStore], db_path: Path,
) -> None:
    """SQLite refuses the COMMIT (an authorizer denying it stands for a disk failing at that
    moment): every caller of the group gets the error, so no source is acknowledged, and none
    of their documents is in the queue — sending them again creates them."""
    store = open_store()

    def deny_commit(action: int, arg1: str | None, *_: object) -> int:
        refused = action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT"
        return sqlite3.SQLITE_DENY if refused else sqlite3.SQLITE_OK

    store._conn.set_authorizer(deny_commit)
    intakes = [intake(n) for n in range(6)]
    outcomes = enqueue_in_threads(store, intakes, db_path)
    for outcome in outcomes:
        assert isinstance(outcome, sqlite3.DatabaseError)
        assert "not authorized" in str(outcome)
    store.close()

    reopened = open_store()
    assert reopened.received() == 0
    assert reopened.list_jobs() == []
    assert all(reopened.find_by_key(i.idempotency_key) is None for i in intakes)
    # Nothing half-done blocks the resend: each document is created on its second try.
    assert [reopened.enqueue(i)[1] for i in intakes] == [True] * 6
    assert reopened.received() == 6


def test_in_one_group_a_repeated_document_is_one_job_and_a_bad_input_fails_alone(
    open_store: Callable[[], SqliteStore], db_path: Path,
) -> None:
    store = open_store()
    commits = count_commits(store)
    bad = replace(intake(9), received_at=datetime(2025, 3, 4, 9, 30))  # naive: refused
    outcomes = enqueue_in_threads(store, [intake(1), intake(2), intake(1), bad], db_path,
                                  refused=1)
    assert isinstance(outcomes[3], ValueError)  # refused before joining: the group goes on
    assert "naive" in str(outcomes[3])
    (first, created_1), (second, created_2), (again, created_again) = outcomes[:3]  # type: ignore[misc]
    assert commits == ["COMMIT"]
    assert (created_1, created_2, created_again) == (True, True, False)
    assert again == first and second.id != first.id
    assert store.received() == 2
    assert store.find_by_key("key-9") is None


def test_a_file_name_that_is_not_utf8_fails_nothing_in_its_group(
    open_store: Callable[[], SqliteStore], db_path: Path,
) -> None:
    """A name with a byte that is not UTF-8 reaches Python with a lone surrogate, which SQLite
    cannot store: it is stored escaped, the same every time (the same file again is the same
    job), and the other documents of its group commit are queued with it."""
    store = open_store()
    name = os.fsdecode(b"soins-\xff.pdf")
    odd = replace(intake(5), source_ref=name, idempotency_key=f"key-{name}")
    outcomes = enqueue_in_threads(store, [intake(1), odd, intake(2)], db_path)
    assert all(not isinstance(o, BaseException) and o[1] for o in outcomes)
    job = outcomes[1][0]  # type: ignore[index]
    assert (job.source_ref, job.idempotency_key) == ("soins-\\udcff.pdf", "key-soins-\\udcff.pdf")
    assert store.get(job.id) == job
    assert store.enqueue(odd) == (job, False)
    assert store.received() == 3


# -- WAL checkpoints: in the store's own thread, not in the COMMIT of an intake ---------------

FRAME = 4096 + 24  # one WAL frame: a page and its header
BIG = 100_000  # a document of about 100 KB: ~26 pages


def big_intake(n: int) -> Intake:
    return intake(n, payload=b"%PDF-1.4 " + n.to_bytes(4, "big") * (BIG // 4))


def wal_frames(db_path: Path) -> int:
    """Frames the WAL file has room for: it is overwritten from its start after a restart,
    never shortened, so this is the most it ever held."""
    wal = db_path.with_name(db_path.name + "-wal")
    return wal.stat().st_size // FRAME if wal.exists() else 0


def test_the_checkpointer_is_durable_and_leaves_writers_only_a_backstop(
        store: SqliteStore) -> None:
    """Its connection is synchronous=FULL (the database file is fsync'ed before the WAL may be
    overwritten); a writer checkpoints itself only past the backstop."""
    assert store._checkpointer.synchronous == 2
    assert store._checkpointer.running
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] > WAL_RESTART_PAGES


def test_committed_documents_reach_the_database_file_without_a_writer_checkpointing(
        store: SqliteStore, db_path: Path) -> None:
    before = db_path.stat().st_size
    for n in range(20):  # ~700 frames, far below the writers' own checkpoint (backstop)
        store.enqueue(big_intake(n))
    wait_until(lambda: db_path.stat().st_size >= before + 20 * BIG,
               "the documents copied into the database file")


def test_the_checkpointer_keeps_the_wal_bounded_under_sustained_intake(
        store: SqliteStore, db_path: Path) -> None:
    """The backstop is switched off: only the thread can make the WAL start over, and it must,
    although the writer is in a transaction nearly all the time."""
    store._conn.execute("PRAGMA wal_autocheckpoint = 0")
    documents = 3 * WAL_AUTOCHECKPOINT_PAGES * FRAME // BIG  # ~3 times the backstop, in frames
    for n in range(documents):
        store.enqueue(big_intake(n))
    assert wal_frames(db_path) <= WAL_AUTOCHECKPOINT_PAGES
    assert store.received() == documents


def test_close_stops_the_checkpointer_and_closes_its_connection(
        open_store: Callable[[], SqliteStore], db_path: Path) -> None:
    store = open_store()
    for n in range(5):
        store.enqueue(big_intake(n))
    checkpointer = store._checkpointer
    store.close()
    assert not checkpointer.running
    # SQLite removes the WAL when the last connection to the file closes: none is left open.
    assert not db_path.with_name(db_path.name + "-wal").exists()
    store.close()  # twice is harmless


def test_a_store_opened_on_a_newer_queue_stops_its_checkpointer(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with raw(db_path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    before = {t for t in threading.enumerate() if t.name == "sqlite-wal-checkpointer"}
    with pytest.raises(StoreError) as refused:
        SqliteStore.open(db_path)
    assert refused.value.code == "STORE_TOO_NEW"
    left = {t for t in threading.enumerate() if t.name == "sqlite-wal-checkpointer"} - before
    assert left == set()


CRASHING_WRITER = """
import sys
from datetime import UTC, datetime
from bridge.jobs import Intake
from connectors.sqlite_store import SqliteStore

store = SqliteStore.open(sys.argv[1])
n = 0
while True:
    payload = b"%PDF-1.4 " + n.to_bytes(4, "big") * 25_000
    store.enqueue(Intake("folder", f"doc-{n}.pdf", f"key-{n}", payload, b"{}",
                         datetime.now(UTC)))
    print(n, flush=True)  # acknowledged: only after enqueue returned
    n += 1
"""


def test_a_killed_process_loses_no_acknowledged_job(db_path: Path) -> None:
    """The writer is killed in the middle of sustained intake (WAL restarted several times,
    checkpoints running): every document it acknowledged is in the queue, bytes intact."""
    db_path.parent.mkdir(parents=True)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    acknowledged = 3 * WAL_RESTART_PAGES * FRAME // BIG
    process = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(db_path)],
                               stdout=subprocess.PIPE, env=env, cwd=root)
    try:
        assert process.stdout is not None
        for expected in range(acknowledged):
            assert process.stdout.readline() == f"{expected}\n".encode()
    finally:
        process.kill()  # SIGKILL (TerminateProcess on Windows): no cleanup at all
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()
    with SqliteStore.open(db_path) as store:
        assert store.received() >= acknowledged
        for n in range(acknowledged):
            job = store.find_by_key(f"key-{n}")
            assert job is not None, n
            assert store.payload(job.id) == b"%PDF-1.4 " + n.to_bytes(4, "big") * 25_000
