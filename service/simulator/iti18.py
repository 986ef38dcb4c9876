"""ITI-18 Registry Stored Query (spec §1.2, TD3.1): FindDocuments and GetDocuments, answered
as LeafClass (ExtrinsicObjects) or ObjectRef.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from bridge.schemas import SchemaName, validation_errors
from bridge.xmlsafe import parse_xml
from service.simulator.checks.ebrim import same_patient
from service.simulator.namespaces import QUERY, RIM, q
from service.simulator.problems import IheCode, Problem
from service.simulator.storage import SimulatorStore, StoredDocument

FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
_QUOTED = re.compile(r"'((?:[^']|'')*)'")


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


def _param_error(message: str) -> QueryResult:
    return QueryResult([], [Problem(IheCode.STORED_QUERY_PARAM, "AdhocQuery", message)])


def _find_documents(store: SimulatorStore, params: dict[str, list[str]]) -> QueryResult | list[
    StoredDocument
]:
    patients = params.get("$XDSDocumentEntryPatientId") or []
    if len(patients) != 1:
        return _param_error("$XDSDocumentEntryPatientId est obligatoire (une seule valeur).")
    statuses = set(params.get("$XDSDocumentEntryStatus") or [])
    found = [
        d for d in store.documents()
        if not d.is_signature and same_patient(d.patient_id, patients[0])
        and (not statuses or d.status in statuses)
    ]
    return found


def _get_documents(store: SimulatorStore, params: dict[str, list[str]]) -> QueryResult | list[
    StoredDocument
]:
    unique_ids = params.get("$XDSDocumentEntryUniqueId") or []
    entry_uuids = params.get("$XDSDocumentEntryEntryUUID") or []
    if bool(unique_ids) == bool(entry_uuids):
        return _param_error("GetDocuments attend $XDSDocumentEntryUniqueId ou "
                            "$XDSDocumentEntryEntryUUID (l'un des deux).")
    found: list[StoredDocument] = []
    for uid in unique_ids:
        found.extend(store.by_unique_id(uid))
    for entry_uuid in entry_uuids:
        found.extend(store.by_entry_uuid(entry_uuid))
    return found


def run_query(request: etree._Element | None, store: SimulatorStore) -> QueryResult:
    """Answer one `query:AdhocQueryRequest`."""
    if request is None or request.tag != q(QUERY, "AdhocQueryRequest"):
        return QueryResult([], [Problem(IheCode.REGISTRY_ERROR, "soap:Body",
                                        "Le corps doit contenir query:AdhocQueryRequest.")])
    errors = validation_errors(request, SchemaName.EBRS_QUERY, limit=2)
    if errors:
        return QueryResult([], [Problem(IheCode.REGISTRY_ERROR, "AdhocQueryRequest",
                                        f"Requête non conforme au schéma : {e}") for e in errors])
    option = request.find(q(QUERY, "ResponseOption"))
    return_type = "LeafClass" if option is None else option.get("returnType") or "LeafClass"
    query = request.find(q(RIM, "AdhocQuery"))
    assert query is not None  # guaranteed by the schema
    params = _param_values(query)
    if query.get("id") == FIND_DOCUMENTS:
        found = _find_documents(store, params)
    elif query.get("id") == GET_DOCUMENTS:
        found = _get_documents(store, params)
    else:
        return QueryResult([], [Problem(IheCode.UNKNOWN_STORED_QUERY, "AdhocQuery/@id",
                                        "Requête stockée non prise en charge par le simulateur.")])
    if isinstance(found, QueryResult):
        return found
    if return_type == "ObjectRef":
        objects = [etree.Element(q(RIM, "ObjectRef"), id=d.entry_uuid) for d in found]
    else:
        objects = [parse_xml(d.metadata_xml) for d in found]
    return QueryResult(objects, [])
