"""Watch the PKCS#11 module's slots: a card appears or disappears in a reader.

In `pkcs11` access mode the module itself (the Cryptolib CPS) speaks to the PC/SC readers, one
slot per reader: a slot with a token is a reader with a card. This watcher lists the slots
holding a token every `poll_seconds` (C_GetSlotList with tokenPresent; portable, and needs no
pyscard) and reports the differences as the PC/SC monitor would: CARD_INSERTED / CARD_REMOVED
by reader name, SERVICE_DOWN when the module cannot list its slots, SERVICE_UP when it can again.
A card swapped between two looks (another card in the same reader) is reported as a removal
then an insertion: the token's serial number is part of what is compared.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

import structlog

from bridge.card_port import CardError
from connectors.card_events import PcscEvent, PcscEventKind
from connectors.pkcs11_card import Pkcs11Module

log = structlog.get_logger("dmp_bridge.pkcs11")


class Pkcs11SlotWatcher:
    """Reports card changes of a PKCS#11 module to `on_event`, from its own thread."""

    def __init__(self, module: Pkcs11Module, on_event: Callable[[PcscEvent], None], *,
                 readers: Iterable[str] = (), poll_seconds: float = 1.0) -> None:
        self._module = module
        self._on_event = on_event
        self._filters = tuple(readers)
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watches(self, reader: str) -> bool:
        """Whether `reader` is among the configured ones (all when none is configured)."""
        return not self._filters or any(reader == f or reader.startswith(f)
                                        for f in self._filters)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pkcs11-slots", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _emit(self, event: PcscEvent) -> None:
        try:
            self._on_event(event)
        except Exception as exc:  # the watcher outlives a faulty consumer
            log.error("card_event_handler_failed", error=type(exc).__name__)

    def _run(self) -> None:
        known: dict[str, str] = {}  # reader → token serial
        up: bool | None = None
        while not self._stop.is_set():
            try:
                present = {reader: serial for reader, serial in self._module.cards().items()
                           if self.watches(reader)}
            except CardError:
                if up is not False:
                    for reader in known:
                        self._emit(PcscEvent(PcscEventKind.CARD_REMOVED, reader))
                    known = {}
                    self._emit(PcscEvent(PcscEventKind.SERVICE_DOWN))
                    log.warning("pkcs11_slots_unavailable")
                up = False
                self._stop.wait(self._poll)
                continue
            if up is not True:
                self._emit(PcscEvent(PcscEventKind.SERVICE_UP))
                up = True
            for reader, serial in list(known.items()):
                if present.get(reader) != serial:
                    del known[reader]
                    self._emit(PcscEvent(PcscEventKind.CARD_REMOVED, reader))
            for reader, serial in present.items():
                if reader not in known:
                    known[reader] = serial
                    self._emit(PcscEvent(PcscEventKind.CARD_INSERTED, reader))
            self._stop.wait(self._poll)
