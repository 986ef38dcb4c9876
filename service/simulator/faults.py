"""A minimal fault-injection hook for tests: make the next ITI-41 request(s) fail on purpose."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from service.simulator.invented_codes import InventedCode


@dataclass(frozen=True)
class InjectedFault:
    """Answer a RegistryError `code`, or, when `http_status` is set, that bare HTTP status."""

    code: str = InventedCode.INJECTION
    message_fr: str = "Erreur injectée par le simulateur."
    http_status: int | None = None


class FaultInjector:
    """A queue of faults consumed one per ITI-41 request, before any check runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[InjectedFault] = deque()

    def fail_next(self, fault: InjectedFault | None = None, *, times: int = 1) -> None:
        with self._lock:
            self._queue.extend([fault or InjectedFault()] * times)

    def take(self) -> InjectedFault | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
