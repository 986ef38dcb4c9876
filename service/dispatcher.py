"""The dispatcher: takes queued jobs, packages them once (alone, or in a lot with the other ready
documents of the same patient and author: `service.lot_assembly`), submits them, and records the
outcome. Decisions (what an answer means, when to retry) come from the core; this module only
sequences I/O: store → credentials → DMP → store.

Durability walk-through (what happens if the process dies right here):
- before `mark_sent`: the jobs are ACTIVE and unsent; at restart they go back to QUEUED and are
  sent with the same stored package (same uniqueIds, same bytes; the jobs of a lot share them,
  and whichever is taken first takes the others along: `Store.claim_related`);
- after `mark_sent` (one per job of the lot, all before the request leaves): the request may
  have reached the DMP; at restart each job is AMBIGUOUS and the DMP is asked (ITI-18 by the
  job's own uniqueId) before anything is resent (`service.ambiguity`);
- after the final `transition` of each job: its outcome is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from bridge.audit import AuditError
from bridge.card_port import CardError
from bridge.credentials_port import Credentials
from bridge.dmp_answer import UNKNOWN_CODE_PREFIX, Decision, decide, parse_answer, transport_failure
from bridge.dmp_error_table import ErrorClass
from bridge.domain import Author
from bridge.errors import BridgeError
from bridge.jobs import Job, JobState
from bridge.retry import RetryPolicy
from bridge.sidecar import DocumentRequest
from bridge.soap import ACTION_ITI41, HttpRequestBody, mtom
from bridge.store_port import Store
from bridge.td02 import DmpState
from bridge.vihf import ClockSkew, Software
from connectors.dmp_client import DmpClient, TransportError
from connectors.dmp_envelope import signed_envelope
from connectors.dmp_transactions import DmpTransactions
from service.ambiguity import AmbiguityResolver
from service.audit_trail import AuditTrail
from service.gatekeeping import Gatekeeping
from service.lot_assembly import DEFAULT_LOT_MAX, LotAssembler, Outgoing
from service.queue_care import QueueCare
from service.wallet import Opened, Wallet

__all__ = ["Dispatcher", "Finished", "Gatekeeping"]

log = structlog.get_logger("dmp_bridge.dispatch")

LEASE = dt.timedelta(minutes=5)
IDLE_POLL_SECONDS = 0.5
# A document still not in the DMP after this long needs a person: it ends `dead` (kept, listed,
# replayable), never deleted. Two weeks cover a long outage and a holiday closure of a practice.
DEFAULT_LIFETIME = dt.timedelta(days=14)
# After an environment error (certificate, clock, TLS trust), wait this long before trying
# again: every job would fail the same way, and the DMP must not be hammered meanwhile.
ENVIRONMENT_PAUSE = dt.timedelta(seconds=60)
RESOLVE_AGAIN_AFTER = dt.timedelta(seconds=30)
# A document the open credentials may not send (another structure's) looks again this often;
# it also goes at once when the credentials change (`replace_credentials`).
CREDENTIALS_WAIT = dt.timedelta(minutes=10)
AWAITING_CREDENTIALS = "AWAITING_CREDENTIALS"
# A send stopped by its card (pulled out, logged out) is looked at again after this long.
CARD_RECHECK = dt.timedelta(seconds=5)
# Answers about the patient's DMP itself, which a TD0.2 existence test can explain.
PATIENT_STATE_CODES = frozenset({"XDSUnknownPatientId", "DMP_DOSSIER_FERME"})


def is_card_problem(code: str) -> bool:
    """A decision caused by a CPS card (withdrawn, logged out, blocked), not by the DMP or
    the environment as a whole."""
    return code.startswith("CARD_") or code == "DMP_CARTE"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Finished:
    """A job reached a new state after an attempt (for the demo and tests)."""

    job: Job
    decision: Decision


class Dispatcher:
    """Drains the queue towards one DMP endpoint with one set of credentials."""

    def __init__(
        self,
        store: Store,
        client: DmpClient | None,
        credentials: Credentials | None,
        *,
        source_id: str,
        software: Software,
        gate: Gatekeeping,
        retry: RetryPolicy | None = None,
        lifetime: dt.timedelta = DEFAULT_LIFETIME,
        on_finished: Callable[[Finished], None] | None = None,
        lot_max: int = DEFAULT_LOT_MAX,
        care: QueueCare | None = None,
        wallet: Wallet | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        """`client` and `credentials`: one fixed set (establishment mode); or `wallet`: the
        credentials open right now (CPS cards come and go), the other two then None."""
        self._store = store
        self._source_id = source_id
        self._software = software
        if wallet is None:
            assert client is not None and credentials is not None
            wallet = Wallet.single(client, credentials, source_id=source_id, software=software)
        self._wallet = wallet
        wallet.on_change(self._on_wallet_change)
        self._audit = audit
        self._retry = retry or RetryPolicy()
        self._on_finished = on_finished
        self._wake = asyncio.Event()
        self._random = random.SystemRandom()
        self._stopping = False
        self._care = care or QueueCare(store, lifetime=lifetime)
        self._care.on_expired = self._expired
        self._lots = LotAssembler(store, gate, source_id=source_id, lot_max=lot_max,
                                  lease=LEASE, opened_for=wallet.for_author)
        self._ambiguity = AmbiguityResolver(store, self._lots, self._transactions_for,
                                            lease=LEASE)
        self._credentials_changed = False
        self.paused_until: dt.datetime | None = None
        self.pause_reason: str | None = None  # French, for the status and the dashboard

    def _transactions_for(self, author: Author) -> DmpTransactions | None:
        opened = self._wallet.for_author(author)
        return None if opened is None else opened.transactions

    @property
    def wallet(self) -> Wallet:
        return self._wallet

    def wake(self) -> None:
        """A job was just queued: look now rather than at the next poll."""
        self._wake.set()

    def resume(self) -> None:
        """The environment was fixed (new certificate, clock set): try again now."""
        self.paused_until = None
        self.pause_reason = None
        self._wake.set()

    def replace_credentials(self, credentials: Credentials) -> None:
        """Other establishment credentials replace the open ones (new certificates), on the
        same DMP connection: the documents that waited for them are tried again at once."""
        names = self._wallet.names()
        client = self._wallet.clients()[0]
        for name in names:
            self._wallet.remove(name)
        self._wallet.put(names[0], client, credentials)
        self.resume()  # new certificates: what paused the sends may be fixed

    def _on_wallet_change(self) -> None:
        """Credentials were opened or closed (a card logged in or pulled out): the documents
        that waited for credentials are looked at again at once. A pause for another cause
        (clock, audit journal, the structure's certificates) goes on."""
        self._credentials_changed = True
        self._wake.set()

    def _pause(self, decision: Decision) -> None:
        if self.pause_reason != decision.message_fr:
            # Alert once per distinct cause, not once per job.
            log.error("dispatch_paused", code=decision.code, alert=True)
        self.paused_until = _now() + ENVIRONMENT_PAUSE
        self.pause_reason = decision.message_fr

    def stop_taking_work(self) -> None:
        """Graceful stop: finish the job in hand, take no other."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Process jobs until cancelled, or until `stop_taking_work` and the job in hand ends."""
        while not self._stopping:
            worked = await self.run_once()
            if not worked:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=IDLE_POLL_SECONDS)

    async def run_once(self) -> bool:
        """Resolve ambiguous jobs, then process one job (or lot); False when nothing was done."""
        now = _now()
        if self.paused_until is not None:
            if now < self.paused_until:
                return False
            log.info("dispatch_resuming")
            self.paused_until = None
        await self._care.sweep(now)
        for ambiguous in await asyncio.to_thread(self._store.list_jobs, JobState.AMBIGUOUS, 10):
            # A fresh ambiguity is asked about at once; one that could not be resolved waits a
            # while, so an unreachable DMP is not flooded with queries.
            if ambiguous.last_error_code != "DMP_NO_ANSWER" or (
                now - ambiguous.updated_at >= RESOLVE_AGAIN_AFTER
            ):
                await self._ambiguity.resolve(ambiguous, self._finish_resolved)
        if self._credentials_changed:
            self._credentials_changed = False
            if await self._retry_waiting_for_credentials():
                return True
        job = await asyncio.to_thread(self._store.claim, now, LEASE)
        if job is None:
            return False
        await self._process(job)
        return True

    async def _retry_waiting_for_credentials(self) -> bool:
        worked = False
        for job in await asyncio.to_thread(self._store.list_jobs, JobState.DEFERRED, 100_000):
            if job.last_error_code != AWAITING_CREDENTIALS:
                continue
            try:
                active = await asyncio.to_thread(
                    self._store.transition, job.id, JobState.ACTIVE, code="CREDENTIALS_CHANGED",
                    message_fr="Nouveaux identifiants ouverts : nouvel essai.", now=_now(),
                    lease=LEASE)
            except BridgeError:
                continue  # another worker took it
            await self._process(active)
            worked = True
        return worked

    # -- outcomes ----------------------------------------------------------------------------
    async def _finish_resolved(self, job: Job, decision: Decision) -> None:
        await self._finish([job], decision, attempt=False)

    async def _finish(self, jobs: list[Job], decision: Decision, *, attempt: bool) -> None:
        """Record one decision for every job of a send (a lot shares its fate)."""
        if not jobs:
            return
        next_at = None
        state = decision.state
        message = decision.message_fr
        if decision.error_class is ErrorClass.ENVIRONMENT:
            attempt = False  # nothing is wrong with the documents: no attempt is used up
            if is_card_problem(decision.code):
                # Only this card's documents are concerned (another card, or the structure's
                # certificates, keep sending): they wait a moment, by then the card's removal is
                # known and they wait for it, and they go at once when it is back.
                state, next_at = JobState.DEFERRED, _now() + CARD_RECHECK
            else:
                self._pause(decision)
        if decision.code.startswith(UNKNOWN_CODE_PREFIX):
            log.error("dmp_unknown_error_code", code=decision.code, alert=True)
        if state is JobState.DEFERRED and next_at is None:
            attempts = max(job.attempts for job in jobs) + (1 if attempt else 0)
            if attempt and self._retry.exhausted(attempts):
                state = JobState.DEAD
                message = (
                    f"{message} Abandon après {attempts} tentatives : vérifiez "
                    "la connexion au DMP, puis relancez l'envoi depuis le tableau de bord."
                )
            else:
                # One time for the whole lot: its jobs are taken again together.
                next_at = _now() + self._retry.delay(max(attempts, 1), self._random.random())
        for job in jobs:
            updated = await asyncio.to_thread(
                self._store.transition, job.id, state, code=decision.code, message_fr=message,
                now=_now(), next_attempt_at=next_at, count_attempt=attempt)
            await self._audit_outcome(updated, decision.code)
            log.info("job_finished", job_id=job.id, state=state.value, code=decision.code,
                     error_class=decision.error_class.value if decision.error_class else None,
                     lot_size=len(jobs))
            if self._on_finished is not None:
                self._on_finished(
                    Finished(updated, Decision(decision.error_class, state, decision.code,
                                               message)))

    async def _expired(self, job: Job) -> None:
        """A job ended by its lifetime: journaled and told like any other outcome."""
        await self._audit_outcome(job, job.last_error_code or "LIFETIME_EXPIRED")
        if self._on_finished is not None:
            self._on_finished(Finished(job, Decision(
                ErrorClass.PERMANENT, JobState.DEAD, job.last_error_code or "LIFETIME_EXPIRED",
                job.last_error_fr or "")))

    async def _wait_for_credentials(self, job: Job, request: DocumentRequest) -> None:
        """The open credentials may not send for this author: wait, using no attempt."""
        author = request.author
        await asyncio.to_thread(
            self._store.transition, job.id, JobState.DEFERRED, code=AWAITING_CREDENTIALS,
            message_fr=(
                f"Document en attente des identifiants de la structure {author.structure_id} "
                f"(auteur RPPS {author.rpps}) : les certificats ouverts ne permettent pas "
                "d'envoyer pour cet auteur. Il partira dès que les bons identifiants seront "
                "ouverts ; aucune tentative n'est comptée."),
            now=_now(), next_attempt_at=_now() + CREDENTIALS_WAIT, count_attempt=False)
        log.warning("job_awaiting_credentials", job_id=job.id)

    async def _split(self, jobs: list[Job], submission_id: str, reason: str, *,
                     attempt: bool = False) -> None:
        """Send the documents of a lot again one by one.

        Compatible with "the same bytes are resent" (DESIGN.md §4) because nothing of this lot
        is in the DMP (it registers a lot atomically, and it refused this one, or it was never
        accepted): each document keeps its uniqueId and its CDA bytes (rebuilt identically from
        the same inputs and id), only the submission set around it is new. A job that was in a
        lot is never grouped again (it has a document uniqueId), so this happens once.
        """
        for job in jobs:
            await asyncio.to_thread(self._store.discard_refused_package, job.id, submission_id,
                                    now=_now())
            await asyncio.to_thread(
                self._store.transition, job.id, JobState.QUEUED, code="LOT_SPLIT",
                message_fr=f"{reason} Le document repart seul, avec le même identifiant et le "
                "même contenu.", now=_now(), count_attempt=attempt)
        log.warning("lot_split", jobs=len(jobs))

    # -- one send ----------------------------------------------------------------------------
    async def _process(self, leader: Job) -> None:
        assembly = await self._lots.assemble(leader)
        lot = assembly.split_submission_id
        if lot is not None:
            # While they are still leased: a stopped job keeps no lot bytes either (released
            # later, it goes alone with its own uniqueId).
            for job, _ in assembly.stopped:
                await asyncio.to_thread(self._store.discard_refused_package, job.id, lot,
                                        now=_now())
        for job, decision in assembly.stopped:
            await self._finish([job], decision, attempt=False)
        for job, request in assembly.waiting:
            await self._wait_for_credentials(job, request)
        if lot is not None and assembly.split:
            await self._split(assembly.split, lot,
                              "Un autre document de son lot ne peut pas partir maintenant.")
        if assembly.outgoing is not None:
            await self._submit(assembly.outgoing)

    async def _submit(self, outgoing: Outgoing) -> None:
        request, package, jobs = outgoing.request, outgoing.package, outgoing.jobs
        opened = outgoing.opened
        try:
            envelope = await asyncio.to_thread(
                signed_envelope, opened.credentials, self._software, author=request.author,
                patient=request.patient.ins, action=ACTION_ITI41,
                to=opened.client.url("repository"), body=package.body, now=_now())
        except (ClockSkew, CardError) as exc:
            await self._finish(jobs, Decision(ErrorClass.ENVIRONMENT, JobState.QUEUED, exc.code,
                                              exc.message_fr), attempt=False)
            return
        except BridgeError as exc:
            await self._finish(jobs, Decision(ErrorClass.PERMANENT, JobState.DEAD, exc.code,
                                              exc.message_fr), attempt=False)
            return
        http = mtom(envelope, ACTION_ITI41, boundary=f"MIMEBoundary_{uuid.uuid4().hex}",
                    root_id=f"root-{uuid.uuid4()}@dmp-bridge", parts=package.parts)
        if not await self._audit_attempt(outgoing):
            return
        for job in jobs:
            await asyncio.to_thread(self._store.mark_sent, job.id)
        decision = await self._send(opened.client, http)
        if decision.state is JobState.AMBIGUOUS:
            # Each job is asked about by its own uniqueId (a lot is registered atomically, so
            # they agree; but none relies on another's answer).
            for member, document_id in zip(outgoing.members, outgoing.document_ids, strict=True):
                own = await self._ambiguity.ask(member.request, package, document_id)
                await self._finish([member.job], own or decision, attempt=True)
            return
        if decision.code in PATIENT_STATE_CODES:
            decision = await self._explain_patient_state(opened, request, decision)
        if decision.state is JobState.DEAD and len(package.document_unique_ids) > 1:
            # A permanent refusal of a lot may be caused by one document only: the others must
            # not die with it. The attempt counts; each document then goes alone once.
            log.warning("lot_refused", code=decision.code, jobs=len(jobs))
            await self._split(jobs, package.submission_unique_id,
                              f"Le DMP a refusé en bloc le lot de {len(jobs)} documents "
                              f"({decision.code} : {decision.message_fr}).", attempt=True)
            return
        await self._finish(jobs, decision, attempt=True)

    async def _audit_attempt(self, outgoing: Outgoing) -> bool:
        """Journal the attempt BEFORE anything leaves; if the journal cannot be written, nothing
        is sent (environment: pause, no attempt used), so no send goes unrecorded."""
        if self._audit is None:
            return True
        request = outgoing.request
        try:
            await asyncio.to_thread(
                self._audit.attempt, [job.id for job in outgoing.jobs],
                outgoing.package.submission_unique_id, request.author.rpps,
                request.patient.ins.matricule, "ITI-41")
        except (AuditError, OSError) as exc:
            detail = exc.message_fr if isinstance(exc, AuditError) else str(exc)
            await self._finish(outgoing.jobs, Decision(
                ErrorClass.ENVIRONMENT, JobState.QUEUED, "AUDIT_UNWRITABLE",
                "Le journal d'audit ne peut pas être écrit : aucun envoi tant qu'il ne l'est "
                f"pas (chaque envoi doit y être tracé). Lancez « dmp-bridge doctor ». "
                f"Détail : {detail}"), attempt=False)
            return False
        return True

    async def _audit_outcome(self, job: Job, code: str) -> None:
        if self._audit is None:
            return
        try:
            await asyncio.to_thread(self._audit.outcome, job.id, job.state, code,
                                    document_unique_id=job.document_unique_id)
        except (AuditError, OSError) as exc:
            # The outcome is in the store already; the journal's gap is the alert's business.
            log.error("audit_outcome_unwritable", job_id=job.id, error=type(exc).__name__,
                      alert=True)

    async def _explain_patient_state(self, opened: Opened, request: DocumentRequest,
                                     decision: Decision) -> Decision:
        """The DMP said no DMP / closed: one TD0.2 existence test tells the user which, and
        only then (the DMP asks integrators not to test existence before every feed)."""
        status = await opened.transactions.test_existence(request.patient.ins,
                                                        author=request.author)
        if status.state is DmpState.INCONNU:
            return decision
        return Decision(decision.error_class, decision.state, decision.code,
                        f"{status.message_fr} {decision.message_fr}")

    async def _send(self, client: DmpClient, http: HttpRequestBody) -> Decision:
        try:
            answer = await client.post("repository", http)
        except TransportError as exc:
            return transport_failure(exc.maybe_delivered, exc.detail, tls=exc.tls,
                                     card=exc.card)
        return decide(parse_answer(answer.status, answer.content_type, answer.body))
