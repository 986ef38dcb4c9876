"""CPS cards while the bridge runs: readers, insertion and removal, PIN, credentials.

The monitor (`connectors.pcsc_monitor`) reports readers and cards from its own thread; this
module turns that into the wallet's contents:

- card inserted → its public identity is read (no PIN needed) and it waits for its PIN;
- PIN typed by a person (`dmp-bridge card login`, or the dashboard's Carte page) → one login
  attempt, never repeated by the bridge; the situation d'exercice is chosen; the card's
  credentials and its own TLS connection to the DMP (`connectors.card_tls`) enter the wallet,
  and the documents of its holder that waited go at once;
- card removed, reader unplugged, PC/SC service stopped → the session and its TLS connections
  are dropped (EX_0.X-1040) and the card leaves the wallet: the holder's documents wait (no
  attempt is used) until the card is back and logged in again.

The PIN goes from the caller's argument to `CardSession.login` and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from bridge.card_identity import CardHolder, CardRefused, author_specialty, choose_situation
from bridge.card_port import CardError, CardSession, KeyRole, PinStatus
from bridge.errors import BridgeError
from connectors.card_credentials import CardCredentials
from connectors.card_events import PcscEvent, PcscEventKind
from connectors.card_tls import CardTlsForwarder
from connectors.dmp_client import DmpClient
from mappings.valuesets import VS, load_value_set
from service.config import BridgeConfig
from service.dashboard.panels import ReaderView, SituationView
from service.wallet import Wallet

log = structlog.get_logger("dmp_bridge.card")


@dataclass
class CardSlot:
    """What the bridge knows of one reader (changed on the event loop only)."""

    reader: str
    session: CardSession | None = None
    holder: CardHolder | None = None
    pin: PinStatus | None = None
    credentials: CardCredentials | None = None
    forwarder: CardTlsForwarder | None = None
    client: DmpClient | None = None
    problem_fr: str | None = None  # the last thing the user must know (unreadable, refused…)
    situations: list[tuple[int, str]] = field(default_factory=list)
    certificates: list[tuple[str, bytes]] = field(default_factory=list)  # (label, DER)


@dataclass(frozen=True)
class DmpTarget:
    """Where and how fast each card's own connection talks to the DMP."""

    url: str
    server_ca: Path
    timeout_seconds: float
    rate_per_second: float


