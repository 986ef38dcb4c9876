"""The dispatcher's reaction to each kind of DMP answer, against the real simulator over mutual
TLS: retry later, wait for a person, give up, or pause everything — and never lose a job."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
import ssl
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bridge.card_port import CardAbsent
from bridge.classify import resolve
from bridge.dmp_answer import STATE_OF
from bridge.dmp_error_table import ERROR_TABLE, INVENTED_DMP_CODES, ErrorClass
from bridge.domain import Author
from bridge.ins import nir_key
from bridge.jobs import Intake, Job, JobState, conservation
from bridge.lot_keys import with_lot_keys
from bridge.packaging import LotDocument, MintedIds, build_lot_package, build_package
from bridge.retry import RetryPolicy
from bridge.sidecar import parse_sidecar
from bridge.store_port import PayloadPurged
from bridge.vihf import Software
from connectors.dmp_client import DmpClient
from connectors.software_credentials import SoftwareCredentials
from connectors.sqlite_store import SqliteStore
from mappings.matrix_load import load_matrix
from service.ambiguity import own_cda
from service.dispatcher import CARD_RECHECK, Dispatcher, Finished, Gatekeeping
from service.queue_care import QueueCare
from service.sample_pdf import make_pdf
from service.simulator.config import SimulatorConfig
from service.simulator.faults import FaultKind, InjectedFault
from service.simulator.patients import PatientState
from service.simulator.problems import ALL_ERROR_CODES
from service.simulator.server import RunningSimulator, start_simulator
from service.test_pki import generate_test_pki, pki_layout
from tests.factories import make_sidecar_dict

SOFTWARE = Software("dmp-bridge", "test", "2.25.1", "TEST")


@dataclass
class Rig:
    store: SqliteStore
    simulator: RunningSimulator
    dispatcher: Dispatcher

    @property
    def client(self) -> DmpClient:
        """The DMP connection of the rig's dispatcher (to build another one beside it)."""
        return self.dispatcher.wallet.clients()[0]

    def queue(self, key: str, *, received_at: dt.datetime | None = None,
              sidecar: dict[str, object] | None = None, lots: bool = False) -> Job:
        """Queue one document; with `lots`, with the keys the runner adds (it may be grouped)."""
        intake = Intake(
            "folder", f"{key}.pdf", key, make_pdf([key]),
            json.dumps(sidecar or make_sidecar_dict()).encode(),
            received_at or dt.datetime.now(dt.UTC))
        job, _ = self.store.enqueue(with_lot_keys(intake) if lots else intake)
        return job

    def job(self, job_id: int) -> Job:
        job = self.store.get(job_id)
        assert job is not None
        return job

    def registered(self) -> int:
        return len([d for d in self.simulator.store.documents() if not d.is_signature])


@pytest.fixture
async def rig(tmp_path: Path, pki_dir: Path,
              credentials: SoftwareCredentials) -> AsyncIterator[Rig]:
    pki = pki_layout(pki_dir)
    simulator = await start_simulator(SimulatorConfig(
        db_path=tmp_path / "sim.sqlite3", ca_cert=pki.ca_cert, server_cert=pki.server.cert,
        server_key=pki.server.key))
    store = SqliteStore.open(tmp_path / "queue.sqlite3")
    client = DmpClient(simulator.base_url, credentials.ssl_context(), timeout_seconds=10,
                       rate_per_second=5)
    dispatcher = Dispatcher(store, client, credentials, source_id="2.25.1", software=SOFTWARE,
                            gate=Gatekeeping(load_matrix()))
    try:
        yield Rig(store, simulator, dispatcher)
    finally:
        await client.close()
        store.close()
        await simulator.close()


async def test_a_good_document_is_done_after_one_attempt(rig: Rig) -> None:
    job = rig.queue("bon")
    assert await rig.dispatcher.run_once()
    assert (rig.job(job.id).state, rig.job(job.id).attempts) == (JobState.DONE, 1)
    assert rig.registered() == 1


