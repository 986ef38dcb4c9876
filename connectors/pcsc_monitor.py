"""Watch PC/SC readers and cards and report what changes (EX_0.X-1040: act on card removal).

A thread blocks in `SCardGetStatusChange` (pyscard's low-level API, portable to Windows, macOS and
pcsc-lite) on the watched readers plus the ``\\\\?PnP?\\Notification`` pseudo-reader, which wakes
it when a reader is plugged or unplugged where the platform supports it; the wait also ends every
`poll_seconds` to list the readers again, the fallback where it is not supported. Events go to
a callback, in the monitor's thread:

- `SERVICE_UP` when the PC/SC service answers (at start, and after it came back);
- `SERVICE_DOWN` when it does not (at start, or once it stopped: pcscd killed, Windows service
  stopped); every card and reader known until then is first reported removed. The monitor then
  establishes a new context about every `retry_seconds`, without restarting the process;
- `READER_ADDED` / `READER_REMOVED`, `CARD_INSERTED` (with the ATR) / `CARD_REMOVED`.

`stop()` cancels the wait (`SCardCancel`) and joins the thread. Logs name readers and events,
never card data (no ATR, no APDU).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from types import TracebackType

import structlog
from smartcard import scard

from connectors.card_events import PcscEvent, PcscEventKind

log = structlog.get_logger("dmp_bridge.pcsc")

PNP_NOTIFICATION = "\\\\?PnP?\\Notification"
# The PC/SC service is gone (stopped, crashed, restarting): drop the context and retry.
SERVICE_LOST = frozenset({
    scard.SCARD_E_NO_SERVICE,
    scard.SCARD_E_SERVICE_STOPPED,
    scard.SCARD_F_COMM_ERROR,
    scard.SCARD_E_INVALID_HANDLE,
    scard.SCARD_F_INTERNAL_ERROR,
})


class _ServiceLost(Exception):
    """The context is no longer usable."""


def _event_counter(state: int) -> int:
    """Insertion/removal counter in the high word of a reader state (pcsc-lite and Windows)."""
    return (state >> 16) & 0xFFFF


class PcscMonitor:
    """Reports reader and card changes to `on_event` from a background thread.

    `readers`: the readers to watch, by exact name or name prefix ("Gemalto USB" watches
    "Gemalto USB Smart Card Reader 00 00"); empty watches every reader.
    """

    def __init__(
        self,
        on_event: Callable[[PcscEvent], None],
        *,
        readers: Iterable[str] = (),
        poll_seconds: float = 1.0,
        retry_seconds: float = 1.0,
    ) -> None:
        self._on_event = on_event
        self._filters = tuple(readers)
        self._poll_ms = max(1, int(poll_seconds * 1000))
        self._retry_seconds = retry_seconds
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._context: int | None = None
        self._thread: threading.Thread | None = None
        self._readers: dict[str, int] = {}  # watched reader -> last known state
        self._cards: dict[str, bytes] = {}  # reader -> ATR of the card in it
        self._pnp_supported = True

    def __enter__(self) -> PcscMonitor:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start watching (once)."""
        if self._thread is not None:
            raise RuntimeError("PcscMonitor already started")
        self._thread = threading.Thread(target=self._run, name="pcsc-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching: cancel the blocking wait and join the thread (idempotent)."""
        self._stopping.set()
        with self._lock:
            if self._context is not None:
                scard.SCardCancel(self._context)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("pcsc_monitor_stop_timeout")

    def watches(self, reader: str) -> bool:
        """Whether `reader` is among the configured readers (all when none is configured)."""
        return not self._filters or any(reader.startswith(f) for f in self._filters)

    # -- thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        service_up: bool | None = None
        while not self._stopping.is_set():
            context = self._establish()
            if context is not None:
                if service_up is not True:
                    service_up = True
                    log.info("pcsc_service_up")
                    self._emit(PcscEvent(PcscEventKind.SERVICE_UP))
                try:
                    self._watch(context)
                except _ServiceLost:
                    pass
                finally:
                    with self._lock:
                        self._context = None
                    scard.SCardReleaseContext(context)
                if self._stopping.is_set():
                    break
            if service_up is not False:
                service_up = False
                self._forget_all()
                log.warning("pcsc_service_down")
                self._emit(PcscEvent(PcscEventKind.SERVICE_DOWN))
            self._stopping.wait(self._retry_seconds)

    def _establish(self) -> int | None:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            return None
        with self._lock:
            if self._stopping.is_set():
                scard.SCardReleaseContext(context)
                return None
            self._context = context
        return int(context)

    def _watch(self, context: int) -> None:
        pnp_state = 0
        unknown_reader_streak = 0
        while not self._stopping.is_set():
            self._sync_readers(self._list_readers(context))
            query: list[tuple[str, int]] = list(self._readers.items())
            if self._pnp_supported:
                query.append((PNP_NOTIFICATION, pnp_state))
            if not query:
                self._stopping.wait(self._poll_ms / 1000)
                continue
            hresult, states = scard.SCardGetStatusChange(context, self._poll_ms, query)
            if hresult in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                continue
            if hresult in SERVICE_LOST:
                raise _ServiceLost
            if hresult == scard.SCARD_E_UNKNOWN_READER:
                # A reader left between the listing and the wait (the next listing drops it);
                # twice in a row, the culprit is the PnP pseudo-reader this platform lacks.
                unknown_reader_streak += 1
                if unknown_reader_streak >= 2 and self._pnp_supported:
                    self._pnp_supported = False
                    log.info("pcsc_pnp_notification_unsupported")
                continue
            unknown_reader_streak = 0
            if hresult != scard.SCARD_S_SUCCESS:
                log.warning("pcsc_status_change_failed", error=scard.SCardGetErrorMessage(hresult))
                self._stopping.wait(self._poll_ms / 1000)
                continue
            for name, event_state, atr in states:
                if name == PNP_NOTIFICATION:
                    if event_state & scard.SCARD_STATE_UNKNOWN:
                        self._pnp_supported = False
                    pnp_state = event_state & ~scard.SCARD_STATE_CHANGED
                elif event_state & scard.SCARD_STATE_CHANGED and name in self._readers:
                    self._reader_changed(name, event_state & ~scard.SCARD_STATE_CHANGED,
                                         bytes(atr))

    def _list_readers(self, context: int) -> list[str]:
        hresult, readers = scard.SCardListReaders(context, [])
        if hresult in SERVICE_LOST:
            raise _ServiceLost
        if hresult != scard.SCARD_S_SUCCESS:  # SCARD_E_NO_READERS_AVAILABLE and the like
            return []
        return [str(r) for r in readers]

    def _sync_readers(self, listed: list[str]) -> None:
        watched = [r for r in listed if self.watches(r)]
        for reader in [r for r in self._readers if r not in watched]:
            self._reader_gone(reader)
        for reader in watched:
            if reader not in self._readers:
                self._readers[reader] = scard.SCARD_STATE_UNAWARE
                log.info("pcsc_reader_added", reader=reader)
                self._emit(PcscEvent(PcscEventKind.READER_ADDED, reader))

    def _reader_changed(self, reader: str, state: int, atr: bytes) -> None:
        previous = self._readers[reader]
        self._readers[reader] = state
        if state & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
            return  # the reader is going away: the next listing reports it
        present = bool(state & scard.SCARD_STATE_PRESENT)
        swapped = (present and reader in self._cards
                   and previous != scard.SCARD_STATE_UNAWARE
                   and _event_counter(previous) != _event_counter(state))
        if reader in self._cards and (not present or swapped):
            del self._cards[reader]
            log.info("pcsc_card_removed", reader=reader)
            self._emit(PcscEvent(PcscEventKind.CARD_REMOVED, reader))
        if present and reader not in self._cards:
            self._cards[reader] = atr
            log.info("pcsc_card_inserted", reader=reader)
            self._emit(PcscEvent(PcscEventKind.CARD_INSERTED, reader, atr))

    def _reader_gone(self, reader: str) -> None:
        if self._cards.pop(reader, None) is not None:
            log.info("pcsc_card_removed", reader=reader)
            self._emit(PcscEvent(PcscEventKind.CARD_REMOVED, reader))
        del self._readers[reader]
        log.info("pcsc_reader_removed", reader=reader)
        self._emit(PcscEvent(PcscEventKind.READER_REMOVED, reader))

    def _forget_all(self) -> None:
        for reader in list(self._readers):
            self._reader_gone(reader)

    def _emit(self, event: PcscEvent) -> None:
        try:
            self._on_event(event)
        except Exception as error:  # a faulty consumer must not stop the monitor
            log.error("pcsc_callback_failed", kind=event.kind.value,
                      error=type(error).__name__)
