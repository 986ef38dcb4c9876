"""ITI-18 Registry Stored Query (spec §1.2, TD3.1; wire contract): FindDocuments and
GetDocuments, answered as LeafClass (ExtrinsicObjects with status, lid and VersionInfo) or
ObjectRef.

FindDocuments: by patient, optional status list (Deleted only when asked; without a list every
status but Deleted), optional typeCode / classCode lists; signature entries are not listed, and
MASQUE_PS entries are hidden from everyone but their author (spec §8.8).
GetDocuments: by entryUUID (that version) or by uniqueId (the latest version of the document).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from bridge.schemas import SchemaName, validation_errors
from service.simulator.checks.ebrim import same_patient
from service.simulator.checks.vihf import VihfFindings
from service.simulator.envelope import SoapRequest
from service.simulator.invented_codes import InventedCode
from service.simulator.judge import Judge, vihf_patient_problem
from service.simulator.namespaces import QUERY, RIM, STATUS_DELETED, q
from service.simulator.patients import Operation, state_problem
from service.simulator.problems import IheCode, Problem
from service.simulator.registered import shown_entry
from service.simulator.storage import StoredDocument

FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
_QUOTED = re.compile(r"'((?:[^']|'')*)'")
MASKED = b'nodeRepresentation="MASQUE_PS"'


@dataclass(frozen=True)
class QueryResult:
    objects: list[etree._Element]
    problems: list[Problem]


def _param_values(query: etree._Element) -> dict[str, list[str]]:
    """`$Param` → values; `('a','b')` lists and `'a'` strings are both unquoted."""
    params: dict[str, list[str]] = {}
    for slot in query.findall(q(RIM, "Slot")):
        values: list[str] = []
        for value in slot.iter(q(RIM, "Value")):
            text = (value.text or "").strip()
            quoted = _QUOTED.findall(text)
            if quoted:
                values.extend(v.replace("''", "'") for v in quoted)
            else:
                values.append(text)
        params.setdefault(slot.get("name") or "", []).extend(values)
    return params


def _error(code: str, message: str, location: str = "AdhocQuery") -> QueryResult:
    return QueryResult([], [Problem(code, location, message)])


def _codes(values: list[str]) -> set[str]:
    return {v.split("^")[0] for v in values}


class Iti18Handler:
    """Answer one `query:AdhocQueryRequest`; thread-safe (runs in a worker thread)."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge

    def handle(self, request: SoapRequest, tls_dn: str | None) -> QueryResult:
        vihf = self.judge.vihf(request, tls_dn, self.judge.clock())
        body = request.body_child
        if body is None or body.tag != q(QUERY, "AdhocQueryRequest"):
            return _error(IheCode.REGISTRY_ERROR, "Le corps doit contenir query:AdhocQueryRequest.",
                          "soap:Body")
        errors = validation_errors(body, SchemaName.EBRS_QUERY, limit=2)
        if errors:
            return QueryResult([], [Problem(IheCode.REGISTRY_ERROR, "AdhocQueryRequest",
                                            f"Requête non conforme au schéma : {e}")
                                    for e in errors])
        refusal = self.judge.keep(vihf.problems)
        if refusal:
            return QueryResult([], refusal)
        option = body.find(q(QUERY, "ResponseOption"))
        return_type = "LeafClass" if option is None else option.get("returnType") or "LeafClass"
        query = body.find(q(RIM, "AdhocQuery"))
        assert query is not None  # guaranteed by the schema
        params = _param_values(query)
        if query.get("id") == FIND_DOCUMENTS:
            found = self._find(params, vihf)
        elif query.get("id") == GET_DOCUMENTS:
            found = self._get(params, vihf)
        else:
            return _error(IheCode.UNKNOWN_STORED_QUERY, "Requête stockée non prise en charge "
                          "par le simulateur.", "AdhocQuery/@id")
        if isinstance(found, QueryResult):
            return found
        if return_type == "ObjectRef":
            objects = [etree.Element(q(RIM, "ObjectRef"), id=d.entry_uuid) for d in found]
        else:
            objects = [shown_entry(d) for d in found]
        return QueryResult(objects, [])

    def _find(self, params: dict[str, list[str]], vihf: VihfFindings,
              ) -> QueryResult | list[StoredDocument]:
        patients = params.get("$XDSDocumentEntryPatientId") or []
        if len(patients) != 1:
            return _error(IheCode.STORED_QUERY_PARAM,
                          "$XDSDocumentEntryPatientId est obligatoire (une seule valeur).")
        mismatch = vihf_patient_problem(vihf, patients[0])
        if mismatch:
            return QueryResult([], mismatch)
        refusal = state_problem(self.judge.patients.get(patients[0]), Operation.FIND,
                                purpose=vihf.purpose)
        if refusal is not None:
            return QueryResult([], [refusal])
        statuses = set(params.get("$XDSDocumentEntryStatus") or [])
        types = _codes(params.get("$XDSDocumentEntryTypeCode") or [])
        classes = _codes(params.get("$XDSDocumentEntryClassCode") or [])
        return [
            d for d in self.judge.store.by_patient_id(patients[0])
            if not d.is_signature
            and (d.status in statuses if statuses else d.status != STATUS_DELETED)
            and (not types or d.type_code in types)
            and (not classes or d.class_code in classes)
            and (MASKED not in d.metadata_xml or d.author_id == vihf.name_id)
        ]

    def _get(self, params: dict[str, list[str]], vihf: VihfFindings,
             ) -> QueryResult | list[StoredDocument]:
        unique_ids = params.get("$XDSDocumentEntryUniqueId") or []
        entry_uuids = params.get("$XDSDocumentEntryEntryUUID") or []
        if bool(unique_ids) == bool(entry_uuids):
            return _error(IheCode.STORED_QUERY_PARAM, "GetDocuments attend $XDSDocumentEntry"
                          "UniqueId ou $XDSDocumentEntryEntryUUID (l'un des deux).")
        store = self.judge.store
        found: list[StoredDocument] = []
        for uid in unique_ids:
            versions = sorted(store.by_unique_id(uid), key=lambda d: d.version)
            found.extend(versions[-1:])
        for entry_uuid in entry_uuids:
            found.extend(store.by_entry_uuid(entry_uuid))
        if vihf.resource_ins and any(not same_patient(d.patient_id, vihf.resource_ins)
                                     for d in found):
            return _error(InventedCode.VIHF_PATIENT, "Le patient du VIHF n'est pas celui des "
                          "documents demandés.", "VIHF/resource-id")
        for patient in {d.patient_id for d in found}:
            own = all(d.author_id == vihf.name_id for d in found if d.patient_id == patient)
            refusal = state_problem(self.judge.patients.get(patient), Operation.GET,
                                    own_documents=own, purpose=vihf.purpose)
            if refusal is not None:
                return QueryResult([], [refusal])
        return found
