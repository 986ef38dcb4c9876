"""Lot assembly: which leased jobs leave together, after which checks, in which signed bytes.

Documents of the same patient by the same author that are ready together go in ONE submission
set (one ITI-41, one VIHF, one XAdES for all of them). Exactly once still holds because:

- only jobs that were never packaged are grouped (the store's `claim_related`): a job that was
  packaged keeps its bytes forever (DESIGN.md §4, identifiers minted once, resent byte for byte),
  and when such a job is taken again, the jobs sharing its package are taken with it;
- every job of a lot stores the same package bytes under its own document uniqueId, so after a
  crash each one is resolved on its own (ITI-18 by its uniqueId, its own CDA hash);
- only documents that passed every local check are grouped, and a lot is capped, so one bad
  document rarely sinks the others; when the DMP still refuses a lot as a whole, the dispatcher
  sends its documents again one by one (see `Dispatcher._split`).

This module decides and packages; the dispatcher applies the outcomes (states, logs).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.card_port import CardError
from bridge.cda import check_text_body
from bridge.cda_header import CdaHeader
from bridge.cda_passthrough import (
    build_passthrough_package,
    passthrough_codes,
    read_passthrough_header,
)
from bridge.classify import resolve
from bridge.credentials_port import Credentials
from bridge.dmp_answer import Decision
from bridge.dmp_error_table import ErrorClass
from bridge.domain import Author, DocumentCodes
from bridge.errors import BridgeError, HeldForPerson, IdentityRejected
from bridge.identity_gate import check_identity, check_not_opposed
from bridge.jobs import Job, JobState
from bridge.packaging import LotDocument, MintedIds, Package, build_lot_package, build_package
from bridge.sidecar import DocumentRequest, parse_sidecar
from bridge.store_port import CorruptPayload, Store
from service.gatekeeping import Gatekeeping
from service.labels import RELEASED_BY_USER
from service.wallet import Opened

# One submission set carries at most this many documents by default: enough to drain a morning
# round of one patient at once, small enough that a refused lot costs few resends.
DEFAULT_LOT_MAX = 10


class UnusableDocumentId(BridgeError):
    """A job's stored document uniqueId is not one the bridge minted (cannot be reused)."""

    code = "DOCUMENT_ID_UNUSABLE"
    event = "document_id_unusable"


@dataclass(frozen=True)
class Member:
    """A leased job that passed its checks, ready to travel."""

    job: Job
    request: DocumentRequest
    codes: DocumentCodes
    # The payload, read only when it must be packaged: a PDF, a received CDA, or a UTF-8 text
    # (sidecar body_format "text": wrapped in the N1 as it is, as a text/plain body).
    pdf: bytes | None = field(default=None, repr=False)
    # The header of a received CDA sent as it is (the payload is that CDA): it always goes alone.
    cda: CdaHeader | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Outgoing:
    """What one ITI-41 carries: its jobs, each with its own document uniqueId, and the bytes."""

    members: tuple[Member, ...]
    document_ids: tuple[str, ...]  # same order as members
    package: Package
    opened: Opened  # the credentials (and their DMP connection) that send it

    @property
    def request(self) -> DocumentRequest:
        """The lot's patient and author (the same for every member)."""
        return self.members[0].request

    @property
    def jobs(self) -> list[Job]:
        return [m.job for m in self.members]


@dataclass
class Assembly:
    """The outcome of assembling: what to send, and what to do with the other leased jobs."""

    outgoing: Outgoing | None = None
    stopped: list[tuple[Job, Decision]] = field(default_factory=list)  # finish, no attempt
    waiting: list[tuple[Job, DocumentRequest]] = field(default_factory=list)  # other credentials
    # Jobs whose stored lot cannot go as it is (one of its documents may not go now, or is not
    # in hand): its package is discarded from these and from the stopped jobs, and these are
    # sent again alone, with their document uniqueId and CDA bytes. The lot's submission id.
    split: list[Job] = field(default_factory=list)
    split_submission_id: str | None = None


def stop_decision(exc: BridgeError) -> Decision:
    """What a failed local check means for the job (no attempt is used)."""
    if isinstance(exc, CardError):
        # The card was pulled out or logged out while signing: nothing is wrong with the
        # document; it goes back to the queue and waits for the card (no attempt used).
        return Decision(ErrorClass.ENVIRONMENT, JobState.QUEUED, exc.code, exc.message_fr)
    if isinstance(exc, CorruptPayload):
        return Decision(None, JobState.CORRUPT, exc.code, exc.message_fr)
    if isinstance(exc, IdentityRejected | HeldForPerson):
        return Decision(ErrorClass.PERMANENT, JobState.HELD, exc.code, exc.message_fr)
    return Decision(ErrorClass.PERMANENT, JobState.DEAD, exc.code, exc.message_fr)