async def test_a_busy_dmp_means_retry_later_with_the_same_bytes(rig: Rig) -> None:
    rig.simulator.faults.fail_next(InjectedFault(code="XDSRegistryBusy"))
    job = rig.queue("occupe")
    await rig.dispatcher.run_once()
    deferred = rig.job(job.id)
    assert deferred.state is JobState.DEFERRED and deferred.attempts == 1
    assert deferred.next_attempt_at is not None
    assert deferred.next_attempt_at > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
    package = rig.store.package(job.id)
    rig.store.transition(job.id, JobState.ACTIVE, code="TEST", message_fr="test",
                         now=dt.datetime.now(dt.UTC), lease=dt.timedelta(minutes=1))
    rig.store.transition(job.id, JobState.DEFERRED, code="TEST", message_fr="dû",
                         now=dt.datetime.now(dt.UTC), next_attempt_at=dt.datetime.now(dt.UTC))
    await rig.dispatcher.run_once()
    assert rig.job(job.id).state is JobState.DONE
    assert rig.store.package(job.id) == package  # minted once, resent as is
    assert rig.registered() == 1


async def test_a_poison_document_is_dead_after_one_attempt_and_does_not_block_the_next(
        rig: Rig) -> None:
    rig.simulator.faults.fail_next(InjectedFault(code="XDSRegistryMetadataError"))
    poison, good = rig.queue("poison"), rig.queue("suivant")
    await rig.dispatcher.run_once()
    await rig.dispatcher.run_once()
    assert (rig.job(poison.id).state, rig.job(poison.id).attempts) == (JobState.DEAD, 1)
    assert rig.job(good.id).state is JobState.DONE


@pytest.mark.parametrize(("state", "explained"), [
    (PatientState.FERME, "Le DMP du patient est fermé"),
    (PatientState.SANS_DMP, "Le patient n'a pas de DMP"),
])
async def test_a_closed_or_missing_dmp_waits_for_a_person_with_the_existence_test_s_answer(
        rig: Rig, state: PatientState, explained: str) -> None:
    sidecar = make_sidecar_dict()
    patient = sidecar["patient"]
    assert isinstance(patient, dict)
    rig.simulator.patients.set(str(patient["ins"]), state)
    job = rig.queue("dmp-ferme", sidecar=sidecar)
    await rig.dispatcher.run_once()
    held = rig.job(job.id)
    assert held.state is JobState.HELD
    assert (held.last_error_fr or "").startswith(explained)  # TD0.2 was asked, once
    assert [r.service for r in rig.simulator.store.requests()].count("td02") == 1
    assert rig.registered() == 0


async def test_an_unknown_dmp_code_is_permanent(rig: Rig) -> None:
    rig.simulator.faults.fail_next(InjectedFault(code="DMP_ERREUR_JAMAIS_VUE"))
    job = rig.queue("inconnu")
    await rig.dispatcher.run_once()
    dead = rig.job(job.id)
    assert dead.state is JobState.DEAD
    assert dead.last_error_code == "DMP_CODE_INCONNU:DMP_ERREUR_JAMAIS_VUE"


async def test_an_environment_error_pauses_everything_and_uses_no_attempt(rig: Rig) -> None:
    rig.simulator.faults.fail_next(InjectedFault(code="DMP_VIHF_HORODATAGE"))
    first, second = rig.queue("horloge-1"), rig.queue("horloge-2")
    assert await rig.dispatcher.run_once()
    paused = rig.job(first.id)
    assert (paused.state, paused.attempts) == (JobState.QUEUED, 0)
    assert rig.dispatcher.pause_reason is not None and "horloge" in rig.dispatcher.pause_reason
    assert not await rig.dispatcher.run_once()  # paused: nothing is taken
    assert rig.job(second.id).state is JobState.QUEUED
    rig.dispatcher.resume()  # the clock was fixed
    await rig.dispatcher.run_once()
    await rig.dispatcher.run_once()
    assert {rig.job(first.id).state, rig.job(second.id).state} == {JobState.DONE}


async def test_an_untrusted_dmp_certificate_is_an_environment_error(
        rig: Rig, tmp_path: Path, credentials: SoftwareCredentials) -> None:
    other_ca = generate_test_pki(tmp_path / "autre-pki").ca_cert
    context = ssl.create_default_context(cafile=str(other_ca))
    client = DmpClient(rig.simulator.base_url, context, timeout_seconds=5)
    dispatcher = Dispatcher(rig.store, client, credentials, source_id="2.25.1",
                            software=SOFTWARE, gate=Gatekeeping(load_matrix()))
    try:
        job = rig.queue("tls")
        await dispatcher.run_once()
    finally:
        await client.close()
    requeued = rig.job(job.id)
    assert (requeued.state, requeued.attempts) == (JobState.QUEUED, 0)
    assert requeued.last_error_code is None or requeued.last_error_code == "DMP_TLS"
    assert dispatcher.pause_reason is not None and "certificat" in dispatcher.pause_reason


