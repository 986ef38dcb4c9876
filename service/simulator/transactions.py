"""The SOAP transactions the simulator serves, each as: judge the request in a worker thread,
then render the SOAP answer; and how to render a refusal (for injected faults).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from service.simulator.envelope import SoapRequest
from service.simulator.iti18 import Iti18Handler
from service.simulator.iti41 import Iti41Handler
from service.simulator.iti57 import Iti57Handler
from service.simulator.judge import Judge
from service.simulator.namespaces import (
    ACTION_ITI18,
    ACTION_ITI18_RESPONSE,
    ACTION_ITI41,
    ACTION_ITI41_RESPONSE,
    ACTION_ITI57,
    ACTION_ITI57_RESPONSE,
    ACTION_TD02,
    ACTION_TD02_RESPONSE,
)
from service.simulator.problems import Problem
from service.simulator.responses import (
    adhoc_query_response,
    fault_body,
    plain_response,
    registry_response,
)
from service.simulator.td02 import Td02Handler


@dataclass(frozen=True)
class Outcome:
    """What a transaction produced: the refusing problems, and the HTTP answer."""

    problems: list[Problem]
    body: bytes
    response_action: str
    status: int = 200


@dataclass(frozen=True)
class Transaction:
    service: str  # name in the request log: iti41, iti18, iti57, td02
    action: str
    run: Callable[[SoapRequest, str | None], Outcome]
    refuse: Callable[[list[Problem], str | None], Outcome]


def transactions(judge: Judge) -> dict[str, Transaction]:
    """wsa:Action → Transaction."""
    iti41, iti57 = Iti41Handler(judge), Iti57Handler(judge)
    iti18, td02 = Iti18Handler(judge), Td02Handler(judge)

    def registry(action: str) -> Callable[[list[Problem], str | None], Outcome]:
        def refuse(problems: list[Problem], relates_to: str | None) -> Outcome:
            return Outcome(problems, registry_response(problems, action=action,
                                                       relates_to=relates_to), action)
        return refuse

    def query_refusal(problems: list[Problem], relates_to: str | None) -> Outcome:
        body = adhoc_query_response([], problems, action=ACTION_ITI18_RESPONSE,
                                    relates_to=relates_to)
        return Outcome(problems, body, ACTION_ITI18_RESPONSE)

    def td02_refusal(problems: list[Problem], relates_to: str | None) -> Outcome:
        return Outcome(problems, fault_body(problems, relates_to), "", status=500)

    def run41(request: SoapRequest, dn: str | None) -> Outcome:
        return registry(ACTION_ITI41_RESPONSE)(iti41.handle(request, dn), request.wsa("MessageID"))

    def run57(request: SoapRequest, dn: str | None) -> Outcome:
        return registry(ACTION_ITI57_RESPONSE)(iti57.handle(request, dn), request.wsa("MessageID"))

    def run18(request: SoapRequest, dn: str | None) -> Outcome:
        result = iti18.handle(request, dn)
        body = adhoc_query_response(result.objects, result.problems,
                                    action=ACTION_ITI18_RESPONSE,
                                    relates_to=request.wsa("MessageID"))
        return Outcome(result.problems, body, ACTION_ITI18_RESPONSE)

    def run02(request: SoapRequest, dn: str | None) -> Outcome:
        result = td02.handle(request, dn)
        if result.problems or result.answer is None:
            return td02_refusal(result.problems, request.wsa("MessageID"))
        answer: etree._Element = result.answer
        body = plain_response(answer, action=ACTION_TD02_RESPONSE,
                              relates_to=request.wsa("MessageID"))
        return Outcome([], body, ACTION_TD02_RESPONSE)

    return {
        ACTION_ITI41: Transaction("iti41", ACTION_ITI41, run41, registry(ACTION_ITI41_RESPONSE)),
        ACTION_ITI57: Transaction("iti57", ACTION_ITI57, run57, registry(ACTION_ITI57_RESPONSE)),
        ACTION_ITI18: Transaction("iti18", ACTION_ITI18, run18, query_refusal),
        ACTION_TD02: Transaction("td02", ACTION_TD02, run02, td02_refusal),
    }
