"""The `Store` contract, continued: lots (related claims, refused packages), timeline notes and
the purge of done jobs. Mixed into each backend's contract class next to `StoreContract`, with
the same fixtures (`store`, `open_store`, `backdoor`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bridge.jobs import Intake, JobState, conservation
from bridge.store_port import JobNotActive, PayloadPurged, Store
from tests.store_contract import LEASE, T0, Backdoor, OpenStore, intake, run_in_threads


def keyed(n: int, patient: str = "p1", author: str = "a1") -> Intake:
    return replace(intake(n), patient_key=patient, author_key=author)


def deferred_until(store: Store, job_id: int, when: object) -> None:
    store.transition(job_id, JobState.DEFERRED, code="BUSY", message_fr="occupé", now=T0,
                     next_attempt_at=when)  # type: ignore[arg-type]


class LotStoreContract:
    """Every store groups, splits and purges like this."""

    def test_keys_are_stored(self, store: Store) -> None:
        job, _ = store.enqueue(keyed(1))
        assert (job.patient_key, job.author_key, job.purged_at) == ("p1", "a1", None)
        plain, _ = store.enqueue(intake(2))
        assert (plain.patient_key, plain.author_key) == (None, None)

    def test_claim_related_takes_same_patient_and_author_never_packaged(
            self, store: Store) -> None:
        leader, _ = store.enqueue(keyed(1))
        same, _ = store.enqueue(keyed(2))
        other_patient, _ = store.enqueue(keyed(3, patient="p2"))
        other_author, _ = store.enqueue(keyed(4, author="a2"))
        packaged, _ = store.enqueue(keyed(5))
        store.save_package(packaged.id, "1.1", "1.2", b"<single/>")
        unkeyed, _ = store.enqueue(intake(6))
        also_same, _ = store.enqueue(keyed(7))
        claimed = store.claim(T0, LEASE)
        assert claimed is not None and claimed.id == leader.id
        related = store.claim_related(claimed, T0, LEASE, 10)
        assert [j.id for j in related] == [same.id, also_same.id]
        assert all(j.state is JobState.ACTIVE and j.lease_until == T0 + LEASE for j in related)
        assert store.events(same.id)[-1].code == "CLAIMED_FOR_LOT"
        assert {store.get(j.id).state for j in (other_patient, other_author, packaged,  # type: ignore[union-attr]
                                                 unkeyed)} == {JobState.QUEUED}
        assert store.claim_related(claimed, T0, LEASE, 10) == []  # already leased
        with pytest.raises(JobNotActive):
            store.claim_related(other_patient, T0, LEASE, 10)

    def test_claim_related_respects_the_cap_and_the_key_less(self, store: Store) -> None:
        for n in range(5):
            store.enqueue(keyed(n))
        leader = store.claim(T0, LEASE)
        assert leader is not None
        assert len(store.claim_related(leader, T0, LEASE, 2)) == 2
        assert store.claim_related(leader, T0, LEASE, 0) == []
        assert store.counts()[JobState.QUEUED] == 2
        store.enqueue(intake(9))
        alone = store.claim(T0, LEASE)
        assert alone is not None
        while alone.patient_key is not None:
            alone = store.claim(T0, LEASE)
            assert alone is not None
        assert store.claim_related(alone, T0, LEASE, 10) == []

    def test_claim_related_of_a_packaged_job_takes_its_lot_even_not_due(
            self, store: Store) -> None:
        jobs = [store.enqueue(keyed(n))[0] for n in range(3)]
        stranger, _ = store.enqueue(keyed(3))
        for n, job in enumerate(jobs):
            store.save_package(job.id, f"1.{n}", "9.9", b"<lot/>")
        store.save_package(stranger.id, "1.9", "8.8", b"<other/>")
        for _ in jobs:
            store.claim(T0, LEASE)
        later = T0 + timedelta(hours=1)
        deferred_until(store, jobs[0].id, T0)
        deferred_until(store, jobs[1].id, later)
        store.transition(jobs[2].id, JobState.AMBIGUOUS, code="T", message_fr="t", now=T0)
        leader = store.claim(T0, LEASE)
        assert leader is not None and leader.id == jobs[0].id
        related = store.claim_related(leader, T0, LEASE, 10)
        assert [j.id for j in related] == [jobs[1].id]  # not the ambiguous one, nor a stranger
        assert store.events(jobs[1].id)[-1].code == "CLAIMED_WITH_LOT"
        assert store.get(jobs[2].id).state is JobState.AMBIGUOUS  # type: ignore[union-attr]

    def test_concurrent_related_claims_never_lease_a_job_twice(
            self, open_store: OpenStore) -> None:
        setup = open_store()
        for n in range(60):
            setup.enqueue(keyed(n, patient=f"p{n % 3}"))
        stores = [open_store(), open_store()]
        claimed: list[list[int]] = [[], []]

        def work(store: Store, i: int) -> None:
            while (job := store.claim(T0, LEASE)) is not None:
                claimed[i].append(job.id)
                claimed[i].extend(j.id for j in store.claim_related(job, T0, LEASE, 4))

        run_in_threads(stores, work)
        ids = claimed[0] + claimed[1]
        assert sorted(ids) == sorted(set(ids)) and len(ids) == 60
        assert setup.counts()[JobState.ACTIVE] == 60

    def test_discard_refused_package_keeps_the_document_id(self, open_store: OpenStore) -> None:
        store = open_store()
        leader, _ = store.enqueue(keyed(0))
        job, _ = store.enqueue(keyed(1))
        store.save_package(job.id, "1.1", "9.9", b"<lot/>")
        with pytest.raises(JobNotActive):
            store.discard_refused_package(job.id, "9.9", now=T0)
        store.claim(T0, LEASE)
        store.claim(T0, LEASE)
        store.mark_sent(job.id)
        assert not store.discard_refused_package(job.id, "7.7", now=T0)  # not its package
        assert store.package(job.id) == b"<lot/>"
        assert store.discard_refused_package(job.id, "9.9", now=T0)
        assert store.package(job.id) is None
        after = store.get(job.id)
        assert after is not None
        assert (after.document_unique_id, after.submission_unique_id) == ("1.1", None)
        assert store.events(job.id)[-1].code == "LOT_PACKAGE_DISCARDED"
        # The "sent" mark went with the refused package: a crash now means "never sent".
        store.close()
        store = open_store()
        assert store.recover_on_start(T0 + LEASE) == 2
        assert store.get(job.id).state is JobState.QUEUED  # type: ignore[union-attr]
        # A document that was packaged never joins a new lot, even without a package now.
        first = store.claim(T0 + LEASE, LEASE)
        assert first is not None and first.id == leader.id
        assert store.claim_related(first, T0 + LEASE, LEASE, 10) == []
        store.claim(T0 + LEASE, LEASE)
        store.save_package(job.id, "1.1", "5.5", b"<single/>")
        assert store.package(job.id) == b"<single/>"
        assert store.get(job.id).submission_unique_id == "5.5"  # type: ignore[union-attr]

    def test_note_adds_a_line_without_changing_the_job(self, store: Store) -> None:
        job, _ = store.enqueue(intake(1))
        store.note(job.id, code="QUEUE_AGE_WARNING", message_fr="24 h", now=T0 + timedelta(1))
        assert store.get(job.id) == job
        last = store.events(job.id)[-1]
        assert (last.from_state, last.to_state, last.code) == (
            JobState.QUEUED, JobState.QUEUED, "QUEUE_AGE_WARNING")

    def test_purge_done_keeps_row_hashes_history_and_invariant(
            self, store: Store, backdoor: Backdoor) -> None:
        old, _ = store.enqueue(intake(1))
        recent, _ = store.enqueue(intake(2))
        waiting, _ = store.enqueue(intake(3))
        for job in (old, recent):
            store.save_package(job.id, f"1.{job.id}", f"2.{job.id}", b"<signed/>")
            store.claim(T0, LEASE)
        store.transition(old.id, JobState.DONE, code="DMP_OK", message_fr="ok", now=T0)
        store.transition(recent.id, JobState.DONE, code="DMP_OK", message_fr="ok",
                         now=T0 + timedelta(days=10))
        history = store.events(old.id)
        purge_at = T0 + timedelta(days=91)
        assert store.purge_done(T0 + timedelta(days=1), now=purge_at) == 1
        assert store.purge_done(T0 + timedelta(days=1), now=purge_at) == 0  # once
        for read in (store.payload, store.metadata, store.package):
            with pytest.raises(PayloadPurged):
                read(old.id)
        purged = store.get(old.id)
        assert purged is not None
        assert purged.purged_at == purge_at
        assert (purged.state, purged.payload_sha256, purged.document_unique_id) == (
            JobState.DONE, old.payload_sha256, f"1.{old.id}")
        events = store.events(old.id)
        assert events[: len(history)] == history and events[-1].code == "PAYLOAD_PURGED"
        assert store.payload(recent.id) == b"%PDF-1.4 document 2"
        assert store.payload(waiting.id) == b"%PDF-1.4 document 3"
        assert backdoor.count_rows("jobs") == 3
        assert conservation(store.counts(), store.received())
        assert store.received() == 3