async def test_a_document_past_its_lifetime_ends_dead_never_deleted(
        rig: Rig, credentials: SoftwareCredentials) -> None:
    told: list[Finished] = []
    dispatcher = Dispatcher(rig.store, rig.client, credentials, source_id="2.25.1",
                            software=SOFTWARE, gate=Gatekeeping(load_matrix()),
                            on_finished=told.append)
    old = rig.queue("ancien", received_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=15))
    fresh = rig.queue("recent")
    await dispatcher.run_once()
    # Its end is told like any outcome (the HL7 business acknowledgement hangs on it).
    assert [(f.job.id, f.decision.state, f.decision.code) for f in told][:1] == [
        (old.id, JobState.DEAD, "LIFETIME_EXPIRED")]
    expired = rig.job(old.id)
    assert expired.state is JobState.DEAD and expired.last_error_code == "LIFETIME_EXPIRED"
    assert "dmp-bridge replay" in (expired.last_error_fr or "")
    assert rig.job(fresh.id).state is JobState.DONE
    assert rig.store.payload(old.id)  # kept, replayable


def test_every_invented_code_has_a_reaction() -> None:
    assert {cls for cls, _ in INVENTED_DMP_CODES.values()} <= set(ErrorClass)


async def test_the_rate_limit_is_never_exceeded_in_any_one_second_window(
        rig: Rig, credentials: SoftwareCredentials) -> None:
    client = DmpClient(rig.simulator.base_url, credentials.ssl_context(), timeout_seconds=10,
                       rate_per_second=8)
    dispatcher = Dispatcher(rig.store, client, credentials, source_id="2.25.1",
                            software=SOFTWARE, gate=Gatekeeping(load_matrix()))
    try:
        for n in range(24):
            rig.queue(f"debit-{n}")
        while await dispatcher.run_once():
            pass
    finally:
        await client.close()
    times = list(client.sent_at)  # when each request was allowed to leave
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    print(f"\nrate: {len(times)} requests, busiest 1-second window = {busiest} (limit 8)")
    assert len(times) == 24 and busiest <= 8
    assert rig.registered() == 24


def test_every_code_the_simulator_can_emit_has_a_row_in_the_bridge_table() -> None:
    assert sorted(ALL_ERROR_CODES - set(ERROR_TABLE)) == []


@pytest.mark.parametrize("code", sorted(ALL_ERROR_CODES))
async def test_the_bridge_reacts_to_each_simulator_code_as_its_table_says(rig: Rig,
                                                                       code: str) -> None:
    error_class = ERROR_TABLE[code][0]
    rig.simulator.faults.fail_next(InjectedFault(code=code))
    job = rig.queue(f"code-{code}")
    await rig.dispatcher.run_once()
    after = rig.job(job.id)
    if error_class is ErrorClass.AMBIGUOUS:
        # Asked at once: the document is not in the DMP, so it is simply sent again later.
        assert after.state is JobState.DEFERRED and after.last_error_code == "DMP_NOT_RECEIVED"
    else:
        assert after.state is STATE_OF[error_class], (code, after.last_error_fr)
    if error_class is ErrorClass.ENVIRONMENT:
        assert after.attempts == 0 and rig.dispatcher.pause_reason is not None
    else:
        assert after.attempts == 1 and rig.dispatcher.pause_reason is None
    assert rig.registered() == 0


