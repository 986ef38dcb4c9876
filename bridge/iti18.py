"""ITI-18 Registry Stored Query (TD3.1): FindDocuments, GetDocuments by uniqueId or entryUUID,
LeafClass or ObjectRef, and a reader of the registry's answer.

Uses: resolve an ambiguous outcome ("does the DMP already hold this uniqueId?", DESIGN.md §4),
find the entryUUID of a document before replacing, deleting, archiving or masking it (TD3.1b),
and list a patient's documents (TD3.1a). Pure builders and readers; the wire contract is in
docs/wire-contract.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from lxml import etree

from bridge import xds_ids as ids
from bridge.domain import Coded, Ins

NS_QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
NS_RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
PARTIAL = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:PartialSuccess"


class AvailabilityStatus(StrEnum):
    """availabilityStatus of a DocumentEntry in the DMP (JDV_J52 and the CI-SIS extensions)."""

    APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"  # current version
    DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"  # replaced / updated
    ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"  # archived by a professional
    DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"  # logically deleted by its author


class ReturnType(StrEnum):
    """ResponseOption/@returnType."""

    LEAF_CLASS = "LeafClass"  # the full metadata of each entry
    OBJECT_REF = "ObjectRef"  # entryUUIDs only (TD3.1b)


def _quoted_list(values: Iterable[str]) -> str:
    """An ITI-18 multi-valued parameter: ('a','b'). A quote inside a value is doubled."""
    return "(" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def _query(stored_query: str, return_type: ReturnType, params: dict[str, str]) -> etree._Element:
    rim = f"{{{ids.NS_RIM}}}"
    request = etree.Element(
        f"{{{NS_QUERY}}}AdhocQueryRequest", nsmap={"query": NS_QUERY, "rim": ids.NS_RIM}
    )
    etree.SubElement(
        request,
        f"{{{NS_QUERY}}}ResponseOption",
        returnComposedObjects="true",
        returnType=return_type.value,
    )
    query = etree.SubElement(request, rim + "AdhocQuery", id=stored_query)
    for name, value in params.items():
        slot = etree.SubElement(query, rim + "Slot", name=name)
        etree.SubElement(etree.SubElement(slot, rim + "ValueList"), rim + "Value").text = value
    return request


def find_documents(
    patient: Ins,
    *,
    statuses: Sequence[AvailabilityStatus] = (AvailabilityStatus.APPROVED,),
    return_type: ReturnType = ReturnType.LEAF_CLASS,
) -> etree._Element:
    """FindDocuments($XDSDocumentEntryPatientId, $XDSDocumentEntryStatus) (TD3.1a)."""
    if not statuses:
        raise ValueError("FindDocuments needs at least one status")
    return _query(
        FIND_DOCUMENTS,
        return_type,
        {
            "$XDSDocumentEntryPatientId": "'" + patient.cx() + "'",
            "$XDSDocumentEntryStatus": _quoted_list(s.value for s in statuses),
        },
    )


def get_documents(
    *,
    unique_ids: Sequence[str] = (),
    entry_uuids: Sequence[str] = (),
    return_type: ReturnType = ReturnType.LEAF_CLASS,
) -> etree._Element:
    """GetDocuments by uniqueIds or by entryUUIDs (exactly one of the two, IHE ITI TF-2a)."""
    if bool(unique_ids) == bool(entry_uuids):
        raise ValueError("GetDocuments takes either uniqueIds or entryUUIDs")
    name, values = (
        ("$XDSDocumentEntryUniqueId", unique_ids)
        if unique_ids
        else ("$XDSDocumentEntryEntryUUID", entry_uuids)
    )
    return _query(GET_DOCUMENTS, return_type, {name: _quoted_list(values)})


def get_documents_by_unique_id(unique_id: str) -> etree._Element:
    """`query:AdhocQueryRequest` GetDocuments($XDSDocumentEntryUniqueId) returning LeafClass."""
    return get_documents(unique_ids=[unique_id])


@dataclass(frozen=True)
class FoundDocument:
    """What the registry says it holds for a uniqueId."""

    unique_id: str
    hash: str
    size: int | None


@dataclass(frozen=True)
class QueryAnswer:
    """`ok` is False when the query itself failed (then nothing can be concluded)."""

    ok: bool
    documents: tuple[FoundDocument, ...]


def _response(root: etree._Element) -> etree._Element | None:
    if root.tag == f"{{{NS_QUERY}}}AdhocQueryResponse":
        return root
    return root.find(f".//{{{NS_QUERY}}}AdhocQueryResponse")


def read_query_response(root: etree._Element) -> QueryAnswer:
    """Read an AdhocQueryResponse (or the envelope around it)."""
    response = _response(root)
    if response is None or response.get("status") != SUCCESS:
        return QueryAnswer(False, ())
    rim = f"{{{ids.NS_RIM}}}"
    found = []
    for entry in response.iter(rim + "ExtrinsicObject"):
        slots = {
            s.get("name"): s.findtext(f"{rim}ValueList/{rim}Value", "")
            for s in entry.findall(rim + "Slot")
        }
        unique_id = next(
            (
                e.get("value", "")
                for e in entry.findall(rim + "ExternalIdentifier")
                if e.get("identificationScheme") == ids.DE_UNIQUE_ID
            ),
            "",
        )
        size = slots.get("size") or ""
        found.append(
            FoundDocument(
                unique_id, (slots.get("hash") or "").lower(), int(size) if size.isdigit() else None
            )
        )
    return QueryAnswer(True, tuple(found))


@dataclass(frozen=True)
class RegistryEntry:
    """One DocumentEntry as the registry returns it in LeafClass form."""

    entry_uuid: str  # changes with every version and every metadata update
    logical_id: str  # stable across metadata updates (the first version's entryUUID)
    version: int | None  # rim:VersionInfo/@versionName (1 for a first version)
    status: str  # availabilityStatus URN, as sent (see `availability`)
    unique_id: str
    patient_id: str  # CX
    hash: str  # lower-case hex
    size: int | None
    confidentiality: tuple[Coded, ...]  # N/R/V first, then the TRE_A07 visibility flags
    author_ids: tuple[str, ...]  # PS_IdNat of each authorPerson (XCN component 1)
    # The ExtrinsicObject itself: the ITI-57 metadata update resends its full metadata.
    element: etree._Element = field(repr=False, compare=False)

    @property
    def availability(self) -> AvailabilityStatus | None:
        """The status as a known value, None for a status this bridge does not know."""
        try:
            return AvailabilityStatus(self.status)
        except ValueError:
            return None


@dataclass(frozen=True)
class QueryResult:
    """A stored-query answer: entries (LeafClass) or entryUUIDs (ObjectRef), or the errors."""

    ok: bool
    entries: tuple[RegistryEntry, ...] = ()
    references: tuple[str, ...] = ()  # ObjectRef ids, i.e. entryUUIDs
    errors: tuple[tuple[str, str], ...] = ()  # (errorCode, codeContext) of each RegistryError


def _slot_values(entry: etree._Element, name: str) -> list[str]:
    rim = f"{{{ids.NS_RIM}}}"
    for slot in entry.findall(rim + "Slot"):
        if slot.get("name") == name:
            return [(v.text or "").strip() for v in slot.iterfind(f"{rim}ValueList/{rim}Value")]
    return []


def _coded(classification: etree._Element) -> Coded:
    rim = f"{{{ids.NS_RIM}}}"
    systems = _slot_values(classification, "codingScheme")
    display = classification.find(f"{rim}Name/{rim}LocalizedString")
    return Coded(
        code=classification.get("nodeRepresentation", ""),
        display=display.get("value", "") if display is not None else "",
        system=systems[0] if systems else "",
    )


def read_entry(entry: etree._Element) -> RegistryEntry:
    """One LeafClass ExtrinsicObject; absent parts become empty values, never an exception."""
    rim = f"{{{ids.NS_RIM}}}"
    externals = {
        e.get("identificationScheme"): e.get("value", "")
        for e in entry.findall(rim + "ExternalIdentifier")
    }
    classifications = entry.findall(rim + "Classification")
    authors = [
        person.split("^", 1)[0]
        for c in classifications
        if c.get("classificationScheme") == ids.DE_AUTHOR
        for person in _slot_values(c, "authorPerson")
    ]
    version_info = entry.find(rim + "VersionInfo")
    version = version_info.get("versionName", "") if version_info is not None else ""
    size = "".join(_slot_values(entry, "size")[:1])
    entry_uuid = entry.get("id", "")
    return RegistryEntry(
        entry_uuid=entry_uuid,
        logical_id=entry.get("lid") or entry_uuid,
        version=int(version) if version.isdigit() else None,
        status=entry.get("status", ""),
        unique_id=externals.get(ids.DE_UNIQUE_ID, ""),
        patient_id=externals.get(ids.DE_PATIENT_ID, ""),
        hash="".join(_slot_values(entry, "hash")[:1]).lower(),
        size=int(size) if size.isdigit() else None,
        confidentiality=tuple(
            _coded(c)
            for c in classifications
            if c.get("classificationScheme") == ids.DE_CONFIDENTIALITY_CODE
        ),
        author_ids=tuple(a for a in authors if a),
        element=entry,
    )


def read_entries(root: etree._Element) -> QueryResult:
    """Read an AdhocQueryResponse (bare or in its envelope) into entries or references."""
    response = _response(root)
    if response is None:
        return QueryResult(False, errors=(("DMP_REPONSE_ILLISIBLE", "no AdhocQueryResponse"),))
    errors = tuple(
        (e.get("errorCode", ""), e.get("codeContext", ""))
        for e in response.iter(f"{{{NS_RS}}}RegistryError")
        if not e.get("severity", "").endswith("Warning")
    )
    if response.get("status") not in (SUCCESS, PARTIAL) or errors:
        return QueryResult(False, errors=errors)
    rim = f"{{{ids.NS_RIM}}}"
    objects = response.find(rim + "RegistryObjectList")
    if objects is None:
        return QueryResult(True)
    return QueryResult(
        True,
        entries=tuple(read_entry(e) for e in objects.findall(rim + "ExtrinsicObject")),
        references=tuple(r.get("id", "") for r in objects.findall(rim + "ObjectRef")),
    )


def current_entry(entries: Sequence[RegistryEntry]) -> RegistryEntry | None:
    """The live version among the entries of one uniqueId: after a metadata update the DMP
    keeps the deprecated version with the same uniqueId; the highest non-deprecated one wins."""
    live = [e for e in entries if e.availability is not AvailabilityStatus.DEPRECATED]
    if not live:
        return None
    return max(live, key=lambda e: e.version or 0)
