"""Shared steps of a SOAP route: the app state, reading the request, WS-Addressing and the
client variants, recording every request, and writing SOAP answers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from cryptography import x509

from service.simulator.checks.addressing import check_addressing
from service.simulator.config import SimulatorConfig
from service.simulator.envelope import SoapError, SoapRequest, read_soap
from service.simulator.faults import FaultInjector
from service.simulator.invented_codes import InventedCode
from service.simulator.judge import Judge
from service.simulator.problems import Problem
from service.simulator.responses import fault_body
from service.simulator.storage import RequestRecord
from service.simulator.transactions import Transaction

SOAP_TYPE = "application/soap+xml"
log = structlog.get_logger("service.simulator")


@dataclass
class AppState:
    config: SimulatorConfig
    judge: Judge
    transactions: dict[str, Transaction]
    faults: FaultInjector = field(default_factory=FaultInjector)
    closing: asyncio.Event = field(default_factory=asyncio.Event)


STATE: web.AppKey[AppState] = web.AppKey("state", AppState)


def client_dn(request: web.Request) -> str | None:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def soap_response(body: bytes, *, status: int = 200, action: str | None = None) -> web.Response:
    content_type = f'{SOAP_TYPE}; charset=utf-8; action="{action}"' if action else SOAP_TYPE
    return web.Response(body=body, status=status, headers={"Content-Type": content_type})


def fault_response(problems: list[Problem], relates_to: str | None, *,
                   status: int = 500) -> web.Response:
    return soap_response(fault_body(problems, relates_to), status=status)


class Dispatch:
    """Read one SOAP request and record what became of it."""

    def __init__(self, state: AppState, service: str, actions: frozenset[str]) -> None:
        self.state, self.service, self.actions = state, service, actions

    def record(self, request: SoapRequest | None, dn: str | None, problems: list[Problem],
               *, service: str | None = None) -> None:
        codes = tuple(str(p.code) for p in problems)
        name = service or self.service
        self.state.judge.store.record_request(RequestRecord(
            received_at=dt.datetime.now(dt.UTC).isoformat(), service=name,
            action=request.wsa("Action") if request else None, tls_dn=dn,
            outcome="refus" if problems else "succes", codes=codes,
        ))
        log.info(f"{name}_refused" if problems else f"{name}_accepted", codes=list(codes))

    async def read(self, request: web.Request) -> tuple[SoapRequest | None, web.Response | None]:
        dn = client_dn(request)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            problem = Problem(InventedCode.SOAP_INVALIDE, "HTTP", "Requête trop volumineuse.")
            self.record(None, dn, [problem])
            return None, fault_response([problem], None, status=413)
        try:
            soap = await asyncio.to_thread(read_soap, request.headers.get("Content-Type", ""),
                                           body, max_bytes=self.state.config.max_body_bytes)
        except SoapError as exc:
            problem = Problem(InventedCode.SOAP_INVALIDE, "soap:Envelope", exc.message_fr)
            self.record(None, dn, [problem])
            return None, fault_response([problem], None)
        problems = check_addressing(soap, self.actions)
        problems = problems or self.state.judge.keep(list(soap.variants))
        if problems:
            self.record(soap, dn, problems)
            return None, fault_response(problems, soap.wsa("MessageID"))
        return soap, None
