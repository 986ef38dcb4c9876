"""ITI-41 Provide and Register Document Set-b (TD2 / TD2.1): run every check, then register
or refuse.

Order: body schema and VIHF first (a body that fails its schema is not read further), then
the submission's structure, metadata and value sets, CDAs, XAdES, replacement, patient state and
duplicates. On any problem nothing is stored; on success every entry of the lot is stored, and
a replaced entry deprecated, in one transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

from service.simulator.checks.cda import check_cda
from service.simulator.checks.dtm import check_submission_time
from service.simulator.checks.ebrim import check_patient_ids, check_request_schema, check_structure
from service.simulator.checks.entries import check_entries
from service.simulator.checks.valuesets import check_entry_codes, check_set_codes
from service.simulator.checks.xades import check_xades
from service.simulator.envelope import SoapRequest
from service.simulator.judge import Judge, vihf_patient_problem
from service.simulator.namespaces import DE_AUTHOR, DE_CLASS_CODE, DE_TYPE_CODE, STATUS_APPROVED
from service.simulator.patients import Operation, state_problem
from service.simulator.problems import IheCode, Problem
from service.simulator.registered import registered_entry
from service.simulator.replacement import check_replacements
from service.simulator.storage import DuplicateUniqueId, StaleStatus, StatusChange, StoredDocument
from service.simulator.submission import (
    RegistryObject,
    Submission,
    entry_patient_id,
    entry_unique_id,
    read_submission,
)
from service.simulator.xds_types import parse_xcn

DUPLICATE_MESSAGE = "Ce uniqueId de document est déjà enregistré dans le DMP."


def author_id(entry: RegistryObject) -> str:
    """PS_IdNat (XCN.1) of the entry's first authorPerson, "" when none is readable."""
    for author in entry.classified(DE_AUTHOR):
        for person in author.slots.get("authorPerson") or []:
            xcn = parse_xcn(person)
            if xcn is not None:
                return xcn.id
    return ""


class Iti41Handler:
    """Judge one ITI-41 request; thread-safe (runs in a worker thread)."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge

    def handle(self, request: SoapRequest, tls_dn: str | None) -> list[Problem]:
        """The problems that refuse the request (empty: the lot was registered)."""
        now = self.judge.clock()
        problems = check_request_schema(request.body_child)
        vihf = self.judge.vihf(request, tls_dn, now)
        if problems or request.body_child is None:
            return self.judge.keep(problems + vihf.problems)
        problems.extend(vihf.problems)
        sub = read_submission(request.body_child, request.parts)
        problems.extend(self._check_submission(sub, now))
        problems.extend(vihf_patient_problem(vihf, sub.set_patient_id()))
        replace_problems, changes = check_replacements(sub, self.judge.store)
        problems.extend(replace_problems)
        refusal = state_problem(self.judge.patients.get(sub.set_patient_id()), Operation.FEED)
        if refusal is not None:
            problems.append(refusal)
        problems = self.judge.keep(problems)
        if problems:
            return problems
        return self._register(sub, changes, tls_dn, now)

    def _check_submission(self, sub: Submission, now: dt.datetime) -> list[Problem]:
        problems = check_structure(sub) + check_patient_ids(sub) + check_entries(
            sub, check_entry_codes
        )
        ss = sub.submission_set
        if ss is not None:
            problems.extend(check_set_codes(ss))
            problems.extend(check_submission_time(
                ss.slot("submissionTime"), f"RegistryPackage[@id='{ss.id}']/submissionTime",
                now, self.judge.clock_skew_seconds))
        documents: dict[str, bytes] = {}
        for entry in sub.documents_entries:
            data = sub.documents.get(entry.id)
            if data is None:
                continue
            problems.extend(check_cda(entry, data, max_bytes=self.judge.max_document_bytes))
            uid = entry_unique_id(entry)
            if uid:
                documents[uid] = data
        signatures = sub.signature_entries
        if len(signatures) == 1 and signatures[0].id in sub.documents:
            problems.extend(check_xades(sub.documents[signatures[0].id],
                                        set_unique_id=sub.set_unique_id(), documents=documents,
                                        trust=self.judge.trust, now=now))
        uids = [u for u in (entry_unique_id(e) for e in sub.entries) if u]
        for uid in sorted(self.judge.store.known_unique_ids(uids)):
            problems.append(Problem(IheCode.DUPLICATE_UNIQUE_ID, f"uniqueId {uid}",
                                    DUPLICATE_MESSAGE))
        return problems

    def _register(self, sub: Submission, changes: list[StatusChange], tls_dn: str | None,
                  now: dt.datetime) -> list[Problem]:
        set_uid = sub.set_unique_id() or ""
        stored = [self._stored(entry, sub.documents[entry.id], set_uid, tls_dn, now)
                  for entry in sub.entries]
        try:
            self.judge.store.apply(stored, changes)
        except DuplicateUniqueId:
            return [Problem(IheCode.DUPLICATE_UNIQUE_ID, "uniqueId", DUPLICATE_MESSAGE)]
        except StaleStatus:
            return [Problem(IheCode.REPLACE_FAILED, "Association[RPLC]",
                            "Le document à remplacer a changé d'état entre-temps.")]
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
            logical_id=entry_uuid,
            version=1,
            author_id=author_id(entry),
        )