@pytest.mark.parametrize("lots", [False, True], ids=["singles", "lots"])
async def test_with_30_percent_of_calls_failing_everything_is_delivered_once(
        rig: Rig, credentials: SoftwareCredentials, lots: bool) -> None:
    """Transient failures of every kind on 30 % of the calls: busy registry, HTTP 500, the
    connection cut in the middle of the answer (processed!), an answer that never comes
    (processed!), a duplicate answer. Nothing is lost, nothing registered twice, attempts stay
    bounded and the rate limit holds."""
    rng = random.Random(7)
    kinds = [FaultKind.REGISTRY_BUSY, FaultKind.HTTP500, FaultKind.COUPURE_MILIEU,
             FaultKind.SANS_REPONSE, FaultKind.DOUBLON]
    client = DmpClient(rig.simulator.base_url, credentials.ssl_context(), timeout_seconds=1.5,
                       rate_per_second=20)
    retry = RetryPolicy(first_delay=dt.timedelta(milliseconds=20),
                        max_delay=dt.timedelta(milliseconds=200), max_attempts=48)
    # Lots of 3: ten submission sets, each hit by the same faults (a cut answer, no answer…).
    dispatcher = Dispatcher(rig.store, client, credentials, source_id="2.25.1",
                            software=SOFTWARE, gate=Gatekeeping(load_matrix()), retry=retry,
                            lot_max=3)
    documents = 30
    jobs = [rig.queue(f"panne-{n}", lots=lots).id for n in range(documents)]
    injected = 0
    try:
        for _ in range(2000):
            if all(rig.job(j).state is JobState.DONE for j in jobs):
                break
            if rng.random() < 0.30:
                rig.simulator.faults.fail_next(InjectedFault(
                    kind=rng.choice(kinds), seconds=3.0, service="iti41"))
                injected += 1
            if not await dispatcher.run_once():
                await asyncio.sleep(0.02)
            rig.simulator.faults.clear()
    finally:
        await client.close()
    states = Counter(rig.job(j).state for j in jobs)
    attempts = [rig.job(j).attempts for j in jobs]
    unique_ids = Counter(d.unique_id for d in rig.simulator.store.documents()
                         if not d.is_signature)
    times = list(client.sent_at)
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    iti41 = sum(1 for r in rig.simulator.store.requests() if r.service == "iti41")
    print(f"\ntransient failures ({'lots' if lots else 'singles'}): documents={documents} "
          f"injected={injected} iti41={iti41} "
          f"lost={documents - len(unique_ids)} duplicated={sum(n - 1 for n in unique_ids.values())}"
          f" attempts max={max(attempts)} total={sum(attempts)} busiest-second={busiest}/20")
    assert states == {JobState.DONE: documents}
    assert len(unique_ids) == documents and set(unique_ids.values()) == {1}
    assert max(attempts) <= retry.max_attempts
    assert busiest <= 20


# -- lots of one patient and one author ------------------------------------------------------


def iti41_count(rig: Rig) -> int:
    return sum(1 for r in rig.simulator.store.requests() if r.service == "iti41")


def other_patient() -> dict[str, object]:
    sidecar = make_sidecar_dict()
    nir13 = "1840775123456"
    sidecar["patient"] = {**sidecar["patient"], "ins": f"{nir13}{nir_key(nir13):02d}",
                          "birth_date": "1984-07-12", "sex": "M", "given_names": ["JEAN"],
                          "birth_family_name": "PAT-QUATRE"}
    return sidecar


def titled(title: str) -> dict[str, object]:
    sidecar = make_sidecar_dict()
    sidecar["document"] = {**sidecar["document"], "title": title}
    return sidecar


async def drain(dispatcher: Dispatcher) -> None:
    while await dispatcher.run_once():
        pass


async def test_three_documents_of_one_patient_go_in_one_submission_set(rig: Rig) -> None:
    jobs = [rig.queue(f"lot-{n}", lots=True) for n in range(3)]
    assert await rig.dispatcher.run_once()
    after = [rig.job(j.id) for j in jobs]
    assert {(j.state, j.attempts) for j in after} == {(JobState.DONE, 1)}
    assert iti41_count(rig) == 1
    held = rig.simulator.store.documents()
    documents = [d for d in held if not d.is_signature]
    assert len(documents) == 3 and len([d for d in held if d.is_signature]) == 1
    assert len({d.submission_unique_id for d in held}) == 1
    assert {j.submission_unique_id for j in after} == {held[0].submission_unique_id}
    assert {j.document_unique_id for j in after} == {d.unique_id for d in documents}
    packages = {rig.store.package(j.id) for j in after}
    assert len(packages) == 1  # the same bytes for each job, each with its own uniqueId
    print(f"\nlot: documents=3 iti41={iti41_count(rig)} signatures=1 "
          f"submission sets={len({d.submission_unique_id for d in held})}")


async def test_a_lot_is_capped(rig: Rig, credentials: SoftwareCredentials) -> None:
    dispatcher = Dispatcher(rig.store, rig.client, credentials, source_id="2.25.1",
                            software=SOFTWARE, gate=Gatekeeping(load_matrix()), lot_max=4)
    jobs = [rig.queue(f"plafond-{n}", lots=True) for n in range(10)]
    await drain(dispatcher)
    assert {rig.job(j.id).state for j in jobs} == {JobState.DONE}
    assert iti41_count(rig) == 3  # 4 + 4 + 2
    assert rig.registered() == 10


