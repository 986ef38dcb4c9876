"""Structure of the ITI-41 body (spec §2.2, §3, §8.5): schema, one submission set, the
entries and their documents, the HasMember and signs associations, one patient everywhere.
"""

from __future__ import annotations

from collections import Counter
from copy import deepcopy

from lxml import etree

from bridge.schemas import SchemaName, validation_errors
from service.simulator.namespaces import (
    DOCUMENT_ENTRY_TYPE,
    HAS_MEMBER,
    SIGNS,
    SS_SOURCE_ID,
    XDSB,
    XOP,
    q,
)
from service.simulator.problems import IheCode, Problem
from service.simulator.submission import Submission, entry_patient_id, entry_unique_id
from service.simulator.xds_types import parse_cx

META = IheCode.REGISTRY_METADATA


def _xop_free(request: etree._Element) -> etree._Element:
    """A copy where each `xop:Include` is replaced by empty base64 text.

    XOP (W3C) defines the infoset as if the part were inlined as base64; the schema types
    xdsb:Document as base64Binary, so the Include element itself must not be validated.
    """
    copy = deepcopy(request)
    for document in copy.findall(q(XDSB, "Document")):
        for include in document.findall(q(XOP, "Include")):
            document.remove(include)
            document.text = ""
    return copy


def check_request_schema(request: etree._Element | None) -> list[Problem]:
    """The body must be a ProvideAndRegisterDocumentSetRequest valid against XDS.b."""
    if request is None or request.tag != q(XDSB, "ProvideAndRegisterDocumentSetRequest"):
        return [Problem(META, "soap:Body",
                        "Le corps doit contenir xdsb:ProvideAndRegisterDocumentSetRequest.")]
    errors = validation_errors(_xop_free(request), SchemaName.XDS_B, limit=3)
    # Schema messages name elements and lines only, never values: safe to return.
    return [Problem(META, "xdsb:ProvideAndRegisterDocumentSetRequest",
                    f"Métadonnées non conformes au schéma XDS.b : {err}") for err in errors]


def _check_entries_and_documents(sub: Submission) -> list[Problem]:
    problems: list[Problem] = []
    entry_ids = [e.id for e in sub.entries]
    for dup in [i for i, n in Counter(entry_ids).items() if n > 1]:
        problems.append(Problem(META, f"ExtrinsicObject[@id='{dup}']",
                                "Identifiant d'ExtrinsicObject en double."))
    for dup in [i for i, n in Counter(sub.document_ids).items() if n > 1]:
        problems.append(Problem(META, f"xdsb:Document[@id='{dup}']",
                                "Identifiant de xdsb:Document en double."))
    for entry in sub.entries:
        loc = f"ExtrinsicObject[@id='{entry.id}']"
        if entry.element.get("objectType") != DOCUMENT_ENTRY_TYPE:
            problems.append(Problem(META, loc, "objectType d'ExtrinsicObject inattendu "
                                               "(fiche de document stable attendue)."))
        if entry.id in sub.document_errors:
            problems.append(Problem(IheCode.MISSING_DOCUMENT, loc,
                                    sub.document_errors[entry.id]))
        elif entry.id not in sub.documents:
            problems.append(Problem(IheCode.MISSING_DOCUMENT, loc,
                                    "Aucun xdsb:Document ne porte le contenu de cette fiche."))
    for doc_id in sub.document_ids:
        if doc_id not in entry_ids:
            problems.append(Problem(IheCode.MISSING_DOCUMENT_METADATA,
                                    f"xdsb:Document[@id='{doc_id}']",
                                    "Document transmis sans fiche de métadonnées."))
    unique_ids = [u for u in (entry_unique_id(e) for e in sub.entries) if u]
    for dup in [u for u, n in Counter(unique_ids).items() if n > 1]:
        problems.append(Problem(META, "ExtrinsicObject/uniqueId",
                                f"uniqueId utilisé par plusieurs fiches du lot : {dup}."))
    return problems


def _check_associations(sub: Submission) -> list[Problem]:
    ss = sub.submission_set
    if ss is None:
        return []
    problems: list[Problem] = []
    members = {a.target for a in sub.associations if a.type == HAS_MEMBER and a.source == ss.id}
    for entry in sub.entries:
        if entry.id not in members:
            problems.append(Problem(META, f"ExtrinsicObject[@id='{entry.id}']",
                                    "Association HasMember manquante entre le lot et la fiche."))
    signatures = sub.signature_entries
    if len(signatures) == 1:
        sig = signatures[0]
        signs = [a for a in sub.associations if a.type == SIGNS]
        if len(signs) != 1 or signs[0].source != sig.id or signs[0].target != ss.id:
            problems.append(Problem(META, "Association[signs]",
                                    "Il faut une association signs unique de la signature "
                                    "vers le lot de soumission."))
        elif signs[0].slots.get("SubmissionSetStatus") is not None:
            problems.append(Problem(META, "Association[signs]/SubmissionSetStatus",
                                    "Le slot SubmissionSetStatus n'a pas de sens sur "
                                    "l'association signs.", lenient=True))
    return problems


def check_structure(sub: Submission) -> list[Problem]:
    """One submission set, ≥1 document, one signature, documents ↔ entries, associations."""
    problems: list[Problem] = []
    if len(sub.submission_sets) != 1:
        problems.append(Problem(META, "RegistryPackage",
                                "Il faut exactement un lot de soumission (SubmissionSet)."))
    else:
        ss = sub.submission_sets[0]
        loc = f"RegistryPackage[@id='{ss.id}']"
        if not sub.set_unique_id():
            problems.append(Problem(META, loc, "uniqueId du lot de soumission absent."))
        if not ss.external_ids.get(SS_SOURCE_ID):
            problems.append(Problem(META, loc, "sourceId du lot de soumission absent."))
    if not sub.documents_entries:
        problems.append(Problem(META, "ExtrinsicObject",
                                "Le lot doit contenir au moins un document."))
    if len(sub.signature_entries) != 1:
        problems.append(Problem(META, "ExtrinsicObject",
                                "Le lot doit contenir exactement une signature XAdES du lot."))
    problems.extend(_check_entries_and_documents(sub))
    problems.extend(_check_associations(sub))
    return problems


def same_patient(a: str | None, b: str | None) -> bool:
    """Two CX patient ids name the same INS (id and OID); raw comparison if unparsable."""
    if a is None or b is None:
        return False
    ca, cb = parse_cx(a), parse_cx(b)
    if ca is None or cb is None:
        return a.strip() == b.strip()
    return (ca.id, ca.oid) == (cb.id, cb.oid)


def check_patient_ids(sub: Submission) -> list[Problem]:
    """patientId present on the set and every entry, and the same everywhere."""
    set_pid = sub.set_patient_id()
    if sub.submission_set is not None and not set_pid:
        return [Problem(META, "RegistryPackage/patientId", "patientId du lot absent.")]
    problems: list[Problem] = []
    for entry in sub.entries:
        pid = entry_patient_id(entry)
        loc = f"ExtrinsicObject[@id='{entry.id}']/patientId"
        if not pid:
            problems.append(Problem(META, loc, "patientId de la fiche absent."))
        elif set_pid and not same_patient(pid, set_pid):
            problems.append(Problem(IheCode.PATIENT_ID_MISMATCH, loc,
                                    "Le patientId de la fiche diffère de celui du lot."))
    return problems