class CardManager:
    """Keeps the wallet in step with the cards in the readers.

    Every change happens on the event loop under one lock, in the order the watcher saw it;
    other threads (the dashboard's, the alerts') read only immutable snapshots (`readers`,
    `certificate_validities`), published after each change.
    """

    def __init__(self, wallet: Wallet, target: DmpTarget, *,
                 open_session: Callable[[str], CardSession],
                 specialty_display: Callable[[CardHolder], str],
                 situation: int | None = None) -> None:
        self._wallet = wallet
        self._target = target
        self._open_session = open_session
        self._specialty_display = specialty_display
        self._situation = situation
        self._slots: dict[str, CardSlot] = {}
        self._lock = asyncio.Lock()
        self._views: tuple[ReaderView, ...] = ()
        self._validities: tuple[tuple[str, bytes], ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[None]] = set()

    # -- events from the watcher (on the event loop) -------------------------------------
    async def reader_added(self, reader: str) -> None:
        async with self._lock:
            self._slots.setdefault(reader, CardSlot(reader))
            self._publish()
        log.info("card_reader_added")

    async def reader_removed(self, reader: str) -> None:
        async with self._lock:
            slot = self._slots.pop(reader, None)
            if slot is not None:
                await self._drop(slot)
            self._publish()
        log.info("card_reader_removed")

    async def card_inserted(self, reader: str) -> None:
        async with self._lock:
            slot = self._slots.setdefault(reader, CardSlot(reader))
            await self._drop(slot)
            try:
                await self._read_card(slot)
            finally:
                self._publish()

    async def _read_card(self, slot: CardSlot) -> None:
        """Open the card and read its public identity; an unusable card is closed again (a
        staff card stays open: its login then says why it cannot feed)."""
        try:
            slot.session = await asyncio.to_thread(self._open_session, slot.reader)
            slot.holder = await asyncio.to_thread(slot.session.holder)
            slot.pin = await asyncio.to_thread(slot.session.pin_status)
        except BridgeError as exc:
            await self._drop(slot)
            slot.problem_fr = exc.message_fr
            log.warning("card_unreadable", code=exc.code)
            return
        try:
            slot.holder.check_may_feed()
        except BridgeError as exc:
            slot.problem_fr = exc.message_fr
            log.warning("card_refused", code=exc.code)
            return
        slot.problem_fr = None
        log.info("card_inserted", awaiting_pin=True)

    async def card_removed(self, reader: str) -> None:
        async with self._lock:
            slot = self._slots.get(reader)
            if slot is not None:
                await self._drop(slot)
                slot.problem_fr = None
            self._publish()
        log.info("card_removed")

    async def service_down(self) -> None:
        """The PC/SC service (or the PKCS#11 module) stopped: every card is as good as
        removed."""
        async with self._lock:
            for slot in self._slots.values():
                await self._drop(slot)
            self._slots.clear()
            self._publish()
        log.warning("card_service_down", alert=True)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the manager's changes run on (for `card_lost`, called from threads)."""
        self._loop = loop

    def card_lost(self, reader: str) -> None:
        """A signature found the card gone or logged out (from any thread): its credentials
        leave the wallet at once, and the card waits for its PIN again."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._spawn_log_out, reader)

    def _spawn_log_out(self, reader: str) -> None:
        task = asyncio.get_running_loop().create_task(self._log_out(reader))
        self._pending.add(task)  # kept until done (the loop holds tasks weakly)
        task.add_done_callback(self._pending.discard)

    async def _log_out(self, reader: str) -> None:
        async with self._lock:
            slot = self._slots.get(reader)
            if slot is None or slot.credentials is None:
                return
            await self._close_connection(slot)
            slot.pin = await self._pin_status(slot.session)
            self._publish()
        log.warning("card_session_lost")

    async def _close_connection(self, slot: CardSlot) -> None:
        """The card's credentials out of the wallet; its TLS sessions cut as by a card
        removal (what was cut mid-handshake is then known not to have left)."""
        self._wallet.remove(slot.reader)
        if slot.forwarder is not None:
            slot.forwarder.close_all()
            await slot.forwarder.stop()
        if slot.client is not None:
            await slot.client.close()
        slot.credentials, slot.forwarder, slot.client = None, None, None
        slot.certificates = []

    async def _drop(self, slot: CardSlot) -> None:
        """Forget the card of `slot`: out of the wallet, TLS cut, session closed."""
        await self._close_connection(slot)
        if slot.session is not None:
            with contextlib.suppress(BridgeError):
                await asyncio.to_thread(slot.session.close)
        slot.session = slot.holder = slot.pin = None
        slot.situations = []

    # -- the person at the keyboard ----------------------------------------------------------
    async def login(self, reader: str | None, pin: str, situation: int | None = None
                    ) -> str | None:
        """One PIN attempt on the card in `reader` (the only card when None).

        Returns None when the card is logged in and its documents can go, else a French message
        (wrong PIN with the tries left, blocked card, refused card, situation to choose…).
        The PIN goes to the card and nowhere else; a wrong one is never presented again.
        """
        async with self._lock:
            try:
                return await self._login(reader, pin, situation)
            finally:
                del pin
                self._publish()

    async def _login(self, reader: str | None, pin: str, situation: int | None) -> str | None:
        slot = self._find(reader)
        if isinstance(slot, str):
            return slot
        session, holder = slot.session, slot.holder
        assert session is not None and holder is not None  # _find returns opened cards only
        try:
            holder.check_may_feed()  # before spending a PIN try on a card that cannot feed
            await asyncio.to_thread(session.login, pin)
            situations = await asyncio.to_thread(session.situations)
            slot.situations = [(s.index, s.label()) for s in situations]
            chosen = choose_situation(situations, situation or self._situation)
            credentials = await asyncio.to_thread(
                CardCredentials, session, holder, chosen,
                specialty_display=self._specialty_display(holder),
                on_lost=lambda: self.card_lost(slot.reader))
            await self._open(slot, credentials)
        except BridgeError as exc:
            if isinstance(exc, CardError):
                slot.pin = await self._pin_status(session)
            else:
                slot.problem_fr = exc.message_fr
            log.warning("card_login_refused", code=exc.code)
            return exc.message_fr
        log.info("card_logged_in", situation=chosen.index)
        return None

    async def _pin_status(self, session: CardSession | None) -> PinStatus | None:
        if session is None:
            return None
        try:
            return await asyncio.to_thread(session.pin_status)
        except BridgeError:
            return None

    def _find(self, reader: str | None) -> CardSlot | str:
        with_card = [s for s in self._slots.values()
                     if s.session is not None and s.holder is not None]
        if reader is None:
            if len(with_card) == 1:
                return with_card[0]
            if not with_card:
                return "Aucune carte CPS n'est insérée dans un lecteur."
            return ("Plusieurs cartes sont insérées : précisez le lecteur ("
                    + ", ".join(s.reader for s in with_card) + ").")
        slot = self._slots.get(reader)
        if slot is None or slot.session is None or slot.holder is None:
            return f"Aucune carte dans le lecteur « {reader} »."
        return slot

    async def _open(self, slot: CardSlot, credentials: CardCredentials) -> None:
        """The card's own TLS connection, then the wallet: its documents may go."""
        await self._close_connection(slot)
        forwarder = CardTlsForwarder(
            self._target.url, certificate_chain=[credentials.auth_certificate_der],
            sign_digest_info=credentials.sign_tls, server_ca=self._target.server_ca)
        local_url = await forwarder.start()
        client = DmpClient(self._target.url, None, via=local_url,
                           timeout_seconds=self._target.timeout_seconds,
                           rate_per_second=self._target.rate_per_second)
        slot.credentials, slot.forwarder, slot.client = credentials, forwarder, client
        slot.certificates = [
            (f"certificat de {role.value} de la carte CPS ({slot.reader})",
             credentials.auth_certificate_der if role is KeyRole.AUTHENTICATION
             else credentials.signing_certificate.der)
            for role in KeyRole]
        slot.problem_fr = None
        slot.pin = PinStatus(tries_left=None, logged_in=True)
        self._wallet.put(slot.reader, client, credentials)

    # -- what people see (any thread) --------------------------------------------------------
    def _publish(self) -> None:
        """New snapshots for the readers in other threads (called on the loop, under the
        lock, after every change)."""
        views = []
        for slot in self._slots.values():
            holder, pin = slot.holder, slot.pin
            views.append(ReaderView(
                name=slot.reader,
                card_present=slot.session is not None,
                holder=None if holder is None else f"{holder.given_name} {holder.family_name}",
                kind=None if holder is None else holder.kind.value,
                logged_in=slot.credentials is not None,
                situations=tuple(SituationView(i, label) for i, label in slot.situations),
                chosen_situation=None if slot.credentials is None
                else slot.credentials.situation.index,
                pin_tries_left=None if pin is None else pin.tries_left,
                blocked=pin is not None and pin.blocked,
                warning=slot.problem_fr or (None if pin is None else pin.warning_fr()),
            ))
        self._views = tuple(views)
        self._validities = tuple(cert for slot in self._slots.values()
                                 for cert in slot.certificates)

    def readers(self) -> list[ReaderView]:
        """Every reader and its card, for the dashboard and `dmp-bridge card status`."""
        return list(self._views)

    def certificate_validities(self) -> list[tuple[str, bytes]]:
        """(label, DER) of the certificates of the logged-in cards, for expiry warnings."""
        return list(self._validities)

    async def close(self) -> None:
        async with self._lock:
            for slot in self._slots.values():
                await self._drop(slot)
            self._publish()


