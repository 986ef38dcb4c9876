"""The ITI-41 ProvideAndRegisterDocumentSetRequest (spec/dmp-protocol.md §2.2, §3, §4.3)."""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import hashlib

import pytest
from lxml import etree

from bridge import xds_ids as ids
from bridge.ebrim import build_provide_and_register, build_submit_objects
from bridge.schemas import SchemaName, validation_errors
from bridge.xmlsafe import parse_xml
from tests.factories import (
    MASQUE_PS,
    make_author,
    make_clinical_document,
    make_document_codes,
    make_packaged_document,
    make_patient,
    make_submission,
)

NS = {
    "xdsb": ids.NS_XDSB,
    "lcm": ids.NS_LCM,
    "rim": ids.NS_RIM,
    "xop": ids.NS_XOP,
}
INS_CX = "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
NURSE_XCN = "810101010101^SOIGNANTE^Hélène^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"


def _xpath(node: etree._Element, path: str) -> list[etree._Element]:
    found = node.xpath(path, namespaces=NS)
    assert isinstance(found, list)
    return [e for e in found if isinstance(e, etree._Element)]


def _one(node: etree._Element, path: str) -> etree._Element:
    found = _xpath(node, path)
    assert len(found) == 1, f"{path}: {len(found)} matches"
    return found[0]


