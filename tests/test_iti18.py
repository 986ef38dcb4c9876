"""ITI-18 GetDocuments by uniqueId: how an ambiguous outcome is resolved (DESIGN.md §4)."""

from __future__ import annotations

from lxml import etree

from bridge import xds_ids as ids
from bridge.iti18 import (
    GET_DOCUMENTS,
    FoundDocument,
    get_documents_by_unique_id,
    read_query_response,
)
from bridge.schemas import SchemaName, validation_errors
from bridge.xmlsafe import parse_xml

QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
RIM = ids.NS_RIM
NS = {"query": QUERY, "rim": RIM}
UNIQUE_ID = "2.25.123456789012345678901234567890"
HASH = "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"
STATUS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:"
STABLE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"


def extrinsic_object(unique_id: str = UNIQUE_ID, size: str = "4242") -> str:
    return f"""
      <rim:ExtrinsicObject id="urn:uuid:0b7e1c2a-0000-4000-8000-000000000001"
          mimeType="text/xml" objectType="{STABLE}"
          status="urn:oasis:names:tc:ebxml-regrep:StatusType:Approved">
        <rim:Slot name="hash">
          <rim:ValueList><rim:Value>{HASH}</rim:Value></rim:ValueList>
        </rim:Slot>
        <rim:Slot name="size">
          <rim:ValueList><rim:Value>{size}</rim:Value></rim:ValueList>
        </rim:Slot>
        <rim:Slot name="repositoryUniqueId">
          <rim:ValueList><rim:Value>1.2.250.1.213.4.1.1</rim:Value></rim:ValueList>
        </rim:Slot>
        <rim:ExternalIdentifier id="urn:uuid:0b7e1c2a-0000-4000-8000-000000000002"
            registryObject="urn:uuid:0b7e1c2a-0000-4000-8000-000000000001"
            identificationScheme="{ids.DE_UNIQUE_ID}" value="{unique_id}">
          <rim:Name><rim:LocalizedString value="XDSDocumentEntry.uniqueId"/></rim:Name>
        </rim:ExternalIdentifier>
      </rim:ExtrinsicObject>"""


def query_response(status: str = "Success", objects: str = "") -> str:
    return f"""<query:AdhocQueryResponse xmlns:query="{QUERY}" xmlns:rim="{RIM}"
        status="{STATUS}{status}">
      <rim:RegistryObjectList>{objects}</rim:RegistryObjectList>
    </query:AdhocQueryResponse>"""


def in_envelope(inner: str) -> etree._Element:
    return parse_xml(
        f'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>'
        f"{inner}</soap:Body></soap:Envelope>".encode())


def test_the_query_is_get_documents_by_unique_id_returning_leaf_classes() -> None:
    request = get_documents_by_unique_id(UNIQUE_ID)
    assert request.tag == f"{{{QUERY}}}AdhocQueryRequest"
    option = request.find(f"{{{QUERY}}}ResponseOption")
    assert option is not None
    assert (option.get("returnType"), option.get("returnComposedObjects")) == ("LeafClass", "true")
    query = request.find(f"{{{RIM}}}AdhocQuery")
    assert query is not None
    assert query.get("id") == GET_DOCUMENTS == "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
    values = query.xpath(
        "rim:Slot[@name='$XDSDocumentEntryUniqueId']/rim:ValueList/rim:Value/text()", namespaces=NS
    )
    assert values == [f"('{UNIQUE_ID}')"]


def test_the_query_is_valid_ebrs_30() -> None:
    assert validation_errors(get_documents_by_unique_id(UNIQUE_ID), SchemaName.EBRS_QUERY) == []


def test_the_hand_written_answer_is_valid_ebrs_30() -> None:
    answer = parse_xml(query_response(objects=extrinsic_object()).encode())
    assert validation_errors(answer, SchemaName.EBRS_QUERY) == []


def test_a_found_document_gives_its_unique_id_hash_and_size() -> None:
    answer = read_query_response(in_envelope(query_response(objects=extrinsic_object())))
    assert answer.ok
    assert answer.documents == (FoundDocument(UNIQUE_ID, HASH.lower(), 4242),)


def test_a_bare_query_response_is_read_too() -> None:
    answer = read_query_response(parse_xml(query_response(objects=extrinsic_object()).encode()))
    assert answer.documents[0].unique_id == UNIQUE_ID


def test_no_document_found_is_a_successful_empty_answer() -> None:
    answer = read_query_response(in_envelope(query_response()))
    assert answer.ok
    assert answer.documents == ()


def test_a_size_that_is_not_a_number_is_unknown() -> None:
    answer = read_query_response(in_envelope(query_response(objects=extrinsic_object(size="n/a"))))
    assert answer.documents[0].size is None


def test_a_failed_query_says_nothing_can_be_concluded() -> None:
    failure = query_response("Failure", objects=extrinsic_object()).replace(
        "<rim:RegistryObjectList>",
        '<rs:RegistryErrorList xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0">'
        '<rs:RegistryError errorCode="XDSRegistryError" codeContext="indisponible" '
        'severity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"/>'
        "</rs:RegistryErrorList><rim:RegistryObjectList>")
    answer = read_query_response(in_envelope(failure))
    assert not answer.ok
    assert answer.documents == ()


def test_an_envelope_without_query_response_is_not_ok() -> None:
    assert not read_query_response(in_envelope("<other/>")).ok
