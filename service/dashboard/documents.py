"""The documents as the dashboard lists them: a job, what its sidecar says, its matrix row.

Also the Ségur report's input (`fed_documents`), the same reading `dmp-bridge report` does.
Synchronous (store reads): call from a worker thread.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bridge.classify import find_row
from bridge.errors import BridgeError
from bridge.jobs import Job, JobState
from bridge.segur import FedDocument
from bridge.sidecar import DocumentRequest, parse_sidecar
from bridge.store_port import Store
from mappings.matrix import Matrix, MatrixRow

SCAN_LIMIT = 2_000  # the most recent jobs a list looks through
ALL_JOBS = 1_000_000

CHANNEL_LABELS: dict[str, str] = {
    "folder": "dossier de dépôt",
    "http": "API HTTP",
    "mllp": "HL7 (MLLP)",
}


@dataclass(frozen=True)
class DocumentSummary:
    """One job and what is known of its document (None when purged or unreadable)."""

    job: Job
    request: DocumentRequest | None
    row: MatrixRow | None

    @property
    def type_label(self) -> str:
        if self.row is not None:
            return self.row.label
        return self.request.kind if self.request is not None else "—"


@dataclass(frozen=True)
class Filters:
    """What the user narrowed the list to (None: everything)."""

    state: JobState | None = None
    channel: str | None = None
    type_code: str | None = None
    since: dt.date | None = None  # received on or after (Paris day)
    until: dt.date | None = None  # received on or before (Paris day)

    def keeps(self, doc: DocumentSummary, tz: dt.tzinfo) -> bool:
        day = doc.job.received_at.astimezone(tz).date()
        return ((self.channel is None or doc.job.channel == self.channel)
                and (self.type_code is None
                     or (doc.row is not None and doc.row.type_code == self.type_code))
                and (self.since is None or day >= self.since)
                and (self.until is None or day <= self.until))


def read_request(store: Store, job: Job) -> DocumentRequest | None:
    """The sidecar of `job`, or None when its bytes were purged or it cannot be read."""
    if job.purged_at is not None:
        return None
    try:
        return parse_sidecar(store.metadata(job.id), file_name=job.source_ref)
    except BridgeError:
        return None


def summarize(store: Store, matrix: Matrix, job: Job) -> DocumentSummary:
    request = read_request(store, job)
    row = None
    if request is not None:
        try:
            _, row = find_row(matrix, request.author, request.kind)
        except BridgeError:
            row = None
    return DocumentSummary(job, request, row)


def list_documents(store: Store, matrix: Matrix, filters: Filters, tz: dt.tzinfo, *,
                   limit: int = 200) -> list[DocumentSummary]:
    """The most recent documents first, filtered, at most `limit`."""
    found = []
    for job in store.list_jobs(filters.state, SCAN_LIMIT):
        doc = summarize(store, matrix, job)
        if filters.keeps(doc, tz):
            found.append(doc)
            if len(found) >= limit:
                break
    return found


def fed_documents(store: Store, matrix: Matrix) -> list[FedDocument]:
    """Every readable document with its matrix row, for `bridge.segur.segur_report`."""
    documents = []
    for job in store.list_jobs(limit=ALL_JOBS):
        doc = summarize(store, matrix, job)
        if doc.row is not None:
            documents.append(FedDocument(job.received_at, doc.row.type_code, doc.row.label,
                                         doc.row.auto_feed, job.state))
    return documents
