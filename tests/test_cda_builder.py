"""The CDA R2 N1 ("structuration minimale") wrapping a PDF, per spec/dmp-protocol.md §4.1.

The header rules tested here are the asserts of the ANS schematron 1.2.250.1.213.1.1.1.1 that a
PDF-in-CDA must satisfy; the whole document must also be valid against the ANS CDA schema.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from lxml import etree

from bridge.cda import build_cda
from bridge.domain import Coded
from bridge.schemas import SchemaName, validation_errors
from bridge.xmlsafe import parse_xml
from tests.factories import (
    MASQUE_PS,
    TINY_PDF,
    make_author,
    make_clinical_document,
    make_document_codes,
    make_patient,
)

NS = {"hl7": "urn:hl7-org:v3"}


def _cda(**overrides: object) -> etree._Element:
    return parse_xml(build_cda(make_clinical_document(**overrides)), huge_text=True)


def _one(root: etree._Element, path: str) -> etree._Element:
    found = root.xpath(path, namespaces=NS)
    assert isinstance(found, list)
    assert len(found) == 1, f"{path}: {len(found)} matches"
    element = found[0]
    assert isinstance(element, etree._Element)
    return element


def _attrs(root: etree._Element, path: str) -> dict[str, str]:
    return dict(_one(root, path).attrib)


def test_output_is_utf8_with_an_xml_declaration_and_valid_against_the_cda_schema() -> None:
    data = build_cda(make_clinical_document())
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = parse_xml(data, huge_text=True)
    assert root.tag == "{urn:hl7-org:v3}ClinicalDocument"
    assert validation_errors(root, SchemaName.CDA) == []


def test_same_input_gives_the_same_bytes() -> None:
    # The XDS hash and the XAdES digest are computed over these bytes: a retry must match.
    assert build_cda(make_clinical_document()) == build_cda(make_clinical_document())


def test_header_identifies_a_ci_sis_non_structured_document() -> None:
    root = _cda()
    assert _attrs(root, "/hl7:ClinicalDocument/hl7:realmCode") == {"code": "FR"}
    assert _attrs(root, "/hl7:ClinicalDocument/hl7:typeId") == {
        "root": "2.16.840.1.113883.1.3",
        "extension": "POCD_HD000040",
    }
    templates = root.xpath("/hl7:ClinicalDocument/hl7:templateId/@root", namespaces=NS)
    assert templates == [
        "2.16.840.1.113883.2.8.2.1",
        "1.2.250.1.213.1.1.1.1",
        "1.3.6.1.4.1.19376.1.2.20",
    ]


def test_header_carries_ids_code_title_dates_and_version() -> None:
    root = _cda(version=2)
    assert _attrs(root, "/hl7:ClinicalDocument/hl7:id") == {"root": "1.2.250.1.999.1.1.4242.1"}
    assert _attrs(root, "/hl7:ClinicalDocument/hl7:code") == {
        "code": "11506-3",
        "displayName": "CR ou fiche de suivi de soins par auxiliaire médical",
        "codeSystem": "2.16.840.1.113883.6.1",
        "codeSystemName": "LOINC",
    }
    assert _one(root, "/hl7:ClinicalDocument/hl7:title").text == "Compte rendu de soins infirmiers"
    assert _attrs(root, "/hl7:ClinicalDocument/hl7:effectiveTime") == {
        "value": "20240115103000+0100"
    }
    assert _attrs(root, "/hl7:ClinicalDocument/hl7:confidentialityCode") == {
        "code": "N",
        "displayName": "Normal",
        "codeSystem": "2.16.840.1.113883.5.25",
        "codeSystemName": "Confidentiality",
    }
    assert _attrs(root, "/hl7:ClinicalDocument/hl7:languageCode") == {"code": "fr-FR"}
    assert _attrs(root, "/hl7:ClinicalDocument/hl7:setId") == {"root": "1.2.250.1.999.1.1.4242.1.1"}
    assert _attrs(root, "/hl7:ClinicalDocument/hl7:versionNumber") == {"value": "2"}


def test_visibility_codes_stay_out_of_the_cda_confidentiality_code() -> None:
    # MASQUE_PS & co. are XDS-only confidentialityCodes; the CDA has exactly one N/R/V code.
    root = _cda(codes=make_document_codes(visibility=(MASQUE_PS,)))
    assert _attrs(root, "/hl7:ClinicalDocument/hl7:confidentialityCode")["code"] == "N"


def test_a_non_loinc_type_code_has_no_loinc_code_system_name() -> None:
    codes = make_document_codes(type_code=Coded("SYNTH", "Synthèse", "1.2.250.1.213.1.1.4.12"))
    assert "codeSystemName" not in _attrs(_cda(codes=codes), "/hl7:ClinicalDocument/hl7:code")


def test_record_target_carries_the_ins_and_its_identity_traits() -> None:
    root = _cda()
    role = "/hl7:ClinicalDocument/hl7:recordTarget/hl7:patientRole"
    assert _attrs(root, f"{role}/hl7:id") == {
        "root": "1.2.250.1.213.1.4.10",
        "extension": "279035121518989",
    }
    name = f"{role}/hl7:patient/hl7:name"
    assert _one(root, f"{name}/hl7:family[@qualifier='BR']").text == "PAT-TROIS"
    assert _one(root, f"{name}/hl7:given[not(@qualifier)]").text == "DOMINIQUE MARIE-LOUISE"
    assert _one(root, f"{name}/hl7:given[@qualifier='BR']").text == "DOMINIQUE"
    assert root.xpath(f"{name}/hl7:family[@qualifier='CL']", namespaces=NS) == []
    assert _attrs(root, f"{role}/hl7:patient/hl7:administrativeGenderCode") == {
        "code": "F",
        "displayName": "Féminin",
        "codeSystem": "2.16.840.1.113883.5.1",
    }
    assert _attrs(root, f"{role}/hl7:patient/hl7:birthTime") == {"value": "19790328"}
    county = _one(root, f"{role}/hl7:patient/hl7:birthplace/hl7:place/hl7:addr/hl7:county")
    assert county.text == "51215"


def test_used_name_is_sent_with_the_cl_qualifier() -> None:
    root = _cda(patient=make_patient(used_family_name="MARTIN"))
    family = _one(root, "//hl7:patient/hl7:name/hl7:family[@qualifier='CL']")
    assert family.text == "MARTIN"


def test_birthplace_is_omitted_when_unknown() -> None:
    root = _cda(patient=make_patient(birthplace_code=None))
    assert root.xpath("//hl7:birthplace", namespaces=NS) == []
    assert validation_errors(root, SchemaName.CDA) == []


def test_author_is_the_professional_with_rpps_specialty_and_structure() -> None:
    root = _cda()
    author = "/hl7:ClinicalDocument/hl7:author"
    assert _attrs(root, f"{author}/hl7:time") == {"value": "20240115103000+0100"}
    assigned = f"{author}/hl7:assignedAuthor"
    assert _attrs(root, f"{assigned}/hl7:id") == {
        "root": "1.2.250.1.71.4.2.1",
        "extension": "810101010101",
    }
    assert _attrs(root, f"{assigned}/hl7:code") == {
        "code": "G15_60",
        "displayName": "Infirmier",
        "codeSystem": "1.2.250.1.213.1.1.4.5",
    }
    assert _one(root, f"{assigned}/hl7:assignedPerson/hl7:name/hl7:family").text == "SOIGNANTE"
    assert _one(root, f"{assigned}/hl7:assignedPerson/hl7:name/hl7:given").text == "Hélène"
    organization = f"{assigned}/hl7:representedOrganization"
    assert _attrs(root, f"{organization}/hl7:id") == {
        "root": "1.2.250.1.71.4.2.2",
        "extension": "499700366240007",
    }
    assert _one(root, f"{organization}/hl7:name").text == "Cabinet infirmier Soignante"


def test_custodian_is_the_author_structure_by_default() -> None:
    root = _cda()
    organization = (
        "/hl7:ClinicalDocument/hl7:custodian/hl7:assignedCustodian"
        "/hl7:representedCustodianOrganization"
    )
    assert _attrs(root, f"{organization}/hl7:id") == {
        "root": "1.2.250.1.71.4.2.2",
        "extension": "499700366240007",
    }
    assert _one(root, f"{organization}/hl7:name").text == "Cabinet infirmier Soignante"


def test_custodian_can_be_another_structure() -> None:
    root = _cda(custodian_id="1750512345", custodian_name="Hébergeur régional")
    organization = "//hl7:representedCustodianOrganization"
    assert _attrs(root, f"{organization}/hl7:id")["extension"] == "1750512345"
    assert _one(root, f"{organization}/hl7:name").text == "Hébergeur régional"


def test_legal_authenticator_is_the_author_with_signature_code_s() -> None:
    root = _cda()
    legal = "/hl7:ClinicalDocument/hl7:legalAuthenticator"
    assert _attrs(root, f"{legal}/hl7:signatureCode") == {"code": "S"}
    assert _attrs(root, f"{legal}/hl7:time") == {"value": "20240115103000+0100"}
    assert _attrs(root, f"{legal}/hl7:assignedEntity/hl7:id")["extension"] == "810101010101"
    assert _one(root, f"{legal}/hl7:assignedEntity/hl7:assignedPerson/hl7:name/hl7:family").text


def test_service_event_has_period_and_performer_with_practice_setting() -> None:
    root = _cda()
    event = "/hl7:ClinicalDocument/hl7:documentationOf[1]/hl7:serviceEvent"
    assert _attrs(root, f"{event}/hl7:effectiveTime/hl7:low") == {"value": "20240115100000+0100"}
    assert _attrs(root, f"{event}/hl7:effectiveTime/hl7:high") == {"value": "20240115102000+0100"}
    performer = _one(root, f"{event}/hl7:performer")
    assert performer.get("typeCode") == "PRF"
    organization = f"{event}/hl7:performer/hl7:assignedEntity/hl7:representedOrganization"
    assert _attrs(root, f"{organization}/hl7:id")["root"] == "1.2.250.1.71.4.2.2"
    assert _attrs(root, f"{organization}/hl7:standardIndustryClassCode") == {
        "code": "AMBULATOIRE",
        "displayName": "Ambulatoire",
        "codeSystem": "1.2.250.1.213.1.1.4.9",
        "codeSystemName": "practiceSettingCode",
    }


def test_service_event_without_stop_time_has_no_high() -> None:
    root = _cda(service_stop=None)
    assert root.xpath("//hl7:serviceEvent/hl7:effectiveTime/hl7:high", namespaces=NS) == []
    assert validation_errors(root, SchemaName.CDA) == []


def test_encompassing_encounter_gives_the_facility_type() -> None:
    root = _cda()
    encounter = "/hl7:ClinicalDocument/hl7:componentOf/hl7:encompassingEncounter"
    assert _attrs(root, f"{encounter}/hl7:effectiveTime/hl7:low") == {
        "value": "20240115100000+0100"
    }
    assert _attrs(root, f"{encounter}/hl7:location/hl7:healthCareFacility/hl7:code") == {
        "code": "SA07",
        "displayName": "Cabinet individuel",
        "codeSystem": "1.2.250.1.71.4.2.4",
    }


def test_body_is_the_pdf_in_base64_and_round_trips() -> None:
    root = _cda()
    text = _one(root, "/hl7:ClinicalDocument/hl7:component/hl7:nonXMLBody/hl7:text")
    assert text.get("mediaType") == "application/pdf"
    assert text.get("representation") == "B64"
    assert text.text is not None
    assert base64.b64decode(text.text, validate=True) == TINY_PDF
    assert TINY_PDF.startswith(b"%PDF-") and TINY_PDF.rstrip().endswith(b"%%EOF")


def test_accents_and_markup_characters_in_free_text_are_kept_verbatim() -> None:
    author = make_author(family_name="Dubœuf & <Fils>", given_name="Zoé")
    root = _cda(author=author, title="Soins à domicile — pansement & suivi")
    assert _one(root, "/hl7:ClinicalDocument/hl7:title").text == (
        "Soins à domicile — pansement & suivi"
    )
    family = _one(root, "/hl7:ClinicalDocument/hl7:author//hl7:family")
    assert family.text == "Dubœuf & <Fils>"


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        build_cda(make_clinical_document(effective_time=dt.datetime(2024, 1, 15, 10, 30)))


def test_ins_traits_required_by_the_schematron_are_present() -> None:
    # Schematron SMDS_CDAClinicalDocument: with an INS root, family@BR, given@BR, a given
    # without qualifier, birthTime, birthplace county and administrativeGenderCode are required.
    root = _cda()
    prefix = "//hl7:recordTarget/hl7:patientRole/hl7:patient"
    for path in (
        "hl7:name/hl7:family[@qualifier='BR']",
        "hl7:name/hl7:given[@qualifier='BR']",
        "hl7:name/hl7:given[not(@qualifier)]",
        "hl7:birthTime",
        "hl7:birthplace/hl7:place/hl7:addr/hl7:county",
        "hl7:administrativeGenderCode/@code",
    ):
        assert root.xpath(f"{prefix}/{path}", namespaces=NS), path
    # Every family carries a qualifier, and only BR/CL are allowed.
    qualifiers = root.xpath(f"{prefix}/hl7:name/hl7:family/@qualifier", namespaces=NS)
    assert qualifiers == ["BR"]
