"""The MLLP listener: HL7 v2 messages from practice software, acknowledged after the commit.

Life of one message on a connection:
1. bytes are framed by `bridge.hl7v2.MllpDecoder` (never more than `max_frame_bytes` held);
2. the frame is parsed in a worker thread (a 20 MiB CDA must not stall other connections);
3. the document is committed through the injected `enqueue` (Intake channel "mllp", key =
   sender + MSH-10); only when it returned is AA/CA sent. If the process dies before, the sender
   gets no ACK and resends; the idempotency key makes the second commit a no-op and the sender
   then gets the same positive ACK, without a second job;
4. a refusal gets AE/CE (correct the message) or AR/CR (resend as is: store unavailable,
   broken frame) with ERR-3 / ERR-5 / ERR-8.

PAM-FR ADT messages (A01, A04, A08, A28, A31) are not documents: when an `on_patient` callback
is given, the patient's DMP choices of segment ZFA (`bridge.hl7v2.adt.PatientUpdate`) are handed
to it and AA/CA is sent only once it returned (registry committed); without it, ADT is refused
(200, AR) as before. `on_committed(job, document)` runs after a document's commit and before its
ACK (the ZAM^Z01 notifier keeps what the business acknowledgment will need there).

Replace and delete requests (MDM^T10, MDM^T04, or ORU with ORC-1 RO/CA, OBX-11 C/D) are refused
with AE and ERR-3 = 207 and a French reason saying where to do it: the queue only carries initial
feeds (`MllpSettings.actions`). Never silently accepted.

HL7 v2 has no field for the author's activity sector (TRE_R02): every document gets
`MllpSettings.author_sector` (a pharmacy: SA33), unless its embedded CDA names one.

A broken frame, a garbage message or an exception in one connection never reaches the others.
Connections idle for `idle_timeout` seconds are closed, and so are those that spend more than
`frame_timeout` without completing a frame: from the first byte after the last complete frame,
so a sender trickling one byte at a time, restarting frames or sending noise between them
cannot hold a connection (one of `max_connections`) forever. A slow sender whose frames
complete within those limits is served. Logs carry codes and ids, never message content.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from bridge.hl7v2 import (
    Action,
    BrokenFrame,
    ErrorCode,
    Frame,
    HL7Document,
    HL7Rejected,
    MessageHeader,
    MllpDecoder,
    build_ack,
    frame,
    idempotency_key,
    parse_message,
    read_header,
    source_ref,
)
from bridge.hl7v2.adt import PatientUpdate, parse_adt
from bridge.hl7v2.errors import rejected
from bridge.hl7v2.mllp import DEFAULT_MAX_FRAME
from bridge.hl7v2.people import DEFAULT_SECTOR, sector_problem
from bridge.identity_gate import PatientRecord
from bridge.jobs import Intake, Job
from mappings.matrix import Matrix

log = structlog.get_logger("dmp_bridge.mllp")

# Commits an intake and returns (job, created); must not block the event loop.
EnqueueFn = Callable[[Intake], Awaitable[tuple[Job, bool]]]
# Records a patient's DMP choices (ADT ZFA); must commit before returning, must not block.
OnPatient = Callable[[PatientUpdate], Awaitable[None]]
# Runs after a document's commit, before its ACK (an exception gets the sender an AR).
OnCommitted = Callable[[Job, HL7Document], Awaitable[None]]
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class MllpSettings:
    """Where and how to listen. Loopback only by default (DESIGN.md §6)."""

    host: str = "127.0.0.1"
    port: int = 2575  # 0 = any free port (tests)
    max_frame_bytes: int = DEFAULT_MAX_FRAME
    idle_timeout: float = 120.0  # seconds without a byte before the connection is closed
    # Seconds bytes may keep coming without completing a frame (from the first of them).
    frame_timeout: float = 600.0
    max_connections: int = 32
    # Actions the queue can carry today; replace/delete need the dispatcher's support.
    actions: frozenset[Action] = frozenset({Action.INITIAL})
    # Payload kinds the queue accepts: a PDF (wrapped in a CDA N1 by the dispatcher) and a CDA,
    # sent to the DMP as it is (bridge.cda_passthrough).
    kinds: frozenset[str] = frozenset({"pdf", "cda"})
    # The author's activity sector (TRE_R02) HL7 v2 cannot carry: SA07 cabinet individuel,
    # SA08 cabinet de groupe, SA33 officine…
    author_sector: str = DEFAULT_SECTOR

    def __post_init__(self) -> None:
        problem = sector_problem(self.author_sector)
        if problem is not None:
            raise ValueError(problem)


@dataclass(frozen=True)
class MllpOutcome:
    """What happened to one message (for the logs, the dashboard and tests)."""

    control_id: str
    accepted: bool
    job: Job | None = None
    duplicate: bool = False
    code: str = ""
    message_fr: str = ""


class MllpServer:
    """asyncio MLLP server; `await start()`, then `await stop()` (or `run()` until cancelled)."""

    def __init__(
        self,
        enqueue: EnqueueFn,
        settings: MllpSettings | None = None,
        *,
        matrix: Matrix | None = None,
        on_outcome: Callable[[MllpOutcome], None] | None = None,
        on_patient: OnPatient | None = None,
        on_committed: OnCommitted | None = None,
    ) -> None:
        self.settings = settings or MllpSettings()
        self._enqueue = enqueue
        self._on_patient = on_patient
        self._on_committed = on_committed
        self._matrix = matrix
        self._on_outcome = on_outcome
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            return self.settings.port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.settings.host, self.settings.port, limit=READ_CHUNK)
        log.info("mllp_listening", host=self.settings.host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def run(self) -> None:
        """Serve until cancelled."""
        await self.start()
        try:
            await asyncio.Future()
        finally:
            await self.stop()

    # -- connections ------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= self.settings.max_connections or task is None:
            log.warning("mllp_too_many_connections", limit=self.settings.max_connections)
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # one connection's failure stays there
            log.error("mllp_connection_failed", error=type(exc).__name__)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        decoder = MllpDecoder(max_frame=self.settings.max_frame_bytes)
        # When the bytes not yet part of a complete frame began to arrive (None: there are none).
        pending_since: float | None = None
        while True:
            timeout = self.settings.idle_timeout
            if pending_since is not None:
                remaining = pending_since + self.settings.frame_timeout - loop.time()
                timeout = max(0.0, min(timeout, remaining))
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), timeout)
            except TimeoutError:
                log.info("mllp_connection_timeout", in_frame=decoder.in_frame,
                         frame_deadline=pending_since is not None)
                return
            if not data:
                return
            events = decoder.feed(data)
            for event in events:
                reply = await self._answer(event)
                if reply is not None:
                    writer.write(frame(reply))
                    await asyncio.wait_for(writer.drain(), self.settings.idle_timeout)
            # A frame that ends (even too large) is progress; an interrupted one or noise is not.
            if any(_completed(event) for event in events):
                pending_since = loop.time() if decoder.in_frame else None
            elif pending_since is None:
                pending_since = loop.time()

    # -- messages ---------------------------------------------------------------------------
    async def _answer(self, event: Frame | BrokenFrame) -> bytes | None:
        data = event.data if isinstance(event, Frame) else event.head
        try:
            header = read_header(data)
        except HL7Rejected as exc:
            return self._refuse(None, exc, data)
        if header.message_type == "ACK":
            return None  # an acknowledgment is never acknowledged
        refusal = await self._process(header, event, data)
        if refusal is not None:
            return self._refuse(header, refusal, data)
        return self._ack(header, None, data)

    async def _process(self, header: MessageHeader, event: Frame | BrokenFrame,
                       data: bytes) -> HL7Rejected | None:
        """None once the message is committed; otherwise why it was not."""
        if isinstance(event, BrokenFrame):
            return self._broken(event)
        if header.message_type == "ADT" and self._on_patient is not None:
            return await self._patient(header, data)
        try:
            document = await asyncio.to_thread(parse_message, data, matrix=self._matrix,
                                               author_sector=self.settings.author_sector)
        except HL7Rejected as exc:
            return exc
        except Exception as exc:  # a parser bug must not cost the sender its message
            log.error("mllp_parse_failed", error=type(exc).__name__)
            return rejected(
                "Erreur interne de dmp-bridge à la lecture du message : renvoyez-le plus tard ; "
                "si l'erreur persiste, contactez le support.", ErrorCode.APPLICATION,
                resend=True)
        return await self._commit(header, document)

    def _broken(self, event: BrokenFrame) -> HL7Rejected:
        if event.reason == "oversized":
            limit = self.settings.max_frame_bytes // (1024 * 1024)
            return rejected(
                f"Message trop volumineux (plus de {limit} Mo) : réduisez le document.",
                ErrorCode.APPLICATION)
        return rejected(
            "Message incomplet : la trame MLLP a été interrompue avant sa fin. Renvoyez-le.",
            ErrorCode.OTHER, resend=True)

    async def _commit(self, header: MessageHeader, document: HL7Document) -> HL7Rejected | None:
        """Enqueue; None once committed (then, and only then, AA/CA may be sent)."""
        if document.kind not in self.settings.kinds:
            return rejected(
                "Les documents CDA transmis tels quels ne sont pas encore pris en charge par "
                "dmp-bridge : envoyez le document en PDF (OBX de type ED, PDF en base64).",
                ErrorCode.APPLICATION)
        if document.action not in self.settings.actions:
            return _unsupported_action(document.action)
        content_sha256 = hashlib.sha256(document.content).hexdigest()
        intake = Intake(
            channel="mllp",
            source_ref=source_ref(header),
            idempotency_key=idempotency_key(header),
            payload=document.content,
            metadata=document.sidecar_json,
            received_at=dt.datetime.now(dt.UTC),
            payload_sha256=content_sha256,
        )
        try:
            job, created = await self._enqueue(intake)
        except Exception as exc:  # not committed: the sender must resend (AR/CR)
            log.error("mllp_enqueue_failed", error=type(exc).__name__)
            return rejected(
                "dmp-bridge n'a pas pu enregistrer le message (file d'attente indisponible) : "
                "rien n'a été conservé, renvoyez-le.", ErrorCode.APPLICATION, resend=True)
        if not created and job.payload_sha256 != content_sha256:
            # Same sender, same MSH-10, another document: a positive ACK would lose it silently.
            return rejected(
                f"L'identifiant de message {header.control_id} (MSH-10) a déjà été utilisé par "
                "ce logiciel pour un autre document : chaque message doit avoir un identifiant "
                "unique.", ErrorCode.DUPLICATE_KEY)
        if self._on_committed is not None:
            try:
                await self._on_committed(job, document)
            except Exception as exc:  # the job exists; a resend finds it and tries this again
                log.error("mllp_after_commit_failed", job_id=job.id, error=type(exc).__name__)
                return rejected(
                    "dmp-bridge a enregistré le document mais pas la demande d'accusé de "
                    "réception métier : renvoyez le message tel quel (il ne sera pas envoyé "
                    "deux fois au DMP).", ErrorCode.APPLICATION, resend=True)
        log.info("mllp_document_queued", job_id=job.id, duplicate=not created)
        self._emit(MllpOutcome(header.control_id, True, job=job, duplicate=not created))
        return None

    async def _patient(self, header: MessageHeader, data: bytes) -> HL7Rejected | None:
        """A PAM-FR ADT: None once its DMP choices are recorded; otherwise why not."""
        assert self._on_patient is not None
        try:
            update = await asyncio.to_thread(parse_adt, data)
        except HL7Rejected as exc:
            return exc
        except Exception as exc:
            log.error("mllp_parse_failed", error=type(exc).__name__)
            return rejected(
                "Erreur interne de dmp-bridge à la lecture du message : renvoyez-le plus tard ; "
                "si l'erreur persiste, contactez le support.", ErrorCode.APPLICATION,
                resend=True)
        try:
            await self._on_patient(update)
        except Exception as exc:  # not recorded: the sender must resend (AR/CR)
            log.error("mllp_patient_record_failed", error=type(exc).__name__)
            return rejected(
                "dmp-bridge n'a pas pu enregistrer le statut DMP du patient (registre "
                "indisponible) : rien n'a été conservé, renvoyez le message.",
                ErrorCode.APPLICATION, resend=True)
        log.info("mllp_patient_recorded", trigger=update.event, zfa=update.has_zfa)
        self._emit(MllpOutcome(header.control_id, True, code="ADT"))
        return None

    def _refuse(self, header: MessageHeader | None, exc: HL7Rejected,
                data: bytes) -> bytes | None:
        log.warning("mllp_message_rejected", hl7_code=exc.code, resend=exc.resend)
        control_id = header.control_id if header is not None else ""
        self._emit(MllpOutcome(control_id, False, code=exc.code, message_fr=exc.message_fr))
        return self._ack(header, exc, data)

    @staticmethod
    def _ack(header: MessageHeader | None, exc: HL7Rejected | None, data: bytes) -> bytes | None:
        return build_ack(header, exc, now=dt.datetime.now().astimezone(),
                         control_id=uuid.uuid4().hex[:20], data=data)

    def _emit(self, outcome: MllpOutcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)


def _completed(event: Frame | BrokenFrame) -> bool:
    """A frame that reached its end block (an oversized one too), unlike an interrupted one."""
    return isinstance(event, Frame) or event.reason == "oversized"


def _unsupported_action(action: Action) -> HL7Rejected:
    """AE + 207: the queue carries initial feeds only; say where the request must be made."""
    if action is Action.REPLACE:
        what, how = "remplacement", (
            "déposez la nouvelle version en remplacement de l'ancienne depuis l'accès web au DMP "
            "des professionnels de santé (www.dmp.fr, avec votre carte CPS ou e-CPS)")
    else:
        what, how = "suppression", (
            "supprimez le document depuis l'accès web au DMP des professionnels de santé "
            "(www.dmp.fr, avec votre carte CPS ou e-CPS)")
    return rejected(
        f"dmp-bridge ne sait pas faire la {what} d'un document déjà envoyé au DMP (MDM^T10 / "
        f"MDM^T04, ou OBX-11 C / D) : rien n'a été fait. Pour ce document, {how}. S'il n'était "
        "pas encore parti (dmp-bridge list), annulez-le (dmp-bridge cancel N) et envoyez la "
        "nouvelle version comme un nouveau document (MDM^T02).", ErrorCode.APPLICATION)


class PatientChoices(Protocol):
    """The part of the patient registry an ADT writes (connectors.sqlite_patients)."""

    def record(self, ins: str, *, now: dt.datetime, feeding_opposition: bool | None = None,
               consultation_consent_at: dt.date | None = None,
               opposition_at: dt.datetime | None = None,
               consent_withdrawn: bool = False) -> PatientRecord: ...


def patient_recorder(registry: PatientChoices) -> OnPatient:
    """The `on_patient` callback that writes an ADT's ZFA into the registry (in a thread)."""
    async def record(update: PatientUpdate) -> None:
        changes = update.registry_changes()
        if changes.empty or update.ins is None:
            return
        await asyncio.to_thread(
            registry.record, update.ins, now=dt.datetime.now(dt.UTC),
            feeding_opposition=changes.feeding_opposition,
            consultation_consent_at=changes.consultation_consent_at,
            opposition_at=changes.opposition_at,
            consent_withdrawn=changes.consent_withdrawn)
    return record
