"""RPLC on ITI-41 (spec §4.4, §8.6, wire contract): the replaced entry exists, is Approved,
belongs to the same patient; the new CDA names it in relatedDocument RPLC, keeps its setId and
increments its versionNumber. On success the replaced entry becomes Deprecated.
"""

from __future__ import annotations

from service.simulator.checks.cda import cda_facts
from service.simulator.checks.ebrim import same_patient
from service.simulator.namespaces import STATUS_APPROVED, STATUS_DEPRECATED
from service.simulator.problems import IheCode, Problem
from service.simulator.storage import SimulatorStore, StatusChange
from service.simulator.submission import Submission, entry_patient_id

RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
FAILED = IheCode.REPLACE_FAILED


def check_replacements(sub: Submission, store: SimulatorStore,
                       ) -> tuple[list[Problem], list[StatusChange]]:
    """Problems, and the status changes to apply when the lot is registered."""
    problems: list[Problem] = []
    changes: list[StatusChange] = []
    entries = {e.id: e for e in sub.documents_entries}
    replaced_sources: set[str] = set()
    for assoc in (a for a in sub.associations if a.type == RPLC):
        loc = f"Association[@id='{assoc.id}']"
        entry = entries.get(assoc.source)
        if entry is None:
            problems.append(Problem(IheCode.REGISTRY_METADATA, loc, "L'association RPLC doit "
                                    "partir de la fiche du nouveau document."))
            continue
        replaced_sources.add(entry.id)
        found = store.by_entry_uuid(assoc.target)
        target = found[0] if found else None
        if target is None or target.is_signature:
            problems.append(Problem(FAILED, loc, "Le document à remplacer est inconnu."))
            continue
        if target.status != STATUS_APPROVED:
            problems.append(Problem(FAILED, loc, "Le document à remplacer n'est pas approuvé "
                                                 "(déjà remplacé, archivé ou supprimé)."))
            continue
        if not same_patient(target.patient_id, entry_patient_id(entry)):
            problems.append(Problem(FAILED, loc, "Le document à remplacer appartient à un autre "
                                                 "patient."))
            continue
        new, old = cda_facts(sub.documents.get(entry.id, b"")), cda_facts(target.content)
        if new.parent_id != target.unique_id:
            problems.append(Problem(FAILED, f"{loc}/relatedDocument", "Le CDA doit désigner le "
                                    "document remplacé dans relatedDocument RPLC/parentDocument."))
        if new.set_id != old.set_id or old.version is None or new.version != old.version + 1:
            problems.append(Problem(FAILED, f"{loc}/versionNumber", "Le CDA de remplacement doit "
                                    "garder le setId et incrémenter versionNumber."))
        changes.append(StatusChange(target.entry_uuid, STATUS_APPROVED, STATUS_DEPRECATED))
    for entry_id, entry in entries.items():
        facts = cda_facts(sub.documents.get(entry_id, b""))
        if facts.parent_id is not None and entry_id not in replaced_sources:
            problems.append(Problem(IheCode.REGISTRY_METADATA, f"ExtrinsicObject[@id='{entry.id}']",
                                    "Le CDA porte relatedDocument RPLC mais le lot n'a pas "
                                    "d'association RPLC."))
    return problems, changes
