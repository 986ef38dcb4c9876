"""The simulator's HTTPS server: mutual TLS, the DMP routes, and the state page.

Routes (spec §1.1): POST …/repository (ITI-41), POST …/registry (ITI-18), GET /_simulateur/etat.
Every request is recorded with the TLS client certificate's subject DN. Checks run in a worker
thread so that a large submission does not stall other connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import ssl
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from cryptography import x509

from service.simulator.checks.addressing import check_addressing
from service.simulator.config import SimulatorConfig
from service.simulator.envelope import SoapError, SoapRequest, read_soap
from service.simulator.faults import FaultInjector
from service.simulator.invented_codes import InventedCode
from service.simulator.iti18 import run_query
from service.simulator.iti41 import Iti41Handler, Iti41Settings
from service.simulator.namespaces import (
    ACTION_ITI18,
    ACTION_ITI18_RESPONSE,
    ACTION_ITI41,
    ACTION_ITI41_RESPONSE,
    WSA,
)
from service.simulator.problems import Problem
from service.simulator.responses import adhoc_query_response, registry_response, soap_fault
from service.simulator.storage import RequestRecord, SimulatorStore
from service.simulator.trust import Trust

BASE_PATH = "/si-dmp-server/v2/services"
SOAP_TYPE = "application/soap+xml"
log = structlog.get_logger("service.simulator")



@dataclass
class _AppState:
    config: SimulatorConfig
    store: SimulatorStore
    iti41: Iti41Handler
    faults: FaultInjector = field(default_factory=FaultInjector)


_STATE: web.AppKey[_AppState] = web.AppKey("state", _AppState)


def _client_dn(request: web.Request) -> str | None:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def _soap(body: bytes, *, status: int = 200, action: str | None = None) -> web.Response:
    content_type = f'{SOAP_TYPE}; charset=utf-8; action="{action}"' if action else SOAP_TYPE
    return web.Response(body=body, status=status, headers={"Content-Type": content_type})


def _fault(problems: list[Problem], relates_to: str | None, *, status: int = 500) -> web.Response:
    first = problems[0]
    subcode = None
    if first.code == InventedCode.WSA_MANQUANT:
        subcode = (WSA, "MessageAddressingHeaderRequired")
    elif first.code == InventedCode.WSA_ACTION:
        subcode = (WSA, "ActionNotSupported")
    reason = " ".join(p.message_fr for p in problems)
    return _soap(soap_fault(reason, code=first.code, subcode=subcode, relates_to=relates_to),
                 status=status)


class _Dispatch:
    """Shared steps of a SOAP route: read, check WS-Addressing, record the outcome."""

    def __init__(self, state: _AppState, service: str, action: str) -> None:
        self.state, self.service, self.action = state, service, action

    def record(self, request: SoapRequest | None, dn: str | None, problems: list[Problem]) -> None:
        codes = tuple(str(p.code) for p in problems)
        self.state.store.record_request(RequestRecord(
            received_at=dt.datetime.now(dt.UTC).isoformat(), service=self.service,
            action=request.wsa("Action") if request else None, tls_dn=dn,
            outcome="refus" if problems else "succes", codes=codes,
        ))
        event = f"{self.service}_refused" if problems else f"{self.service}_accepted"
        log.info(event, codes=list(codes))

    async def read(self, request: web.Request) -> tuple[SoapRequest | None, web.Response | None]:
        dn = _client_dn(request)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            problem = Problem(InventedCode.SOAP_INVALIDE, "HTTP", "Requête trop volumineuse.")
            self.record(None, dn, [problem])
            return None, _fault([problem], None, status=413)
        try:
            soap = await asyncio.to_thread(read_soap, request.headers.get("Content-Type", ""),
                                           body, max_bytes=self.state.config.max_body_bytes)
        except SoapError as exc:
            problem = Problem(InventedCode.SOAP_INVALIDE, "soap:Envelope", exc.message_fr)
            self.record(None, dn, [problem])
            return None, _fault([problem], None)
        problems = check_addressing(soap, frozenset({self.action}))
        if problems:
            self.record(soap, dn, problems)
            return None, _fault(problems, soap.wsa("MessageID"))
        return soap, None


async def _repository(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    dispatch = _Dispatch(state, "iti41", ACTION_ITI41)
    soap, refusal = await dispatch.read(request)
    if soap is None:
        assert refusal is not None
        return refusal
    dn = _client_dn(request)
    injected = state.faults.take()
    if injected is not None:
        problems = [Problem(injected.code, "simulateur", injected.message_fr)]
        dispatch.record(soap, dn, problems)
        if injected.http_status is not None:
            return web.Response(status=injected.http_status, text=injected.message_fr)
    else:
        problems = await asyncio.to_thread(state.iti41.handle, soap, dn)
        dispatch.record(soap, dn, problems)
    body = registry_response(problems, action=ACTION_ITI41_RESPONSE,
                             relates_to=soap.wsa("MessageID"))
    return _soap(body, action=ACTION_ITI41_RESPONSE)


async def _registry(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    dispatch = _Dispatch(state, "iti18", ACTION_ITI18)
    soap, refusal = await dispatch.read(request)
    if soap is None:
        assert refusal is not None
        return refusal
    result = await asyncio.to_thread(run_query, soap.body_child, state.store)
    dispatch.record(soap, _client_dn(request), result.problems)
    body = adhoc_query_response(result.objects, result.problems, action=ACTION_ITI18_RESPONSE,
                                relates_to=soap.wsa("MessageID"))
    return _soap(body, action=ACTION_ITI18_RESPONSE)


async def _state_page(request: web.Request) -> web.Response:
    store = request.app[_STATE].store
    recent = store.requests()[-20:]
    payload: dict[str, Any] = {
        "compteurs": store.counts(),
        "dernieres_requetes": [
            {"recue_le": r.received_at, "service": r.service, "resultat": r.outcome,
             "codes": list(r.codes), "certificat_client": r.tls_dn}
            for r in recent
        ],
    }
    return web.json_response(payload)


@web.middleware
async def _internal_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException:
        raise
    except Exception as exc:  # the simulator must keep serving after any bug
        log.error("simulator_internal_error", error_type=type(exc).__name__)
        body = soap_fault("Erreur interne du simulateur.", code="XDSRegistryError", sender=False)
        return _soap(body, status=500)


def _tls_context(config: SimulatorConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(config.ca_cert))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS is mandatory (spec §1.1)
    context.load_cert_chain(str(config.server_cert), str(config.server_key))
    return context


@dataclass
class RunningSimulator:
    """A started simulator. Tests read what it registered through `store`."""

    config: SimulatorConfig
    port: int
    store: SimulatorStore
    faults: FaultInjector
    _runner: web.AppRunner

    @property
    def base_url(self) -> str:
        return f"https://{self.config.host}:{self.port}{BASE_PATH}"

    @property
    def state_url(self) -> str:
        return f"https://{self.config.host}:{self.port}/_simulateur/etat"

    async def close(self) -> None:
        await self._runner.cleanup()
        self.store.close()


def build_app(state: _AppState) -> web.Application:
    app = web.Application(client_max_size=state.config.max_body_bytes,
                          middlewares=[_internal_errors])
    app[_STATE] = state
    app.router.add_post(f"{BASE_PATH}/repository", _repository)
    app.router.add_post(f"{BASE_PATH}/registry", _registry)
    app.router.add_get("/_simulateur/etat", _state_page)
    return app


async def start_simulator(config: SimulatorConfig) -> RunningSimulator:
    """Start serving on `config.host:config.port` (0 = any free port) over mutual TLS."""
    store = SimulatorStore(config.db_path)
    handler = Iti41Handler(
        Iti41Settings(strict=config.strict, clock_skew_seconds=config.clock_skew_seconds,
                      max_document_bytes=config.max_body_bytes),
        store, Trust.from_file(config.ca_cert),
    )
    state = _AppState(config=config, store=store, iti41=handler)
    runner = web.AppRunner(build_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, ssl_context=_tls_context(config))
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        store.close()
        raise
    port = config.port
    server = site._server
    if isinstance(server, asyncio.Server) and server.sockets:
        port = server.sockets[0].getsockname()[1]
    log.info("simulator_started", port=port)
    return RunningSimulator(config, port, store, state.faults, runner)


def run_simulator_forever(config: SimulatorConfig) -> None:
    """Serve until Ctrl-C (`dmp-bridge simulator`)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Windows has no add_signal_handler: Ctrl-C then arrives as KeyboardInterrupt.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        simulator = await start_simulator(config)
        print(f"Simulateur DMP à l'écoute sur {simulator.base_url} (Ctrl-C pour arrêter)")
        try:
            await stop.wait()
        finally:
            await simulator.close()
            log.info("simulator_stopped")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    print("Simulateur arrêté.")
