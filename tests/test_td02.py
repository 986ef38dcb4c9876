"""TD0.2 existence test: the PRPA_IN201307UV02 request and the reader of the (invented) answer."""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from bridge.td02 import (
    ACTION_TD02,
    Authorization,
    DmpState,
    DmpStatus,
    ExistenceQuery,
    build_existence_query,
    read_existence_answer,
)
from bridge.xmlsafe import parse_xml
from tests.factories import make_patient

HL7 = "urn:hl7-org:v3"
NS = {"hl7": HL7}


def query() -> ExistenceQuery:
    return ExistenceQuery(
        message_id="2.25.1", query_id="2.25.2",
        creation_time=dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        patient=make_patient().ins, sender_id="1.2.250.1.999.1.1", sender_name="dmp-bridge",
    )


def first(root: etree._Element, path: str) -> str:
    found = root.xpath(path, namespaces=NS)
    assert found, path
    return str(found[0])


def test_the_request_asks_test_exst_for_the_ins() -> None:
    root = build_existence_query(query())
    assert root.tag == f"{{{HL7}}}PRPA_IN201307UV02" and root.get("ITSVersion") == "XML_1.0"
    assert ACTION_TD02 == "urn:hl7-org:v3:PRPA_IN201307UV02"
    assert first(root, "hl7:creationTime/@value") == "20260302090000"
    assert first(root, "hl7:interactionId/@extension") == "PRPA_IN201307UV02"
    assert first(root, "hl7:processingCode/@code") == "P"
    assert first(root, "hl7:receiver/hl7:device/hl7:id/@root") == "1.2.250.1.213.4.1.1.1"
    assert first(root, "hl7:sender/hl7:device/hl7:id/@root") == "1.2.250.1.999.1.1"
    act = "hl7:controlActProcess"
    assert first(root, f"{act}/hl7:reasonCode/@code") == "TEST_EXST"
    assert first(root, f"{act}/hl7:reasonCode/@codeSystem") == "1.2.250.1.213.1.1.4.11"
    value = f"{act}/hl7:queryByParameter/hl7:parameterList/hl7:patientIdentifier/hl7:value"
    assert first(root, f"{value}/@root") == "1.2.250.1.213.1.4.10"
    assert first(root, f"{value}/@extension") == "279035121518989"
    nil = "{http://www.w3.org/2001/XMLSchema-instance}nil"
    assert root.find(f".//{{{HL7}}}dataSource").get(nil) == "true"


def answer(response_code: str | None = "OK", status: str | None = "active",
           authorization: str | None = "AUTORISE", ack: str = "AA") -> bytes:
    status_xml = f'<statusCode code="{status}"/>' if status else ""
    observation = (f'<subjectOf><observation><code code="{authorization}" '
                   'codeSystem="invented:dmp-bridge-simulateur"/></observation></subjectOf>'
                   if authorization else "")
    subject = (f"<subject><registrationEvent>{status_xml}<subject1><patient>"
               '<id root="1.2.250.1.213.1.4.10" extension="279035121518989"/>'
               f"{observation}</patient></subject1></registrationEvent></subject>")
    query_ack = (f"<queryAck><queryResponseCode code=\"{response_code}\"/></queryAck>"
                 if response_code else "")
    return (f'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>'
            f'<PRPA_IN201310UV02 xmlns="{HL7}"><acknowledgement><typeCode code="{ack}"/>'
            f"</acknowledgement><controlActProcess>{query_ack}{subject}</controlActProcess>"
            "</PRPA_IN201310UV02></soap:Body></soap:Envelope>").encode()


@pytest.mark.parametrize(("data", "expected"), [
    (answer(), DmpStatus(DmpState.OUVERT, Authorization.AUTORISE, "279035121518989")),
    (answer(status="terminated", authorization="NON_AUTORISE"),
     DmpStatus(DmpState.FERME, Authorization.NON_AUTORISE, "279035121518989")),
    (answer(response_code="NF", status=None, authorization=None),
     DmpStatus(DmpState.ABSENT, None, "279035121518989")),
    (answer(authorization="INTERDIT"),
     DmpStatus(DmpState.OUVERT, Authorization.INTERDIT, "279035121518989")),
    (answer(status=None, authorization=None), DmpStatus(DmpState.INCONNU, None, "279035121518989")),
    (answer(response_code=None), DmpStatus(DmpState.INCONNU, Authorization.AUTORISE,
                                           "279035121518989")),
    (answer(authorization="AUTRE_CHOSE"), DmpStatus(DmpState.OUVERT, None, "279035121518989")),
])
def test_the_answer_is_read_tolerantly(data: bytes, expected: DmpStatus) -> None:
    assert read_existence_answer(parse_xml(data)) == expected


def test_a_refused_or_missing_answer_is_unknown() -> None:
    refused = read_existence_answer(parse_xml(answer(ack="AE")))
    assert refused.state is DmpState.INCONNU and refused.detail == "accusé de réception AE"
    assert read_existence_answer(parse_xml(b"<autre/>")).state is DmpState.INCONNU


def test_french_messages() -> None:
    assert "fermé" in DmpStatus(DmpState.FERME).message_fr
    blocked = DmpStatus(DmpState.OUVERT, Authorization.INTERDIT).message_fr
    assert "bloqué" in blocked
    assert "pas de DMP" in DmpStatus(DmpState.ABSENT).message_fr
