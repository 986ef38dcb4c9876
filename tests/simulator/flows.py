"""Test helpers for multi-step flows: register a document, read its entry back."""

from __future__ import annotations

import aiohttp
from lxml import etree

from service.simulator import RunningSimulator, StoredDocument
from tests.simulator.exchange import SUCCESS, Answer, post
from tests.simulator.pki_maker import SimPki
from tests.simulator.wire import WireRequest, WireSpec, build_iti41, get_documents

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"


def repository(sim: RunningSimulator) -> str:
    return f"{sim.base_url}/repository"


def registry(sim: RunningSimulator) -> str:
    return f"{sim.base_url}/registry"


async def register(session: aiohttp.ClientSession, pki: SimPki, sim: RunningSimulator,
                   spec: WireSpec | None = None) -> tuple[WireSpec, StoredDocument]:
    """Submit a valid document; its spec and its stored (non-signature) entry."""
    spec = spec or WireSpec()
    spec.to = repository(sim)
    answer = await post(session, pki, spec.to, build_iti41(pki, spec))
    assert answer.status == SUCCESS, answer.codes
    return spec, sim.store.by_unique_id(spec.doc_uid)[-1]


async def send(session: aiohttp.ClientSession, pki: SimPki, sim: RunningSimulator,
               request: WireRequest) -> Answer:
    return await post(session, pki, registry(sim), request)


async def leaf(session: aiohttp.ClientSession, pki: SimPki, sim: RunningSimulator,
               spec: WireSpec, entry_uuid: str) -> etree._Element:
    """The LeafClass ExtrinsicObject of one entryUUID, as ITI-18 shows it."""
    answer = await send(session, pki, sim, get_documents(pki, registry(sim), spec,
                                                         entry_uuid=entry_uuid))
    entries = answer.envelope.findall(f".//{{{RIM}}}ExtrinsicObject")
    assert len(entries) == 1, answer.codes
    return entries[0]


def status_of(sim: RunningSimulator, entry_uuid: str) -> str:
    return sim.store.by_entry_uuid(entry_uuid)[0].status
