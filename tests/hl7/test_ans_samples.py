"""The ANS example messages (tests/fixtures/hl7): each parsed with its expected outcome.

The samples carry a placeholder sentence where the CDA should be: as published they must be
refused (102, AE). With a real ANS CDA put in their OBX-5 they must be accepted.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bridge.hl7v2 import (
    AckCode,
    Action,
    AppCode,
    ErrorCode,
    HL7Rejected,
    build_ack,
    parse_message,
    read_header,
)
from bridge.sidecar import parse_sidecar
from tests.hl7.messages import ANS_DIR, sample, with_obx5

CDA_IMAGING = (ANS_DIR / "11-cda-n1-cr-imagerie-pdf.xml").read_bytes()
NOW = dt.datetime(2026, 11, 21, 9, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(("name", "error", "ack", "where"), [
    ("01-hl7-mdm-t02-cr-imagerie-init.er7", ErrorCode.DATA_TYPE, AckCode.AE, "OBX^1^5^1^5"),
    ("03-hl7-mdm-t10-cr-imagerie-replace-v2.0.er7", ErrorCode.DATA_TYPE, AckCode.AE,
     "OBX^1^5^1^5"),
    ("05-hl7-oru-r01-cr-bio-n1-n3.hl7", ErrorCode.DATA_TYPE, AckCode.AE, "OBX^1^5^1^5"),
    ("07-hl7-ack-r01-aa.hl7", ErrorCode.MESSAGE_TYPE, AckCode.AR, "MSH^1^9"),
    ("09-hl7-adt-a01-pamfr-dmp-opposition.er7", ErrorCode.MESSAGE_TYPE, AckCode.AR, "MSH^1^9"),
])
def test_each_sample_as_published_is_refused_with_its_code(
        name: str, error: ErrorCode, ack: AckCode, where: str) -> None:
    with pytest.raises(HL7Rejected) as caught:
        parse_message(sample(name))
    assert caught.value.error is error
    assert caught.value.ack_code is ack
    assert caught.value.location is not None and caught.value.location.erl() == where


def test_the_placeholder_sample_gets_an_ae_ack_with_err_3_102_and_a_french_message() -> None:
    data = sample("01-hl7-mdm-t02-cr-imagerie-init.er7")
    with pytest.raises(HL7Rejected) as caught:
        parse_message(data)
    ack = build_ack(read_header(data), caught.value, now=NOW, control_id="A1", data=data)
    assert ack is not None
    lines = ack.decode("utf-8").split("\r")
    assert lines[0].startswith("MSH|^~\\&|PFI-Y|Organisation-Y|RIS-Y|Organisation-Y|")
    assert "|ACK^T02^ACK|A1|P|2.6|||||FRA|UNICODE UTF-8" in lines[0]
    assert lines[1] == "MSA|AE|015"
    err = lines[2].split("|")
    assert err[2] == "OBX^1^5^1^5"
    assert err[3] == "102^Data type error^messageErrorCondition"
    assert "ni un document CDA R2 ni un PDF" in err[8]


def test_our_ack_to_the_oru_sample_has_the_shape_of_the_ans_ack_sample() -> None:
    data = with_obx5(sample("05-hl7-oru-r01-cr-bio-n1-n3.hl7"), CDA_IMAGING.replace(
        b"18748-4", b"11502-2"))
    parse_message(data)
    ack = build_ack(read_header(data), None, now=NOW, control_id="016", data=data)
    assert ack is not None
    ours = ack.decode().split("\r")[:2]
    theirs = sample("07-hl7-ack-r01-aa.hl7").decode().splitlines()
    mask = lambda line: line.split("|")[:6] + line.split("|")[7:]  # noqa: E731 (MSH-7 = now)
    assert mask(ours[0]) == mask(theirs[0])
    assert ours[1] == theirs[1] == "MSA|AA|015"


def test_mdm_t02_sample_with_a_real_cda_is_accepted_and_filled_from_pid_prt_and_cda() -> None:
    doc = parse_message(with_obx5(sample("01-hl7-mdm-t02-cr-imagerie-init.er7"), CDA_IMAGING))
    assert doc.kind == "cda" and doc.content == CDA_IMAGING
    assert doc.action is Action.INITIAL
    assert doc.document_id == "1.2.250.1.71.4.2.2.120456789.71024000081"
    assert doc.flags == {
        "MASQUE_PS": False, "INVISIBLE_PATIENT": True, "INVISIBLE_REP_LEGAUX": True,
        "CONNEXION_SECRETE": True, "MODIF_CONF_CODE": False, "DESTDMP": True,
        "DESTMSSANTEPS": True, "DESTMSSANTEPAT": False, "ACK_RECEPTION": False,
        "ACK_LECTURE_MSS": False,
    }
    sidecar = json.loads(doc.sidecar_json)
    assert sidecar["patient"] == {
        "ins": "279035121518989", "ins_oid": "1.2.250.1.213.1.4.10", "identity_status": "VALI",
        "birth_family_name": "PAT-TROIS", "given_names": ["DOMINIQUE"],
        "used_family_name": "PAT-TROIS",  # not in PID-5: from the CDA
        "birth_date": "1979-03-28", "sex": "F", "birthplace_code": "63220",  # PID-11 BDL
    }
    assert sidecar["document"] == {"kind": "18748-4", "title": "CR d'imagerie médicale",
                                   "date": "2022-12-16T09:32:00+01:00",  # TXA-4, Paris time
                                   # the sample's MetaDMPMSS flags set to Y
                                   "visibility": ["INVISIBLE_PATIENT",
                                                  "INVISIBLE_REPRESENTANTS_LEGAUX"]}
    author = sidecar["author"]
    assert (author["rpps"], author["family_name"], author["given_name"]) == (
        "01234564895", "Eric", "Thomas")  # PRT SB (the sample puts the family name first)
    assert (author["profession"], author["specialty"], author["sector"]) == (
        "10", "G15_10/SM44", "SA08")  # not in PRT: from the CDA's author
    assert (author["structure_id"], author["structure_name"]) == ("1300017985", "Organisation-Y")
    request = parse_sidecar(doc.sidecar_json, file_name="x.json")
    assert request.patient.ins.matricule == "279035121518989"


def test_mdm_t10_v2_0_sample_without_orc_obr_is_a_replacement_of_txa_13() -> None:
    data = sample("03-hl7-mdm-t10-cr-imagerie-replace-v2.0.er7").replace(
        b"274075176079430^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8",
        b"279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10")
    doc = parse_message(with_obx5(data, CDA_IMAGING))
    assert doc.action is Action.REPLACE
    assert doc.replaces_id == "1.2.250.1.71.4.2.2.120456789A71024000081"
    assert doc.flags["CONNEXION_SECRETE"] is True and doc.flags["MASQUE_PS"] is False


def test_the_t10_sample_names_another_patient_than_the_cda_904() -> None:
    data = with_obx5(sample("03-hl7-mdm-t10-cr-imagerie-replace-v2.0.er7"), CDA_IMAGING)
    with pytest.raises(HL7Rejected) as caught:
        parse_message(data)
    # Its PID-3 is another (fake, production OID) INS than the CDA's recordTarget.
    assert caught.value.error is ErrorCode.APPLICATION
    assert caught.value.app_code is AppCode.INS_MISMATCH
    assert caught.value.location is not None and caught.value.location.erl() == "PID^1^3"
    ack = build_ack(read_header(data), caught.value, now=NOW, control_id="A", data=data)
    assert ack is not None
    assert b"|207^Application internal error^messageErrorCondition|E|904^" in ack


def test_oru_sample_with_two_documents_takes_the_first() -> None:
    cda = CDA_IMAGING.replace(b"18748-4", b"11502-2")
    doc = parse_message(with_obx5(sample("05-hl7-oru-r01-cr-bio-n1-n3.hl7"), cda))
    assert doc.kind == "cda" and doc.content == cda
    sidecar = json.loads(doc.sidecar_json)
    assert sidecar["document"]["kind"] == "11502-2"
    assert sidecar["author"]["rpps"] == "01234567866"
    assert doc.flags["ACK_RECEPTION"] is True


def test_headers_of_every_sample_are_readable() -> None:
    for name, expected in [("01-hl7-mdm-t02-cr-imagerie-init.er7", ("MDM", "T02", "2.6")),
                           ("05-hl7-oru-r01-cr-bio-n1-n3.hl7", ("ORU", "R01", "2.5")),
                           ("07-hl7-ack-r01-aa.hl7", ("ACK", "R01", "2.5")),
                           ("09-hl7-adt-a01-pamfr-dmp-opposition.er7", ("ADT", "A01", "2.5"))]:
        header = read_header(sample(name))
        assert (header.message_type, header.trigger_event, header.version) == expected
        assert header.charset_name == "UNICODE UTF-8"
        assert not header.enhanced
