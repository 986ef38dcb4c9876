"""Every DMP transaction of the bridge's client against the real simulator, over mutual TLS: the
simulator's stored state shows the effect (documents registered, deprecated, deleted, archived,
hidden) and TD0.2 reports the patient states set through its admin API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bridge.iti18 import AvailabilityStatus
from bridge.iti57 import VisibilityFlag
from bridge.packaging import oid_from_uuid
from bridge.td02 import Authorization, DmpState
from bridge.vihf import Software
from connectors.dmp_client import DmpClient
from connectors.dmp_transactions import DmpQueryFailed, DmpTransactions, Outcome
from connectors.software_credentials import SoftwareCredentials
from service.simulator import RunningSimulator, SimulatorConfig, start_simulator
from service.simulator.storage import StoredDocument
from service.test_pki import pki_layout
from tests.factories import make_author, make_patient
from tests.transaction_helpers import make_lot_document, make_request

SOFTWARE = Software("dmp-bridge", "0.1.0", "1.2.250.1.999.7.1", "BCO-465897-tmp2")
SOURCE_ID = "1.2.250.1.999.1.1"
PATIENT = make_patient().ins
NURSE = make_author()
APPROVED, DEPRECATED, ARCHIVED, DELETED = (
    AvailabilityStatus.APPROVED.value, AvailabilityStatus.DEPRECATED.value,
    AvailabilityStatus.ARCHIVED.value, AvailabilityStatus.DELETED.value)


@pytest.fixture
async def sim(pki_dir: Path, credentials: SoftwareCredentials,
              tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    pki = pki_layout(pki_dir)  # made by the `credentials` fixture
    running = await start_simulator(SimulatorConfig(
        db_path=tmp_path / "simulateur.sqlite", ca_cert=pki.ca_cert,
        server_cert=pki.server.cert, server_key=pki.server.key))
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def dmp(sim: RunningSimulator,
              credentials: SoftwareCredentials) -> AsyncIterator[DmpTransactions]:
    async with DmpClient(sim.base_url, credentials.ssl_context()) as client:
        yield DmpTransactions(client, credentials, software=SOFTWARE, source_id=SOURCE_ID)


def stored(sim: RunningSimulator, unique_id: str) -> list[StoredDocument]:
    return sim.store.by_unique_id(unique_id)


def assert_ok(outcome: Outcome) -> None:
    assert outcome.ok, f"{outcome.code}: {outcome.message_fr}"


async def feed_one(dmp: DmpTransactions) -> str:
    document = make_lot_document()
    assert_ok(await dmp.feed([document]))
    return oid_from_uuid(document.document_id)


async def set_patient_state(sim: RunningSimulator, credentials: SoftwareCredentials,
                            state: str) -> None:
    url = f"https://{sim.config.host}:{sim.port}/_simulateur/admin/patients"
    async with aiohttp.ClientSession() as session, session.post(
            url, json={"ins": PATIENT.matricule, "etat": state},
            ssl=credentials.ssl_context()) as response:
        assert response.status == 200, await response.text()


async def test_feed_a_lot_of_two_documents(sim: RunningSimulator, dmp: DmpTransactions) -> None:
    documents = [make_lot_document(), make_lot_document()]
    outcome = await dmp.feed(documents)
    assert_ok(outcome)
    assert outcome.package is not None
    for document in documents:
        (entry,) = stored(sim, oid_from_uuid(document.document_id))
        assert entry.status == APPROVED and not entry.is_signature
    assert len([d for d in sim.store.documents() if d.is_signature]) == 1

    found = await dmp.find_documents(PATIENT, author=NURSE)
    assert {e.unique_id for e in found} == set(outcome.package.document_unique_ids)
    assert all(e.version == 1 and e.logical_id == e.entry_uuid for e in found)


async def test_find_entry_gives_the_entry_uuid_or_none(sim: RunningSimulator,
                                                      dmp: DmpTransactions) -> None:
    unique_id = await feed_one(dmp)
    entry = await dmp.find_entry(PATIENT, unique_id, author=NURSE)
    assert entry is not None
    (registered,) = stored(sim, unique_id)
    assert entry.entry_uuid == registered.entry_uuid
    assert (entry.hash, entry.size) == (registered.hash, registered.size)
    assert [c.code for c in entry.confidentiality] == ["N"]
    assert await dmp.find_entry(PATIENT, oid_from_uuid(uuid.uuid4()), author=NURSE) is None


async def test_replace_deprecates_the_previous_version(sim: RunningSimulator,
                                                       dmp: DmpTransactions) -> None:
    first = make_lot_document()
    assert_ok(await dmp.feed([first]))
    first_uid = oid_from_uuid(first.document_id)
    outcome = await dmp.replace(make_request(title="Compte rendu corrigé"), first.pdf,
                                codes=first.codes, replaced_unique_id=first_uid)
    assert_ok(outcome)
    assert outcome.package is not None
    (old,) = stored(sim, first_uid)
    (new,) = stored(sim, outcome.package.document_unique_id)
    assert old.status == DEPRECATED
    assert new.status == APPROVED
    # Replacing what is no longer the live version is refused before anything is sent.
    again = await dmp.replace(make_request(), first.pdf, codes=first.codes,
                              replaced_unique_id=first_uid)
    assert not again.ok and again.code == "DMP_DOCUMENT_INTROUVABLE"


async def test_delete(sim: RunningSimulator, dmp: DmpTransactions) -> None:
    unique_id = await feed_one(dmp)
    other = make_author(rpps="10101010102", family_name="AUTRE")
    refused = await dmp.delete(PATIENT, unique_id, author=other)
    assert not refused.ok and refused.code == "DMP_SUPPRESSION_NON_AUTEUR"
    assert_ok(await dmp.delete(PATIENT, unique_id, author=NURSE))
    (entry,) = stored(sim, unique_id)
    assert entry.status == DELETED


async def test_archive_then_unarchive(sim: RunningSimulator, dmp: DmpTransactions) -> None:
    unique_id = await feed_one(dmp)
    assert_ok(await dmp.archive(PATIENT, unique_id, author=NURSE))
    assert [e.status for e in stored(sim, unique_id)] == [ARCHIVED]
    assert_ok(await dmp.unarchive(PATIENT, unique_id, author=NURSE))
    assert [e.status for e in stored(sim, unique_id)] == [APPROVED]


async def test_hide_then_show_again(sim: RunningSimulator, dmp: DmpTransactions) -> None:
    unique_id = await feed_one(dmp)
    before = await dmp.find_entry(PATIENT, unique_id, author=NURSE)
    assert before is not None
    outcome = await dmp.set_visibility(
        PATIENT, unique_id, author=NURSE,
        add=[VisibilityFlag.MASQUE_PS, VisibilityFlag.INVISIBLE_PATIENT])
    assert_ok(outcome)
    hidden = await dmp.find_entry(PATIENT, unique_id, author=NURSE)
    assert hidden is not None
    assert hidden.entry_uuid != before.entry_uuid
    assert hidden.logical_id == before.logical_id
    assert hidden.version == (before.version or 1) + 1
    assert [c.code for c in hidden.confidentiality] == ["N", "MASQUE_PS", "INVISIBLE_PATIENT"]
    by_uuid = {e.entry_uuid: e for e in stored(sim, unique_id)}
    assert by_uuid[before.entry_uuid].status == DEPRECATED
    assert by_uuid[hidden.entry_uuid].status == APPROVED
    assert b"MASQUE_PS" in by_uuid[hidden.entry_uuid].metadata_xml

    assert_ok(await dmp.set_visibility(PATIENT, unique_id, author=NURSE,
                                       remove=[VisibilityFlag.MASQUE_PS]))
    shown = await dmp.find_entry(PATIENT, unique_id, author=NURSE)
    assert shown is not None and shown.logical_id == before.logical_id
    assert [c.code for c in shown.confidentiality] == ["N", "INVISIBLE_PATIENT"]


@pytest.mark.parametrize(("state", "expected"), [
    (None, DmpState.OUVERT),
    ("ferme", DmpState.FERME),
    ("sans_dmp", DmpState.ABSENT),
])
async def test_existence(sim: RunningSimulator, dmp: DmpTransactions,
                         credentials: SoftwareCredentials, state: str | None,
                         expected: DmpState) -> None:
    if state is not None:
        await set_patient_state(sim, credentials, state)
    status = await dmp.test_existence(PATIENT, author=NURSE)
    assert status.state is expected, status.message_fr
    if expected is DmpState.OUVERT:
        assert status.authorization is Authorization.AUTORISE
        assert status.patient_ins == PATIENT.matricule


async def test_refusals_come_back_as_french_outcomes(sim: RunningSimulator,
                                                     dmp: DmpTransactions,
                                                     credentials: SoftwareCredentials) -> None:
    unique_id = await feed_one(dmp)
    await set_patient_state(sim, credentials, "autorisation_absente")
    with pytest.raises(DmpQueryFailed) as refused:
        await dmp.find_documents(PATIENT, author=NURSE)
    assert refused.value.code == "DMP_AUTORISATION_ABSENTE"
    # Finding one's own document by its uniqueId stays allowed (TD3.1b before an update).
    assert await dmp.find_entry(PATIENT, unique_id, author=NURSE) is not None

    await set_patient_state(sim, credentials, "sans_dmp")
    outcome = await dmp.feed([make_lot_document()])
    assert not outcome.ok and outcome.code == "XDSUnknownPatientId"
    assert outcome.decision is not None and outcome.message_fr