async def test_two_patients_or_two_authors_are_never_mixed(rig: Rig) -> None:
    other_author = make_sidecar_dict()
    other_author["author"] = {**other_author["author"], "rpps": "10202020202"}
    kinds = [None, other_patient(), other_author]
    jobs = [rig.queue(f"melange-{n}", lots=True, sidecar=kinds[n % 3]) for n in range(9)]
    await drain(rig.dispatcher)
    assert {rig.job(j.id).state for j in jobs} == {JobState.DONE}
    assert iti41_count(rig) == 3
    by_set: dict[str, set[tuple[str, str]]] = {}
    for document in rig.simulator.store.documents():
        if not document.is_signature:
            by_set.setdefault(document.submission_unique_id, set()).add(
                (document.patient_id, document.author_id))
    assert len(by_set) == 3 and all(len(pairs) == 1 for pairs in by_set.values())
    assert len(set().union(*by_set.values())) == 3


async def test_a_lot_refused_for_one_bad_document_delivers_the_good_ones(rig: Rig) -> None:
    """The DMP refuses the whole lot because of one document: the lot is sent again as single
    documents (same uniqueIds), the good ones end done, the bad one dead."""
    rig.simulator.faults.fail_next(InjectedFault(code="XDSRegistryMetadataError",
                                                 service="iti41", in_part=b"MAUVAIS"), times=2)
    good1 = rig.queue("bon-1", lots=True)
    bad = rig.queue("mauvais", lots=True, sidecar=titled("Compte rendu MAUVAIS"))
    good2 = rig.queue("bon-2", lots=True)
    await rig.dispatcher.run_once()
    split = [rig.job(j.id) for j in (good1, bad, good2)]
    assert {j.state for j in split} == {JobState.QUEUED}
    assert all(rig.store.events(j.id)[-1].code == "LOT_SPLIT" for j in split)
    first_ids = [j.document_unique_id for j in split]
    await drain(rig.dispatcher)
    final = [rig.job(j.id) for j in (good1, bad, good2)]
    assert [j.state for j in final] == [JobState.DONE, JobState.DEAD, JobState.DONE]
    assert [j.document_unique_id for j in final] == first_ids  # minted once
    assert final[1].last_error_code == "XDSRegistryMetadataError"
    registered = {d.unique_id for d in rig.simulator.store.documents() if not d.is_signature}
    assert registered == {final[0].document_unique_id, final[2].document_unique_id}
    assert iti41_count(rig) == 4  # the refused lot, then three single documents
    assert all(j.attempts == 2 for j in final)


async def test_a_lot_whose_document_left_it_is_sent_again_one_by_one(
        rig: Rig, credentials: SoftwareCredentials) -> None:
    """A deferred lot is resent only with all its documents; one was held by a person in the
    meantime: the others go alone, and so does the held one once released (same uniqueIds)."""
    fast = RetryPolicy(first_delay=dt.timedelta(milliseconds=1),
                       max_delay=dt.timedelta(milliseconds=1))
    dispatcher = Dispatcher(rig.store, rig.client, credentials, source_id="2.25.1",
                            software=SOFTWARE, gate=Gatekeeping(load_matrix()), retry=fast)
    rig.simulator.faults.fail_next(InjectedFault(kind=FaultKind.REGISTRY_BUSY, service="iti41"))
    jobs = [rig.queue(f"parti-{n}", lots=True) for n in range(3)]
    await dispatcher.run_once()
    assert {rig.job(j.id).state for j in jobs} == {JobState.DEFERRED}
    ids = [rig.job(j.id).document_unique_id for j in jobs]
    now = dt.datetime.now(dt.UTC)
    rig.store.transition(jobs[1].id, JobState.HELD, code="TEST", message_fr="retenu", now=now)
    await asyncio.sleep(0.01)
    await drain(dispatcher)
    assert [rig.job(j.id).state for j in jobs] == [JobState.DONE, JobState.HELD, JobState.DONE]
    rig.store.transition(jobs[1].id, JobState.QUEUED, code="RELEASE", message_fr="libéré", now=now)
    await drain(dispatcher)
    assert {rig.job(j.id).state for j in jobs} == {JobState.DONE}
    assert [rig.job(j.id).document_unique_id for j in jobs] == ids
    per_id = Counter(d.unique_id for d in rig.simulator.store.documents() if not d.is_signature)
    assert set(per_id) == set(ids) and set(per_id.values()) == {1}
    assert iti41_count(rig) == 4  # the busy lot, then three single documents


