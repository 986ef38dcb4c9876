"""Fault injection (admin API `POST /_simulateur/admin/pannes`, or `RunningSimulator.faults`).

Each fault is consumed by one SOAP request (optionally only on one service), after the request
was read and its WS-Addressing checked, and before or after it is processed:

| kind            | processed? | answer                                                         |
|-----------------|------------|----------------------------------------------------------------|
| latence         | yes        | normal, after `seconds`                                        |
| http500         | no         | HTTP 500 + SOAP 1.2 Receiver Fault DMP_SERVICE_INDISPONIBLE    |
| registry_busy   | no         | Failure XDSRegistryBusy (Receiver Fault for TD0.2)             |
| coupure_milieu  | yes        | half of the answer, then the connection is reset               |
| sans_reponse    | yes        | nothing, until the client gives up (or `seconds`, default 300) |
| doublon         | yes        | Failure XDSDuplicateUniqueIdInRegistry, as if it were a resend |
| erreur          | no         | Failure with `code` (or, with `http_status`, that bare status) |
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from service.simulator.invented_codes import InventedCode


class FaultKind(StrEnum):
    """The `type` of the admin API."""

    LATENCE = "latence"  # wait, then process normally
    HTTP500 = "http500"  # HTTP 500 with a SOAP Receiver Fault, not processed
    REGISTRY_BUSY = "registry_busy"  # XDSRegistryBusy, not processed
    COUPURE_MILIEU = "coupure_milieu"  # processed, connection cut in the middle of the answer
    SANS_REPONSE = "sans_reponse"  # processed, never answered
    DOUBLON = "doublon"  # processed, answered as a duplicate uniqueId
    ERREUR = "erreur"  # a RegistryError with any code (tests), not processed


@dataclass(frozen=True)
class InjectedFault:
    """One fault; `service` (iti41, iti18, iti57, td02) limits it to that transaction, and
    `in_part` to the requests one of whose MIME parts contains these bytes (one document)."""

    code: str = InventedCode.INJECTION
    message_fr: str = "Erreur injectée par le simulateur."
    http_status: int | None = None
    kind: FaultKind = FaultKind.ERREUR
    seconds: float = 0.0
    service: str | None = None
    in_part: bytes | None = None

    def applies(self, service: str | None, parts: Mapping[str, bytes]) -> bool:
        if self.service not in (None, service):
            return False
        return self.in_part is None or any(self.in_part in data for data in parts.values())


class FaultInjector:
    """A queue of faults, each consumed by the first request it applies to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[InjectedFault] = deque()

    def fail_next(self, fault: InjectedFault | None = None, *, times: int = 1) -> None:
        with self._lock:
            self._queue.extend([fault or InjectedFault()] * times)

    def take(self, service: str | None = None,
             parts: Mapping[str, bytes] | None = None) -> InjectedFault | None:
        with self._lock:
            for fault in self._queue:
                if fault.applies(service, parts or {}):
                    self._queue.remove(fault)
                    return fault
            return None

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
