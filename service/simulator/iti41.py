"""ITI-41 Provide and Register Document Set-b: run every check, then register or refuse.

Order: body schema and VIHF first (a body that fails its schema is not read further), then
the submission's structure, metadata, CDAs, XAdES and duplicates. On any problem nothing is
stored; on success every entry of the lot is stored in one transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from service.simulator.checks.cda import check_cda
from service.simulator.checks.ebrim import (
    check_patient_ids,
    check_request_schema,
    check_structure,
    same_patient,
)
from service.simulator.checks.entries import ValueSetHook, check_entries
from service.simulator.checks.vihf import check_vihf
from service.simulator.checks.xades import check_xades
from service.simulator.envelope import SoapRequest
from service.simulator.invented_codes import InventedCode
from service.simulator.namespaces import DE_CLASS_CODE, DE_TYPE_CODE, STATUS_APPROVED
from service.simulator.problems import IheCode, Problem, keep
from service.simulator.registered import registered_entry
from service.simulator.storage import DuplicateUniqueId, SimulatorStore, StoredDocument
from service.simulator.submission import (
    RegistryObject,
    Submission,
    entry_patient_id,
    entry_unique_id,
    read_submission,
)
from service.simulator.trust import Trust

DUPLICATE_MESSAGE = "Ce uniqueId de document est déjà enregistré dans le DMP."


@dataclass(frozen=True)
class Iti41Settings:
    strict: bool
    clock_skew_seconds: int
    max_document_bytes: int


class Iti41Handler:
    """Judge one ITI-41 request; thread-safe (runs in a worker thread)."""

    def __init__(
        self,
        settings: Iti41Settings,
        store: SimulatorStore,
        trust: Trust,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        value_sets: ValueSetHook | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.trust = trust
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.value_sets = value_sets

    def handle(self, request: SoapRequest, tls_dn: str | None) -> list[Problem]:
        """The problems that refuse the request (empty: the lot was registered)."""
        now = self.clock()
        problems = check_request_schema(request.body_child)
        vihf = check_vihf(request.header, trust=self.trust, now=now,
                          clock_skew_seconds=self.settings.clock_skew_seconds,
                          tls_client_dn=tls_dn)
        if problems or request.body_child is None:
            return keep(problems + vihf.problems, strict=self.settings.strict)
        problems.extend(vihf.problems)
        sub = read_submission(request.body_child, request.parts)
        problems.extend(self._check_submission(sub, now))
        set_pid = sub.set_patient_id()
        if vihf.resource_ins and set_pid and not same_patient(vihf.resource_ins, set_pid):
            problems.append(Problem(InventedCode.VIHF_PATIENT, "VIHF/resource-id",
                                    "Le patient du VIHF n'est pas celui du lot de soumission."))
        problems = keep(problems, strict=self.settings.strict)
        if problems:
            return problems
        return self._register(sub, tls_dn, now)

    def _check_submission(self, sub: Submission, now: dt.datetime) -> list[Problem]:
        problems = check_structure(sub) + check_patient_ids(sub) + check_entries(
            sub, self.value_sets
        )
        documents: dict[str, bytes] = {}
        for entry in sub.documents_entries:
            data = sub.documents.get(entry.id)
            if data is None:
                continue
            problems.extend(check_cda(entry, data, max_bytes=self.settings.max_document_bytes))
            uid = entry_unique_id(entry)
            if uid:
                documents[uid] = data
        signatures = sub.signature_entries
        if len(signatures) == 1 and signatures[0].id in sub.documents:
            problems.extend(check_xades(sub.documents[signatures[0].id],
                                        set_unique_id=sub.set_unique_id(), documents=documents,
                                        trust=self.trust, now=now))
        uids = [u for u in (entry_unique_id(e) for e in sub.entries) if u]
        for uid in sorted(self.store.known_unique_ids(uids)):
            problems.append(Problem(IheCode.DUPLICATE_UNIQUE_ID, f"uniqueId {uid}",
                                    DUPLICATE_MESSAGE))
        return problems

    def _register(self, sub: Submission, tls_dn: str | None, now: dt.datetime) -> list[Problem]:
        set_uid = sub.set_unique_id() or ""
        stored = [self._stored(entry, sub.documents[entry.id], set_uid, tls_dn, now)
                  for entry in sub.entries]
        try:
            self.store.add_documents(stored)
        except DuplicateUniqueId:
            return [Problem(IheCode.DUPLICATE_UNIQUE_ID, "uniqueId", DUPLICATE_MESSAGE)]
        return []

    @staticmethod
    def _stored(
        entry: RegistryObject, data: bytes, set_uid: str, tls_dn: str | None, now: dt.datetime
    ) -> StoredDocument:
        entry_uuid = f"urn:uuid:{uuid.uuid4()}"
        sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()

        def code(scheme: str) -> str:
            found = entry.classified(scheme)
            return found[0].node if found else ""

        return StoredDocument(
            entry_uuid=entry_uuid,
            unique_id=entry_unique_id(entry) or "",
            patient_id=entry_patient_id(entry) or "",
            submission_unique_id=set_uid,
            status=STATUS_APPROVED,
            hash=sha1,
            size=len(data),
            mime_type=entry.mime_type or "",
            type_code=code(DE_TYPE_CODE),
            class_code=code(DE_CLASS_CODE),
            format_code=entry.format_code or "",
            is_signature=entry.is_signature,
            metadata_xml=registered_entry(entry.element, entry_uuid, sha1=sha1, size=len(data)),
            content=data,
            tls_dn=tls_dn,
            received_at=now.isoformat(),
        )
