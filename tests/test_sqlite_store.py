"""The SQLite queue on a real file (DESIGN.md §4, spec/reliability-security.md §1.6)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.jobs import IllegalTransition, Intake, JobState, conservation
from bridge.store_port import CorruptPayload, JobNotActive, Store, UnknownJob
from connectors.sqlite_store import SqliteStore

T0 = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def intake(n: int, payload: bytes | None = None) -> Intake:
    return Intake(
        channel="folder",
        source_ref=f"doc-{n}.pdf",
        idempotency_key=f"key-{n}",
        payload=payload if payload is not None else f"%PDF-1.4 document {n}".encode(),
        metadata=b'{"kind": "cr"}',
        received_at=T0 + timedelta(seconds=n),
    )


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


@pytest.fixture
def store(open_store: Callable[[], SqliteStore]) -> SqliteStore:
    return open_store()


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def test_implements_the_port(store: SqliteStore) -> None:
    port: Store = store
    assert port.received() == 0


def test_enqueue_is_idempotent(store: SqliteStore, db_path: Path) -> None:
    job, created = store.enqueue(intake(1))
    assert created
    assert job.state is JobState.QUEUED
    assert job.attempts == 0
    assert job.received_at == T0 + timedelta(seconds=1)
    assert job.received_at.tzinfo is not None
    assert job.payload_sha256 == hashlib.sha256(b"%PDF-1.4 document 1").hexdigest()

    again, created = store.enqueue(intake(1, payload=b"other bytes"))
    assert not created
    assert again == job
    assert store.payload(job.id) == b"%PDF-1.4 document 1"
    assert store.received() == 1
    assert store.find_by_key("key-1") == job
    assert store.find_by_key("nope") is None
    with raw(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM payloads").fetchone()[0] == 1
    [event] = store.events(job.id)
    assert (event.from_state, event.to_state, event.code) == (None, JobState.QUEUED, "RECEIVED")


def test_job_survives_reopen(open_store: Callable[[], SqliteStore]) -> None:
    first = open_store()
    job, _ = first.enqueue(intake(1))
    first.save_package(job.id, "1.2.3.4", "1.2.3.5", b"<package/>")
    first.close()

    second = open_store()
    assert second.get(job.id) == replace(
        job, document_unique_id="1.2.3.4", submission_unique_id="1.2.3.5"
    )
    assert second.payload(job.id) == b"%PDF-1.4 document 1"
    assert second.metadata(job.id) == b'{"kind": "cr"}'
    assert second.package(job.id) == b"<package/>"
    assert second.received() == 1


def test_pragmas_and_schema(store: SqliteStore, db_path: Path) -> None:
    conn = store._conn  # the store's own connection: synchronous is per connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    with raw(db_path) as other:  # WAL is persistent in the file itself
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("SELECT version FROM schema_version").fetchall() == [(1,)]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_file_is_owner_only(store: SqliteStore, db_path: Path) -> None:
    store.enqueue(intake(1))
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        side = db_path.with_name(db_path.name + suffix)
        if side.exists():
            assert stat.S_IMODE(os.stat(side).st_mode) & 0o077 == 0


def test_claim_takes_oldest_and_never_twice(store: SqliteStore) -> None:
    a, _ = store.enqueue(intake(1))
    b, _ = store.enqueue(intake(2))
    first = store.claim(T0, LEASE)
    second = store.claim(T0, LEASE)
    assert first is not None and second is not None
    assert (first.id, second.id) == (a.id, b.id)
    assert first.state is JobState.ACTIVE
    assert first.lease_until == T0 + LEASE
    assert first.attempts == 0
    assert store.claim(T0, LEASE) is None


def test_concurrent_claims_from_two_stores(open_store: Callable[[], SqliteStore]) -> None:
    setup = open_store()
    for n in range(200):
        setup.enqueue(intake(n))
    stores = [open_store(), open_store()]
    claimed: list[list[int]] = [[], []]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            while (job := stores[i].claim(T0, LEASE)) is not None:
                claimed[i].append(job.id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    all_ids = claimed[0] + claimed[1]
    assert len(all_ids) == 200
    assert len(set(all_ids)) == 200
    assert setup.counts()[JobState.ACTIVE] == 200


def test_illegal_transition_changes_nothing(store: SqliteStore) -> None:
    job, _ = store.enqueue(intake(1))
    before_events = store.events(job.id)
    with pytest.raises(IllegalTransition):
        store.transition(job.id, JobState.DONE, code="X", message_fr="x", now=T0)
    assert store.get(job.id) == job
    assert store.events(job.id) == before_events
    with pytest.raises(UnknownJob):
        store.transition(999, JobState.DEAD, code="X", message_fr="x", now=T0)


def test_transition_updates_and_journals(store: SqliteStore) -> None:
    job, _ = store.enqueue(intake(1))
    store.claim(T0, LEASE)
    later = T0 + timedelta(minutes=1)
    retry_at = T0 + timedelta(minutes=10)
    deferred = store.transition(
        job.id,
        JobState.DEFERRED,
        code="XDSRegistryBusy",
        message_fr="Le DMP est occupé.",
        now=later,
        next_attempt_at=retry_at,
        count_attempt=True,
    )
    assert deferred.state is JobState.DEFERRED
    assert deferred.attempts == 1
    assert deferred.lease_until is None
    assert deferred.next_attempt_at == retry_at
    assert deferred.updated_at == later
    assert (deferred.last_error_code, deferred.last_error_fr) == (
        "XDSRegistryBusy",
        "Le DMP est occupé.",
    )
    assert [(e.from_state, e.to_state) for e in store.events(job.id)] == [
        (None, JobState.QUEUED),
        (JobState.QUEUED, JobState.ACTIVE),
        (JobState.ACTIVE, JobState.DEFERRED),
    ]
    with pytest.raises(ValueError, match="next_attempt_at"):
        store.transition(job.id, JobState.DEFERRED, code="X", message_fr="x", now=T0)


def test_deferred_claimed_only_when_due(store: SqliteStore) -> None:
    job, _ = store.enqueue(intake(1))
    store.claim(T0, LEASE)
    due = T0 + timedelta(minutes=10)
    store.transition(
        job.id, JobState.DEFERRED, code="BUSY", message_fr="occupé", now=T0, next_attempt_at=due
    )
    assert store.claim(due - timedelta(microseconds=1), LEASE) is None
    claimed = store.claim(due, LEASE)
    assert claimed is not None and claimed.id == job.id
    assert claimed.next_attempt_at is None


def test_recover_on_start(open_store: Callable[[], SqliteStore]) -> None:
    first = open_store()
    plain, _ = first.enqueue(intake(1))
    sent, _ = first.enqueue(intake(2))
    untouched, _ = first.enqueue(intake(3))
    first.claim(T0, LEASE)
    first.claim(T0, LEASE)
    first.mark_sent(sent.id)
    with pytest.raises(JobNotActive):
        first.mark_sent(untouched.id)
    first.close()  # "crash": the leases die with the process

    second = open_store()
    assert second.recover_on_start(T0 + LEASE) == 2
    assert second.get(plain.id).state is JobState.QUEUED  # type: ignore[union-attr]
    recovered = second.get(sent.id)
    assert recovered is not None
    assert recovered.state is JobState.AMBIGUOUS
    assert recovered.lease_until is None
    assert recovered.last_error_code == "RESTART_AFTER_SEND"
    assert second.get(untouched.id).state is JobState.QUEUED  # type: ignore[union-attr]
    assert second.recover_on_start(T0 + LEASE) == 0


def test_sent_flag_is_per_lease(store: SqliteStore) -> None:
    job, _ = store.enqueue(intake(1))
    store.claim(T0, LEASE)
    store.mark_sent(job.id)
    store.transition(
        job.id, JobState.DEFERRED, code="BUSY", message_fr="occupé", now=T0, next_attempt_at=T0
    )
    store.claim(T0, LEASE)  # new lease, not yet sent
    store.recover_on_start(T0)
    assert store.get(job.id).state is JobState.QUEUED  # type: ignore[union-attr]


def test_lease_taken_from_ambiguous_recovers_to_ambiguous(store: SqliteStore) -> None:
    job, _ = store.enqueue(intake(1))
    store.claim(T0, LEASE)
    store.transition(job.id, JobState.AMBIGUOUS, code="TIMEOUT", message_fr="délai", now=T0)
    with pytest.raises(ValueError, match="lease"):
        store.transition(job.id, JobState.ACTIVE, code="RESOLVE", message_fr="r", now=T0)
    active = store.transition(
        job.id, JobState.ACTIVE, code="RESOLVE", message_fr="r", now=T0, lease=LEASE
    )
    assert active.lease_until == T0 + LEASE
    with pytest.raises(IllegalTransition):  # a second resolver cannot take it too
        store.transition(job.id, JobState.ACTIVE, code="R", message_fr="r", now=T0, lease=LEASE)
    assert store.recover_on_start(T0) == 1
    assert store.get(job.id).state is JobState.AMBIGUOUS  # type: ignore[union-attr]


def test_tampered_payload_raises(store: SqliteStore, db_path: Path) -> None:
    job, _ = store.enqueue(intake(1))
    assert store.payload(job.id) == b"%PDF-1.4 document 1"
    with raw(db_path) as conn:
        conn.execute("UPDATE payloads SET payload = ? WHERE job_id = ?", (b"evil", job.id))
    with pytest.raises(CorruptPayload) as info:
        store.payload(job.id)
    assert info.value.code == "CORRUPT_PAYLOAD"
    store.claim(T0, LEASE)
    store.transition(job.id, JobState.CORRUPT, code="CORRUPT", message_fr="altéré", now=T0)
    assert store.get(job.id).state is JobState.CORRUPT  # type: ignore[union-attr]
    with pytest.raises(UnknownJob):
        store.payload(999)


def test_tampered_package_raises(store: SqliteStore, db_path: Path) -> None:
    job, _ = store.enqueue(intake(1))
    store.save_package(job.id, "1.1", "1.2", b"<signed/>")
    with raw(db_path) as conn:
        conn.execute("UPDATE payloads SET package = ? WHERE job_id = ?", (b"<evil/>", job.id))
    with pytest.raises(CorruptPayload):
        store.package(job.id)


def test_save_package_keeps_the_first(store: SqliteStore) -> None:
    job, _ = store.enqueue(intake(1))
    assert store.package(job.id) is None
    store.save_package(job.id, "1.2.250.1.1", "1.2.250.1.2", b"<first/>")
    store.save_package(job.id, "1.2.250.9.9", "1.2.250.9.8", b"<second/>")
    assert store.package(job.id) == b"<first/>"
    saved = store.get(job.id)
    assert saved is not None
    assert (saved.document_unique_id, saved.submission_unique_id) == ("1.2.250.1.1", "1.2.250.1.2")
    with pytest.raises(UnknownJob):
        store.save_package(999, "a", "b", b"c")


def test_conservation_after_a_mix(store: SqliteStore) -> None:
    for n in range(12):
        store.enqueue(intake(n))
    store.enqueue(intake(3))  # duplicate: not received twice
    outcomes = [
        (JobState.DONE, {}),
        (JobState.DEAD, {}),
        (JobState.HELD, {}),
        (JobState.CORRUPT, {}),
        (JobState.AMBIGUOUS, {}),
        (JobState.DEFERRED, {"next_attempt_at": T0 + timedelta(hours=1)}),
    ]
    for new, extra in outcomes:
        job = store.claim(T0, LEASE)
        assert job is not None
        store.transition(job.id, new, code="T", message_fr="t", now=T0, **extra)  # type: ignore[arg-type]
    store.claim(T0, LEASE)  # stays active
    held = store.list_jobs(JobState.HELD)
    store.transition(held[0].id, JobState.QUEUED, code="RELEASE", message_fr="libéré", now=T0)
    counts = store.counts()
    assert set(counts) == set(JobState)
    assert counts[JobState.HELD] == 0
    assert counts[JobState.QUEUED] == 6
    assert counts[JobState.ACTIVE] == 1
    assert store.received() == 12
    assert conservation(counts, store.received())
    assert len(store.list_jobs()) == 12
    assert len(store.list_jobs(limit=5)) == 5


def test_naive_datetimes_are_refused(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.claim(datetime(2025, 1, 1), LEASE)