def specialty_display(holder: CardHolder) -> str:
    """The JDV_J01 display of the holder's authorSpecialty (refused when it is not a known code:
    the DMP would refuse every document)."""
    code = author_specialty(holder)
    found = load_value_set(VS.AUTHOR_SPECIALTY).get(code)
    if found is None:
        raise CardRefused(
            f"La spécialité de la carte ({code}) n'est pas dans le jeu de valeurs JDV_J01 du "
            "DMP : signalez-le au support de dmp-bridge avec la sortie de "
            "« dmp-bridge card status »."
        )
    return found.display


@dataclass(frozen=True)
class CardAccess:
    """How cards are watched and opened, per `carte.acces`."""

    open_session: Callable[[str], CardSession]
    watcher: Callable[[Callable[[PcscEvent], None]], Watcher]


class Watcher(Protocol):
    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...


def card_access(config: BridgeConfig) -> CardAccess:
    """The PKCS#11 module watching and opening its own slots (the Cryptolib CPS names them
    after the PC/SC readers: production); or, for the project's emulated card
    (`carte.acces = "apdu"`, tests and demonstrations), PC/SC events and APDUs."""
    readers = config.carte.lecteurs
    if config.carte.acces == "apdu":
        from connectors.apdu_card import open_apdu_session
        from connectors.pcsc_monitor import PcscMonitor

        return CardAccess(open_apdu_session,
                          lambda on_event: PcscMonitor(on_event, readers=readers))
    from connectors.pkcs11_card import Pkcs11Module
    from connectors.pkcs11_slots import Pkcs11SlotWatcher

    module = Pkcs11Module(config.path(config.carte.module))  # loaded once, at start
    return CardAccess(module.open,
                      lambda on_event: Pkcs11SlotWatcher(module, on_event, readers=readers))


