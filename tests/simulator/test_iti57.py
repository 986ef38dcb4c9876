"""ITI-57 on real mutual TLS: deletion (author only), archive / unarchive, metadata update (a
new entryUUID with the same logicalId), and the refusals of each.
"""

from __future__ import annotations

import aiohttp
import pytest

from service.simulator import RunningSimulator
from tests.simulator.exchange import FAILURE, SUCCESS
from tests.simulator.flows import leaf, register, registry, send, status_of
from tests.simulator.pki_maker import SimPki
from tests.simulator.wire import WireSpec, find_documents
from tests.simulator.wire57 import metadata_update, status_change
from tests.simulator.wire_base import APPROVED, ARCHIVED, DELETED, DEPRECATED, RIM

ITI57_RESPONSE = "urn:ihe:iti:2010:UpdateDocumentSetResponse"


async def test_author_deletes(simulator: RunningSimulator, pki: SimPki,
                              session: aiohttp.ClientSession) -> None:
    spec, doc = await register(session, pki, simulator)
    answer = await send(session, pki, simulator, status_change(
        pki, registry(simulator), spec, doc.entry_uuid, APPROVED, DELETED))
    assert answer.status == SUCCESS, answer.codes
    assert answer.header("Action") == ITI57_RESPONSE
    assert status_of(simulator, doc.entry_uuid) == DELETED
    listed = await send(session, pki, simulator, find_documents(
        pki, registry(simulator), spec, statuses=None))
    assert listed.envelope.findall(f".//{{{RIM}}}ExtrinsicObject") == []
    asked = await send(session, pki, simulator, find_documents(
        pki, registry(simulator), spec, statuses=(DELETED,)))
    shown = asked.envelope.findall(f".//{{{RIM}}}ExtrinsicObject")
    assert [e.get("status") for e in shown] == [DELETED]


async def test_archive_then_unarchive(simulator: RunningSimulator, pki: SimPki,
                                      session: aiohttp.ClientSession) -> None:
    spec, doc = await register(session, pki, simulator)
    for original, new in ((APPROVED, ARCHIVED), (ARCHIVED, APPROVED)):
        answer = await send(session, pki, simulator, status_change(
            pki, registry(simulator), spec, doc.entry_uuid, original, new))
        assert answer.status == SUCCESS, answer.codes
        assert status_of(simulator, doc.entry_uuid) == new


async def test_masking_creates_a_new_version(simulator: RunningSimulator, pki: SimPki,
                                             session: aiohttp.ClientSession) -> None:
    spec, doc = await register(session, pki, simulator)
    current = await leaf(session, pki, simulator, spec, doc.entry_uuid)
    assert current.get("lid") == doc.entry_uuid
    assert current.find(f"{{{RIM}}}VersionInfo").get("versionName") == "1"
    answer = await send(session, pki, simulator, metadata_update(
        pki, registry(simulator), spec, current, previous_version="1"))
    assert answer.status == SUCCESS, answer.codes
    versions = simulator.store.by_logical_id(doc.entry_uuid)
    assert [(v.version, v.status) for v in versions] == [(1, DEPRECATED), (2, APPROVED)]
    new = versions[1]
    assert new.entry_uuid != doc.entry_uuid and new.unique_id == doc.unique_id
    assert new.content == doc.content
    shown = await leaf(session, pki, simulator, spec, new.entry_uuid)
    assert shown.get("lid") == doc.entry_uuid
    assert shown.find(f"{{{RIM}}}VersionInfo").get("versionName") == "2"
    assert b'nodeRepresentation="MASQUE_PS"' in new.metadata_xml
    # Masked to professionals: hidden from another professional's FindDocuments.
    other = WireSpec(name_id="899700999999")
    found = await send(session, pki, simulator, find_documents(pki, registry(simulator), other))
    assert found.envelope.findall(f".//{{{RIM}}}ExtrinsicObject") == []
    mine = await send(session, pki, simulator, find_documents(pki, registry(simulator), spec))
    assert [e.get("id") for e in mine.envelope.findall(f".//{{{RIM}}}ExtrinsicObject")] == [
        new.entry_uuid]


@pytest.mark.parametrize(("case", "expected"), [
    ("non_auteur", "DMP_SUPPRESSION_NON_AUTEUR"),
    ("mauvais_etat_initial", "XDSMetadataUpdateError"),
    ("transition_interdite", "XDSMetadataUpdateError"),
    ("document_inconnu", "XDSMetadataUpdateError"),
    ("autre_patient", "XDSPatientIdDoesNotMatch"),
    ("sans_hasmember", "XDSRegistryMetadataError"),
])
async def test_availability_refusals(simulator: RunningSimulator, pki: SimPki,
                                     session: aiohttp.ClientSession, case: str,
                                     expected: str) -> None:
    _, doc = await register(session, pki, simulator)
    target, original, new, member = doc.entry_uuid, APPROVED, DELETED, True
    caller = WireSpec()
    if case == "non_auteur":
        caller = WireSpec(name_id="899700999999")
    elif case == "mauvais_etat_initial":
        original = ARCHIVED
    elif case == "transition_interdite":
        new = DEPRECATED
    elif case == "document_inconnu":
        target = "urn:uuid:00000000-0000-4000-8000-000000000000"
    elif case == "autre_patient":
        caller = WireSpec(ins="184127645108946")
    elif case == "sans_hasmember":
        member = False
    answer = await send(session, pki, simulator, status_change(
        pki, registry(simulator), caller, target, original, new, member=member))
    assert answer.status == FAILURE
    assert answer.codes == {expected}
    assert status_of(simulator, doc.entry_uuid) == APPROVED


@pytest.mark.parametrize(("case", "expected"), [
    ("version_perimee", "XDSMetadataVersionError"),
    ("lid_inconnu", "XDSMetadataUpdateError"),
    ("drapeau_inconnu", "XDSRegistryMetadataError"),
])
async def test_metadata_update_refusals(simulator: RunningSimulator, pki: SimPki,
                                        session: aiohttp.ClientSession, case: str,
                                        expected: str) -> None:
    spec, doc = await register(session, pki, simulator)
    current = await leaf(session, pki, simulator, spec, doc.entry_uuid)
    kwargs: dict[str, object] = {"previous_version": "1"}
    if case == "version_perimee":
        kwargs["previous_version"] = "7"
    elif case == "lid_inconnu":
        kwargs["lid"] = "urn:uuid:00000000-0000-4000-8000-000000000000"
    elif case == "drapeau_inconnu":
        kwargs["flags"] = ("MASQUE_TOUT",)
    answer = await send(session, pki, simulator, metadata_update(
        pki, registry(simulator), spec, current, **kwargs))  # type: ignore[arg-type]
    assert answer.status == FAILURE
    assert answer.codes == {expected}
    assert len(simulator.store.by_logical_id(doc.entry_uuid)) == 1


async def test_update_of_a_deprecated_version_is_refused(
    simulator: RunningSimulator, pki: SimPki, session: aiohttp.ClientSession
) -> None:
    spec, doc = await register(session, pki, simulator)
    current = await leaf(session, pki, simulator, spec, doc.entry_uuid)
    ok = await send(session, pki, simulator, metadata_update(
        pki, registry(simulator), spec, current, previous_version="1"))
    assert ok.status == SUCCESS
    again = await send(session, pki, simulator, metadata_update(
        pki, registry(simulator), spec, current, previous_version="1"))
    assert again.codes == {"XDSMetadataVersionError"}
