"""Turn document requests into a signed ITI-41 package (CDA, XAdES, ebRIM): one document, a lot
of several documents of the same patient, or a replacement (new version, RPLC).

Pure apart from the `sign` callable the credentials provide: every id and time comes in, so the
package is built once, stored, and resent byte for byte on every retry (DESIGN.md §4: identifiers
are minted once).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lxml import etree

from bridge.cda import build_cda
from bridge.classify import content_type
from bridge.domain import (
    ClinicalDocument,
    DocumentCodes,
    PackagedDocument,
    SignatureDocument,
    Submission,
)
from bridge.ebrim import build_provide_and_register
from bridge.errors import BridgeError
from bridge.sidecar import DocumentRequest
from bridge.xades import SigningCertificate, build_unsigned_xades
from bridge.xmlsafe import parse_xml


def oid_from_uuid(value: uuid.UUID) -> str:
    """A globally unique OID under the UUID arc 2.25 (ITU-T X.667), at most 44 characters."""
    return f"2.25.{value.int}"


@dataclass(frozen=True)
class MintedIds:
    """The identifiers of one package, minted once by the caller from fresh UUIDs."""

    document: uuid.UUID
    submission: uuid.UUID
    signature: uuid.UUID

    @classmethod
    def fresh(cls) -> MintedIds:
        return cls(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())


@dataclass(frozen=True)
class Package:
    """The ITI-41 body and its MIME parts (content id → bytes)."""

    document_unique_id: str
    submission_unique_id: str
    body: etree._Element
    parts: tuple[tuple[str, bytes], ...]
    other_document_unique_ids: tuple[str, ...] = ()  # documents 2..n of a lot
    passthrough: bool = False  # a received CDA sent as it is (bridge.cda_passthrough), alone

    @property
    def document_unique_ids(self) -> tuple[str, ...]:
        """Every document's uniqueId, in submission order (the signature excluded)."""
        return (self.document_unique_id, *self.other_document_unique_ids)

    def to_bytes(self) -> bytes:
        """Serialized for the store: exactly what will be resent."""
        raw: dict[str, object] = {
            "document_unique_id": self.document_unique_id,
            "submission_unique_id": self.submission_unique_id,
            "body": base64.b64encode(etree.tostring(self.body)).decode("ascii"),
            "parts": [[cid, base64.b64encode(data).decode("ascii")] for cid, data in self.parts],
        }
        if self.other_document_unique_ids:
            raw["other_document_unique_ids"] = list(self.other_document_unique_ids)
        if self.passthrough:
            raw["passthrough"] = True
        return json.dumps(raw).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Package:
        raw = json.loads(data)
        return cls(
            document_unique_id=raw["document_unique_id"],
            submission_unique_id=raw["submission_unique_id"],
            body=parse_xml(base64.b64decode(raw["body"]), huge_text=True),
            parts=tuple((cid, base64.b64decode(b64)) for cid, b64 in raw["parts"]),
            other_document_unique_ids=tuple(raw.get("other_document_unique_ids", ())),
            passthrough=bool(raw.get("passthrough", False)),
        )


@dataclass(frozen=True)
class Replacement:
    """The registered version that a new document replaces (TD2.1, spec §4.4)."""

    entry_uuid: str  # found by TD3.1b (GetDocuments by uniqueId) just before
    unique_id: str  # CDA relatedDocument/parentDocument/id
    set_id: str  # kept by the new version
    version: int  # CDA versionNumber of the replaced version; the new one is version + 1


@dataclass(frozen=True)
class LotDocument:
    """One document of a lot: the request, its PDF, its codes and its minted id."""

    request: DocumentRequest
    pdf: bytes = field(repr=False)
    codes: DocumentCodes
    document_id: uuid.UUID
    replaces: Replacement | None = None


class LotRejected(BridgeError):
    """The documents cannot travel in one submission set."""

    code = "LOT_REJECTED"
    event = "lot_rejected"


def set_id_for(document_id: uuid.UUID) -> str:
    """The setId of the first version of a document the bridge minted (stable, derived)."""
    return oid_from_uuid(uuid.uuid5(document_id, "setId"))


