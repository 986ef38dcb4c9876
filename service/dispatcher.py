"""The dispatcher: takes queued jobs one by one, packages them once, submits them, and records
the outcome. Decisions (what an answer means, when to retry) come from the core; this module only
sequences I/O: store → credentials → DMP → store.

Durability walk-through (what happens if the process dies right here):
- before `mark_sent`: the job is ACTIVE and unsent; at restart it goes back to QUEUED and is sent
  with the same stored package (same uniqueIds);
- after `mark_sent`: the request may have reached the DMP; at restart the job is AMBIGUOUS and
  the DMP is asked (ITI-18 by uniqueId) before anything is resent;
- after the final `transition`: the outcome is durable.
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
from lxml import etree

from bridge.classify import resolve
from bridge.credentials_port import Credentials
from bridge.dmp_answer import UNKNOWN_CODE_PREFIX, Decision, decide, parse_answer, transport_failure
from bridge.dmp_error_table import ErrorClass
from bridge.domain import DocumentCodes
from bridge.ebrim import sha1_hex
from bridge.errors import BridgeError, HeldForPerson, IdentityRejected
from bridge.identity_gate import PatientRegistry, Target, check_identity, check_not_opposed
from bridge.jobs import Job, JobState
from bridge.packaging import MintedIds, Package, build_package
from bridge.retry import RetryPolicy
from bridge.sidecar import DocumentRequest, parse_sidecar
from bridge.soap import (
    ACTION_ITI41,
    HttpRequestBody,
    mtom,
)
from bridge.store_port import CorruptPayload, Store
from bridge.td02 import DmpState
from bridge.vihf import ClockSkew, Software
from connectors.dmp_client import DmpClient, TransportError
from connectors.dmp_envelope import signed_envelope
from connectors.dmp_transactions import DmpTransactions
from mappings.matrix import Matrix
from service.labels import RELEASED_BY_USER

log = structlog.get_logger("dmp_bridge.dispatch")

LEASE = dt.timedelta(minutes=5)
IDLE_POLL_SECONDS = 0.5
# A document still not in the DMP after this long needs a person: it ends `dead` (kept, listed,
# replayable), never deleted. Two weeks cover a long outage and a holiday closure of a practice.
DEFAULT_LIFETIME = dt.timedelta(days=14)
SWEEP_EVERY = dt.timedelta(minutes=1)
# After an environment error (certificate, clock, TLS trust), wait this long before trying
# again: every job would fail the same way, and the DMP must not be hammered meanwhile.
ENVIRONMENT_PAUSE = dt.timedelta(seconds=60)
RESOLVE_AGAIN_AFTER = dt.timedelta(seconds=30)
# Answers about the patient's DMP itself, which a TD0.2 existence test can explain.
PATIENT_STATE_CODES = frozenset({"XDSUnknownPatientId", "DMP_DOSSIER_FERME"})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Gatekeeping:
    """What decides whether a document may go: the matrix, the target, the patient registry."""

    matrix: Matrix
    target: Target = Target.SIMULATOR
    registry: PatientRegistry | None = None


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
        client: DmpClient,
        credentials: Credentials,
        *,
        source_id: str,
        software: Software,
        gate: Gatekeeping,
        retry: RetryPolicy | None = None,
        lifetime: dt.timedelta = DEFAULT_LIFETIME,
        on_finished: Callable[[Finished], None] | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._credentials = credentials
        self._source_id = source_id
        self._software = software
        self._gate = gate
        self._transactions = DmpTransactions(client, credentials, software=software,
                                             source_id=source_id)
        self._retry = retry or RetryPolicy()
        self._on_finished = on_finished
        self._wake = asyncio.Event()
        self._random = random.SystemRandom()
        self._stopping = False
        self._lifetime = lifetime
        self._next_sweep = _now()
        self.paused_until: dt.datetime | None = None
        self.pause_reason: str | None = None  # French, for the status and the dashboard

    def wake(self) -> None:
        """A job was just queued: look now rather than at the next poll."""
        self._wake.set()

    def resume(self) -> None:
        """The environment was fixed (new certificate, clock set): try again now."""
        self.paused_until = None
        self.pause_reason = None
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
        """Resolve ambiguous jobs, then process one job; False when there was nothing to do."""
        now = _now()
        if self.paused_until is not None:
            if now < self.paused_until:
                return False
            log.info("dispatch_resuming")
            self.paused_until = None
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY
            await self._expire(now)
        for ambiguous in await asyncio.to_thread(self._store.list_jobs, JobState.AMBIGUOUS, 10):
            # A fresh ambiguity is asked about at once; one that could not be resolved waits a
            # while, so an unreachable DMP is not flooded with queries.
            if ambiguous.last_error_code != "DMP_NO_ANSWER" or (
                now - ambiguous.updated_at >= RESOLVE_AGAIN_AFTER
            ):
                await self._resolve(ambiguous)
        job = await asyncio.to_thread(self._store.claim, now, LEASE)
        if job is None:
            return False
        await self._process(job)
        return True

    async def _expire(self, now: dt.datetime) -> None:
        """Jobs waiting past their lifetime end `dead`, with an alert; ambiguous ones are left
        alone: they may be in the DMP, and only asking it can tell."""
        for state in (JobState.QUEUED, JobState.DEFERRED):
            for job in await asyncio.to_thread(self._store.list_jobs, state, 100_000):
                if now - job.received_at < self._lifetime:
                    continue
                days = self._lifetime.days
                await asyncio.to_thread(
                    self._store.transition, job.id, JobState.DEAD, code="LIFETIME_EXPIRED",
                    message_fr=f"Document toujours pas enregistré dans le DMP après {days} jours"
                    " : envoi abandonné. Vérifiez la cause indiquée plus haut dans son "
                    "historique, puis renvoyez-le (dmp-bridge replay).", now=now)
                log.error("job_lifetime_expired", job_id=job.id, alert=True)

    # -- one job ---------------------------------------------------------------------------
    async def _finish(self, job: Job, decision: Decision, *, attempt: bool) -> None:
        if decision.error_class is ErrorClass.ENVIRONMENT:
            attempt = False  # nothing is wrong with the document: no attempt is used up
            self._pause(decision)
        if decision.code.startswith(UNKNOWN_CODE_PREFIX):
            log.error("dmp_unknown_error_code", code=decision.code, alert=True)
        next_at = None
        state = decision.state
        message = decision.message_fr
        if state is JobState.DEFERRED:
            if self._retry.exhausted(job.attempts + 1):
                state = JobState.DEAD
                message = (
                    f"{message} Abandon après {job.attempts + 1} tentatives : vérifiez "
                    "la connexion au DMP, puis relancez l'envoi depuis le tableau de bord."
                )
            else:
                next_at = _now() + self._retry.delay(job.attempts + 1, self._random.random())
        updated = await asyncio.to_thread(
            self._store.transition,
            job.id,
            state,
            code=decision.code,
            message_fr=message,
            now=_now(),
            next_attempt_at=next_at,
            count_attempt=attempt,
        )
        log.info(
            "job_finished",
            job_id=job.id,
            state=state.value,
            code=decision.code,
            error_class=decision.error_class.value if decision.error_class else None,
        )
        if self._on_finished is not None:
            self._on_finished(
                Finished(updated, Decision(decision.error_class, state, decision.code, message))
            )

    async def _request(self, job: Job) -> DocumentRequest:
        metadata = await asyncio.to_thread(self._store.metadata, job.id)
        return parse_sidecar(metadata, file_name=job.source_ref)

    async def _admit(self, job: Job, request: DocumentRequest) -> DocumentCodes:
        """The checks that decide whether this document may go now (run before every attempt:
        an opposition recorded since the last one must stop it)."""
        check_identity(request.patient, target=self._gate.target)
        if self._gate.registry is not None:
            record = await asyncio.to_thread(self._gate.registry.get, request.patient.ins.matricule)
            check_not_opposed(record)
        resolution = resolve(self._gate.matrix, request.author, kind=request.kind,
                             source_confirm=request.confirm_with_patient)
        holds = list(resolution.holds)
        if any(h.code == "CONFIRM_WITH_PATIENT" for h in holds):
            events = await asyncio.to_thread(self._store.events, job.id)
            if any(event.code == RELEASED_BY_USER for event in events):
                holds = [h for h in holds if h.code != "CONFIRM_WITH_PATIENT"]
        if holds:
            raise HeldForPerson(" ".join(h.message_fr for h in holds), code=holds[0].code)
        return resolution.codes

    async def _package(self, job: Job, request: DocumentRequest, codes: DocumentCodes) -> Package:
        stored = await asyncio.to_thread(self._store.package, job.id)
        if stored is None:
            pdf = await asyncio.to_thread(self._store.payload, job.id)
            built = build_package(
                request,
                pdf,
                codes=codes,
                ids=MintedIds.fresh(),
                now=_now(),
                source_id=self._source_id,
                certificate=self._credentials.signing_certificate,
                sign=self._credentials.sign,
            )
            await asyncio.to_thread(
                self._store.save_package,
                job.id,
                built.document_unique_id,
                built.submission_unique_id,
                built.to_bytes(),
            )
            # Read back: if a package already existed, the first one is the one we send.
            stored = await asyncio.to_thread(self._store.package, job.id)
            assert stored is not None
        return Package.from_bytes(stored)

    def _signed_envelope(
        self, request: DocumentRequest, service: str, action: str, body: etree._Element
    ) -> etree._Element:
        """Raises ClockSkew (environment) or VihfRefused before anything is signed."""
        return signed_envelope(self._credentials, self._software, author=request.author,
                               patient=request.patient.ins, action=action,
                               to=self._client.url(service), body=body, now=_now())

    async def _process(self, job: Job) -> None:
        try:
            request = await self._request(job)
            codes = await self._admit(job, request)
            package = await self._package(job, request, codes)
        except CorruptPayload as exc:
            await self._finish(
                job, Decision(None, JobState.CORRUPT, exc.code, exc.message_fr), attempt=False
            )
            return
        except (IdentityRejected, HeldForPerson) as exc:
            await self._finish(
                job,
                Decision(ErrorClass.PERMANENT, JobState.HELD, exc.code, exc.message_fr),
                attempt=False,
            )
            return
        except BridgeError as exc:
            await self._finish(
                job,
                Decision(ErrorClass.PERMANENT, JobState.DEAD, exc.code, exc.message_fr),
                attempt=False,
            )
            return
        try:
            envelope = self._signed_envelope(request, "repository", ACTION_ITI41, package.body)
        except ClockSkew as exc:
            await self._finish(job, Decision(ErrorClass.ENVIRONMENT, JobState.QUEUED, exc.code,
                                             exc.message_fr), attempt=False)
            return
        except BridgeError as exc:
            await self._finish(job, Decision(ErrorClass.PERMANENT, JobState.DEAD, exc.code,
                                             exc.message_fr), attempt=False)
            return
        http = mtom(
            envelope,
            ACTION_ITI41,
            boundary=f"MIMEBoundary_{uuid.uuid4().hex}",
            root_id=f"root-{uuid.uuid4()}@dmp-bridge",
            parts=package.parts,
        )
        await asyncio.to_thread(self._store.mark_sent, job.id)
        decision = await self._send(http)
        if decision.state is JobState.AMBIGUOUS:
            decision = await self._ask_dmp(request, package) or decision
        if decision.code in PATIENT_STATE_CODES:
            decision = await self._explain_patient_state(request, decision)
        await self._finish(job, decision, attempt=True)

    async def _explain_patient_state(self, request: DocumentRequest,
                                     decision: Decision) -> Decision:
        """The DMP said no DMP / closed: one TD0.2 existence test tells the user which, and
        only then (the DMP asks integrators not to test existence before every feed)."""
        status = await self._transactions.test_existence(request.patient.ins,
                                                        author=request.author)
        if status.state is DmpState.INCONNU:
            return decision
        return Decision(decision.error_class, decision.state, decision.code,
                        f"{status.message_fr} {decision.message_fr}")

    async def _send(self, http: HttpRequestBody) -> Decision:
        try:
            answer = await self._client.post("repository", http)
        except TransportError as exc:
            return transport_failure(exc.maybe_delivered, exc.detail, tls=exc.tls)
        return decide(parse_answer(answer.status, answer.content_type, answer.body))

    # -- ambiguous outcomes ----------------------------------------------------------------
    async def _ask_dmp(self, request: DocumentRequest, package: Package) -> Decision | None:
        """Does the DMP hold our document, with our bytes? None when it cannot be told now."""
        try:
            entry = await self._transactions.find_entry(
                request.patient.ins, package.document_unique_id, author=request.author)
        except (BridgeError, TransportError):
            return None  # the DMP could not answer (or the clock is wrong): still unknown
        if entry is None:
            # Not there: the request never reached the registry; resend the same bytes.
            return Decision(ErrorClass.TRANSIENT, JobState.DEFERRED, "DMP_NOT_RECEIVED",
                            "Le DMP n'a pas reçu le document ; nouvel envoi automatique.")
        # A lot of several documents is registered atomically: the first one tells for all.
        expected = [sha1_hex(data) for cid, data in package.parts if cid.startswith("doc-")]
        if entry.hash in expected:
            return Decision(None, JobState.DONE, "DMP_OK_CONFIRMED",
                            "Document enregistré dans le DMP (confirmé par une recherche).")
        return Decision(ErrorClass.PERMANENT, JobState.DEAD, "DMP_UNIQUEID_CONFLICT",
                        "Le DMP contient déjà un autre document avec le même identifiant. "
                        "Contactez le support de dmp-bridge.")

    async def _resolve(self, job: Job) -> None:
        try:
            active = await asyncio.to_thread(
                self._store.transition,
                job.id,
                JobState.ACTIVE,
                code="RESOLVING",
                message_fr="Vérification auprès du DMP.",
                now=_now(),
                lease=LEASE,
            )
        except BridgeError:
            return  # another worker took it
        try:
            request = await self._request(active)
            stored = await asyncio.to_thread(self._store.package, active.id)
        except CorruptPayload as exc:
            await self._finish(active, Decision(None, JobState.CORRUPT, exc.code, exc.message_fr),
                               attempt=False)
            return
        except BridgeError as exc:
            await self._finish(active, Decision(ErrorClass.PERMANENT, JobState.DEAD, exc.code,
                                                exc.message_fr), attempt=False)
            return
        if stored is None:
            # Nothing was ever packaged, so nothing can have been sent: process it normally.
            await self._finish(active, Decision(None, JobState.QUEUED, "NEVER_SENT",
                                                "Jamais envoyé : remis dans la file."),
                               attempt=False)
            return
        decision = await self._ask_dmp(request, Package.from_bytes(stored))
        if decision is None:
            decision = Decision(
                ErrorClass.AMBIGUOUS,
                JobState.AMBIGUOUS,
                "DMP_NO_ANSWER",
                "Vérification auprès du DMP impossible pour l'instant ; nouvel essai automatique.",
            )
        await self._finish(active, decision, attempt=False)
