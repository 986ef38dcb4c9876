"""ITI-18 after a registration, the state page, TLS refusal and routing faults."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from bridge.schemas import SchemaName, validation_errors
from service.simulator import RunningSimulator
from service.test_pki import TestPki as Pki
from tests.simulator.exchange import NS, SUCCESS, client_tls, post, post_raw
from tests.simulator.wire import WireSpec, build_iti41, find_documents, get_documents

RIM = NS["rim"]


async def _register(session: aiohttp.ClientSession, pki: Pki, sim: RunningSimulator) -> WireSpec:
    spec = WireSpec(to=f"{sim.base_url}/repository")
    answer = await post(session, pki, spec.to, build_iti41(pki, spec))
    assert answer.status == SUCCESS, answer.error_codes
    return spec


async def test_find_and_get_documents(simulator: RunningSimulator, pki: Pki,
                                      session: aiohttp.ClientSession) -> None:
    spec = await _register(session, pki, simulator)
    registry = f"{simulator.base_url}/registry"
    found = await post(session, pki, registry, find_documents(pki, registry, spec))
    assert found.status == SUCCESS
    response = found.first("//query:AdhocQueryResponse")
    assert validation_errors(response, SchemaName.EBRS_QUERY) == []
    assert found.header("Action") == "urn:ihe:iti:2007:RegistryStoredQueryResponse"
    entries = response.findall(f".//{{{RIM}}}ExtrinsicObject")
    assert len(entries) == 1  # the signature entry is not listed
    entry = entries[0]
    stored = simulator.store.by_unique_id(spec.doc_uid)[0]
    assert entry.get("id") == stored.entry_uuid
    assert entry.get("status") == "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
    externals = {x.get("identificationScheme"): x.get("value")
                 for x in entry.iter(f"{{{RIM}}}ExternalIdentifier")}
    assert externals["urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"] == spec.doc_uid
    assert externals["urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"] == stored.patient_id
    slots = {s.get("name"): s.findtext(f".//{{{RIM}}}Value") for s in entry.iter(f"{{{RIM}}}Slot")}
    assert slots["hash"] == stored.hash
    assert slots["size"] == str(stored.size)
    schemes = {c.get("classificationScheme") for c in entry.iter(f"{{{RIM}}}Classification")}
    assert "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a" in schemes  # classCode
    assert "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983" in schemes  # typeCode

    by_uid = await post(session, pki, registry, get_documents(
        pki, registry, spec, unique_id=spec.doc_uid, return_type="ObjectRef"))
    refs = by_uid.envelope.findall(f".//{{{RIM}}}ObjectRef")
    assert [r.get("id") for r in refs] == [stored.entry_uuid]

    by_uuid = await post(session, pki, registry, get_documents(
        pki, registry, spec, entry_uuid=stored.entry_uuid))
    assert len(by_uuid.envelope.findall(f".//{{{RIM}}}ExtrinsicObject")) == 1

    other = await post(session, pki, registry,
                       find_documents(pki, registry, WireSpec(ins="184127645108946")))
    assert other.first("//query:AdhocQueryResponse").get("totalResultCount") == "0"


async def test_state_page(simulator: RunningSimulator, pki: Pki,
                          session: aiohttp.ClientSession) -> None:
    await _register(session, pki, simulator)
    async with session.get(simulator.state_url, ssl=client_tls(pki)) as response:
        state = await response.json()
    assert state["compteurs"]["documents"] == 1
    assert state["compteurs"]["signatures"] == 1
    assert state["dernieres_requetes"][-1]["resultat"] == "succes"


async def test_no_client_certificate_is_refused(simulator: RunningSimulator, pki: Pki,
                                                session: aiohttp.ClientSession) -> None:
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        async with session.get(simulator.state_url,
                               ssl=client_tls(pki, with_client_cert=False)) as response:
            await response.read()
    async with session.get(simulator.state_url, ssl=client_tls(pki)) as response:
        assert response.status == 200


async def test_unknown_action_is_a_fault(simulator: RunningSimulator, pki: Pki,
                                         session: aiohttp.ClientSession) -> None:
    registry = f"{simulator.base_url}/registry"
    request = find_documents(pki, registry, WireSpec())
    body = request.body.replace(b"urn:ihe:iti:2007:RegistryStoredQuery<",
                                b"urn:ihe:iti:2007:RetrieveDocumentSet<")
    answer = await post_raw(session, pki, registry, request.content_type, body)
    assert answer.http_status == 500
    assert answer.fault_code == "DMP_WSA_ACTION"
    # ITI-41 is not served on /registry either
    spec = WireSpec(to=registry)
    wrong = await post(session, pki, registry, build_iti41(pki, spec))
    assert wrong.fault_code == "DMP_WSA_ACTION"