def _slot(entry: etree._Element, name: str) -> list[str]:
    return [str(v.text) for v in _xpath(entry, f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value")]


def _entry(root: etree._Element, entry_id: str) -> etree._Element:
    return _one(root, f"//rim:ExtrinsicObject[@id='{entry_id}']")


def _classifications(entry: etree._Element, scheme: str) -> list[etree._Element]:
    return _xpath(entry, f"rim:Classification[@classificationScheme='{scheme}']")


def _codes(entry: etree._Element, scheme: str) -> list[tuple[str, str, str]]:
    """(nodeRepresentation, codingScheme, display name) of every classification of `scheme`."""
    return [
        (
            str(c.get("nodeRepresentation")),
            _slot(c, "codingScheme")[0],
            str(_one(c, "rim:Name/rim:LocalizedString").get("value")),
        )
        for c in _classifications(entry, scheme)
    ]


def _external_id(obj: etree._Element, scheme: str) -> str:
    return str(_one(obj, f"rim:ExternalIdentifier[@identificationScheme='{scheme}']").get("value"))


def _xop_resolved(root: etree._Element, parts: dict[str, bytes]) -> etree._Element:
    """The infoset after XOP processing: each xop:Include replaced by the base64 of its part.

    This is what the XDS.b schema describes (Document is xs:base64Binary); on the wire the
    bytes travel as MIME parts and the SOAP client attaches them.
    """
    resolved = copy.deepcopy(root)
    for include in _xpath(resolved, "//xop:Include"):
        document = include.getparent()
        assert document is not None
        content_id = str(include.get("href")).removeprefix("cid:")
        document.remove(include)
        document.text = base64.b64encode(parts[content_id]).decode("ascii")
    return resolved


def _request(**overrides: object) -> tuple[etree._Element, dict[str, bytes]]:
    sub = make_submission(**overrides)
    root = build_provide_and_register(sub)
    parts = {d.content_id: d.cda for d in sub.documents}
    parts[sub.signature.content_id] = sub.signature.xml
    return root, parts


def test_request_is_valid_against_the_xds_b_schema_once_xop_is_resolved() -> None:
    root, parts = _request()
    assert root.tag == f"{{{ids.NS_XDSB}}}ProvideAndRegisterDocumentSetRequest"
    assert validation_errors(_xop_resolved(root, parts), SchemaName.XDS_B) == []


def test_request_survives_serialisation_and_the_hardened_parser() -> None:
    root, parts = _request()
    reparsed = parse_xml(etree.tostring(root, encoding="UTF-8"))
    assert validation_errors(_xop_resolved(reparsed, parts), SchemaName.XDS_B) == []


def test_submit_objects_request_alone_is_valid_ebrs() -> None:
    assert validation_errors(build_submit_objects(make_submission()), SchemaName.EBRS_LCM) == []


def test_same_submission_gives_the_same_metadata() -> None:
    first = etree.tostring(build_provide_and_register(make_submission()))
    assert first == etree.tostring(build_provide_and_register(make_submission()))


def test_registry_objects_come_in_the_expected_order_with_symbolic_ids() -> None:
    root, _ = _request()
    objects = _one(root, "lcm:SubmitObjectsRequest/rim:RegistryObjectList")
    summary = [(etree.QName(e).localname, e.get("id")) for e in objects]
    assert summary == [
        ("RegistryPackage", "SubmissionSet01"),
        ("Classification", summary[1][1]),
        ("ExtrinsicObject", "Document01"),
        ("ExtrinsicObject", "Signature01"),
        ("Association", "Assoc01"),
        ("Association", "Assoc02"),
        ("Association", "Assoc03"),
    ]


def test_submission_set_metadata() -> None:
    root, _ = _request()
    package = _one(root, "//rim:RegistryPackage[@id='SubmissionSet01']")
    assert _slot(package, "submissionTime") == ["20240115093500"]  # 10:35 Paris = 09:35 UTC
    assert _one(package, "rim:Name/rim:LocalizedString").get("value") == (
        "Soins infirmiers du 15/01/2024"
    )
    assert _codes(package, ids.SS_CONTENT_TYPE_CODE) == [
        ("SA07", "1.2.250.1.71.4.2.4", "Cabinet individuel")
    ]
    assert _external_id(package, ids.SS_UNIQUE_ID) == "1.2.250.1.999.1.1.4242.2"
    assert _external_id(package, ids.SS_SOURCE_ID) == "1.2.250.1.999.1.1"
    assert _external_id(package, ids.SS_PATIENT_ID) == INS_CX
    node = _one(root, f"//rim:Classification[@classificationNode='{ids.SUBMISSION_SET_NODE}']")
    assert node.get("classifiedObject") == "SubmissionSet01"


def test_submission_set_author_slots() -> None:
    root, _ = _request(author=make_author(role_display="Infirmier"))
    package = _one(root, "//rim:RegistryPackage")
    (author,) = _classifications(package, ids.SS_AUTHOR)
    assert author.get("nodeRepresentation") == ""
    assert author.get("classifiedObject") == "SubmissionSet01"
    assert _slot(author, "authorPerson") == [NURSE_XCN]
    assert _slot(author, "authorInstitution") == [
        "Cabinet infirmier Soignante^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^499700366240007"
    ]
    assert _slot(author, "authorRole") == ["Infirmier"]
    assert _slot(author, "authorSpecialty") == ["G15_60^Infirmier^1.2.250.1.213.1.1.4.5"]


def test_author_role_is_omitted_when_unknown() -> None:
    root, _ = _request()
    for author in _xpath(root, f"//rim:Classification[@classificationScheme='{ids.DE_AUTHOR}']"):
        assert _slot(author, "authorRole") == []


def test_document_entry_slots() -> None:
    root, _ = _request()
    entry = _entry(root, "Document01")
    assert entry.get("mimeType") == "text/xml"
    assert entry.get("objectType") == ids.DOCUMENT_ENTRY_OBJECT_TYPE
    assert _slot(entry, "creationTime") == ["20240115093000"]
    assert _slot(entry, "languageCode") == ["fr-FR"]
    assert _slot(entry, "legalAuthenticator") == [NURSE_XCN]
    assert _slot(entry, "serviceStartTime") == ["20240115090000"]
    assert _slot(entry, "serviceStopTime") == ["20240115092000"]
    assert _slot(entry, "sourcePatientId") == [INS_CX]
    assert _slot(entry, "sourcePatientInfo") == [
        "PID-5|PAT-TROIS^DOMINIQUE^^^^^L",
        "PID-7|19790328",
        "PID-8|F",
    ]
    assert _one(entry, "rim:Name/rim:LocalizedString").get("value") == (
        "Compte rendu de soins infirmiers"
    )
    assert _external_id(entry, ids.DE_UNIQUE_ID) == "1.2.250.1.999.1.1.4242.1"


def test_service_stop_time_is_omitted_when_unknown() -> None:
    clinical = make_clinical_document(service_stop=None)
    root, _ = _request(documents=(make_packaged_document(clinical=clinical),))
    assert _slot(_entry(root, "Document01"), "serviceStopTime") == []


def test_hash_and_size_are_those_of_the_exact_cda_bytes() -> None:
    sub = make_submission()
    root = build_provide_and_register(sub)
    cda = sub.documents[0].cda
    entry = _entry(root, "Document01")
    assert _slot(entry, "hash") == [hashlib.sha1(cda).hexdigest()]
    assert _slot(entry, "hash")[0] == _slot(entry, "hash")[0].lower()
    assert _slot(entry, "size") == [str(len(cda))]


def test_document_entry_codes() -> None:
    root, _ = _request()
    entry = _entry(root, "Document01")
    assert _codes(entry, ids.DE_CLASS_CODE) == [("10", "1.2.250.1.213.1.1.4.1", "Compte rendu")]
    assert _codes(entry, ids.DE_TYPE_CODE) == [
        ("11506-3", "2.16.840.1.113883.6.1", "CR ou fiche de suivi de soins par auxiliaire médical")
    ]
    assert _codes(entry, ids.DE_CONFIDENTIALITY_CODE) == [("N", "2.16.840.1.113883.5.25", "Normal")]
    assert _codes(entry, ids.DE_FORMAT_CODE) == [
        (
            "urn:ihe:iti:xds-sd:pdf:2008",
            "1.3.6.1.4.1.19376.1.2.3",
            "Document à corps non structuré en Pdf/A-1",
        )
    ]
    assert _codes(entry, ids.DE_HEALTHCARE_FACILITY_TYPE_CODE) == [
        ("SA07", "1.2.250.1.71.4.2.4", "Cabinet individuel")
    ]
    assert _codes(entry, ids.DE_PRACTICE_SETTING_CODE) == [
        ("AMBULATOIRE", "1.2.250.1.213.1.1.4.9", "Ambulatoire")
    ]
    (author,) = _classifications(entry, ids.DE_AUTHOR)
    assert _slot(author, "authorPerson") == [NURSE_XCN]


def test_each_visibility_code_is_its_own_confidentiality_classification() -> None:
    clinical = make_clinical_document(codes=make_document_codes(visibility=(MASQUE_PS,)))
    root, _ = _request(documents=(make_packaged_document(clinical=clinical),))
    assert _codes(_entry(root, "Document01"), ids.DE_CONFIDENTIALITY_CODE) == [
        ("N", "2.16.840.1.113883.5.25", "Normal"),
        ("MASQUE_PS", "1.2.250.1.213.1.1.4.13", "Masqué aux professionnels de santé"),
    ]


def test_patient_id_is_identical_everywhere() -> None:
    root, _ = _request()
    values = [
        e.get("value")
        for e in _xpath(root, "//rim:ExternalIdentifier")
        if e.get("identificationScheme") in (ids.SS_PATIENT_ID, ids.DE_PATIENT_ID)
    ]
    assert values == [INS_CX, INS_CX, INS_CX]  # submission set, document, signature
    sources = [str(v.text) for v in _xpath(root, "//rim:Slot[@name='sourcePatientId']//rim:Value")]
    assert sources == [INS_CX, INS_CX]


def test_a_document_for_another_patient_is_refused() -> None:
    other = make_patient(ins=dataclasses.replace(make_patient().ins, matricule="184127645108946"))
    stray = make_packaged_document(clinical=make_clinical_document(patient=other))
    with pytest.raises(ValueError, match="Document01"):
        build_provide_and_register(make_submission(documents=(stray,)))


def test_signature_entry_metadata() -> None:
    sub = make_submission()
    root = build_provide_and_register(sub)
    entry = _entry(root, "Signature01")
    assert entry.get("mimeType") == "text/xml"
    assert _slot(entry, "languageCode") == ["art"]
    assert _one(entry, "rim:Name/rim:LocalizedString").get("value") == "Source"
    assert _slot(entry, "legalAuthenticator") == [NURSE_XCN]
    for time_slot in ("creationTime", "serviceStartTime", "serviceStopTime"):
        assert _slot(entry, time_slot) == ["20240115093500"]
    assert _slot(entry, "hash") == [hashlib.sha1(sub.signature.xml).hexdigest()]
    assert _slot(entry, "size") == [str(len(sub.signature.xml))]
    assert _codes(entry, ids.DE_CLASS_CODE) == [
        ("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN", "Digital Signature")
    ]
    assert _codes(entry, ids.DE_TYPE_CODE) == [("E1762", "ASTM", "Full Document")]
    assert _codes(entry, ids.DE_FORMAT_CODE) == [
        ("http://www.w3.org/2000/09/xmldsig#", "URN", "Default Signature Style")
    ]
    assert _codes(entry, ids.DE_EVENT_CODE_LIST) == [
        ("1.2.840.10065.1.12.1.14", "1.2.840.10065.1.12", "Source")
    ]
    assert [c[0] for c in _codes(entry, ids.DE_CONFIDENTIALITY_CODE)] == [
        "N",
        "MASQUE_PS",
        "INVISIBLE_PATIENT",
    ]
    assert _external_id(entry, ids.DE_UNIQUE_ID) == "1.2.250.1.999.1.1.4242.3"


def test_associations_link_the_set_to_its_members_and_the_signature_to_the_set() -> None:
    root, _ = _request()
    associations = [
        (
            a.get("associationType"),
            a.get("sourceObject"),
            a.get("targetObject"),
            _slot(a, "SubmissionSetStatus"),
        )
        for a in _xpath(root, "//rim:Association")
    ]
    assert associations == [
        (ids.ASSOC_HAS_MEMBER, "SubmissionSet01", "Document01", ["Original"]),
        (ids.ASSOC_HAS_MEMBER, "SubmissionSet01", "Signature01", ["Original"]),
        ("urn:ihe:iti:2007:AssociationType:signs", "Signature01", "SubmissionSet01", []),
    ]


def test_every_document_part_is_an_xop_include_by_content_id() -> None:
    root, _ = _request()
    documents = _xpath(root, "xdsb:Document")
    assert [d.get("id") for d in documents] == ["Document01", "Signature01"]
    hrefs = [_one(d, "xop:Include").get("href") for d in documents]
    assert hrefs == ["cid:doc01@dmp-bridge.test", "cid:sig01@dmp-bridge.test"]


def test_several_documents_each_get_an_entry_a_member_association_and_a_part() -> None:
    second = make_packaged_document(
        entry_id="Document02",
        content_id="doc02@dmp-bridge.test",
        clinical=make_clinical_document(unique_id="1.2.250.1.999.1.1.4242.9", title="Bilan"),
    )
    root, parts = _request(documents=(make_packaged_document(), second))
    assert _external_id(_entry(root, "Document02"), ids.DE_UNIQUE_ID) == "1.2.250.1.999.1.1.4242.9"
    targets = [a.get("targetObject") for a in _xpath(root, "//rim:Association")]
    assert targets == ["Document01", "Document02", "Signature01", "SubmissionSet01"]
    assert [d.get("id") for d in _xpath(root, "xdsb:Document")] == [
        "Document01",
        "Document02",
        "Signature01",
    ]
    assert validation_errors(_xop_resolved(root, parts), SchemaName.XDS_B) == []


def test_every_classification_is_well_formed_and_ids_are_unique() -> None:
    root, _ = _request()
    registry_ids = [str(e.get("id")) for e in _xpath(root, "//rim:*[@id]")]
    assert len(registry_ids) == len(set(registry_ids))
    for classification in _xpath(root, "//rim:Classification[@classificationScheme]"):
        assert classification.get("id")
        assert classification.get("classifiedObject")
        assert classification.get("nodeRepresentation") is not None
        if classification.get("classificationScheme") in (ids.SS_AUTHOR, ids.DE_AUTHOR):
            assert classification.get("nodeRepresentation") == ""
            assert _slot(classification, "authorPerson")
        else:
            assert classification.get("nodeRepresentation")
            assert len(_slot(classification, "codingScheme")) == 1
            assert _one(classification, "rim:Name/rim:LocalizedString").get("value")


def test_uuids_are_the_standard_ihe_ones() -> None:
    # A typo in a scheme UUID makes the registry silently ignore the metadata: pin them.
    assert ids.SUBMISSION_SET_NODE == "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
    assert ids.DE_CLASS_CODE == "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
    assert ids.DE_TYPE_CODE == "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
    assert ids.DE_PATIENT_ID == "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
    assert ids.SS_PATIENT_ID == "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"


def test_free_text_with_delimiters_and_accents_is_escaped_in_slots_and_kept_in_names() -> None:
    author = make_author(family_name="L'HÔTE^X", structure_name="Soins & Santé")
    title = "Pansement & suivi — Zoé ^2"
    clinical = make_clinical_document(author=author, title=title)
    root, parts = _request(author=author, documents=(make_packaged_document(clinical=clinical),))
    entry = _entry(root, "Document01")
    assert _slot(entry, "legalAuthenticator") == [
        "810101010101^L'HÔTE\\S\\X^Hélène^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    ]
    (doc_author,) = _classifications(entry, ids.DE_AUTHOR)
    assert _slot(doc_author, "authorInstitution")[0].startswith("Soins \\T\\ Santé^")
    # A rim:Name is not HL7 v2: it keeps the text as it is (XML escaping is the serialiser's job).
    assert _one(entry, "rim:Name/rim:LocalizedString").get("value") == title
    reparsed = parse_xml(etree.tostring(root, encoding="UTF-8"))
    assert (
        _one(_entry(reparsed, "Document01"), "rim:Name/rim:LocalizedString").get("value") == title
    )
    assert validation_errors(_xop_resolved(root, parts), SchemaName.XDS_B) == []


def test_a_naive_submission_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        build_provide_and_register(make_submission(submission_time=dt.datetime(2024, 1, 15, 10)))


def test_empty_or_clashing_entry_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one document"):
        build_provide_and_register(make_submission(documents=()))
    clash = make_packaged_document(entry_id="Signature01")
    with pytest.raises(ValueError, match="unique"):
        build_provide_and_register(make_submission(documents=(clash,)))
