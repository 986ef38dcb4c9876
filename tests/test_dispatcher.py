"""The dispatcher's reaction to each kind of DMP answer, against the real simulator over mutual
TLS: retry later, wait for a person, give up, or pause everything — and never lose a job."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.dmp_answer import STATE_OF
from bridge.dmp_error_table import ERROR_TABLE, INVENTED_DMP_CODES, ErrorClass
from bridge.jobs import Intake, Job, JobState
from bridge.retry import RetryPolicy
from bridge.vihf import Software
from connectors.dmp_client import DmpClient
from connectors.software_credentials import SoftwareCredentials
from connectors.sqlite_store import SqliteStore
from mappings.matrix_load import load_matrix
from service.dispatcher import Dispatcher, Gatekeeping
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

    def queue(self, key: str, *, received_at: dt.datetime | None = None,
              sidecar: dict[str, object] | None = None) -> Job:
        job, _ = self.store.enqueue(Intake(
            "folder", f"{key}.pdf", key, make_pdf([key]),
            json.dumps(sidecar or make_sidecar_dict()).encode(),
            received_at or dt.datetime.now(dt.UTC)))
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


async def test_a_document_past_its_lifetime_ends_dead_never_deleted(rig: Rig) -> None:
    old = rig.queue("ancien", received_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=15))
    fresh = rig.queue("recent")
    await rig.dispatcher.run_once()
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


async def test_with_30_percent_of_calls_failing_everything_is_delivered_once(
        rig: Rig, credentials: SoftwareCredentials) -> None:
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
    dispatcher = Dispatcher(rig.store, client, credentials, source_id="2.25.1",
                            software=SOFTWARE, gate=Gatekeeping(load_matrix()), retry=retry)
    documents = 30
    jobs = [rig.queue(f"panne-{n}").id for n in range(documents)]
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
    print(f"\ntransient failures: documents={documents} injected={injected} "
          f"lost={documents - len(unique_ids)} duplicated={sum(n - 1 for n in unique_ids.values())}"
          f" attempts max={max(attempts)} total={sum(attempts)} busiest-second={busiest}/20")
    assert states == {JobState.DONE: documents}
    assert len(unique_ids) == documents and set(unique_ids.values()) == {1}
    assert max(attempts) <= retry.max_attempts
    assert busiest <= 20
