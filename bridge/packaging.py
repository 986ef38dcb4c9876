"""Turn one document request into a signed ITI-41 package (CDA, XAdES, ebRIM).

Pure apart from the `sign` callable the credentials provide: every id and time comes in, so the
package is built once, stored, and resent byte for byte on every retry (DESIGN.md §4: identifiers
are minted once).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

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

    def to_bytes(self) -> bytes:
        """Serialized for the store: exactly what will be resent."""
        return json.dumps(
            {
                "document_unique_id": self.document_unique_id,
                "submission_unique_id": self.submission_unique_id,
                "body": base64.b64encode(etree.tostring(self.body)).decode("ascii"),
                "parts": [
                    [cid, base64.b64encode(data).decode("ascii")] for cid, data in self.parts
                ],
            }
        ).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Package:
        raw = json.loads(data)
        return cls(
            document_unique_id=raw["document_unique_id"],
            submission_unique_id=raw["submission_unique_id"],
            body=parse_xml(base64.b64decode(raw["body"]), huge_text=True),
            parts=tuple((cid, base64.b64decode(b64)) for cid, b64 in raw["parts"]),
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
) -> Package:
    """CDA N1 around the PDF, XAdES over the set, ebRIM metadata: ready to send."""
    author = request.author
    clinical = ClinicalDocument(
        unique_id=oid_from_uuid(ids.document),
        set_id=oid_from_uuid(uuid.uuid5(ids.document, "setId")),
        version=1,
        title=request.title,
        effective_time=request.date,
        service_start=request.date,
        service_stop=request.date,
        patient=request.patient,
        author=author,
        codes=codes,
        pdf=pdf,
    )
    cda = build_cda(clinical)
    document = PackagedDocument(
        entry_id="Document01",
        content_id=f"doc-{ids.document}@dmp-bridge",
        cda=cda,
        clinical=clinical,
    )
    submission_uid = oid_from_uuid(ids.submission)
    unsigned = build_unsigned_xades(
        submission_unique_id=submission_uid,
        documents=[(clinical.unique_id, cda)],
        certificate=certificate,
        signing_time=now,
    )
    signature_xml = unsigned.complete(sign(unsigned.signed_info_c14n()))
    signature = SignatureDocument(
        entry_id="Signature01",
        content_id=f"sig-{ids.signature}@dmp-bridge",
        unique_id=oid_from_uuid(ids.signature),
        xml=signature_xml,
    )
    submission = Submission(
        unique_id=submission_uid,
        source_id=source_id,
        submission_time=now,
        author=author,
        patient=request.patient,
        documents=(document,),
        signature=signature,
        content_type=content_type(author),
        title=request.title,
    )
    return Package(
        document_unique_id=clinical.unique_id,
        submission_unique_id=submission_uid,
        body=build_provide_and_register(submission),
        parts=((document.content_id, cda), (signature.content_id, signature_xml)),
    )
