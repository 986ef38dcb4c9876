"""The admin API and each injected fault, over real mutual TLS."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from service.simulator import RunningSimulator
from tests.simulator.exchange import FAILURE, SUCCESS, admin, client_tls, post
from tests.simulator.flows import repository
from tests.simulator.pki_maker import SimPki
from tests.simulator.wire import WireSpec, build_iti41


async def _inject(session: aiohttp.ClientSession, pki: SimPki, sim: RunningSimulator,
                  kind: str, **extra: object) -> None:
    await admin(session, pki, f"{sim.admin_url}/pannes", {"type": kind, **extra})


def _spec(sim: RunningSimulator) -> WireSpec:
    return WireSpec(to=repository(sim))


def _stored(sim: RunningSimulator, spec: WireSpec) -> bool:
    return bool(sim.store.by_unique_id(spec.doc_uid))


async def test_latency(simulator: RunningSimulator, pki: SimPki,
                       session: aiohttp.ClientSession) -> None:
    await _inject(session, pki, simulator, "latence", secondes=0.6)
    spec = _spec(simulator)
    started = time.monotonic()
    answer = await post(session, pki, spec.to, build_iti41(pki, spec))
    assert time.monotonic() - started >= 0.6
    assert answer.status == SUCCESS and _stored(simulator, spec)


async def test_http500_with_soap_fault(simulator: RunningSimulator, pki: SimPki,
                                       session: aiohttp.ClientSession) -> None:
    await _inject(session, pki, simulator, "http500")
    spec = _spec(simulator)
    answer = await post(session, pki, spec.to, build_iti41(pki, spec))
    assert answer.http_status == 500
    assert answer.first("//soap:Fault/soap:Code/soap:Value").text == "soap:Receiver"
    assert answer.fault_code == "DMP_SERVICE_INDISPONIBLE"
    assert not _stored(simulator, spec)


async def test_registry_busy_then_normal(simulator: RunningSimulator, pki: SimPki,
                                         session: aiohttp.ClientSession) -> None:
    await _inject(session, pki, simulator, "registry_busy")
    spec = _spec(simulator)
    answer = await post(session, pki, spec.to, build_iti41(pki, spec))
    assert answer.status == FAILURE and answer.codes == {"XDSRegistryBusy"}
    assert not _stored(simulator, spec)
    again = await post(session, pki, spec.to, build_iti41(pki, spec))
    assert again.status == SUCCESS and _stored(simulator, spec)


async def test_connection_cut_in_the_middle(simulator: RunningSimulator, pki: SimPki,
                                            session: aiohttp.ClientSession) -> None:
    await _inject(session, pki, simulator, "coupure_milieu")
    spec = _spec(simulator)
    with pytest.raises(aiohttp.ClientError):
        await post(session, pki, spec.to, build_iti41(pki, spec))
    assert _stored(simulator, spec)  # processed: the client must ask before resending


async def test_no_answer_but_processed(simulator: RunningSimulator, pki: SimPki,
                                       session: aiohttp.ClientSession) -> None:
    await _inject(session, pki, simulator, "sans_reponse")
    spec = _spec(simulator)
    request = build_iti41(pki, spec)
    with pytest.raises(asyncio.TimeoutError):
        async with session.post(spec.to, data=request.body,
                                headers={"Content-Type": request.content_type},
                                ssl=client_tls(pki),
                                timeout=aiohttp.ClientTimeout(total=1.5)) as response:
            await response.read()
    assert _stored(simulator, spec)  # the document WAS registered although nobody heard it


async def test_duplicate_answer(simulator: RunningSimulator, pki: SimPki,
                                session: aiohttp.ClientSession) -> None:
    await _inject(session, pki, simulator, "doublon")
    spec = _spec(simulator)
    answer = await post(session, pki, spec.to, build_iti41(pki, spec))
    assert answer.codes == {"XDSDuplicateUniqueIdInRegistry"}
    assert _stored(simulator, spec)


async def test_fault_limited_to_a_service_and_counted(
    simulator: RunningSimulator, pki: SimPki, session: aiohttp.ClientSession
) -> None:
    await _inject(session, pki, simulator, "registry_busy", fois=2, service="iti41")
    for _ in range(2):
        spec = _spec(simulator)
        answer = await post(session, pki, spec.to, build_iti41(pki, spec))
        assert answer.codes == {"XDSRegistryBusy"}
    spec = _spec(simulator)
    assert (await post(session, pki, spec.to, build_iti41(pki, spec))).status == SUCCESS


async def test_requests_log_and_reset(simulator: RunningSimulator, pki: SimPki,
                                      session: aiohttp.ClientSession) -> None:
    spec = _spec(simulator)
    await post(session, pki, spec.to, build_iti41(pki, spec))
    logged = await admin(session, pki, f"{simulator.admin_url}/requetes")
    requests = logged["requetes"]
    assert isinstance(requests, list) and len(requests) == 1
    assert requests[0]["service"] == "iti41" and requests[0]["resultat"] == "succes"
    assert "ORG AUTH_CLI" in requests[0]["certificat_client"]
    await admin(session, pki, f"{simulator.admin_url}/patients",
                {"ins": spec.ins, "etat": "ferme"})
    await _inject(session, pki, simulator, "http500")
    await admin(session, pki, f"{simulator.admin_url}/reinitialiser", {})
    assert simulator.store.documents() == [] and simulator.faults.pending() == 0
    again = _spec(simulator)
    assert (await post(session, pki, again.to, build_iti41(pki, again))).status == SUCCESS


@pytest.mark.parametrize("payload", [{"type": "inconnu"}, {"type": "latence", "fois": 0},
                                     {"type": "latence", "service": "iti99"}])
async def test_bad_admin_requests(simulator: RunningSimulator, pki: SimPki,
                                  session: aiohttp.ClientSession,
                                  payload: dict[str, object]) -> None:
    async with session.post(f"{simulator.admin_url}/pannes", json=payload,
                            ssl=client_tls(pki)) as response:
        assert response.status == 400
        assert "erreur" in await response.json()
