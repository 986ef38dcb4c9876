"""Test-only ITI-57 (availability change, metadata update) and TD0.2 request makers, written
from the wire contract WITHOUT the bridge builders.
"""

from __future__ import annotations

import copy
import uuid

from lxml import etree

from service.test_pki import TestPki
from tests.simulator.ebrim_maker import AUTHOR_INSTITUTION, AUTHOR_PERSON
from tests.simulator.wire import WireRequest, plain
from tests.simulator.wire_base import (
    HL7,
    ITI57,
    LCM,
    RIM,
    TD02,
    WireSpec,
    _cx,
    _sub,
    new_oid,
    q,
)

HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"


def _slot(parent: etree._Element, name: str, *values: str) -> etree._Element:
    slot = etree.Element(q(RIM, "Slot"), name=name)
    vl = _sub(slot, RIM, "ValueList")
    for value in values:
        _sub(vl, RIM, "Value", value)
    parent.append(slot)
    return slot


def _submission_set(objects: etree._Element, spec: WireSpec) -> None:
    ss = _sub(objects, RIM, "RegistryPackage", id="SubmissionSet01")
    _slot(ss, "submissionTime", spec.submission_time)
    author = _sub(ss, RIM, "Classification", id="ss-author", classifiedObject="SubmissionSet01",
                  classificationScheme="urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d",
                  nodeRepresentation="")
    _slot(author, "authorPerson", AUTHOR_PERSON)
    _slot(author, "authorInstitution", AUTHOR_INSTITUTION)
    ct = _sub(ss, RIM, "Classification", id="ss-ct", classifiedObject="SubmissionSet01",
              classificationScheme="urn:uuid:aa543740-bdda-424e-8c96-df4873be8500",
              nodeRepresentation="SA07")
    _slot(ct, "codingScheme", spec.content_type_system)
    for ident, scheme, value in (
        ("ss-pid", "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446", _cx(spec.ins, spec.ins_oid)),
        ("ss-src", "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832", "1.2.250.1.999.1"),
        ("ss-uid", "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8", new_oid()),
    ):
        _sub(ss, RIM, "ExternalIdentifier", id=ident, registryObject="SubmissionSet01",
             identificationScheme=scheme, value=value)
    _sub(objects, RIM, "Classification", id="ss-class", classifiedObject="SubmissionSet01",
         classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd")


def _request() -> tuple[etree._Element, etree._Element]:
    req = etree.Element(q(LCM, "SubmitObjectsRequest"), nsmap={"lcm": LCM, "rim": RIM})
    return req, _sub(req, RIM, "RegistryObjectList")


def _member(objects: etree._Element, target: str, **slots: str) -> None:
    assoc = _sub(objects, RIM, "Association", id=f"as-{uuid.uuid4().hex[:8]}",
                 associationType=HAS_MEMBER, sourceObject="SubmissionSet01", targetObject=target)
    _slot(assoc, "SubmissionSetStatus", "Original")
    for name, value in slots.items():
        _slot(assoc, name, value)


def status_change(pki: TestPki, to: str, spec: WireSpec, entry_uuid: str, original: str,
                  new: str, *, member: bool = True,
                  content_type: str = "application/soap+xml") -> WireRequest:
    """TD3.3c/d: UpdateAvailabilityStatus of `entry_uuid` from `original` to `new`."""
    req, objects = _request()
    _submission_set(objects, spec)
    assoc = _sub(objects, RIM, "Association", id="as-status", sourceObject="SubmissionSet01",
                 targetObject=entry_uuid,
                 associationType="urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus")
    _slot(assoc, "OriginalStatus", original)
    _slot(assoc, "NewStatus", new)
    if member:
        _member(objects, "as-status")
    return plain(pki, to, req, spec, ITI57, content_type)


def metadata_update(pki: TestPki, to: str, spec: WireSpec, current: etree._Element,
                    *, previous_version: str, flags: tuple[str, ...] = ("MASQUE_PS",),
                    lid: str | None = None) -> WireRequest:
    """TD3.3a/b: a new version of `current` (an ITI-18 LeafClass entry) with these flags."""
    req, objects = _request()
    _submission_set(objects, spec)
    entry = copy.deepcopy(current)
    entry.set("id", "DocumentEntry01")
    entry.set("lid", lid if lid is not None else current.get("lid") or "")
    for attr in ("status",):
        entry.attrib.pop(attr, None)
    for child in list(entry):
        if child.tag == q(RIM, "VersionInfo") or (
                child.tag == q(RIM, "Classification") and child.get("classificationScheme")
                == CONFIDENTIALITY and child.get("nodeRepresentation") != "N"):
            entry.remove(child)
    anchor = next(c for c in entry if c.get("classificationScheme") == CONFIDENTIALITY)
    for n, flag in enumerate(flags):
        cl = etree.Element(q(RIM, "Classification"), id=f"flag{n}",
                           classificationScheme=CONFIDENTIALITY, classifiedObject="DocumentEntry01",
                           nodeRepresentation=flag)
        _slot(cl, "codingScheme", "1.2.250.1.213.1.1.4.13")
        anchor.addnext(cl)
    objects.append(entry)
    _member(objects, "DocumentEntry01", PreviousVersion=previous_version)
    return plain(pki, to, req, spec, ITI57)


def td02(pki: TestPki, to: str, spec: WireSpec, *, reason: str = "TEST_EXST",
         ins_root: str | None = None) -> WireRequest:
    """TD0.2 PRPA_IN201307UV02 for the patient of `spec`."""
    root = etree.Element(q(HL7, "PRPA_IN201307UV02"), nsmap={None: HL7}, ITSVersion="XML_1.0")
    _sub(root, HL7, "id", root="1.2.250.1.999.2", extension=uuid.uuid4().hex)
    _sub(root, HL7, "creationTime", value="20240105091600")
    _sub(root, HL7, "interactionId", root="2.16.840.1.113883.1.6", extension="PRPA_IN201307UV02")
    _sub(root, HL7, "processingCode", code="P")
    _sub(root, HL7, "processingModeCode", code="T")
    _sub(root, HL7, "acceptAckCode", code="AL")
    control = _sub(root, HL7, "controlActProcess", classCode="CACT", moodCode="EVN")
    _sub(control, HL7, "reasonCode", code=reason, codeSystem="1.2.250.1.213.1.1.4.11")
    query = _sub(control, HL7, "queryByParameter")
    _sub(query, HL7, "queryId", root="1.2.250.1.999.3", extension=uuid.uuid4().hex)
    _sub(query, HL7, "statusCode", code="new")
    params = _sub(query, HL7, "parameterList")
    ident = _sub(params, HL7, "patientIdentifier")
    _sub(ident, HL7, "value", root=ins_root or spec.ins_oid, extension=spec.ins)
    _sub(ident, HL7, "semanticsText", "Patient.id")
    return plain(pki, to, root, spec, TD02)
