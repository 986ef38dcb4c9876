"""ITI-18 Registry Stored Query, used only to resolve an ambiguous outcome: "does the DMP already
hold the document with this uniqueId?" (DESIGN.md §4: ask before any resend)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from bridge import xds_ids as ids

NS_QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"


def get_documents_by_unique_id(unique_id: str) -> etree._Element:
    """`query:AdhocQueryRequest` GetDocuments($XDSDocumentEntryUniqueId) returning LeafClass."""
    rim = f"{{{ids.NS_RIM}}}"
    request = etree.Element(
        f"{{{NS_QUERY}}}AdhocQueryRequest", nsmap={"query": NS_QUERY, "rim": ids.NS_RIM}
    )
    etree.SubElement(
        request,
        f"{{{NS_QUERY}}}ResponseOption",
        returnComposedObjects="true",
        returnType="LeafClass",
    )
    query = etree.SubElement(request, rim + "AdhocQuery", id=GET_DOCUMENTS)
    slot = etree.SubElement(query, rim + "Slot", name="$XDSDocumentEntryUniqueId")
    etree.SubElement(
        etree.SubElement(slot, rim + "ValueList"), rim + "Value"
    ).text = f"('{unique_id}')"
    return request


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


def read_query_response(root: etree._Element) -> QueryAnswer:
    """Read an AdhocQueryResponse (or the envelope around it)."""
    response = (
        root
        if root.tag == f"{{{NS_QUERY}}}AdhocQueryResponse"
        else root.find(f".//{{{NS_QUERY}}}AdhocQueryResponse")
    )
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
