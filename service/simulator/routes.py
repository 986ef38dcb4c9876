"""The SOAP routes (spec §1.1, §8.2) and how an injected fault changes an exchange.

POST …/repository: ITI-41. POST …/registry: ITI-18 and ITI-57. POST …/patients: TD0.2.
An unknown wsa:Action on a route is a Sender Fault (DMP_WSA_ACTION).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from service.simulator.dispatch import (
    STATE,
    AppState,
    Dispatch,
    client_dn,
    log,
    soap_response,
)
from service.simulator.envelope import SoapRequest
from service.simulator.faults import FaultKind, InjectedFault
from service.simulator.invented_codes import InventedCode
from service.simulator.namespaces import ACTION_ITI18, ACTION_ITI41, ACTION_ITI57, ACTION_TD02
from service.simulator.problems import IheCode, Problem
from service.simulator.responses import fault_body
from service.simulator.transactions import Outcome, Transaction

ROUTES = {
    "repository": frozenset({ACTION_ITI41}),
    "registry": frozenset({ACTION_ITI18, ACTION_ITI57}),
    "patients": frozenset({ACTION_TD02}),
}
DEFAULT_NO_ANSWER_SECONDS = 300.0


def _early(fault: InjectedFault, tx: Transaction, soap: SoapRequest) -> Outcome | None:
    """The answer of a fault that skips the processing, else None."""
    relates_to = soap.wsa("MessageID")
    if fault.kind is FaultKind.HTTP500:
        problem = Problem(InventedCode.SERVICE_INDISPONIBLE, "simulateur",
                          "Service DMP momentanément indisponible (panne injectée).")
        return Outcome([problem], fault_body([problem], relates_to, sender=False), "",
                       status=500)
    if fault.kind is FaultKind.REGISTRY_BUSY:
        problem = Problem(IheCode.REGISTRY_BUSY, "simulateur",
                          "Le registre est occupé, réessayez plus tard (panne injectée).")
        outcome = tx.refuse([problem], relates_to)
        if tx.service == "td02":
            body = fault_body([problem], relates_to, sender=False)
            return Outcome([problem], body, "", status=500)
        return outcome
    if fault.kind is FaultKind.ERREUR:
        problem = Problem(fault.code, "simulateur", fault.message_fr)
        if fault.http_status is not None:
            return Outcome([problem], fault.message_fr.encode(), "", status=fault.http_status)
        return tx.refuse([problem], relates_to)
    return None


async def _cut(request: web.Request, outcome: Outcome) -> web.StreamResponse:
    """Write half of the answer (Content-Length announces all of it), then reset."""
    response = web.StreamResponse(status=outcome.status, headers={
        "Content-Type": "application/soap+xml; charset=utf-8"})
    response.content_length = len(outcome.body)
    await response.prepare(request)
    await response.write(outcome.body[: len(outcome.body) // 2])
    if request.transport is not None:
        request.transport.abort()
    return response


async def _no_answer(request: web.Request, state: AppState, seconds: float) -> web.StreamResponse:
    """Keep the connection open without a byte of answer until the client gives up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (seconds or DEFAULT_NO_ANSWER_SECONDS)
    transport = request.transport
    while (transport is not None and not transport.is_closing()
           and not state.closing.is_set() and loop.time() < deadline):
        await asyncio.sleep(0.05)
    if transport is not None:
        transport.abort()
    return web.StreamResponse(status=200)


async def _serve(request: web.Request, route: str) -> web.StreamResponse:
    state = request.app[STATE]
    dispatch = Dispatch(state, route, ROUTES[route])
    soap, refusal = await dispatch.read(request)
    if soap is None:
        assert refusal is not None
        return refusal
    tx = state.transactions[soap.wsa("Action") or ""]
    dn = client_dn(request)
    fault = state.faults.take(tx.service, soap.parts)
    if fault is not None:
        log.info("simulator_fault_injected", kind=str(fault.kind), service=tx.service)
        early = _early(fault, tx, soap)
        if early is not None:
            dispatch.record(soap, dn, early.problems, service=tx.service)
            return soap_response(early.body, status=early.status,
                                 action=early.response_action or None)
        if fault.kind is FaultKind.LATENCE:
            await asyncio.sleep(fault.seconds)
    outcome = await asyncio.to_thread(tx.run, soap, dn)
    dispatch.record(soap, dn, outcome.problems, service=tx.service)
    if fault is not None and fault.kind is FaultKind.DOUBLON:
        problem = Problem(IheCode.DUPLICATE_UNIQUE_ID, "uniqueId",
                          "Ce uniqueId de document est déjà enregistré dans le DMP.")
        outcome = tx.refuse([problem], soap.wsa("MessageID"))
    if fault is not None and fault.kind is FaultKind.COUPURE_MILIEU:
        return await _cut(request, outcome)
    if fault is not None and fault.kind is FaultKind.SANS_REPONSE:
        return await _no_answer(request, state, fault.seconds)
    return soap_response(outcome.body, status=outcome.status,
                         action=outcome.response_action or None)


async def repository(request: web.Request) -> web.StreamResponse:
    return await _serve(request, "repository")


async def registry(request: web.Request) -> web.StreamResponse:
    return await _serve(request, "registry")


async def patients(request: web.Request) -> web.StreamResponse:
    return await _serve(request, "patients")