async def test_a_lot_sent_without_answer_ends_done_exactly_once(
        rig: Rig, credentials: SoftwareCredentials) -> None:
    """The DMP registers the lot and never answers: each job is asked about by its own
    uniqueId and found; nothing is sent twice."""
    client = DmpClient(rig.simulator.base_url, credentials.ssl_context(), timeout_seconds=1.0,
                       rate_per_second=20)
    dispatcher = Dispatcher(rig.store, client, credentials, source_id="2.25.1",
                            software=SOFTWARE, gate=Gatekeeping(load_matrix()))
    rig.simulator.faults.fail_next(InjectedFault(kind=FaultKind.SANS_REPONSE, seconds=3,
                                                 service="iti41"))
    jobs = [rig.queue(f"sans-reponse-{n}", lots=True) for n in range(3)]
    try:
        await drain(dispatcher)
    finally:
        await client.close()
    for job in jobs:
        assert rig.job(job.id).state is JobState.DONE
        assert "DMP_OK_CONFIRMED" in [e.code for e in rig.store.events(job.id)]
    per_id = Counter(d.unique_id for d in rig.simulator.store.documents() if not d.is_signature)
    assert len(per_id) == 3 and set(per_id.values()) == {1}
    assert iti41_count(rig) == 1
    queries = [r for r in rig.simulator.store.requests() if r.service == "iti18"]
    assert len(queries) == 3  # one per job, by its own uniqueId


async def test_a_crash_after_sending_a_lot_resolves_each_job_by_its_own_unique_id(
        rig: Rig, credentials: SoftwareCredentials) -> None:
    rig.simulator.faults.fail_next(InjectedFault(kind=FaultKind.SANS_REPONSE, seconds=3,
                                                 service="iti41"))
    jobs = [rig.queue(f"crash-{n}", lots=True) for n in range(3)]
    task = asyncio.create_task(rig.dispatcher.run_once())
    for _ in range(100):
        if iti41_count(rig):
            break
        await asyncio.sleep(0.05)
    task.cancel()  # the process dies while the request waits for its answer
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert rig.store.recover_on_start(dt.datetime.now(dt.UTC)) == 3
    assert {rig.job(j.id).state for j in jobs} == {JobState.AMBIGUOUS}
    rig.simulator.faults.clear()
    await drain(rig.dispatcher)
    assert {rig.job(j.id).state for j in jobs} == {JobState.DONE}
    assert rig.registered() == 3 and iti41_count(rig) == 1


def test_a_document_keeps_its_cda_bytes_when_its_lot_is_sent_again_alone(
        credentials: SoftwareCredentials) -> None:
    """What makes a split safe: same inputs and uniqueId → the same CDA bytes."""
    request = parse_sidecar(json.dumps(make_sidecar_dict()).encode(), file_name="a.pdf")
    codes = resolve(load_matrix(), request.author, kind=request.kind).codes
    pdf = make_pdf(["un"])
    document = uuid.uuid4()
    signing = {"source_id": "2.25.1", "certificate": credentials.signing_certificate,
               "sign": credentials.sign}
    lot = build_lot_package(
        [LotDocument(request, make_pdf(["autre"]), codes, uuid.uuid4()),
         LotDocument(request, pdf, codes, document)],
        submission_id=uuid.uuid4(), signature_id=uuid.uuid4(),
        now=dt.datetime.now(dt.UTC), **signing)  # type: ignore[arg-type]
    alone = build_package(request, pdf, codes=codes,
                          ids=MintedIds(document, uuid.uuid4(), uuid.uuid4()),
                          now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5),
                          **signing)  # type: ignore[arg-type]
    assert alone.document_unique_id == lot.other_document_unique_ids[0]
    assert own_cda(alone, alone.document_unique_id) == own_cda(lot, alone.document_unique_id)


# -- credentials per author, long waits, purge -----------------------------------------------


class AnyStructure:
    """The same credentials, allowed to send for every structure (a card for the author)."""

    def __init__(self, inner: SoftwareCredentials) -> None:
        self._inner = inner
        self.issuer_dn = inner.issuer_dn
        self.signing_certificate = inner.signing_certificate
        self.sign = inner.sign
        self.sign_vihf = inner.sign_vihf
        self.auth_mode = inner.auth_mode
        self.sender = inner.sender

    def may_send_as(self, author: Author) -> bool:
        return True