def document_uuid(unique_id: str) -> uuid.UUID:
    """The UUID behind a document uniqueId the bridge minted ("2.25." + UUID as an integer)."""
    prefix, _, number = unique_id.partition("2.25.")
    if prefix or not number.isdigit() or int(number) >= 1 << 128:
        raise UnusableDocumentId(
            f"L'identifiant enregistré du document ({unique_id}) n'a pas été créé par "
            "dmp-bridge : il ne peut pas être réutilisé. Contactez le support."
        )
    return uuid.UUID(int=int(number))


class LotAssembler:
    """Admits and packages the jobs the dispatcher leased."""

    def __init__(self, store: Store, gate: Gatekeeping, *, source_id: str, lot_max: int,
                 lease: dt.timedelta, opened_for: Callable[[Author], Opened | None]) -> None:
        self._store = store
        self._gate = gate
        self._source_id = source_id
        self._lot_max = max(1, lot_max)
        self._lease = lease
        self._opened_for = opened_for

    async def request(self, job: Job) -> DocumentRequest:
        metadata = await asyncio.to_thread(self._store.metadata, job.id)
        return parse_sidecar(metadata, file_name=job.source_ref)

    async def _check(self, job: Job, request: DocumentRequest,
                     cda: CdaHeader | None = None) -> DocumentCodes:
        """The checks that decide whether this document may go now (run before every attempt:
        an opposition recorded since the last one must stop it). A received CDA of level 3 is
        the structured document itself: a row that requires one does not hold it."""
        check_identity(request.patient, target=self._gate.target)
        if self._gate.registry is not None:
            record = await asyncio.to_thread(self._gate.registry.get, request.patient.ins.matricule)
            check_not_opposed(record)
        resolution = resolve(self._gate.matrix, request.author, kind=request.kind,
                             source_confirm=request.confirm_with_patient,
                             source_visibility=request.visibility,
                             is_pdf=cda is None or cda.level == 1,
                             text_body=request.body_format == "text")
        holds = list(resolution.holds)
        if any(h.code == "CONFIRM_WITH_PATIENT" for h in holds):
            events = await asyncio.to_thread(self._store.events, job.id)
            if any(event.code == RELEASED_BY_USER for event in events):
                holds = [h for h in holds if h.code != "CONFIRM_WITH_PATIENT"]
        if holds:
            raise HeldForPerson(" ".join(h.message_fr for h in holds), code=holds[0].code)
        return passthrough_codes(cda, resolution) if cda is not None else resolution.codes

    async def _admit(self, job: Job, *, with_pdf: bool,
                     stored_cda: bytes | None = None) -> Member | Decision:
        """`stored_cda`: the CDA of a stored pass-through package (its payload is that CDA)."""
        try:
            request = await self.request(job)
            pdf = await asyncio.to_thread(self._store.payload, job.id) if with_pdf else None
            cda = None
            if request.body_format == "text":
                # A text is wrapped as it is: never read as a CDA, checked as a text instead.
                if pdf is not None:
                    check_text_body(pdf, file_name=job.source_ref)
            elif (source := pdf if pdf is not None else stored_cda) is not None:
                cda = await asyncio.to_thread(
                    read_passthrough_header, source, request, file_name=job.source_ref)
            codes = await self._check(job, request, cda)
        except BridgeError as exc:
            return stop_decision(exc)
        return Member(job, request, codes, pdf, cda)

    async def _admit_all(self, jobs: list[Job], assembly: Assembly, *,
                         with_pdf: bool, stored_cda: bytes | None = None) -> list[Member]:
        admitted = []
        for job in jobs:
            outcome = await self._admit(job, with_pdf=with_pdf, stored_cda=stored_cda)
            if isinstance(outcome, Decision):
                assembly.stopped.append((job, outcome))
            else:
                admitted.append(outcome)
        return admitted

    async def assemble(self, leader: Job) -> Assembly:
        """Everything that leaves with the leased `leader` (the store leases the companions)."""
        assembly = Assembly()
        try:
            stored = await asyncio.to_thread(self._store.package, leader.id)
        except BridgeError as exc:
            assembly.stopped.append((leader, stop_decision(exc)))
            return assembly
        if stored is not None:
            await self._resend(leader, Package.from_bytes(stored), assembly)
        else:
            await self._group(leader, assembly)
        return assembly

    async def _resend(self, leader: Job, package: Package, assembly: Assembly) -> None:
        """A packaged job: its stored bytes go again, with whoever shares them."""
        size = len(package.document_unique_ids)
        others = (await asyncio.to_thread(self._store.claim_related, leader, _now(),
                                          self._lease, size - 1)) if size > 1 else []
        stored_cda = package.parts[0][1] if package.passthrough else None
        members = await self._admit_all([leader, *others], assembly, with_pdf=False,
                                        stored_cda=stored_cda)
        if size > 1 and (assembly.stopped or len(members) < size):
            # These bytes go again only with ALL their documents in hand and allowed to go. A
            # document stopped now (a hold, an opposition), or out of hand (done, held, still
            # ambiguous, another worker's), must not travel in them, or be sent twice in a lot
            # the DMP would refuse as a duplicate forever. Nothing of the lot is in the DMP as
            # far as we know (its jobs were queued or deferred), so each goes alone, keeping its
            # document uniqueId and CDA bytes; the DMP's uniqueId check covers the rest.
            assembly.split = [m.job for m in members]
            assembly.split_submission_id = package.submission_unique_id
            return
        opened = self._opened_for(members[0].request.author)
        if opened is None:
            assembly.waiting = [(m.job, m.request) for m in members]
            return
        ids = tuple(m.job.document_unique_id or package.document_unique_id for m in members)
        assembly.outgoing = Outgoing(tuple(members), ids, package, opened)

    async def _group(self, leader: Job, assembly: Assembly) -> None:
        """A job never packaged: it leads a new lot of its patient's and author's ready jobs."""
        first = await self._admit(leader, with_pdf=True)
        if isinstance(first, Decision):
            assembly.stopped.append((leader, first))
            return
        opened = self._opened_for(first.request.author)
        if opened is None:
            assembly.waiting.append((leader, first.request))
            return  # its companions stay queued: they wait for the same credentials
        others: list[Job] = []
        if self._lot_max > 1 and leader.document_unique_id is None and first.cda is None:
            others = await asyncio.to_thread(self._store.claim_related, leader, _now(),
                                             self._lease, self._lot_max - 1)
        members = [first]
        for member in await self._admit_all(others, assembly, with_pdf=True):
            if member.cda is None and opened.credentials.may_send_as(member.request.author):
                members.append(member)
            else:  # same author key, so not expected; never send what may not be sent
                assembly.waiting.append((member.job, member.request))
        try:
            assembly.outgoing = await self._package(members, opened)
        except BridgeError as exc:
            assembly.stopped.extend((m.job, stop_decision(exc)) for m in members)

    async def _package(self, members: list[Member], opened: Opened) -> Outgoing:
        """Build, sign and store the bytes once; every job keeps them (and its own id).

        Signing may use a card (PKCS#11, PC/SC): it runs in a thread, off the event loop."""
        built = await asyncio.to_thread(self._build, members, opened.credentials)
        data = built.to_bytes()
        for member, document_id in zip(members, built.document_unique_ids, strict=True):
            await asyncio.to_thread(self._store.save_package, member.job.id, document_id,
                                    built.submission_unique_id, data)
        # Read back: if a package already existed, the first one is the one we send. Only a
        # single document can meet one (lots are made of jobs never packaged, all leased here).
        stored = await asyncio.to_thread(self._store.package, members[0].job.id)
        assert stored is not None
        if stored != data:
            assert len(members) == 1, "a lot member already had a package"
            built = Package.from_bytes(stored)
        return Outgoing(tuple(members), built.document_unique_ids, built, opened)

    def _build(self, members: list[Member], credentials: Credentials) -> Package:
        now = _now()
        if len(members) == 1 and members[0].cda is not None:
            # A received CDA goes as it is, alone: its own id, its exact bytes.
            only = members[0]
            assert only.pdf is not None and only.cda is not None
            built = build_passthrough_package(
                only.request, only.pdf, header=only.cda, codes=only.codes,
                submission_id=uuid.uuid4(), signature_id=uuid.uuid4(), now=now,
                source_id=self._source_id, certificate=credentials.signing_certificate,
                sign=credentials.sign)
        elif len(members) == 1:
            only = members[0]
            assert only.pdf is not None
            # A job whose lot was refused kept its document uniqueId: reuse it, so the CDA is
            # byte for byte the one already minted (only the submission set is new).
            document = (document_uuid(only.job.document_unique_id)
                        if only.job.document_unique_id else uuid.uuid4())
            built = build_package(
                only.request, only.pdf, codes=only.codes,
                ids=MintedIds(document, uuid.uuid4(), uuid.uuid4()), now=now,
                source_id=self._source_id, certificate=credentials.signing_certificate,
                sign=credentials.sign)
        else:
            built = build_lot_package(
                [LotDocument(m.request, m.pdf or b"", m.codes, uuid.uuid4()) for m in members],
                submission_id=uuid.uuid4(), signature_id=uuid.uuid4(), now=now,
                source_id=self._source_id, certificate=credentials.signing_certificate,
                sign=credentials.sign)
        return built


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
