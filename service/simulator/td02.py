"""TD0.2 — test of existence of a patient's DMP (spec §1.3; wire contract).

Request: HL7 v3 `PRPA_IN201307UV02` with reasonCode TEST_EXST (1.2.250.1.213.1.1.4.11) and the
INS in queryByParameter/parameterList/patientIdentifier/value. The real answer format is
UNKNOWN; this simulator's answer (INVENTED, per the wire contract) is `PRPA_IN201310UV02` with
acknowledgement AA, queryResponseCode OK (a DMP exists) or NF (none), registrationEvent
statusCode active (open) or terminated (closed), the patient id, and the caller's
authorisation as an observation code AUTORISE | NON_AUTORISE | INTERDIT.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from lxml import etree

from service.simulator.envelope import SoapRequest
from service.simulator.invented_codes import InventedCode
from service.simulator.judge import Judge, vihf_patient_problem
from service.simulator.namespaces import HL7, INS_OIDS
from service.simulator.patients import PatientState
from service.simulator.problems import Problem

REASON_SYSTEM = "1.2.250.1.213.1.1.4.11"
AUTHORISATION_SYSTEM = "invented:dmp-bridge-simulateur"
NS = {"hl7": HL7}
INVALID = InventedCode.TD02_INVALIDE
AUTHORISATIONS = {
    PatientState.AUTORISATION_ABSENTE: "NON_AUTORISE",
    PatientState.PS_BLOQUE: "INTERDIT",
    PatientState.OPPOSITION: "INTERDIT",
}


@dataclass(frozen=True)
class Td02Result:
    problems: list[Problem]
    answer: etree._Element | None = None


def _first(root: etree._Element, path: str) -> etree._Element | None:
    found = root.xpath(path, namespaces=NS)
    return found[0] if isinstance(found, list) and found and isinstance(
        found[0], etree._Element) else None


def _read(body: etree._Element | None) -> tuple[list[Problem], etree._Element | None]:
    """Problems of the request, and its patientIdentifier/value element."""
    if body is None or body.tag != f"{{{HL7}}}PRPA_IN201307UV02":
        message = "Le corps doit contenir hl7:PRPA_IN201307UV02."
        return [Problem(INVALID, "soap:Body", message)], None
    problems: list[Problem] = []
    interaction = _first(body, "hl7:interactionId")
    if interaction is None or interaction.get("extension") != "PRPA_IN201307UV02":
        problems.append(Problem(INVALID, "interactionId", "interactionId PRPA_IN201307UV02 "
                                                          "attendu."))
    reason = _first(body, "hl7:controlActProcess/hl7:reasonCode")
    if reason is None or (reason.get("code"), reason.get("codeSystem")) != ("TEST_EXST",
                                                                             REASON_SYSTEM):
        problems.append(Problem(INVALID, "controlActProcess/reasonCode", "reasonCode TEST_EXST "
                                f"({REASON_SYSTEM}) attendu."))
    value = _first(body, "hl7:controlActProcess/hl7:queryByParameter/hl7:parameterList/"
                         "hl7:patientIdentifier/hl7:value")
    if value is None or value.get("root") not in INS_OIDS or not value.get("extension"):
        problems.append(Problem(INVALID, "patientIdentifier/value", "patientIdentifier/value "
                                "doit porter un INS (root = OID d'INS, extension = matricule)."))
        value = None
    return problems, value


def _sub(parent: etree._Element, name: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{HL7}}}{name}", **attrs)


def _answer(request: etree._Element, value: etree._Element, state: PatientState,
            purpose: str | None, now: dt.datetime) -> etree._Element:
    root = etree.Element(f"{{{HL7}}}PRPA_IN201310UV02", nsmap={None: HL7}, ITSVersion="XML_1.0")
    _sub(root, "id", root="1.2.250.1.213.4.1.1.999", extension=str(uuid.uuid4()))
    _sub(root, "creationTime", value=now.strftime("%Y%m%d%H%M%S"))
    _sub(root, "interactionId", root="2.16.840.1.113883.1.6", extension="PRPA_IN201310UV02")
    _sub(root, "processingCode", code="P")
    _sub(root, "processingModeCode", code="T")
    _sub(root, "acceptAckCode", code="NE")
    ack = _sub(root, "acknowledgement")
    _sub(ack, "typeCode", code="AA")
    request_id = _first(request, "hl7:id")
    if request_id is not None:
        _sub(_sub(ack, "targetMessage"), "id", **{k: str(v) for k, v in request_id.attrib.items()})
    control = _sub(root, "controlActProcess", classCode="CACT", moodCode="EVN")
    if state is not PatientState.SANS_DMP:
        event = _sub(_sub(control, "subject", typeCode="SUBJ"), "registrationEvent",
                     classCode="REG", moodCode="EVN")
        _sub(event, "statusCode",
             code="terminated" if state is PatientState.FERME else "active")
        patient = _sub(_sub(event, "subject1", typeCode="SBJ"), "patient", classCode="PAT")
        _sub(patient, "id", root=value.get("root") or "", extension=value.get("extension") or "")
        authorisation = AUTHORISATIONS.get(state, "AUTORISE")
        if authorisation == "NON_AUTORISE" and purpose == "centre_15":
            authorisation = "AUTORISE"  # not checked in centre de régulation mode (spec §1.3)
        observation = _sub(_sub(patient, "subjectOf"), "observation", classCode="OBS",
                           moodCode="EVN")
        _sub(observation, "code", code=authorisation, codeSystem=AUTHORISATION_SYSTEM)
    query_ack = _sub(control, "queryAck")
    _sub(query_ack, "queryResponseCode",
         code="NF" if state is PatientState.SANS_DMP else "OK")
    return root


class Td02Handler:
    """Answer one TD0.2 request; thread-safe (runs in a worker thread)."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge

    def handle(self, request: SoapRequest, tls_dn: str | None) -> Td02Result:
        now = self.judge.clock()
        vihf = self.judge.vihf(request, tls_dn, now)
        problems, value = _read(request.body_child)
        problems.extend(vihf.problems)
        if value is not None:
            cx = f"{value.get('extension')}^^^&{value.get('root')}&ISO^NH"
            problems.extend(vihf_patient_problem(vihf, cx))
        problems = self.judge.keep(problems)
        if problems or value is None or request.body_child is None:
            return Td02Result(problems or [Problem(INVALID, "soap:Body", "Requête illisible.")])
        state = self.judge.patients.get(value.get("extension") or "")
        return Td02Result([], _answer(request.body_child, value, state, vihf.purpose, now))
