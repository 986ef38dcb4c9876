"""Reading the header of a CDA received from practice software (bridge.cda_header).

Inputs: the ANS reference samples (tests/fixtures/ans, see SOURCES.md) and CDA documents built by
our own builder, which must read back to exactly what was written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bridge.cda import build_cda
from bridge.cda_header import (
    MAX_CDA_BYTES,
    CdaHeader,
    read_cda_header,
)
from bridge.domain import OID_LOINC, Coded, IdentityStatus, Ins, InsOid
from bridge.errors import IdentityRejected, IntakeRejected
from bridge.hl7_time import parse_hl7_ts
from bridge.ins import parse_ins
from tests.factories import (
    TEST_INS,
    make_author,
    make_clinical_document,
    make_patient,
)

ANS = Path(__file__).parent / "fixtures" / "ans"
N1_BIO = "DOC_NON_STRUCTURE_CDA-R2-N1.xml"
N1_IMAGING = "11-cda-n1-cr-imagerie-pdf.xml"
N3_VACCINATION = "13-cda-n3-note-vaccination.xml"
TEST_INS_ID = Ins(TEST_INS, InsOid.NIR_TEST)
PLUS_ONE = dt.timezone(dt.timedelta(hours=1))


def _read(name: str, identity_status: IdentityStatus | None = None) -> CdaHeader:
    data = (ANS / name).read_bytes()
    return read_cda_header(data, file_name=name, identity_status=identity_status)


def _built(**overrides: object) -> bytes:
    return build_cda(make_clinical_document(**overrides))


# ------------------------------------------------------------------------------ ANS samples


@pytest.mark.parametrize(
    ("name", "type_code", "level", "rpps", "title", "facility"),
    [
        (N1_BIO, "11502-2", 1, "01234534765", "Compte rendu d'examens biologiques", "SA07"),
        (
            N1_IMAGING,
            "18748-4",
            1,
            "01234560801",
            "CR d’imagerie médicale - Scanner Tête + Cou + Thorax avec injection",
            "SA08",
        ),
        (N3_VACCINATION, "87273-9", 3, "01234567897", "NOTE DE VACCINATION", "SA07"),
    ],
)
def test_ans_samples_are_read(
    name: str, type_code: str, level: int, rpps: str, title: str, facility: str
) -> None:
    header = _read(name)
    assert header.problems == ()
    assert header.acceptable
    assert header.type_code is not None
    assert header.type_code.code == type_code
    assert header.type_code.system == OID_LOINC
    assert header.level == level
    assert header.non_xml_media_type == ("application/pdf" if level == 1 else None)
    assert header.ins == TEST_INS_ID
    assert header.title == title
    assert header.author is not None
    assert header.author.rpps == rpps
    assert header.author.profession_code == "10"
    assert header.author.sector_code == facility
    assert header.facility_type is not None
    assert header.facility_type.code == facility
    assert header.practice_setting == Coded("AMBULATOIRE", "Ambulatoire", "1.2.250.1.213.1.1.4.9")
    assert header.confidentiality == Coded("N", "Normal", "2.16.840.1.113883.5.25")
    assert header.language == "fr-FR"
    assert header.legal_authenticator is True
    assert header.template_ids[:2] == ("2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1")


def test_n1_biology_sample_in_detail() -> None:
    header = _read(N1_BIO)
    assert header.unique_id == "1.3.6.1.4.1.19376.1.2.20.12345.1.1"
    assert header.unique_id_extension is None
    assert header.set_id == "1.3.6.1.4.1.19376.1.2.20.12345.1"
    assert header.version == 1
    assert header.effective_time == dt.datetime(2021, 4, 1, 13, 47, 45, tzinfo=PLUS_ONE)
    assert header.service_start == dt.datetime(2021, 1, 4, 13, 47, tzinfo=PLUS_ONE)
    assert header.service_stop == dt.datetime(2021, 1, 4, 13, 55, tzinfo=PLUS_ONE)
    assert header.template_ids == (
        "2.16.840.1.113883.2.8.2.1",
        "1.2.250.1.213.1.1.1.1",
        "1.3.6.1.4.1.19376.1.2.20",
    )
    assert header.related_document is None
    author = header.author
    assert author is not None
    assert (author.family_name, author.given_name) == ("CAMPARINI", "Marcel")
    assert author.specialty_code == "G15_10/SM03"
    assert author.specialty_display == "Médecin - Biologie médicale (SM)"
    assert (author.structure_id, author.structure_name) == ("1120459876", "Laboratoire des charmes")
    assert author.role_display is None


def test_n1_imaging_sample_replaces_a_document() -> None:
    header = _read(N1_IMAGING)
    assert header.version == 2
    assert header.related_document == "90E1C8EC-F951-4B26-A305-A34848818DD6"
    assert header.author is not None
    assert header.author.role_display == (
        "Référent - Responsable du patient dans la structure de soins"
    )
    assert header.service_stop == dt.datetime(2021, 1, 8, 11, 17, tzinfo=PLUS_ONE)


def test_n3_sample_keeps_its_volet_template_and_has_no_stop_time() -> None:
    header = _read(N3_VACCINATION)
    assert "1.2.250.1.213.1.1.1.46" in header.template_ids
    assert "1.3.6.1.4.1.19376.1.2.20" not in header.template_ids
    assert header.service_start == dt.datetime(2021, 4, 9, 15, 35, tzinfo=PLUS_ONE)
    assert header.service_stop is None


def test_patient_traits_are_read_and_status_comes_from_the_caller() -> None:
    header = _read(N1_BIO)
    traits = header.patient_traits
    assert traits is not None
    assert traits.ins == TEST_INS_ID
    assert traits.birth_family_name == "PAT-TROIS"
    assert traits.given_names == ("DOMINIQUE", "MARIE-LOUISE")
    assert traits.birth_date == dt.date(1979, 3, 28)
    assert traits.sex.value == "F"
    assert traits.birthplace_code == "51215"
    assert traits.used_family_name == "PAT-TROIS"
    # The CDA says nothing about the identity status: no patient unless the caller knows it.
    assert header.patient is None
    qualified = _read(N1_BIO, identity_status=IdentityStatus.QUAL)
    assert qualified.patient == traits.with_status(IdentityStatus.QUAL)
    assert qualified.patient is not None
    assert qualified.patient.identity_status is IdentityStatus.QUAL


# ---------------------------------------------------------------------- round trip of our CDA


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "service_stop": None,
            "version": 3,
            "patient": make_patient(used_family_name="DUPONT", given_names=("JEANNE",)),
            "author": make_author(
                profession_code="10",
                specialty_code="G15_10/SM54",
                specialty_display="Médecin - Médecine générale (SM)",
            ),
        },
    ],
)
def test_our_cda_reads_back_to_what_we_wrote(overrides: dict[str, object]) -> None:
    doc = make_clinical_document(**overrides)
    header = read_cda_header(
        build_cda(doc), file_name="doc.xml", identity_status=doc.patient.identity_status
    )
    assert header.problems == ()
    assert header.unique_id == doc.unique_id
    assert header.unique_id_extension is None
    assert header.set_id == doc.set_id
    assert header.version == doc.version
    assert header.title == doc.title
    assert header.effective_time == doc.effective_time
    assert header.effective_time is not None
    assert header.effective_time.utcoffset() == doc.effective_time.utcoffset()
    assert header.service_start == doc.service_start
    assert header.service_stop == doc.service_stop
    assert header.type_code == doc.codes.type_code
    assert header.confidentiality == doc.codes.confidentiality
    assert header.practice_setting == doc.codes.practice_setting
    assert header.facility_type == doc.codes.facility_type
    assert header.language == "fr-FR"
    assert header.level == 1
    assert header.non_xml_media_type == "application/pdf"
    assert header.patient == doc.patient
    assert header.ins == doc.patient.ins
    assert header.author == doc.author
    assert header.legal_authenticator is True
    assert header.related_document is None


# --------------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"%PDF-1.4 not xml at all",
        b"\x00\xff\xfe garbage",
        b"<ClinicalDocument xmlns='urn:hl7-org:v3'><unclosed></ClinicalDocument>",
        b'<?xml version="1.0"?><!DOCTYPE ClinicalDocument [<!ENTITY x "boom">]>'
        b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&x;</title></ClinicalDocument>',
        b'<!DOCTYPE ClinicalDocument><ClinicalDocument xmlns="urn:hl7-org:v3"/>',
        b"<ClinicalDocument/>",  # right name, no HL7 namespace
        b'<rim:SubmitObjectsRequest xmlns:rim="urn:x"/>',
        b'<ClinicalDocumentX xmlns="urn:hl7-org:v3"/>',
    ],
)
def test_non_cda_bytes_are_rejected_in_french(data: bytes) -> None:
    with pytest.raises(IntakeRejected) as caught:
        read_cda_header(data, file_name="export-042.xml")
    assert caught.value.code == "CDA_UNREADABLE"
    message = caught.value.message_fr
    assert "export-042.xml" in message
    assert "n'est pas un document" in message


def test_oversized_input_is_rejected_before_parsing() -> None:
    with pytest.raises(IntakeRejected) as caught:
        read_cda_header(b" " * (MAX_CDA_BYTES + 1), file_name="gros.xml")
    assert caught.value.code == "CDA_UNREADABLE"
    assert "gros.xml" in caught.value.message_fr
    assert "20 Mo" in caught.value.message_fr


# ------------------------------------------------------------------------------------ problems


def test_wrong_ins_key_is_listed_with_the_identity_message() -> None:
    bad = make_patient(ins=Ins(TEST_INS[:13] + "00", InsOid.NIR_TEST))
    header = read_cda_header(_built(patient=bad), file_name="doc.xml")
    with pytest.raises(IdentityRejected) as expected:
        parse_ins(TEST_INS[:13] + "00", InsOid.NIR_TEST.value)
    assert expected.value.message_fr in header.problems
    assert header.ins is None
    assert header.patient_traits is None
    assert not header.acceptable


def test_missing_ins_rpps_and_template_are_listed() -> None:
    data = (
        _built()
        .replace(b'root="1.2.250.1.213.1.4.10"', b'root="1.2.3.4.567.8.9.10"')
        .replace(b'extension="810101010101"', b'extension="0123456789"')
        .replace(b'<templateId root="1.2.250.1.213.1.1.1.1"/>', b"")
    )
    header = read_cda_header(data, file_name="doc.xml")
    joined = "\n".join(header.problems)
    assert "INS du patient absent" in joined
    assert "RPPS de l'auteur absent" in joined
    assert "1.2.250.1.213.1.1.1.1" in joined
    assert header.ins is None
    assert header.author is None


def test_missing_ins_traits_are_listed() -> None:
    data = (
        _built()
        .replace(b'<given qualifier="BR">DOMINIQUE</given>', b"")
        .replace(b"<birthTime", b"<deathTime")
    )
    header = read_cda_header(data, file_name="doc.xml")
    assert header.ins == TEST_INS_ID
    assert header.patient_traits is None
    (problem,) = [p for p in header.problems if p.startswith("Traits d'identité INS")]
    assert "premier prénom de naissance" in problem
    assert "date de naissance" in problem


def test_a_uuid_document_id_is_a_problem_but_the_extension_is_kept() -> None:
    data = _built().replace(
        b'<id root="1.2.250.1.999.1.1.4242.1"/>',
        b'<id root="90E1C8EC-F951-4B26-A305-A34848818DD6" extension="42"/>',
    )
    header = read_cda_header(data, file_name="doc.xml")
    assert header.unique_id == "90E1C8EC-F951-4B26-A305-A34848818DD6"
    assert header.unique_id_extension == "42"
    assert any("doit être un OID" in p for p in header.problems)


def test_an_empty_clinical_document_lists_every_problem() -> None:
    header = read_cda_header(b'<ClinicalDocument xmlns="urn:hl7-org:v3"/>', file_name="vide.xml")
    assert header.level is None
    assert header.author is None
    assert header.ins is None
    assert header.effective_time is None
    assert header.legal_authenticator is False
    assert len(header.problems) >= 10
    assert all(p.endswith(".") for p in header.problems)


# ---------------------------------------------------------------------------------- HL7 times


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240115103000+0100", dt.datetime(2024, 1, 15, 10, 30, tzinfo=PLUS_ONE)),
        ("202401151030+0100", dt.datetime(2024, 1, 15, 10, 30, tzinfo=PLUS_ONE)),
        ("20240715103000-0230", dt.datetime(2024, 7, 15, 13, 0, tzinfo=dt.UTC)),
        ("20240715103000.25+0000", dt.datetime(2024, 7, 15, 10, 30, 0, 250000, tzinfo=dt.UTC)),
        # Without an offset: Europe/Paris wall-clock time, winter and summer.
        ("20240115103000", dt.datetime(2024, 1, 15, 9, 30, tzinfo=dt.UTC)),
        ("202401151030", dt.datetime(2024, 1, 15, 9, 30, tzinfo=dt.UTC)),
        ("20240715103000", dt.datetime(2024, 7, 15, 8, 30, tzinfo=dt.UTC)),
        ("20240715", dt.datetime(2024, 7, 14, 22, 0, tzinfo=dt.UTC)),
        # Repeated autumn hour: the first (summer) one; spring gap: the winter offset.
        ("20241027023000", dt.datetime(2024, 10, 27, 0, 30, tzinfo=dt.UTC)),
        ("20240331023000", dt.datetime(2024, 3, 31, 1, 30, tzinfo=dt.UTC)),
    ],
)
def test_hl7_ts(value: str, expected: dt.datetime) -> None:
    parsed = parse_hl7_ts(value)
    assert parsed == expected
    assert parsed.utcoffset() is not None


@pytest.mark.parametrize(
    "value", ["2024", "202401", "20241315", "20240115103000+2500", "2024-01-15", "x"]
)
def test_bad_hl7_ts(value: str) -> None:
    with pytest.raises(ValueError):
        parse_hl7_ts(value)


def test_document_time_without_offset_is_paris_time() -> None:
    data = _built().replace(
        b'<effectiveTime value="20240115103000+0100"/>', b'<effectiveTime value="20240715103000"/>'
    )
    header = read_cda_header(data, file_name="doc.xml")
    assert header.problems == ()
    assert header.effective_time == dt.datetime(
        2024, 7, 15, 10, 30, tzinfo=ZoneInfo("Europe/Paris")
    )
    assert header.effective_time is not None
    assert header.effective_time.utcoffset() == dt.timedelta(hours=2)


def test_bad_document_time_is_a_problem() -> None:
    data = _built().replace(
        b'<effectiveTime value="20240115103000+0100"/>', b'<effectiveTime value="15/01/2024"/>'
    )
    header = read_cda_header(data, file_name="doc.xml")
    assert header.effective_time is None
    assert any("15/01/2024" in p for p in header.problems)


def test_header_is_frozen() -> None:
    header = _read(N1_BIO)
    with pytest.raises(dataclasses.FrozenInstanceError):
        header.title = "autre"  # type: ignore[misc]


