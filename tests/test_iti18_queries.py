"""ITI-18 FindDocuments / GetDocuments builders and the LeafClass / ObjectRef reader (TD3.1)."""

from __future__ import annotations

import pytest
from lxml import etree

from bridge import xds_ids as ids
from bridge.iti18 import (
    FIND_DOCUMENTS,
    GET_DOCUMENTS,
    AvailabilityStatus,
    ReturnType,
    current_entry,
    find_documents,
    get_documents,
    read_entries,
)
from bridge.schemas import SchemaName, validation_errors
from bridge.xmlsafe import parse_xml
from tests.factories import make_patient

QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
RIM = ids.NS_RIM
NS = {"query": QUERY, "rim": RIM}
STABLE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"


def params(request: etree._Element) -> dict[str, list[str | None]]:
    slots = request.findall(f"{{{RIM}}}AdhocQuery/{{{RIM}}}Slot")
    return {s.get("name"): [v.text for v in s.iter(f"{{{RIM}}}Value")] for s in slots}


def test_find_documents_by_patient_and_statuses() -> None:
    request = find_documents(make_patient().ins, statuses=[AvailabilityStatus.APPROVED,
                                                           AvailabilityStatus.ARCHIVED])
    assert validation_errors(request, SchemaName.EBRS_QUERY) == []
    assert request.find(f"{{{RIM}}}AdhocQuery").get("id") == FIND_DOCUMENTS
    assert params(request) == {
        "$XDSDocumentEntryPatientId": ["'279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH'"],
        "$XDSDocumentEntryStatus": [
            "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved',"
            "'urn:asip:ci-sis:2010:StatusType:Archived')"],
    }
    with pytest.raises(ValueError, match="status"):
        find_documents(make_patient().ins, statuses=[])


def test_get_documents_by_unique_id_or_entry_uuid_as_object_refs() -> None:
    by_uid = get_documents(unique_ids=["1.2.3", "4.5"], return_type=ReturnType.OBJECT_REF)
    assert validation_errors(by_uid, SchemaName.EBRS_QUERY) == []
    assert by_uid.find(f"{{{QUERY}}}ResponseOption").get("returnType") == "ObjectRef"
    assert by_uid.find(f"{{{RIM}}}AdhocQuery").get("id") == GET_DOCUMENTS
    assert params(by_uid) == {"$XDSDocumentEntryUniqueId": ["('1.2.3','4.5')"]}
    by_uuid = get_documents(entry_uuids=["urn:uuid:1"])
    assert params(by_uuid) == {"$XDSDocumentEntryEntryUUID": ["('urn:uuid:1')"]}
    with pytest.raises(ValueError):
        get_documents()
    with pytest.raises(ValueError):
        get_documents(unique_ids=["1"], entry_uuids=["2"])


def entry_xml(entry_uuid: str, status: str, version: str | None, codes: str = "N") -> str:
    version_info = f'<rim:VersionInfo versionName="{version}"/>' if version else ""
    classifications = "".join(
        f'<rim:Classification id="{entry_uuid}-c{i}" classifiedObject="{entry_uuid}" '
        f'classificationScheme="{ids.DE_CONFIDENTIALITY_CODE}" nodeRepresentation="{code}">'
        f'<rim:Slot name="codingScheme"><rim:ValueList><rim:Value>2.16.840.1.113883.5.25'
        f'</rim:Value></rim:ValueList></rim:Slot>'
        f'<rim:Name><rim:LocalizedString value="Normal"/></rim:Name></rim:Classification>'
        for i, code in enumerate(codes.split())
    )
    author = (
        f'<rim:Classification id="{entry_uuid}-a" classifiedObject="{entry_uuid}" '
        f'classificationScheme="{ids.DE_AUTHOR}" nodeRepresentation="">'
        '<rim:Slot name="authorPerson"><rim:ValueList><rim:Value>810101010101^SOIGNANTE^H'
        "</rim:Value></rim:ValueList></rim:Slot></rim:Classification>"
    )
    return f"""
      <rim:ExtrinsicObject id="{entry_uuid}" lid="urn:uuid:lid" status="{status}"
          mimeType="text/xml" objectType="{STABLE}">
        <rim:Slot name="hash"><rim:ValueList><rim:Value>ABCDEF</rim:Value></rim:ValueList>
        </rim:Slot>
        <rim:Slot name="size"><rim:ValueList><rim:Value>12</rim:Value></rim:ValueList></rim:Slot>
        {version_info}{author}{classifications}
        <rim:ExternalIdentifier id="{entry_uuid}-u" registryObject="{entry_uuid}"
            identificationScheme="{ids.DE_UNIQUE_ID}" value="1.2.3">
          <rim:Name><rim:LocalizedString value="XDSDocumentEntry.uniqueId"/></rim:Name>
        </rim:ExternalIdentifier>
        <rim:ExternalIdentifier id="{entry_uuid}-p" registryObject="{entry_uuid}"
            identificationScheme="{ids.DE_PATIENT_ID}" value="PAT^^^&amp;1.2&amp;ISO^NH">
          <rim:Name><rim:LocalizedString value="XDSDocumentEntry.patientId"/></rim:Name>
        </rim:ExternalIdentifier>
      </rim:ExtrinsicObject>"""


