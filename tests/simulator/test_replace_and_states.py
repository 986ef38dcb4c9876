"""RPLC on ITI-41, TD0.2 and the patient states, on real mutual TLS."""

from __future__ import annotations

import aiohttp
import pytest
from lxml import etree

from service.simulator import PatientState, RunningSimulator
from tests.simulator.exchange import FAILURE, SUCCESS, admin, post
from tests.simulator.flows import register, registry, repository, send, status_of
from tests.simulator.pki_maker import SimPki
from tests.simulator.wire import WireSpec, build_iti41, find_documents, get_documents
from tests.simulator.wire57 import status_change, td02
from tests.simulator.wire_base import APPROVED, ARCHIVED, DEPRECATED, HL7, Replaced

NS = {"hl7": HL7}


def _replacing(spec: WireSpec, entry_uuid: str, **changes: object) -> WireSpec:
    replaced = Replaced(entry_uuid, spec.doc_uid, spec.set_id or f"{spec.doc_uid}.1", 1)
    new = WireSpec(replaces=replaced, set_id=replaced.set_id, version=2)
    for name, value in changes.items():
        setattr(new, name, value)
    return new


async def test_replacement_deprecates_the_old_version(
    simulator: RunningSimulator, pki: SimPki, session: aiohttp.ClientSession
) -> None:
    spec, old = await register(session, pki, simulator)
    _, new = await register(session, pki, simulator, _replacing(spec, old.entry_uuid))
    assert status_of(simulator, old.entry_uuid) == DEPRECATED
    assert new.status == APPROVED and new.entry_uuid != old.entry_uuid
    found = await send(session, pki, simulator, find_documents(pki, registry(simulator), spec))
    assert [e.get("id") for e in found.envelope.iter("{*}ExtrinsicObject")] == [new.entry_uuid]


@pytest.mark.parametrize("case", ["inconnu", "deja_remplace", "archive", "autre_patient",
                                  "parent_cda", "version"])
async def test_replacement_refusals(simulator: RunningSimulator, pki: SimPki,
                                    session: aiohttp.ClientSession, case: str) -> None:
    spec, old = await register(session, pki, simulator)
    new = _replacing(spec, old.entry_uuid)
    if case == "inconnu":
        new = _replacing(spec, "urn:uuid:00000000-0000-4000-8000-000000000000")
    elif case == "deja_remplace":
        await register(session, pki, simulator, _replacing(spec, old.entry_uuid))
    elif case == "archive":
        answer = await send(session, pki, simulator, status_change(
            pki, registry(simulator), spec, old.entry_uuid, APPROVED, ARCHIVED))
        assert answer.status == SUCCESS
    elif case == "autre_patient":
        _, other = await register(session, pki, simulator, WireSpec(ins="184127645108946"))
        new = _replacing(spec, other.entry_uuid)
    elif case == "parent_cda":
        new.replaces = Replaced(old.entry_uuid, "1.2.3.4", new.set_id or "", 1)
    elif case == "version":
        new.version = 1
    new.to = repository(simulator)
    answer = await post(session, pki, new.to, build_iti41(pki, new))
    assert answer.status == FAILURE
    assert answer.codes == {"XDSReplaceFailed"}
    assert simulator.store.by_unique_id(new.doc_uid) == []


async def _td02(session: aiohttp.ClientSession, pki: SimPki, sim: RunningSimulator,
                spec: WireSpec) -> etree._Element:
    answer = await post(session, pki, f"{sim.base_url}/patients",
                        td02(pki, f"{sim.base_url}/patients", spec))
    assert answer.http_status == 200, answer.codes
    found = answer.envelope.find(".//hl7:PRPA_IN201310UV02", NS)
    assert found is not None
    return found


def _value(root: etree._Element, path: str) -> str | None:
    found = root.find(path, NS)
    return None if found is None else found.get("code")


@pytest.mark.parametrize(("state", "response", "status", "authorisation"), [
    ("ouvert", "OK", "active", "AUTORISE"),
    ("sans_dmp", "NF", None, None),
    ("ferme", "OK", "terminated", "AUTORISE"),
    ("ps_bloque", "OK", "active", "INTERDIT"),
    ("autorisation_absente", "OK", "active", "NON_AUTORISE"),
])
async def test_td02_reports_the_patient_state(
    simulator: RunningSimulator, pki: SimPki, session: aiohttp.ClientSession, state: str,
    response: str, status: str | None, authorisation: str | None,
) -> None:
    spec = WireSpec()
    await admin(session, pki, f"{simulator.admin_url}/patients", {"ins": spec.ins, "etat": state})
    answer = await _td02(session, pki, simulator, spec)
    assert _value(answer, "hl7:acknowledgement/hl7:typeCode") == "AA"
    assert _value(answer, "hl7:controlActProcess/hl7:queryAck/hl7:queryResponseCode") == response
    event = "hl7:controlActProcess/hl7:subject/hl7:registrationEvent"
    assert _value(answer, f"{event}/hl7:statusCode") == status
    assert _value(answer, f"{event}/hl7:subject1/hl7:patient/hl7:subjectOf/hl7:observation/"
                          "hl7:code") == authorisation


async def test_td02_refusals(simulator: RunningSimulator, pki: SimPki,
                             session: aiohttp.ClientSession) -> None:
    url = f"{simulator.base_url}/patients"
    bad_reason = await post(session, pki, url, td02(pki, url, WireSpec(), reason="AUTRE"))
    assert bad_reason.http_status == 500 and bad_reason.fault_code == "DMP_TD02_INVALIDE"
    not_ins = await post(session, pki, url, td02(pki, url, WireSpec(), ins_root="1.2.3"))
    assert not_ins.fault_code == "DMP_TD02_INVALIDE"


@pytest.mark.parametrize(("state", "feed", "find"), [
    ("sans_dmp", "XDSUnknownPatientId", "XDSUnknownPatientId"),
    ("ferme", "DMP_DOSSIER_FERME", "DMP_DOSSIER_FERME"),
    ("opposition", "DMP_OPPOSITION_PATIENT", "DMP_OPPOSITION_PATIENT"),
    ("ps_bloque", "DMP_PS_BLOQUE", "DMP_PS_BLOQUE"),
    ("autorisation_absente", None, "DMP_AUTORISATION_ABSENTE"),
])
async def test_patient_states_refuse(simulator: RunningSimulator, pki: SimPki,
                                     session: aiohttp.ClientSession, state: str,
                                     feed: str | None, find: str) -> None:
    spec = WireSpec(to=repository(simulator))
    simulator.patients.set(spec.ins, PatientState(state))
    answer = await post(session, pki, spec.to, build_iti41(pki, spec))
    assert answer.codes == ({feed} if feed else set())
    found = await send(session, pki, simulator, find_documents(pki, registry(simulator), spec))
    assert found.codes == {find}
    if feed is None:  # feeding accepted; the author may still read his own document
        own = await send(session, pki, simulator, get_documents(
            pki, registry(simulator), spec, unique_id=spec.doc_uid))
        assert own.status == SUCCESS
        other = await send(session, pki, simulator, get_documents(
            pki, registry(simulator), WireSpec(name_id="899700999999"), unique_id=spec.doc_uid))
        assert other.codes == {"DMP_AUTORISATION_ABSENTE"}
