"""Metadata of each DocumentEntry (spec §3.2) and of the submission set (§3.1): required
classifications and slots, author formats, hash and size of the bytes received.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from service.simulator.checks.dtm import check_dtm
from service.simulator.namespaces import (
    DE_AUTHOR,
    DE_CLASS_CODE,
    DE_CONFIDENTIALITY,
    DE_FACILITY_TYPE,
    DE_FORMAT_CODE,
    DE_PRACTICE_SETTING,
    DE_TYPE_CODE,
    SS_AUTHOR,
    SS_CONTENT_TYPE,
)
from service.simulator.problems import IheCode, Problem
from service.simulator.submission import RegistryObject, Submission, entry_unique_id
from service.simulator.xds_types import author_institution_problem, author_person_problem

META = IheCode.REGISTRY_METADATA
CODED = {
    DE_CLASS_CODE: "classCode",
    DE_TYPE_CODE: "typeCode",
    DE_FORMAT_CODE: "formatCode",
    DE_CONFIDENTIALITY: "confidentialityCode",
    DE_FACILITY_TYPE: "healthcareFacilityTypeCode",
    DE_PRACTICE_SETTING: "practiceSettingCode",
}
REQUIRED_SLOTS = ("creationTime", "languageCode", "sourcePatientId", "serviceStartTime")
DTM_SLOTS = ("creationTime", "serviceStartTime", "serviceStopTime")

# Value-set membership (J57/J60/J61/J66, ASS_X16) comes later: a hook gets each entry.
ValueSetHook = Callable[[RegistryObject], list[Problem]]


def _check_authors(obj: RegistryObject, scheme: str, loc: str, *, required: bool) -> list[Problem]:
    authors = obj.classified(scheme)
    if not authors:
        return [Problem(META, loc, "Classification author absente.")] if required else []
    problems: list[Problem] = []
    for author in authors:
        persons = author.slots.get("authorPerson") or []
        if not persons:
            problems.append(Problem(META, f"{loc}/author", "authorPerson absent."))
        for person in persons:
            found = author_person_problem(person)
            if found is not None:
                problems.append(Problem(META, f"{loc}/authorPerson", found[0], lenient=found[1]))
        for institution in author.slots.get("authorInstitution") or []:
            reason = author_institution_problem(institution)
            if reason is not None:
                problems.append(Problem(META, f"{loc}/authorInstitution", reason))
    return problems


def _check_legal_authenticator(entry: RegistryObject, loc: str) -> list[Problem]:
    """legalAuthenticator: an XCN with a PS_IdNat, required on a document (spec §3.2)."""
    values = entry.slots.get("legalAuthenticator") or []
    if not values and not entry.is_signature:
        return [Problem(META, f"{loc}/legalAuthenticator", "Slot legalAuthenticator absent.")]
    problems: list[Problem] = []
    for value in values:
        found = author_person_problem(value)
        if found is not None:
            reason = found[0].replace("authorPerson", "legalAuthenticator")
            problems.append(Problem(META, f"{loc}/legalAuthenticator", reason, lenient=found[1]))
    return problems


def _check_bytes(entry: RegistryObject, data: bytes, loc: str) -> list[Problem]:
    problems: list[Problem] = []
    declared_hash = entry.slot("hash")
    if declared_hash is not None:
        actual = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        if declared_hash.lower() != actual:
            problems.append(Problem(IheCode.NON_IDENTICAL_HASH, f"{loc}/hash",
                                    "L'empreinte SHA-1 déclarée ne correspond pas au document."))
        elif declared_hash != actual:
            problems.append(Problem(META, f"{loc}/hash", "hash doit être en hexadécimal "
                                                         "minuscule.", lenient=True))
    declared_size = entry.slot("size")
    if declared_size is not None and declared_size != str(len(data)):
        problems.append(Problem(IheCode.NON_IDENTICAL_SIZE, f"{loc}/size",
                                "La taille déclarée ne correspond pas au document reçu."))
    return problems


def check_entry(entry: RegistryObject, data: bytes | None) -> list[Problem]:
    """Required metadata of one entry, and hash/size against the bytes when given."""
    loc = f"ExtrinsicObject[@id='{entry.id}']"
    problems: list[Problem] = []
    if entry.mime_type != "text/xml":
        problems.append(Problem(IheCode.REPOSITORY_METADATA, f"{loc}/@mimeType",
                                "mimeType doit valoir text/xml."))
    if not entry_unique_id(entry):
        problems.append(Problem(META, f"{loc}/uniqueId", "uniqueId de la fiche absent."))
    for scheme, label in CODED.items():
        found = entry.classified(scheme)
        if not found:
            problems.append(Problem(META, f"{loc}/{label}", f"Classification {label} absente."))
        for item in found:
            if not item.node or not (item.slots.get("codingScheme") or [""])[0]:
                problems.append(Problem(META, f"{loc}/{label}",
                                        f"{label} sans code ou sans codingScheme."))
    for slot in REQUIRED_SLOTS:
        if not entry.slot(slot):
            problems.append(Problem(META, f"{loc}/{slot}", f"Slot obligatoire absent : {slot}."))
    for slot in DTM_SLOTS:
        problems.extend(check_dtm(entry.slot(slot), f"{loc}/{slot}"))
    problems.extend(_check_legal_authenticator(entry, loc))
    problems.extend(_check_authors(entry, DE_AUTHOR, loc, required=not entry.is_signature))
    if data is not None:
        problems.extend(_check_bytes(entry, data, loc))
    return problems


def check_submission_set(sub: Submission) -> list[Problem]:
    """submissionTime, contentTypeCode and the author of the set."""
    ss = sub.submission_set
    if ss is None:
        return []
    loc = f"RegistryPackage[@id='{ss.id}']"
    problems: list[Problem] = []
    if not ss.slot("submissionTime"):
        problems.append(Problem(META, f"{loc}/submissionTime", "submissionTime absent."))
    problems.extend(check_dtm(ss.slot("submissionTime"), f"{loc}/submissionTime"))
    if not ss.classified(SS_CONTENT_TYPE):
        problems.append(Problem(META, f"{loc}/contentTypeCode", "contentTypeCode absent."))
    problems.extend(_check_authors(ss, SS_AUTHOR, loc, required=True))
    return problems


def check_entries(sub: Submission, value_sets: ValueSetHook | None = None) -> list[Problem]:
    """Every entry's metadata, then the value-set hook when one is given."""
    problems = check_submission_set(sub)
    for entry in sub.entries:
        problems.extend(check_entry(entry, sub.documents.get(entry.id)))
        if value_sets is not None:
            problems.extend(value_sets(entry))
    return problems
