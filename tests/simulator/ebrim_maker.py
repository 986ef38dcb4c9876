"""Test-only ebRIM metadata for one CDA document plus its XAdES signature entry (spec §3)."""

from __future__ import annotations

import hashlib

from lxml import etree

from tests.simulator.wire_base import LCM, RIM, XDSB, XOP, WireSpec, _cx, _sub, q

DE_TYPE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
AUTHOR_PERSON = "899700366240^SOIGNANT^Alex^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
AUTHOR_INSTITUTION = (
    "CABINET INFIRMIER DEMO^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^499700366240007"
)


def _slot(parent: etree._Element, name: str, *values: str) -> None:
    vl = _sub(_sub(parent, RIM, "Slot", name=name), RIM, "ValueList")
    for value in values:
        _sub(vl, RIM, "Value", value)


def _name(parent: etree._Element, text: str) -> None:
    _sub(_sub(parent, RIM, "Name"), RIM, "LocalizedString", value=text)


def _classify(obj: etree._Element, scheme: str, code: str, system: str, display: str,
              ident: str) -> None:
    cl = _sub(obj, RIM, "Classification", id=ident, classificationScheme=scheme,
              classifiedObject=obj.get("id") or "", nodeRepresentation=code)
    _slot(cl, "codingScheme", system)
    _name(cl, display)


def _author(obj: etree._Element, scheme: str, ident: str) -> None:
    cl = _sub(obj, RIM, "Classification", id=ident, classificationScheme=scheme,
              classifiedObject=obj.get("id") or "", nodeRepresentation="")
    _slot(cl, "authorPerson", AUTHOR_PERSON)
    _slot(cl, "authorInstitution", AUTHOR_INSTITUTION)
    _slot(cl, "authorSpecialty", "G15_60^Infirmier^1.2.250.1.213.1.1.4.5")


def _external(obj: etree._Element, scheme: str, value: str, label: str, ident: str) -> None:
    ext = _sub(obj, RIM, "ExternalIdentifier", id=ident, registryObject=obj.get("id") or "",
               identificationScheme=scheme, value=value)
    _name(ext, label)


def _entry(objects: etree._Element, spec: WireSpec, ident: str, uid: str, data: bytes, *,
           signature: bool) -> None:
    eo = _sub(objects, RIM, "ExtrinsicObject", id=ident, mimeType="text/xml", objectType=DE_TYPE)
    patient = _cx(spec.ins, spec.ins_oid)
    entry_patient = patient
    if not signature and spec.entry_patient_ins is not None:
        entry_patient = _cx(spec.entry_patient_ins, spec.ins_oid)
    _slot(eo, "creationTime", "20240105091500")
    sha1 = hashlib.sha1(data).hexdigest()
    if not signature and spec.hash_override is not None:
        sha1 = spec.hash_override
    _slot(eo, "hash", sha1)
    _slot(eo, "languageCode", "art" if signature else "fr-FR")
    _slot(eo, "legalAuthenticator", AUTHOR_PERSON)
    _slot(eo, "serviceStartTime", "20240105090000")
    _slot(eo, "size", str(len(data)))
    _slot(eo, "sourcePatientId", entry_patient)
    _name(eo, "Source" if signature else "Fiche de soins infirmiers")
    p = f"{ident}-"
    if not signature:
        _author(eo, "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d", p + "author")
    if signature:
        codes = [
            ("urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a", "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1",
             "URN", "Digital Signature"),
            ("urn:uuid:f0306f51-975f-434e-a61c-c59651d33983", "E1762", "ASTM", "Full Document"),
            ("urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d", "http://www.w3.org/2000/09/xmldsig#",
             "URN", "Default Signature Style"),
        ]
    else:
        codes = [
            ("urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a", "10", "1.2.250.1.213.1.1.4.1",
             "Compte rendu"),
            ("urn:uuid:f0306f51-975f-434e-a61c-c59651d33983", "11506-3", "2.16.840.1.113883.6.1",
             "CR ou fiche de suivi de soins par auxiliaire médical"),
            ("urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d", "urn:ihe:iti:xds-sd:pdf:2008",
             "1.3.6.1.4.1.19376.1.2.3", "Document à corps non structuré en Pdf/A-1"),
        ]
    codes += [
        ("urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f", "N", "2.16.840.1.113883.5.25", "Normal"),
        ("urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1", "SA07", "1.2.250.1.71.4.2.4",
         "Cabinet individuel"),
        ("urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead", "AMBULATOIRE", "1.2.250.1.213.1.1.4.9",
         "Ambulatoire"),
    ]
    for n, (scheme, code, system, display) in enumerate(codes):
        _classify(eo, scheme, code, system, display, f"{p}cl{n}")
    _external(eo, "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427", entry_patient,
              "XDSDocumentEntry.patientId", p + "pid")
    _external(eo, "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab", uid,
              "XDSDocumentEntry.uniqueId", p + "uid")


def build_request(
    spec: WireSpec, cda: bytes, xades: bytes, cids: tuple[str, str]
) -> etree._Element:
    """`xdsb:ProvideAndRegisterDocumentSetRequest` with xop:Include for both documents."""
    req = etree.Element(q(XDSB, "ProvideAndRegisterDocumentSetRequest"),
                        nsmap={"xdsb": XDSB, "lcm": LCM, "rim": RIM})
    objects = _sub(_sub(req, LCM, "SubmitObjectsRequest"), RIM, "RegistryObjectList")
    ss = _sub(objects, RIM, "RegistryPackage", id="SubmissionSet01")
    _slot(ss, "submissionTime", spec.submission_time)
    _name(ss, "Lot de soumission")
    _author(ss, "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d", "ss-author")
    _classify(ss, "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500", "SA07",
              spec.content_type_system, "Cabinet individuel", "ss-ct")
    _external(ss, "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446", _cx(spec.ins, spec.ins_oid),
              "XDSSubmissionSet.patientId", "ss-pid")
    _external(ss, "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832", "1.2.250.1.999.1",
              "XDSSubmissionSet.sourceId", "ss-src")
    _external(ss, "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8", spec.set_uid,
              "XDSSubmissionSet.uniqueId", "ss-uid")
    _entry(objects, spec, "Document01", spec.doc_uid, cda, signature=False)
    _entry(objects, spec, "Signature01", spec.sig_uid, xades, signature=True)
    _sub(objects, RIM, "Classification", id="ss-class", classifiedObject="SubmissionSet01",
         classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd")
    for n, target in enumerate(("Document01", "Signature01")):
        assoc = _sub(objects, RIM, "Association", id=f"as{n}", sourceObject="SubmissionSet01",
                     targetObject=target,
                     associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember")
        _slot(assoc, "SubmissionSetStatus", "Original")
    signs = _sub(objects, RIM, "Association", id="as-signs", sourceObject="Signature01",
                 targetObject="SubmissionSet01",
                 associationType="urn:ihe:iti:2007:AssociationType:signs")
    if spec.status_on_signs:
        _slot(signs, "SubmissionSetStatus", "Original")
    if spec.replaces is not None:
        _sub(objects, RIM, "Association", id="as-rplc", sourceObject="Document01",
             targetObject=spec.replaces.entry_uuid,
             associationType="urn:ihe:iti:2007:AssociationType:RPLC")
    for ident, cid in zip(("Document01", "Signature01"), cids, strict=True):
        doc = _sub(req, XDSB, "Document", id=ident)
        etree.SubElement(doc, q(XOP, "Include"), nsmap={"xop": XOP}, href=f"cid:{cid}")
    if spec.tamper_request is not None:
        spec.tamper_request(req)
    return req
