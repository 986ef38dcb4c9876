"""The `Store` contract, written once and run against every store (DESIGN.md §4).

A backend's test module subclasses `StoreContract` in a `Test…` class and provides two fixtures:

- `open_store`: a callable opening one more store on the same database (each a new connection,
  as another process would have); every store it opened is closed at teardown;
- `backdoor`: a `Backdoor` that reaches the tables behind the store's back (to tamper with bytes).

Times and leases follow the dispatcher's use: `recover_on_start` is called once leases have
expired, where every store must take them back (a live lease is backend-specific: SQLite takes it
back, PostgreSQL leaves it to its worker).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol

import pytest

from bridge.jobs import IllegalTransition, Intake, JobState, StateChanged, conservation
from bridge.store_port import CorruptPayload, JobNotActive, Store, UnknownJob

T0 = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
LEASE = timedelta(minutes=5)
EXPIRED = T0 + LEASE  # when a lease taken at T0 has run out
PARIS_SUMMER = timezone(timedelta(hours=2), "CEST")


def intake(n: int, payload: bytes | None = None) -> Intake:
    return Intake(
        channel="folder",
        source_ref=f"doc-{n}.pdf",
        idempotency_key=f"key-{n}",
        payload=payload if payload is not None else f"%PDF-1.4 document {n}".encode(),
        metadata=b'{"kind": "cr"}',
        received_at=T0 + timedelta(seconds=n),
    )


class Backdoor(Protocol):
    def set_blob(self, job_id: int, column: str, data: bytes) -> None:
        """Overwrite `payloads.<column>` of one job, as a disk fault or an intruder would."""

    def count_rows(self, table: str) -> int: ...


OpenStore = Callable[[], Store]


def run_in_threads(stores: list[Store], work: Callable[[Store, int], None]) -> None:
    """Run `work(store, i)` in one thread per store, started together; re-raise any error."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def target(i: int) -> None:
        try:
            barrier.wait()
            work(stores[i], i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


class StoreContract:
    """Every store behaves like this (see the module docstring for the fixtures it needs)."""

    @pytest.fixture
    def store(self, open_store: OpenStore) -> Store:
        return open_store()

    def test_implements_the_port(self, store: Store) -> None:
        port: Store = store
        assert port.received() == 0
        assert port.counts() == dict.fromkeys(JobState, 0)
        assert port.tally() == (dict.fromkeys(JobState, 0), 0)
        assert port.list_jobs() == []

    def test_enqueue_is_idempotent(self, store: Store, backdoor: Backdoor) -> None:
        job, created = store.enqueue(intake(1))
        assert created
        assert job.state is JobState.QUEUED
        assert job.attempts == 0
        assert job.received_at == T0 + timedelta(seconds=1)
        assert job.received_at.tzinfo is not None
        assert job.updated_at == job.received_at
        assert job.payload_sha256 == hashlib.sha256(b"%PDF-1.4 document 1").hexdigest()

        again, created = store.enqueue(intake(1, payload=b"other bytes"))
        assert not created
        assert again == job
        assert store.payload(job.id) == b"%PDF-1.4 document 1"
        assert store.metadata(job.id) == b'{"kind": "cr"}'
        assert store.received() == 1
        assert store.find_by_key("key-1") == job
        assert store.find_by_key("nope") is None
        assert store.get(job.id) == job
        assert store.get(job.id + 1000) is None
        assert backdoor.count_rows("payloads") == 1
        [event] = store.events(job.id)
        assert (event.from_state, event.to_state, event.code) == (None, JobState.QUEUED, "RECEIVED")
        assert event.at == job.received_at
        assert event.message_fr == "Document reçu (folder) et mis en file d'attente."
        assert store.events(job.id + 1000) == []

    def test_the_payload_hash_a_connector_computed_is_taken_as_is(self, store: Store) -> None:
        """A connector that hashed the payload for its idempotency key hands that hash over, so
        a document is hashed once per intake. The store does not hash it again: a wrong hash
        (a connector's bug) shows at the first read of the payload, the check before each
        send, and the job goes `corrupt` instead of sending other bytes than those received."""
        right = hashlib.sha256(b"%PDF-1.4 document 1").hexdigest()
        job, _ = store.enqueue(replace(intake(1), payload_sha256=right))
        assert job.payload_sha256 == right
        assert store.payload(job.id) == b"%PDF-1.4 document 1"

        wrong = hashlib.sha256(b"other bytes").hexdigest()
        job, _ = store.enqueue(replace(intake(2), payload_sha256=wrong))
        assert store.get(job.id).payload_sha256 == wrong  # type: ignore[union-attr]
        with pytest.raises(CorruptPayload):
            store.payload(job.id)

    def test_concurrent_enqueue_of_the_same_inputs(self, open_store: OpenStore) -> None:
        """Two intakes (two processes) receive the same 50 documents: 50 jobs, not 100."""
        stores = [open_store(), open_store()]
        created: list[list[int]] = [[], []]

        def work(store: Store, i: int) -> None:
            for n in range(50):
                job, new = store.enqueue(intake(n))
                if new:
                    created[i].append(job.id)

        run_in_threads(stores, work)
        assert len(created[0]) + len(created[1]) == 50
        assert len(set(created[0] + created[1])) == 50
        assert stores[0].received() == 50
        assert stores[1].counts()[JobState.QUEUED] == 50

    def test_job_survives_reopen(self, open_store: OpenStore) -> None:
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
        assert [e.code for e in second.events(job.id)] == ["RECEIVED"]

    def test_concurrent_enqueues_on_one_store_are_all_kept(self, open_store: OpenStore) -> None:
        """The service's channels enqueue from several worker threads on one store at once:
        every document acknowledged is there after a reopen, as its caller was told."""
        first = open_store()
        threads, per_thread = 12, 5
        acked: list[list[tuple[int, int]]] = [[] for _ in range(threads)]

        def work(store: Store, i: int) -> None:
            for k in range(per_thread):
                n = i * per_thread + k
                job, created = store.enqueue(intake(n))
                assert created
                assert job.idempotency_key == f"key-{n}"
                acked[i].append((n, job.id))

        run_in_threads([first] * threads, work)
        pairs = [pair for thread_pairs in acked for pair in thread_pairs]
        assert len({job_id for _, job_id in pairs}) == threads * per_thread
        first.close()

        second = open_store()
        assert second.received() == threads * per_thread
        for n, job_id in pairs:
            job = second.get(job_id)
            assert job is not None and job.idempotency_key == f"key-{n}"
            assert second.payload(job_id) == f"%PDF-1.4 document {n}".encode()
            assert [e.code for e in second.events(job_id)] == ["RECEIVED"]

    def test_same_document_from_many_threads_of_one_store_is_one_job(self, store: Store) -> None:
        results: list[tuple[int, bool]] = []

        def work(store: Store, i: int) -> None:
            job, created = store.enqueue(intake(7))
            results.append((job.id, created))

        run_in_threads([store] * 8, work)
        assert len({job_id for job_id, _ in results}) == 1
        assert sorted(created for _, created in results) == [False] * 7 + [True]
        assert store.received() == 1

    def test_times_come_back_in_utc(self, store: Store) -> None:
        local = datetime(2025, 7, 1, 11, 0, 0, 123456, tzinfo=PARIS_SUMMER)
        job, _ = store.enqueue(replace(intake(1), received_at=local))
        assert job.received_at == local
        assert job.received_at.utcoffset() == timedelta(0)
        claimed = store.claim(local, LEASE)
        assert claimed is not None
        assert claimed.lease_until == datetime(2025, 7, 1, 9, 5, 0, 123456, tzinfo=UTC)
        assert all(e.at.utcoffset() == timedelta(0) for e in store.events(job.id))

    def test_claim_takes_oldest_and_never_twice(self, store: Store) -> None:
        a, _ = store.enqueue(intake(1))
        b, _ = store.enqueue(intake(2))
        first = store.claim(T0, LEASE)
        second = store.claim(T0, LEASE)
        assert first is not None and second is not None
        assert (first.id, second.id) == (a.id, b.id)
        assert first.state is JobState.ACTIVE
        assert first.lease_until == T0 + LEASE
        assert first.updated_at == T0
        assert first.attempts == 0
        assert store.claim(T0, LEASE) is None
        assert [(e.from_state, e.to_state, e.code) for e in store.events(a.id)] == [
            (None, JobState.QUEUED, "RECEIVED"),
            (JobState.QUEUED, JobState.ACTIVE, "CLAIMED"),
        ]

    def test_concurrent_claims_from_two_stores(self, open_store: OpenStore) -> None:
        setup = open_store()
        for n in range(200):
            setup.enqueue(intake(n))
        stores = [open_store(), open_store()]
        claimed: list[list[int]] = [[], []]

        def work(store: Store, i: int) -> None:
            while (job := store.claim(T0, LEASE)) is not None:
                claimed[i].append(job.id)

        run_in_threads(stores, work)
        all_ids = claimed[0] + claimed[1]
        assert len(all_ids) == 200
        assert len(set(all_ids)) == 200
        assert setup.counts()[JobState.ACTIVE] == 200
        assert all(len(setup.events(job_id)) == 2 for job_id in all_ids[:20])

    def test_illegal_transition_changes_nothing(self, store: Store) -> None:
        job, _ = store.enqueue(intake(1))
        before_events = store.events(job.id)
        with pytest.raises(IllegalTransition):
            store.transition(job.id, JobState.DONE, code="X", message_fr="x", now=T0)
        with pytest.raises(IllegalTransition):
            store.transition(job.id, JobState.AMBIGUOUS, code="X", message_fr="x", now=T0)
        assert store.get(job.id) == job
        assert store.events(job.id) == before_events
        with pytest.raises(UnknownJob):
            store.transition(999_999, JobState.DEAD, code="X", message_fr="x", now=T0)
        with pytest.raises(UnknownJob):
            store.mark_sent(999_999)

    def test_a_transition_expecting_a_state_the_job_left_changes_nothing(
            self, store: Store) -> None:
        """A person cancels a document they saw held, while the service released and claimed
        it: the cancel must not land on the active job."""
        job, _ = store.enqueue(intake(1))
        store.claim(T0, LEASE)  # the job moved on: QUEUED → ACTIVE
        before_events = store.events(job.id)
        with pytest.raises(StateChanged) as caught:
            store.transition(job.id, JobState.DEAD, code="CANCELLED_BY_USER",
                             message_fr="annulé", now=T0, expected=JobState.QUEUED)
        assert (caught.value.expected, caught.value.found) == (JobState.QUEUED, JobState.ACTIVE)
        assert store.get(job.id).state is JobState.ACTIVE  # type: ignore[union-attr]
        assert store.events(job.id) == before_events
        moved = store.transition(job.id, JobState.QUEUED, code="X", message_fr="x", now=T0,
                                 expected=JobState.ACTIVE)
        assert moved.state is JobState.QUEUED

    def test_transition_updates_and_journals(self, store: Store) -> None:
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
        assert store.get(job.id) == deferred
        assert [(e.from_state, e.to_state) for e in store.events(job.id)] == [
            (None, JobState.QUEUED),
            (JobState.QUEUED, JobState.ACTIVE),
            (JobState.ACTIVE, JobState.DEFERRED),
        ]
        with pytest.raises(ValueError, match="next_attempt_at"):
            store.transition(job.id, JobState.DEFERRED, code="X", message_fr="x", now=T0)

    def test_last_error_kept_while_active_cleared_when_done(self, store: Store) -> None:
        job, _ = store.enqueue(intake(1))
        store.claim(T0, LEASE)
        store.transition(
            job.id, JobState.DEFERRED, code="BUSY", message_fr="occupé", now=T0, next_attempt_at=T0
        )
        again = store.claim(T0, LEASE)
        assert again is not None
        assert (again.last_error_code, again.last_error_fr) == ("BUSY", "occupé")
        done = store.transition(job.id, JobState.DONE, code="REGISTERED", message_fr="ok", now=T0)
        assert (done.last_error_code, done.last_error_fr) == (None, None)
        assert done.attempts == 0
        with pytest.raises(IllegalTransition):  # done is final
            store.transition(job.id, JobState.QUEUED, code="X", message_fr="x", now=T0)

    def test_deferred_claimed_only_when_due(self, store: Store) -> None:
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
        assert claimed.lease_until == due + LEASE

    def test_queued_before_due_deferred(self, store: Store) -> None:
        """A due deferred job and a queued one: the older (lower id) goes first."""
        old, _ = store.enqueue(intake(1))
        store.claim(T0, LEASE)
        store.transition(
            old.id, JobState.DEFERRED, code="BUSY", message_fr="occupé", now=T0, next_attempt_at=T0
        )
        new, _ = store.enqueue(intake(2))
        first = store.claim(T0, LEASE)
        second = store.claim(T0, LEASE)
        assert first is not None and second is not None
        assert (first.id, second.id) == (old.id, new.id)

    def test_recover_on_start(self, open_store: OpenStore) -> None:
        first = open_store()
        plain, _ = first.enqueue(intake(1))
        sent, _ = first.enqueue(intake(2))
        untouched, _ = first.enqueue(intake(3))
        first.claim(T0, LEASE)
        first.claim(T0, LEASE)
        first.mark_sent(sent.id)
        with pytest.raises(JobNotActive) as info:
            first.mark_sent(untouched.id)
        assert info.value.state is JobState.QUEUED
        first.close()  # "crash": the leases die with the process

        second = open_store()
        assert second.recover_on_start(EXPIRED) == 2
        requeued = second.get(plain.id)
        assert requeued is not None
        assert requeued.state is JobState.QUEUED
        assert requeued.lease_until is None
        assert requeued.last_error_code is None
        recovered = second.get(sent.id)
        assert recovered is not None
        assert recovered.state is JobState.AMBIGUOUS
        assert recovered.lease_until is None
        assert recovered.updated_at == EXPIRED
        assert recovered.last_error_code == "RESTART_AFTER_SEND"
        assert recovered.last_error_fr
        assert second.events(sent.id)[-1].code == "RESTART_AFTER_SEND"
        assert second.events(plain.id)[-1].code == "RESTART_REQUEUED"
        assert second.get(untouched.id).state is JobState.QUEUED  # type: ignore[union-attr]
        assert second.recover_on_start(EXPIRED) == 0
        assert conservation(second.counts(), second.received())

    def test_sent_flag_is_per_lease(self, store: Store) -> None:
        job, _ = store.enqueue(intake(1))
        store.claim(T0, LEASE)
        store.mark_sent(job.id)
        store.transition(
            job.id, JobState.DEFERRED, code="BUSY", message_fr="occupé", now=T0, next_attempt_at=T0
        )
        store.claim(T0, LEASE)  # new lease, not yet sent
        assert store.recover_on_start(EXPIRED) == 1
        assert store.get(job.id).state is JobState.QUEUED  # type: ignore[union-attr]

    def test_lease_taken_from_ambiguous_recovers_to_ambiguous(self, store: Store) -> None:
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
        assert store.recover_on_start(EXPIRED) == 1
        assert store.get(job.id).state is JobState.AMBIGUOUS  # type: ignore[union-attr]

    def test_tampered_payload_raises(self, store: Store, backdoor: Backdoor) -> None:
        job, _ = store.enqueue(intake(1))
        assert store.payload(job.id) == b"%PDF-1.4 document 1"
        backdoor.set_blob(job.id, "payload", b"evil")
        with pytest.raises(CorruptPayload) as info:
            store.payload(job.id)
        assert info.value.code == "CORRUPT_PAYLOAD"
        assert (info.value.job_id, info.value.what) == (job.id, "payload")
        store.claim(T0, LEASE)
        store.transition(job.id, JobState.CORRUPT, code="CORRUPT", message_fr="altéré", now=T0)
        assert store.get(job.id).state is JobState.CORRUPT  # type: ignore[union-attr]
        with pytest.raises(UnknownJob):
            store.payload(999_999)
        with pytest.raises(UnknownJob):
            store.package(999_999)

    def test_tampered_package_raises(self, store: Store, backdoor: Backdoor) -> None:
        job, _ = store.enqueue(intake(1))
        store.save_package(job.id, "1.1", "1.2", b"<signed/>")
        assert store.package(job.id) == b"<signed/>"
        backdoor.set_blob(job.id, "package", b"<evil/>")
        with pytest.raises(CorruptPayload) as info:
            store.package(job.id)
        assert info.value.what == "package"

    def test_save_package_keeps_the_first(self, store: Store) -> None:
        job, _ = store.enqueue(intake(1))
        assert store.package(job.id) is None
        store.save_package(job.id, "1.2.250.1.1", "1.2.250.1.2", b"<first/>")
        store.save_package(job.id, "1.2.250.9.9", "1.2.250.9.8", b"<second/>")
        assert store.package(job.id) == b"<first/>"
        saved = store.get(job.id)
        assert saved is not None
        assert (saved.document_unique_id, saved.submission_unique_id) == (
            "1.2.250.1.1",
            "1.2.250.1.2",
        )
        with pytest.raises(UnknownJob):
            store.save_package(999_999, "a", "b", b"c")

    def test_conservation_after_a_mix(self, store: Store) -> None:
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
            assert conservation(store.counts(), store.received())
        store.claim(T0, LEASE)  # stays active
        held = store.list_jobs(JobState.HELD)
        store.transition(held[0].id, JobState.QUEUED, code="RELEASE", message_fr="libéré", now=T0)
        counts = store.counts()
        assert set(counts) == set(JobState)
        assert counts[JobState.HELD] == 0
        assert counts[JobState.QUEUED] == 6
        assert counts[JobState.ACTIVE] == 1
        assert all(counts[s] == 1 for s in (JobState.DONE, JobState.DEAD, JobState.CORRUPT))
        assert store.received() == 12
        assert conservation(counts, store.received())
        assert not conservation({**counts, JobState.DONE: 0}, store.received())
        assert store.tally() == (counts, 12)

    def test_every_tally_balances_while_documents_arrive(self, open_store: OpenStore) -> None:
        """The dashboard, `status`, `doctor` and /metrics check conservation while intakes
        commit. A tally is one snapshot: in every one taken while four intakes (as many
        processes) commit, received = the sum of the states. Two separate reads would let a
        commit fall between them and show a healthy queue as having lost a document."""
        writers, wanted, rises_wanted = 4, 300, 100
        stores = [open_store() for _ in range(writers + 1)]
        reader = stores[writers]
        for n in range(3):  # jobs in other states than queued, counted too
            reader.enqueue(intake(n))
        done = reader.claim(T0, LEASE)
        assert done is not None
        reader.transition(done.id, JobState.DONE, code="T", message_fr="t", now=T0)
        reader.claim(T0, LEASE)
        tallies: list[tuple[dict[JobState, int], int]] = []
        tallied = threading.Event()

        def read(store: Store) -> None:
            try:  # until enough tallies AND enough intakes committed while they were taken
                while len(tallies) < wanted or len({r for _, r in tallies}) < rises_wanted:
                    tallies.append(store.tally())
            finally:
                tallied.set()  # the writers stop, even if a tally failed

        def write(store: Store, i: int) -> None:
            n = 100 + i
            while not tallied.is_set():
                store.enqueue(intake(n))
                n += writers  # keys of their own: every intake is a new job

        run_in_threads(stores, lambda store, i: read(store) if i == writers else write(store, i))

        unbalanced = [(counts, received) for counts, received in tallies
                      if not conservation(counts, received)]
        assert unbalanced == []
        assert len({received for _, received in tallies}) >= rises_wanted  # taken mid-intake
        assert all((c[JobState.DONE], c[JobState.ACTIVE]) == (1, 1) for c, _ in tallies)
        assert reader.tally() == (reader.counts(), reader.received())

    def test_list_jobs_newest_first(self, store: Store) -> None:
        ids = [store.enqueue(intake(n))[0].id for n in range(8)]
        store.claim(T0, LEASE)
        store.claim(T0, LEASE)
        assert [j.id for j in store.list_jobs()] == ids[::-1]
        assert [j.id for j in store.list_jobs(limit=3)] == ids[::-1][:3]
        assert [j.id for j in store.list_jobs(JobState.ACTIVE)] == [ids[1], ids[0]]
        assert [j.id for j in store.list_jobs(JobState.QUEUED, limit=2)] == [ids[7], ids[6]]
        assert store.list_jobs(JobState.DONE) == []
        assert store.events(999_999) == []

    def test_naive_datetimes_are_refused(self, store: Store) -> None:
        with pytest.raises(ValueError, match="naive"):
            store.claim(datetime(2025, 1, 1), LEASE)
        with pytest.raises(ValueError, match="naive"):
            store.enqueue(replace(intake(1), received_at=datetime(2025, 1, 1)))
        with pytest.raises(ValueError, match="naive"):
            store.recover_on_start(datetime(2025, 1, 1))
        assert store.received() == 0
