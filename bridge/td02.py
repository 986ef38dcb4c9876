"""TD0.2: does this patient have a DMP, is it open, may we access it? (spec §1.3)

The request is the HL7 v3 `PRPA_IN201307UV02` seen in the ANS reference client. The real
answer's format is not public: the reader follows the shape our simulator invented
(docs/wire-contract.md, `PRPA_IN201310UV02`) and tolerates every part being absent — an absent
part gives "unknown", never an exception — so a different real answer degrades to "unknown"
instead of a wrong "no DMP".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from lxml import etree

from bridge.domain import Ins
from bridge.xds_formats import dtm

HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACTION_TD02 = "urn:hl7-org:v3:PRPA_IN201307UV02"
OID_QUERY_REASON = "1.2.250.1.213.1.1.4.11"  # DMP query reasons: TEST_EXST
OID_DMP_DEVICE = "1.2.250.1.213.4.1.1.1"  # the DMP as HL7 v3 receiver device
OID_INTERACTION = "2.16.840.1.113883.1.6"


class DmpState(StrEnum):
    """What TD0.2 says about the patient's DMP."""

    OUVERT = "ouvert"  # a DMP exists and is open: feeding possible
    FERME = "ferme"  # the DMP exists but was closed
    ABSENT = "absent"  # no DMP for this INS
    INCONNU = "inconnu"  # the answer did not say (or could not be read)


class Authorization(StrEnum):
    """The caller's access authorisation (matters for consultation only, spec §1.3)."""

    AUTORISE = "AUTORISE"  # authorised by the patient
    NON_AUTORISE = "NON_AUTORISE"  # no authorisation yet
    INTERDIT = "INTERDIT"  # the professional was blocked by the patient


@dataclass(frozen=True)
class ExistenceQuery:
    """Everything the TD0.2 request says; ids and time come from the caller."""

    message_id: str  # OID or UUID-based OID of this message
    query_id: str
    creation_time: dt.datetime  # aware
    patient: Ins
    sender_id: str  # OID of this installation (the XDS sourceId)
    sender_name: str  # software name
    processing_code: str = "P"  # P production; the reference client sends D to the test DMP


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{HL7}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _device(parent: etree._Element, role: str, type_code: str, oid: str, name: str) -> None:
    device = _sub(
        _sub(parent, role, typeCode=type_code),
        "device",
        classCode="DEV",
        determinerCode="INSTANCE",
    )
    _sub(device, "id", root=oid)
    _sub(device, "softwareName", name)


def build_existence_query(query: ExistenceQuery) -> etree._Element:
    """`PRPA_IN201307UV02` with reasonCode TEST_EXST and the patient's INS."""
    root = etree.Element(
        f"{{{HL7}}}PRPA_IN201307UV02", nsmap={None: HL7, "xsi": XSI}, ITSVersion="XML_1.0"
    )
    _sub(root, "id", root=query.message_id)
    _sub(root, "creationTime", value=dtm(query.creation_time))
    _sub(root, "interactionId", root=OID_INTERACTION, extension="PRPA_IN201307UV02")
    _sub(root, "processingCode", code=query.processing_code)
    _sub(root, "processingModeCode", code="T")
    _sub(root, "acceptAckCode", code="AL")
    _device(root, "receiver", "RCV", OID_DMP_DEVICE, "DMP")
    _device(root, "sender", "SND", query.sender_id, query.sender_name)
    act = _sub(root, "controlActProcess", classCode="CACT", moodCode="EVN")
    _sub(act, "reasonCode", code="TEST_EXST", codeSystem=OID_QUERY_REASON)
    by_parameter = _sub(act, "queryByParameter")
    _sub(by_parameter, "queryId", root=query.query_id)
    _sub(by_parameter, "statusCode", code="new")
    parameters = _sub(by_parameter, "parameterList")
    _sub(parameters, "dataSource").set(f"{{{XSI}}}nil", "true")
    identifier = _sub(parameters, "patientIdentifier")
    _sub(identifier, "value", root=query.patient.oid.value, extension=query.patient.matricule)
    _sub(identifier, "semanticsText", "Patient.id")
    return root


@dataclass(frozen=True)
class DmpStatus:
    """What TD0.2 answered; `detail` carries a fault or a refusal, without health data."""

    state: DmpState
    authorization: Authorization | None = None
    patient_ins: str | None = None  # the INS the answer is about (root/extension: extension)
    detail: str | None = None

    @property
    def message_fr(self) -> str:
        text = {
            DmpState.OUVERT: "Le patient a un DMP ouvert.",
            DmpState.FERME: "Le DMP du patient est fermé : aucun document ne peut y être ajouté.",
            DmpState.ABSENT: "Le patient n'a pas de DMP.",
            DmpState.INCONNU: "Le DMP n'a pas pu dire si le patient a un DMP.",
        }[self.state]
        if self.authorization is Authorization.INTERDIT:
            text += " Le patient a bloqué l'accès de ce professionnel à son DMP."
        elif self.authorization is Authorization.NON_AUTORISE:
            text += " Ce professionnel n'est pas autorisé à consulter ce DMP."
        if self.detail:
            text += f" Détail : {self.detail[:200]}"
        return text


def _find(root: etree._Element, path: str) -> etree._Element | None:
    return root.find(path.replace("hl7:", f"{{{HL7}}}"))


def _code(root: etree._Element, path: str) -> str:
    found = _find(root, path)
    return (found.get("code", "") if found is not None else "").strip()


def read_existence_answer(root: etree._Element) -> DmpStatus:
    """Read a `PRPA_IN201310UV02` (bare or in its SOAP envelope)."""
    tag = f"{{{HL7}}}PRPA_IN201310UV02"
    answer = root if root.tag == tag else root.find(f".//{tag}")
    if answer is None:
        return DmpStatus(DmpState.INCONNU, detail="réponse TD0.2 absente")
    ack = _code(answer, "hl7:acknowledgement/hl7:typeCode")
    if ack in ("AE", "AR", "CE", "CR"):
        return DmpStatus(DmpState.INCONNU, detail=f"accusé de réception {ack}")
    act = "hl7:controlActProcess"
    response_code = _code(answer, f"{act}/hl7:queryAck/hl7:queryResponseCode")
    event = f"{act}/hl7:subject/hl7:registrationEvent"
    patient = _find(answer, f"{event}/hl7:subject1/hl7:patient")
    ins = None
    authorization = None
    if patient is not None:
        identifier = patient.find(f"{{{HL7}}}id")
        ins = identifier.get("extension") if identifier is not None else None
        observed = _code(patient, "hl7:subjectOf/hl7:observation/hl7:code")
        authorization = Authorization(observed) if observed in Authorization.__members__ else None
    if response_code == "NF":
        return DmpStatus(DmpState.ABSENT, authorization, ins)
    if response_code != "OK":
        return DmpStatus(DmpState.INCONNU, authorization, ins)
    status = _code(answer, f"{event}/hl7:statusCode")
    state = {"active": DmpState.OUVERT, "terminated": DmpState.FERME}.get(
        status, DmpState.INCONNU
    )
    return DmpStatus(state, authorization, ins)