def other_structure() -> dict[str, object]:
    sidecar = make_sidecar_dict()
    sidecar["author"] = {**sidecar["author"], "structure_id": "410101010101999"}
    return sidecar


async def test_a_job_for_another_structure_waits_without_using_an_attempt(
        rig: Rig, credentials: SoftwareCredentials) -> None:
    waiting = rig.queue("autre-structure", sidecar=other_structure(), lots=True)
    mine = rig.queue("ma-structure", lots=True)
    await drain(rig.dispatcher)
    after = rig.job(waiting.id)
    assert (after.state, after.attempts) == (JobState.DEFERRED, 0)
    assert after.last_error_code == "AWAITING_CREDENTIALS"
    assert "en attente des identifiants de la structure 410101010101999" in (
        after.last_error_fr or "")
    assert after.next_attempt_at is not None
    assert after.next_attempt_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert rig.job(mine.id).state is JobState.DONE
    assert iti41_count(rig) == 1 and rig.registered() == 1
    # Credentials that may send for it are opened: it goes at once, first attempt.
    rig.dispatcher.replace_credentials(AnyStructure(credentials))
    assert await rig.dispatcher.run_once()
    assert (rig.job(waiting.id).state, rig.job(waiting.id).attempts) == (JobState.DONE, 1)


class PulledCard(AnyStructure):
    """Credentials whose card was pulled out between packaging and signing the VIHF."""

    def __init__(self, inner: SoftwareCredentials) -> None:
        super().__init__(inner)

        def sign_vihf(assertion: object) -> object:
            raise CardAbsent("La carte CPS a été retirée du lecteur.")

        self.sign_vihf = sign_vihf


async def test_a_card_pulled_out_mid_send_costs_no_attempt_and_pauses_nothing_else(
        rig: Rig, credentials: SoftwareCredentials) -> None:
    job = rig.queue("carte-retiree")
    rig.dispatcher.replace_credentials(PulledCard(credentials))
    assert await rig.dispatcher.run_once()
    after = rig.job(job.id)
    assert (after.state, after.attempts, after.last_error_code) == (
        JobState.DEFERRED, 0, "CARD_ABSENT")
    assert after.next_attempt_at is not None
    assert after.next_attempt_at <= dt.datetime.now(dt.UTC) + CARD_RECHECK
    assert rig.dispatcher.paused_until is None  # other credentials may keep sending
    assert iti41_count(rig) == 0
    # The card is back: the document goes with its first attempt.
    rig.dispatcher.replace_credentials(credentials)
    rig.store.transition(job.id, JobState.ACTIVE, code="TEST", message_fr="test",
                         now=dt.datetime.now(dt.UTC), lease=dt.timedelta(minutes=1))
    rig.store.transition(job.id, JobState.QUEUED, code="TEST", message_fr="test",
                         now=dt.datetime.now(dt.UTC))
    assert await rig.dispatcher.run_once()
    assert (rig.job(job.id).state, rig.job(job.id).attempts) == (JobState.DONE, 1)


async def test_a_long_wait_is_warned_once_even_across_a_restart(
        rig: Rig, credentials: SoftwareCredentials) -> None:
    old = rig.queue("vieux", sidecar=other_structure(),
                    received_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=25))
    young = rig.queue("jeune", sidecar=other_structure())
    with capture_logs() as logs:
        await rig.dispatcher.run_once()
        await rig.dispatcher.run_once()
        restarted = Dispatcher(rig.store, rig.client, credentials,
                               source_id="2.25.1", software=SOFTWARE,
                               gate=Gatekeeping(load_matrix()))
        await restarted.run_once()
    warnings = [e for e in logs if e["event"] == "job_waiting_long"]
    assert [(e["job_id"], e["alert"]) for e in warnings] == [(old.id, True)]
    assert [e.code for e in rig.store.events(old.id)].count("QUEUE_AGE_WARNING") == 1
    assert "QUEUE_AGE_WARNING" not in [e.code for e in rig.store.events(young.id)]
    assert rig.job(old.id).state is JobState.DEFERRED  # still waiting, never dead for that


