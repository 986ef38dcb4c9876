"""The DMP's whole client protocol, one method per transaction (spec §1.2, docs/wire-contract.md):
feed (TD2, 1..n documents), replace (TD2.1), find an entry (TD3.1b), list documents (TD3.1a),
delete (TD3.3c), archive / unarchive (TD3.3d), visibility (TD3.3a/b), existence test (TD0.2).

Each call builds the body with the pure builders of `bridge`, wraps it in the signed envelope
(`connectors.dmp_envelope`), posts it through DmpClient and returns a parsed outcome. Replace,
delete, archive and visibility first look the entryUUID up by uniqueId, as the DMP requires.
Logs carry transaction names and codes only: no INS, no uniqueId, no title.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
from lxml import etree

from bridge.classify import content_type
from bridge.credentials_port import Credentials
from bridge.dmp_answer import Decision, decide, parse_answer, transport_failure
from bridge.domain import Author, DocumentCodes, Ins
from bridge.ebrim_parts import SubmissionSetHeader
from bridge.errors import BridgeError
from bridge.iti18 import (
    AvailabilityStatus,
    RegistryEntry,
    current_entry,
    find_documents,
    get_documents,
    read_entries,
)
from bridge.iti57 import (
    ACTION_ITI57,
    UpdateRefused,
    VisibilityFlag,
    build_availability_update,
    build_metadata_update,
)
from bridge.packaging import (
    LotDocument,
    Package,
    Replacement,
    build_lot_package,
    derived_set_id,
    oid_from_uuid,
)
from bridge.sidecar import DocumentRequest
from bridge.soap import ACTION_ITI18, ACTION_ITI41, HttpRequestBody, mtom, plain_soap
from bridge.td02 import (
    ACTION_TD02,
    DmpState,
    DmpStatus,
    ExistenceQuery,
    build_existence_query,
    read_existence_answer,
)
from bridge.vihf import Software
from bridge.xmlsafe import UnsafeXmlError, parse_xml
from connectors.dmp_client import DmpClient, TransportError
from connectors.dmp_envelope import CallerContext, signed_envelope

log = structlog.get_logger("dmp_bridge.transactions")

MAX_QUERY_ANSWER_BYTES = 10 * 1024 * 1024


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DmpQueryFailed(BridgeError):
    """A search (ITI-18) or a test could not be answered: nothing can be concluded from it."""

    code = "DMP_RECHERCHE_IMPOSSIBLE"
    event = "dmp_query_failed"


def _soap_root(
    status: int, content_type_: str, data: bytes, error: type[DmpQueryFailed]
) -> etree._Element:
    """The parsed answer of a query (ITI-18, TD0.2); a SOAP Fault or bad bytes raise `error`."""
    answer = parse_answer(status, content_type_, data)
    if answer.fault is not None and not answer.fault.startswith("no RegistryResponse"):
        # A SOAP Fault, or bytes that are not acceptable XML (parse_answer never raises).
        raise error(f"Le DMP a refusé la requête : {answer.fault[:300]}", code="DMP_FAULT")
    try:
        return parse_xml(data, max_bytes=MAX_QUERY_ANSWER_BYTES)
    except UnsafeXmlError as exc:  # e.g. a multipart answer: not expected for queries
        raise error(f"Réponse illisible du DMP ({exc.reason[:200]}).") from None


@dataclass(frozen=True)
class Outcome:
    """What a write transaction did. `decision` is the answer's classification when the DMP was
    reached (transient, permanent…), None when the bridge refused before sending."""

    ok: bool
    code: str
    message_fr: str
    decision: Decision | None = None
    entry: RegistryEntry | None = None  # the entry acted upon (replace, delete, archive…)
    package: Package | None = None  # what was sent (feed, replace): store it to resend as is


_DONE = {
    "feed": "Document(s) enregistré(s) dans le DMP.",
    "replace": "Nouvelle version enregistrée dans le DMP ; la précédente est remplacée.",
    "delete": "Document supprimé du DMP.",
    "archive": "Document archivé dans le DMP.",
    "unarchive": "Document désarchivé : il est de nouveau actif dans le DMP.",
    "visibility": "Visibilité du document mise à jour dans le DMP.",
}
_NOT_FOUND = Outcome(
    False,
    "DMP_DOCUMENT_INTROUVABLE",
    "Le DMP ne contient pas ce document pour ce patient ; rien n'a été modifié. Vérifiez "
    "l'identifiant du document et le patient.",
)


class DmpTransactions:
    """High-level DMP client for one installation (credentials, software, sourceId)."""

    def __init__(
        self,
        client: DmpClient,
        credentials: Credentials,
        *,
        software: Software,
        source_id: str,
        context: CallerContext | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._software = software
        self._source_id = source_id
        self._context = context or CallerContext()
        self._clock = clock  # DmpClient itself keeps every transaction under the feeding rate

    # -- plumbing ------------------------------------------------------------------------
    async def _envelope(
        self, service: str, action: str, body: etree._Element, author: Author, patient: Ins
    ) -> etree._Element:
        """Signed in a worker thread: a card's signature takes time, and must not hold up the
        event loop."""
        return await asyncio.to_thread(
            signed_envelope,
            self._credentials,
            self._software,
            author=author,
            patient=patient,
            action=action,
            to=self._client.url(service),
            body=body,
            now=self._clock(),
            context=self._context,
        )

    async def _post(self, service: str, request: HttpRequestBody) -> tuple[int, str, bytes]:
        answer = await self._client.post(service, request)
        return answer.status, answer.content_type, answer.body

    async def _write(self, name: str, service: str, request: HttpRequestBody) -> Outcome:
        """POST a write (ITI-41 / ITI-57) and classify the RegistryResponse."""
        try:
            status, content_type_, body = await self._post(service, request)
        except TransportError as exc:
            decision = transport_failure(exc.maybe_delivered, exc.detail, tls=exc.tls,
                                         card=exc.card)
            log.info("dmp_transaction", transaction=name, ok=False, code=decision.code)
            return Outcome(False, decision.code, decision.message_fr, decision)
        decision = decide(parse_answer(status, content_type_, body))
        ok = decision.error_class is None
        log.info("dmp_transaction", transaction=name, ok=ok, code=decision.code)
        message = _DONE[name] if ok else decision.message_fr
        return Outcome(ok, decision.code if not ok else "DMP_OK", message, decision)

    async def _query(
        self, body: etree._Element, author: Author, patient: Ins
    ) -> tuple[RegistryEntry, ...]:
        envelope = await self._envelope("registry", ACTION_ITI18, body, author, patient)
        try:
            status, content_type_, data = await self._post(
                "registry", plain_soap(envelope, ACTION_ITI18)
            )
        except TransportError as exc:
            raise DmpQueryFailed(
                f"Le DMP est injoignable ; la recherche n'a pas pu être faite ({exc.detail[:200]})."
            ) from None
        result = read_entries(_soap_root(status, content_type_, data, DmpQueryFailed))
        if not result.ok:
            code, context = result.errors[0] if result.errors else ("DMP_INCONNU", "")
            log.info("dmp_query_refused", code=code)
            raise DmpQueryFailed(
                f"Le DMP a refusé la recherche ({code} : {context[:300]}).", code=code
            )
        return result.entries

    def _header(self, author: Author, patient: Ins) -> SubmissionSetHeader:
        return SubmissionSetHeader(
            unique_id=oid_from_uuid(uuid.uuid4()),
            source_id=self._source_id,
            submission_time=self._clock(),
            author=author,
            patient=patient,
            content_type=content_type(author),
        )

    # -- TD2 / TD2.1 ---------------------------------------------------------------------
    async def _provide(
        self, name: str, package: Package, author: Author, patient: Ins,
        entry: RegistryEntry | None = None,
    ) -> Outcome:
        envelope = await self._envelope("repository", ACTION_ITI41, package.body, author, patient)
        http = mtom(
            envelope,
            ACTION_ITI41,
            boundary=f"MIMEBoundary_{uuid.uuid4().hex}",
            root_id=f"root-{uuid.uuid4()}@dmp-bridge",
            parts=package.parts,
        )
        outcome = await self._write(name, "repository", http)
        return Outcome(outcome.ok, outcome.code, outcome.message_fr, outcome.decision,
                       entry=entry, package=package)

    async def send_package(self, package: Package, *, author: Author, patient: Ins) -> Outcome:
        """POST an already built (and stored) ITI-41 package, byte for byte."""
        return await self._provide("feed", package, author, patient)

    def package(self, documents: Sequence[LotDocument]) -> Package:
        """Build (sign) the ITI-41 package of 1..n documents of one patient, with fresh ids."""
        return build_lot_package(
            documents,
            submission_id=uuid.uuid4(),
            signature_id=uuid.uuid4(),
            now=self._clock(),
            source_id=self._source_id,
            certificate=self._credentials.signing_certificate,
            sign=self._credentials.sign,
        )

    async def feed(self, documents: Sequence[LotDocument]) -> Outcome:
        """TD2: register 1..n new documents of one patient in one signed submission set."""
        try:
            package = self.package(documents)
        except BridgeError as exc:
            return Outcome(False, exc.code, exc.message_fr)
        first = documents[0].request
        return await self.send_package(package, author=first.author, patient=first.patient.ins)

    async def replace(
        self,
        request: DocumentRequest,
        pdf: bytes,
        *,
        codes: DocumentCodes,
        replaced_unique_id: str,
        replaced_set_id: str | None = None,
        replaced_version: int = 1,
        document_id: uuid.UUID | None = None,
    ) -> Outcome:
        """TD2.1: a new version of a registered document. `replaced_set_id` defaults to the setId
        the bridge derived when it minted `replaced_unique_id`; `replaced_version` is the CDA
        versionNumber of the replaced version."""
        patient = request.patient.ins
        entry = await self.find_entry(patient, replaced_unique_id, author=request.author)
        if entry is None:
            return _NOT_FOUND
        if entry.availability is not AvailabilityStatus.APPROVED:
            return Outcome(False, "DMP_REMPLACEMENT_IMPOSSIBLE",
                           "Seule la version active d'un document peut être remplacée.",
                           entry=entry)
        set_id = replaced_set_id or derived_set_id(replaced_unique_id)
        if set_id is None:
            return Outcome(False, "DMP_SETID_INCONNU",
                           "Le setId du document remplacé est inconnu : indiquez-le.", entry=entry)
        replacement = Replacement(entry.entry_uuid, replaced_unique_id, set_id, replaced_version)
        item = LotDocument(request, pdf, codes, document_id or uuid.uuid4(), replacement)
        try:
            package = self.package([item])
        except BridgeError as exc:
            return Outcome(False, exc.code, exc.message_fr, entry=entry)
        return await self._provide("replace", package, request.author, patient, entry)

    # -- TD3.1 ---------------------------------------------------------------------------
    async def find_entry(
        self, patient: Ins, unique_id: str, *, author: Author
    ) -> RegistryEntry | None:
        """TD3.1b: the live registry entry of a uniqueId (GetDocuments, LeafClass), or None.
        Raises DmpQueryFailed when the DMP could not answer."""
        entries = await self._query(get_documents(unique_ids=[unique_id]), author, patient)
        mine = [e for e in entries if e.unique_id == unique_id and e.patient_id == patient.cx()]
        return current_entry(mine)

    async def find_documents(
        self,
        patient: Ins,
        *,
        author: Author,
        statuses: Sequence[AvailabilityStatus] = (AvailabilityStatus.APPROVED,),
    ) -> tuple[RegistryEntry, ...]:
        """TD3.1a: the patient's documents with these statuses (LeafClass)."""
        return await self._query(find_documents(patient, statuses=statuses), author, patient)

    # -- TD3.3 ---------------------------------------------------------------------------
    async def _update(
        self, name: str, body: etree._Element, author: Author, patient: Ins, entry: RegistryEntry
    ) -> Outcome:
        envelope = await self._envelope("registry", ACTION_ITI57, body, author, patient)
        outcome = await self._write(name, "registry", plain_soap(envelope, ACTION_ITI57))
        return Outcome(outcome.ok, outcome.code, outcome.message_fr, outcome.decision, entry=entry)

    async def _change_status(
        self, name: str, patient: Ins, unique_id: str, author: Author, new: AvailabilityStatus
    ) -> Outcome:
        entry = await self.find_entry(patient, unique_id, author=author)
        if entry is None:
            return _NOT_FOUND
        if entry.availability is new:
            # Already done (e.g. a retry after a lost answer): nothing to send.
            return Outcome(True, "DMP_DEJA_FAIT", _DONE[name], entry=entry)
        if name == "delete" and entry.author_ids and author.ps_idnat not in entry.author_ids:
            return Outcome(False, "DMP_SUPPRESSION_NON_AUTEUR",
                           "Seul l'auteur du document peut le supprimer du DMP.", entry=entry)
        original = entry.availability
        if original is None:
            return Outcome(False, "DMP_STATUT_INCONNU",
                           f"Statut du document inconnu du pont ({entry.status[:80]}).",
                           entry=entry)
        try:
            body = build_availability_update(
                self._header(author, patient), entry_uuid=entry.entry_uuid,
                original=original, new=new,
            )
        except UpdateRefused as exc:
            return Outcome(False, exc.code, exc.message_fr, entry=entry)
        return await self._update(name, body, author, patient, entry)

    async def delete(self, patient: Ins, unique_id: str, *, author: Author) -> Outcome:
        """TD3.3c: logical deletion; only the document's author may delete it."""
        return await self._change_status("delete", patient, unique_id, author,
                                         AvailabilityStatus.DELETED)

    async def archive(self, patient: Ins, unique_id: str, *, author: Author) -> Outcome:
        """TD3.3d: Approved → Archived."""
        return await self._change_status("archive", patient, unique_id, author,
                                         AvailabilityStatus.ARCHIVED)

    async def unarchive(self, patient: Ins, unique_id: str, *, author: Author) -> Outcome:
        """TD3.3d: Archived → Approved."""
        return await self._change_status("unarchive", patient, unique_id, author,
                                         AvailabilityStatus.APPROVED)

    async def set_visibility(
        self,
        patient: Ins,
        unique_id: str,
        *,
        author: Author,
        add: Sequence[VisibilityFlag] = (),
        remove: Sequence[VisibilityFlag] = (),
    ) -> Outcome:
        """TD3.3a/b: add or remove MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX.
        The DMP answers with a new entryUUID (same logicalId): look it up again afterwards."""
        entry = await self.find_entry(patient, unique_id, author=author)
        if entry is None:
            return _NOT_FOUND
        try:
            body = build_metadata_update(self._header(author, patient), entry, add=add,
                                         remove=remove)
        except UpdateRefused as exc:
            return Outcome(False, exc.code, exc.message_fr, entry=entry)
        return await self._update("visibility", body, author, patient, entry)

    # -- TD0.2 ---------------------------------------------------------------------------
    async def test_existence(self, patient: Ins, *, author: Author) -> DmpStatus:
        """TD0.2: does the patient have a DMP, open or closed, and may this author access it?
        Never raises for a DMP-side problem: an unreadable or failed answer is INCONNU."""
        query = ExistenceQuery(
            message_id=oid_from_uuid(uuid.uuid4()),
            query_id=oid_from_uuid(uuid.uuid4()),
            creation_time=self._clock(),
            patient=patient,
            sender_id=self._source_id,
            sender_name=self._software.name,
        )
        envelope = await self._envelope("patients", ACTION_TD02, build_existence_query(query),
                                  author, patient)
        try:
            status, content_type_, data = await self._post(
                "patients", plain_soap(envelope, ACTION_TD02)
            )
        except TransportError as exc:
            return DmpStatus(DmpState.INCONNU, detail=f"DMP injoignable ({exc.detail[:150]})")
        try:
            result = read_existence_answer(_soap_root(status, content_type_, data, DmpQueryFailed))
        except DmpQueryFailed as exc:
            return DmpStatus(DmpState.INCONNU, detail=exc.message_fr[:200])
        log.info("dmp_existence_tested", state=result.state.value)
        return result