def response(objects: str, status: str = "Success", errors: str = "") -> bytes:
    return f"""<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>
      <query:AdhocQueryResponse xmlns:query="{QUERY}" xmlns:rim="{RIM}"
          xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
          status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:{status}">{errors}
        <rim:RegistryObjectList>{objects}</rim:RegistryObjectList>
      </query:AdhocQueryResponse></soap:Body></soap:Envelope>""".encode()


def test_leaf_classes_give_every_field_the_bridge_needs() -> None:
    approved = AvailabilityStatus.APPROVED.value
    xml = entry_xml("urn:uuid:e2", approved, "2", "N MASQUE_PS")
    result = read_entries(parse_xml(response(xml)))
    assert result.ok
    (entry,) = result.entries
    assert (entry.entry_uuid, entry.logical_id, entry.version) == ("urn:uuid:e2", "urn:uuid:lid", 2)
    assert entry.availability is AvailabilityStatus.APPROVED
    assert (entry.unique_id, entry.hash, entry.size) == ("1.2.3", "abcdef", 12)
    assert entry.patient_id == "PAT^^^&1.2&ISO^NH"
    assert [c.code for c in entry.confidentiality] == ["N", "MASQUE_PS"]
    assert entry.author_ids == ("810101010101",)


def test_the_live_version_is_the_highest_non_deprecated_one() -> None:
    deprecated = AvailabilityStatus.DEPRECATED.value
    objects = (entry_xml("urn:uuid:e1", deprecated, "1")
               + entry_xml("urn:uuid:e2", AvailabilityStatus.APPROVED.value, "2"))
    result = read_entries(parse_xml(response(objects)))
    live = current_entry(result.entries)
    assert live is not None and live.entry_uuid == "urn:uuid:e2"
    assert current_entry(result.entries[:1]) is None
    assert current_entry(()) is None


def test_absent_parts_are_empty_not_errors() -> None:
    bare = f'<rim:ExtrinsicObject id="urn:uuid:x" objectType="{STABLE}"/>'
    (entry,) = read_entries(parse_xml(response(bare))).entries
    assert (entry.logical_id, entry.version, entry.status, entry.size) == ("urn:uuid:x", None, "",
                                                                           None)
    assert entry.availability is None and entry.confidentiality == ()


def test_object_refs_and_failures() -> None:
    refs = read_entries(parse_xml(response('<rim:ObjectRef id="urn:uuid:a"/>')))
    assert refs.ok and refs.references == ("urn:uuid:a",) and refs.entries == ()
    error = ('<rs:RegistryErrorList><rs:RegistryError errorCode="DMP_AUTORISATION_ABSENTE" '
             'codeContext="non autorisé" '
             'severity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"/>'
             "</rs:RegistryErrorList>")
    failed = read_entries(parse_xml(response("", "Failure", error)))
    assert not failed.ok
    assert failed.errors == (("DMP_AUTORISATION_ABSENTE", "non autorisé"),)
    assert not read_entries(parse_xml(b"<other/>")).ok