def derived_set_id(unique_id: str) -> str | None:
    """The setId the bridge gave the document `unique_id`, when the bridge minted it ("2.25.N")."""
    prefix, _, number = unique_id.partition("2.25.")
    if prefix or not number.isdigit() or int(number) >= 1 << 128:
        return None
    return set_id_for(uuid.UUID(int=int(number)))


def _clinical(item: LotDocument) -> ClinicalDocument:
    request = item.request
    replaces = item.replaces
    return ClinicalDocument(
        unique_id=oid_from_uuid(item.document_id),
        set_id=replaces.set_id if replaces else set_id_for(item.document_id),
        version=replaces.version + 1 if replaces else 1,
        title=request.title,
        effective_time=request.date,
        service_start=request.date,
        service_stop=request.date,
        patient=request.patient,
        author=request.author,
        codes=item.codes,
        pdf=item.pdf,
        replaces_unique_id=replaces.unique_id if replaces else None,
    )


def build_lot_package(
    documents: Sequence[LotDocument],
    *,
    submission_id: uuid.UUID,
    signature_id: uuid.UUID,
    now: dt.datetime,
    source_id: str,
    certificate: SigningCertificate,
    sign: Callable[[bytes], bytes],
) -> Package:
    """1..n documents of ONE patient in one submission set, under one XAdES manifest.

    The set's author is the first document's author. A document with `replaces` is a new
    version (relatedDocument RPLC in its CDA, RPLC association in the metadata).
    """
    if not documents:
        raise LotRejected("Un lot doit contenir au moins un document.")
    patient = documents[0].request.patient
    if any(d.request.patient.ins != patient.ins for d in documents):
        raise LotRejected(
            "Les documents d'un même lot doivent concerner le même patient (même INS) ; "
            "envoyez-les dans des lots séparés."
        )
    if len({d.document_id for d in documents}) != len(documents):
        raise LotRejected("Deux documents du lot portent le même identifiant.")
    packaged = []
    for number, item in enumerate(documents, start=1):
        clinical = _clinical(item)
        packaged.append(
            PackagedDocument(
                entry_id=f"Document{number:02d}",
                content_id=f"doc-{item.document_id}@dmp-bridge",
                cda=build_cda(clinical),
                clinical=clinical,
                replaces_entry_uuid=item.replaces.entry_uuid if item.replaces else None,
            )
        )
    submission_uid = oid_from_uuid(submission_id)
    unsigned = build_unsigned_xades(
        submission_unique_id=submission_uid,
        documents=[(d.clinical.unique_id, d.cda) for d in packaged],
        certificate=certificate,
        signing_time=now,
    )
    signature_xml = unsigned.complete(sign(unsigned.signed_info_c14n()))
    signature = SignatureDocument(
        entry_id="Signature01",
        content_id=f"sig-{signature_id}@dmp-bridge",
        unique_id=oid_from_uuid(signature_id),
        xml=signature_xml,
    )
    author = documents[0].request.author
    titles = [d.request.title for d in documents]
    submission = Submission(
        unique_id=submission_uid,
        source_id=source_id,
        submission_time=now,
        author=author,
        patient=patient,
        documents=tuple(packaged),
        signature=signature,
        content_type=content_type(author),
        title=titles[0] if len(titles) == 1 else f"Lot de {len(titles)} documents",
    )
    return Package(
        document_unique_id=packaged[0].clinical.unique_id,
        submission_unique_id=submission_uid,
        body=build_provide_and_register(submission),
        parts=(*((d.content_id, d.cda) for d in packaged), (signature.content_id, signature_xml)),
        other_document_unique_ids=tuple(d.clinical.unique_id for d in packaged[1:]),
    )


def build_package(
    request: DocumentRequest,
    pdf: bytes,
    *,
    codes: DocumentCodes,
    ids: MintedIds,
    now: dt.datetime,
    source_id: str,
    certificate: SigningCertificate,
    sign: Callable[[bytes], bytes],
    replaces: Replacement | None = None,
) -> Package:
    """CDA N1 around the PDF, XAdES over the set, ebRIM metadata: ready to send."""
    return build_lot_package(
        [LotDocument(request, pdf, codes, ids.document, replaces)],
        submission_id=ids.submission,
        signature_id=ids.signature,
        now=now,
        source_id=source_id,
        certificate=certificate,
        sign=sign,
    )