class CardRuntime:
    """The monitor thread feeding the manager, one event at a time, in order."""

    def __init__(self, manager: CardManager,
                 watcher: Callable[[Callable[[PcscEvent], None]], Watcher]) -> None:
        self.manager = manager
        self._new_watcher = watcher
        self._events: asyncio.Queue[PcscEvent] = asyncio.Queue()
        self._monitor: Watcher | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.manager.bind(loop)

        def on_event(event: PcscEvent) -> None:  # the monitor's thread
            loop.call_soon_threadsafe(self._events.put_nowait, event)

        self._task = asyncio.create_task(self._consume(), name="card-events")
        self._monitor = self._new_watcher(on_event)
        await asyncio.to_thread(self._monitor.start)

    async def _consume(self) -> None:
        handlers = {
            PcscEventKind.READER_ADDED: self.manager.reader_added,
            PcscEventKind.READER_REMOVED: self.manager.reader_removed,
            PcscEventKind.CARD_INSERTED: self.manager.card_inserted,
            PcscEventKind.CARD_REMOVED: self.manager.card_removed,
        }
        while True:
            event = await self._events.get()
            try:
                if event.kind is PcscEventKind.SERVICE_DOWN:
                    await self.manager.service_down()
                elif event.reader is not None and event.kind in handlers:
                    await handlers[event.kind](event.reader)
            except Exception as exc:  # one bad event must not stop card tracking
                log.error("card_event_failed", kind=event.kind.value,
                          error=type(exc).__name__, alert=True)

    async def close(self) -> None:
        if self._monitor is not None:
            await asyncio.to_thread(self._monitor.stop)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.manager.close()


def card_runtime(config: BridgeConfig, wallet: Wallet) -> CardRuntime:
    """The card side of a bridge in card mode (credentials.mode = "carte")."""
    access = card_access(config)
    manager = CardManager(
        wallet,
        DmpTarget(config.dmp.url, config.path(config.dmp.server_ca),
                  config.dmp.timeout_seconds, config.dmp.max_rate_per_second),
        open_session=access.open_session,
        specialty_display=specialty_display,
        situation=config.carte.situation,
    )
    return CardRuntime(manager, access.watcher)