async def test_the_purge_keeps_the_invariant_and_the_history(rig: Rig) -> None:
    jobs = [rig.queue(f"purge-{n}", lots=True) for n in range(3)]
    waiting = rig.queue("en-attente", sidecar=other_structure())
    await drain(rig.dispatcher)
    before = {j.id: (rig.job(j.id), rig.store.events(j.id)) for j in jobs}
    care = QueueCare(rig.store, lifetime=dt.timedelta(days=14),
                     retention=dt.timedelta(days=90))
    await care.sweep(dt.datetime.now(dt.UTC) + dt.timedelta(days=89))
    assert rig.store.payload(jobs[0].id)  # not yet
    await care.sweep(dt.datetime.now(dt.UTC) + dt.timedelta(days=91))
    for job in jobs:
        old, history = before[job.id]
        now = rig.job(job.id)
        assert now.purged_at is not None and now.state is JobState.DONE
        assert (now.payload_sha256, now.document_unique_id, now.submission_unique_id) == (
            old.payload_sha256, old.document_unique_id, old.submission_unique_id)
        events = rig.store.events(job.id)
        assert events[: len(history)] == history and events[-1].code == "PAYLOAD_PURGED"
        with pytest.raises(PayloadPurged):
            rig.store.payload(job.id)
    assert rig.store.payload(waiting.id)  # only done jobs are purged
    counts, received = rig.store.tally()
    assert conservation(counts, received) and received == 4
    print(f"\npurge: received={received} done={counts[JobState.DONE]} "
          f"invariant={'ok' if conservation(counts, received) else 'BROKEN'}")


# -- a CDA received from the source goes as it is ----------------------------------------------


def queue_cda(rig: Rig, key: str, cda: bytes, sidecar: dict[str, object]) -> Job:
    """A received CDA, queued as the MLLP server does (with the runner's lot keys: it gets none)."""
    intake = Intake("mllp", f"{key}.xml", key, cda, json.dumps(sidecar).encode(),
                    dt.datetime.now(dt.UTC))
    job, _ = rig.store.enqueue(with_lot_keys(intake))
    return job


async def test_a_received_cda_is_stored_by_the_dmp_byte_for_byte(rig: Rig) -> None:
    from bridge.cda import build_cda
    from tests.factories import make_clinical_document

    clinical = make_clinical_document()
    cda = build_cda(clinical)
    job = queue_cda(rig, "cda", cda, make_sidecar_dict())
    pdf_job = rig.queue("pdf", lots=True)  # same patient and author: never in a lot with it
    await drain(rig.dispatcher)
    assert rig.job(job.id).state is JobState.DONE, rig.store.events(job.id)
    assert rig.job(pdf_job.id).state is JobState.DONE
    assert iti41_count(rig) == 2
    [stored] = [d for d in rig.simulator.store.documents()
                if not d.is_signature and d.unique_id == clinical.unique_id]
    assert stored.content == cda
    assert rig.job(job.id).document_unique_id == clinical.unique_id


ANS_VACCINATION = Path(__file__).parent / "fixtures" / "ans" / "13-cda-n3-note-vaccination.xml"


def vaccination_sidecar() -> dict[str, object]:
    """The ANS sample's patient and doctor, in the test PKI's structure (the credentials')."""
    sidecar = make_sidecar_dict()
    sidecar["patient"] = {**sidecar["patient"], "ins": "279035121518989",
                          "ins_oid": "1.2.250.1.213.1.4.10", "identity_status": "QUAL",
                          "used_family_name": "PAT-TROIS"}
    sidecar["document"] = {"kind": "87273-9", "title": "NOTE DE VACCINATION",
                           "date": "2021-04-09T15:35:00+01:00"}
    sidecar["author"] = {**sidecar["author"], "rpps": "01234567897", "family_name": "MULLER",
                         "given_name": "Charles", "profession": "10",
                         "specialty": "G15_10/SM26"}
    return sidecar


async def test_a_level_3_vaccination_note_is_not_held_as_structured_required(rig: Rig) -> None:
    cda = ANS_VACCINATION.read_bytes()
    job = queue_cda(rig, "vac", cda, vaccination_sidecar())
    await drain(rig.dispatcher)
    final = rig.job(job.id)
    assert final.state is not JobState.HELD, rig.store.events(job.id)
    assert all(e.code != "STRUCTURED_REQUIRED" for e in rig.store.events(job.id))
    assert final.state is JobState.DONE, [(e.code, e.message_fr) for e in rig.store.events(job.id)]
    [stored] = [d for d in rig.simulator.store.documents() if not d.is_signature]
    assert (stored.content, stored.unique_id) == (cda, "1.2.250.1.213.1.1.1.46.2023.1.1")
