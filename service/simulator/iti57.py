"""ITI-57 Update Document Set (TD3.3a–d; spec §4.5, §4.6, §8.7; wire contract).

(a) availability: an UpdateAvailabilityStatus association from the submission set to an
entryUUID, with OriginalStatus = the current status and NewStatus among Approved → Deleted
(author only), Approved → Archived, Archived → Approved.
(b) metadata update: a new ExtrinsicObject with `lid` = the logicalId, joined to the set by
HasMember with PreviousVersion = the current version; it becomes a new version (new entryUUID,
same logicalId, version + 1, Approved) and the previous one Deprecated.
Every change of a request is applied in one transaction, or none.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from bridge.schemas import SchemaName, validation_errors
from service.simulator.checks.dtm import check_submission_time
from service.simulator.checks.ebrim import same_patient
from service.simulator.checks.entries import check_entry, check_submission_set
from service.simulator.checks.valuesets import check_entry_codes, check_set_codes
from service.simulator.envelope import SoapRequest
from service.simulator.invented_codes import InventedCode
from service.simulator.judge import Judge, vihf_patient_problem
from service.simulator.namespaces import (
    DE_CLASS_CODE,
    DE_TYPE_CODE,
    HAS_MEMBER,
    LCM,
    RIM,
    SS_SOURCE_ID,
    STATUS_APPROVED,
    STATUS_ARCHIVED,
    STATUS_DELETED,
    STATUS_DEPRECATED,
    UPDATE_AVAILABILITY,
    q,
)
from service.simulator.patients import Operation, state_problem
from service.simulator.problems import IheCode, Problem
from service.simulator.registered import registered_entry
from service.simulator.storage import StaleStatus, StatusChange, StoredDocument
from service.simulator.submission import (
    Association,
    RegistryObject,
    Submission,
    entry_patient_id,
    entry_unique_id,
    read_objects,
)

META = IheCode.REGISTRY_METADATA
UPDATE = IheCode.METADATA_UPDATE
ALLOWED = frozenset({(STATUS_APPROVED, STATUS_DELETED), (STATUS_APPROVED, STATUS_ARCHIVED),
                     (STATUS_ARCHIVED, STATUS_APPROVED)})


@dataclass
class _Update:
    """One request being judged: who, which patient, and the changes it will apply."""

    ss_id: str
    members: dict[str, Association]
    patient: str | None
    caller: str | None
    now: dt.datetime
    tls_dn: str | None
    changes: list[StatusChange] = field(default_factory=list)
    added: list[StoredDocument] = field(default_factory=list)


class Iti57Handler:
    """Judge and apply one ITI-57 request; thread-safe (runs in a worker thread)."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge

    def handle(self, request: SoapRequest, tls_dn: str | None) -> list[Problem]:
        now = self.judge.clock()
        body = request.body_child
        vihf = self.judge.vihf(request, tls_dn, now)
        if body is None or body.tag != q(LCM, "SubmitObjectsRequest"):
            return self.judge.keep([Problem(META, "soap:Body", "Le corps doit contenir "
                                            "lcm:SubmitObjectsRequest."), *vihf.problems])
        schema = [Problem(META, "lcm:SubmitObjectsRequest", f"Requête non conforme au schéma "
                          f"ebRS : {e}") for e in validation_errors(body, SchemaName.EBRS_LCM,
                                                                      limit=3)]
        if schema:
            return self.judge.keep(schema + vihf.problems)
        sub = read_objects(body.find(q(RIM, "RegistryObjectList")))
        problems = vihf.problems + self._check_set(sub, now)
        patient = sub.set_patient_id()
        problems.extend(vihf_patient_problem(vihf, patient))
        refusal = state_problem(self.judge.patients.get(patient), Operation.FEED)
        if refusal is not None:
            problems.append(refusal)
        ss_id = sub.submission_set.id if sub.submission_set else ""
        update = _Update(ss_id, {a.target: a for a in sub.associations
                                 if a.type == HAS_MEMBER and a.source == ss_id},
                         patient, vihf.name_id, now, tls_dn)
        for assoc in (a for a in sub.associations if a.type == UPDATE_AVAILABILITY):
            problems.extend(self._availability(assoc, update))
        for entry in sub.entries:
            problems.extend(self._new_version(entry, update))
        if not update.changes and not problems:
            problems.append(Problem(META, "RegistryObjectList", "Aucune mise à jour demandée "
                                    "(ni UpdateAvailabilityStatus, ni nouvelle version)."))
        problems = self.judge.keep(problems)
        if problems:
            return problems
        try:
            self.judge.store.apply(update.added, update.changes)
        except StaleStatus:
            return [Problem(UPDATE, "RegistryObjectList", "Le document a changé d'état "
                                                          "entre-temps.")]
        return []

    def _check_set(self, sub: Submission, now: dt.datetime) -> list[Problem]:
        if len(sub.submission_sets) != 1:
            return [Problem(META, "RegistryPackage",
                            "Il faut exactement un lot de soumission (SubmissionSet).")]
        ss = sub.submission_sets[0]
        loc = f"RegistryPackage[@id='{ss.id}']"
        problems = check_submission_set(sub) + check_set_codes(ss)
        problems.extend(check_submission_time(ss.slot("submissionTime"), f"{loc}/submissionTime",
                                              now, self.judge.clock_skew_seconds))
        required = (("uniqueId", sub.set_unique_id()), ("patientId", sub.set_patient_id()),
                    ("sourceId", ss.external_ids.get(SS_SOURCE_ID)))
        for label, value in required:
            if not value:
                problems.append(Problem(META, f"{loc}/{label}", f"{label} du lot absent."))
        return problems

    def _availability(self, assoc: Association, update: _Update) -> list[Problem]:
        loc = f"Association[@id='{assoc.id}']"
        original, new = assoc.slot("OriginalStatus"), assoc.slot("NewStatus")
        if (assoc.source != update.ss_id or not original or not new
                or assoc.id not in update.members):
            return [Problem(META, loc, "UpdateAvailabilityStatus doit partir du lot, porter "
                                       "OriginalStatus et NewStatus, et être membre du lot.")]
        found = self.judge.store.by_entry_uuid(assoc.target)
        if not found:
            return [Problem(UPDATE, loc, "Document inconnu (entryUUID).")]
        return self._transition(found[0], original, new, loc, update)

    @staticmethod
    def _transition(target: StoredDocument, original: str, new: str, loc: str,
                    update: _Update) -> list[Problem]:
        if not same_patient(target.patient_id, update.patient):
            return [Problem(IheCode.PATIENT_ID_MISMATCH, loc,
                            "Le document appartient à un autre patient que celui du lot.")]
        if original != target.status:
            return [Problem(UPDATE, loc, "OriginalStatus n'est pas l'état actuel du document.")]
        if (original, new) not in ALLOWED:
            return [Problem(UPDATE, loc, "Changement d'état non permis.")]
        if new == STATUS_DELETED and update.caller != target.author_id:
            return [Problem(InventedCode.SUPPRESSION_NON_AUTEUR, loc,
                            "Seul l'auteur du document peut le supprimer.")]
        update.changes.append(StatusChange(target.entry_uuid, original, new))
        return []

    def _new_version(self, entry: RegistryObject, update: _Update) -> list[Problem]:
        loc = f"ExtrinsicObject[@id='{entry.id}']"
        member = update.members.get(entry.id)
        patient, now, tls_dn = update.patient, update.now, update.tls_dn
        lid = entry.element.get("lid") or ""
        versions = self.judge.store.by_logical_id(lid) if lid else []
        if not versions:
            return [Problem(UPDATE, f"{loc}/@lid", "lid absent ou logicalId inconnu.")]
        current = versions[-1]
        if member is None:
            return [Problem(META, loc, "Association HasMember manquante entre le lot et la fiche.")]
        if member.slot("PreviousVersion") != str(current.version):
            return [Problem(IheCode.METADATA_VERSION, f"{loc}/PreviousVersion",
                            "PreviousVersion n'est pas la version actuelle du document.")]
        if current.status != STATUS_APPROVED:
            return [Problem(UPDATE, loc, "Seule la version approuvée peut être mise à jour.")]
        problems = check_entry(entry, current.content) + check_entry_codes(entry)
        if not same_patient(entry_patient_id(entry), current.patient_id) or not same_patient(
                current.patient_id, patient):
            problems.append(Problem(IheCode.PATIENT_ID_MISMATCH, f"{loc}/patientId",
                                    "Le patientId de la fiche diffère de celui du document."))
        if entry_unique_id(entry) != current.unique_id:
            problems.append(Problem(UPDATE, f"{loc}/uniqueId",
                                    "Le uniqueId d'un document ne change pas."))
        if problems:
            return problems
        entry_uuid = f"urn:uuid:{uuid.uuid4()}"
        def code(scheme: str) -> str:
            found = entry.classified(scheme)
            return found[0].node if found else ""

        update.added.append(StoredDocument(
            entry_uuid=entry_uuid, unique_id=current.unique_id, patient_id=current.patient_id,
            submission_unique_id=current.submission_unique_id, status=STATUS_APPROVED,
            hash=current.hash, size=current.size, mime_type=entry.mime_type or "",
            type_code=code(DE_TYPE_CODE), class_code=code(DE_CLASS_CODE),
            format_code=entry.format_code or "", is_signature=current.is_signature,
            metadata_xml=registered_entry(entry.element, entry_uuid, sha1=current.hash,
                                          size=current.size),
            content=current.content, tls_dn=tls_dn, received_at=now.isoformat(),
            logical_id=current.logical_id, version=current.version + 1,
            author_id=current.author_id,
        ))
        update.changes.append(StatusChange(current.entry_uuid, STATUS_APPROVED,
                                           STATUS_DEPRECATED))
        return []
