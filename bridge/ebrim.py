"""Build the ITI-41 ProvideAndRegisterDocumentSetRequest (ebRIM 3.0 metadata + XOP references).

Layout and values per spec/dmp-protocol.md §2.2, §3 and §4.3: one SubmissionSet, one
DocumentEntry per CDA, one DocumentEntry for the XAdES signature of the set, HasMember
associations, and the `signs` association. Ids are symbolic ("SubmissionSet01", "Document01",
"Assoc01"…); the registry assigns the entryUUIDs. Pure: no clock, no random ids, so a retry
rebuilds byte-identical metadata from the stored job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from lxml import etree

from bridge import xds_ids as ids
from bridge.domain import (
    OID_CONFIDENTIALITY,
    OID_VISIBILITY,
    Author,
    Coded,
    PackagedDocument,
    Patient,
    SignatureDocument,
    Submission,
)
from bridge.xds_formats import author_specialty, dtm, source_patient_info, xcn_ps, xon

SUBMISSION_SET_ID = "SubmissionSet01"
DOCUMENT_MIME_TYPE = "text/xml"
LANGUAGE_CODE = "fr-FR"

# The signature entry's fixed metadata (§4.3, as accepted by the DMP test platform).
SIGNATURE_LANGUAGE = "art"
SIGNATURE_TITLE = "Source"
SIGNATURE_CLASS = Coded("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "Digital Signature", "URN")
SIGNATURE_TYPE = Coded("E1762", "Full Document", "ASTM")
SIGNATURE_FORMAT = Coded("http://www.w3.org/2000/09/xmldsig#", "Default Signature Style", "URN")
SIGNATURE_EVENT = Coded("1.2.840.10065.1.12.1.14", "Source", "1.2.840.10065.1.12")
# Hidden from professionals and from the patient: it is a technical document.
SIGNATURE_CONFIDENTIALITY = (
    Coded("N", "Normal", OID_CONFIDENTIALITY),
    Coded("MASQUE_PS", "Masqué aux professionnels de santé", OID_VISIBILITY),
    Coded("INVISIBLE_PATIENT", "Non visible par le patient", OID_VISIBILITY),
)

_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_NSMAP = {"xdsb": ids.NS_XDSB, "lcm": ids.NS_LCM, "rim": ids.NS_RIM}


def _rim(name: str) -> str:
    return f"{{{ids.NS_RIM}}}{name}"


def sha1_hex(data: bytes) -> str:
    """XDS hash: SHA-1 of the exact bytes sent, lower-case hex (IHE ITI TF-3 §4.2.3.2.10)."""
    # SHA-1 is what the XDS hash slot is defined as; it is an integrity check, not security.
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


class _Ids:
    """Sequential symbolic ids for the classifications and external identifiers of one request."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}

    def next(self, prefix: str) -> str:
        count = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = count
        return f"{prefix}{count:02d}"


def _slot(parent: etree._Element, name: str, values: Iterable[str]) -> None:
    slot = etree.SubElement(parent, _rim("Slot"), name=name)
    value_list = etree.SubElement(slot, _rim("ValueList"))
    for value in values:
        etree.SubElement(value_list, _rim("Value")).text = value


def _name(parent: etree._Element, text: str) -> None:
    name = etree.SubElement(parent, _rim("Name"))
    localized = etree.SubElement(name, _rim("LocalizedString"))
    # Without xml:lang the schema default is en-US; the texts are French.
    localized.set(_XML_LANG, LANGUAGE_CODE)
    localized.set("charset", "UTF-8")
    localized.set("value", text)


def _coded_classification(
    parent: etree._Element, scheme: str, object_id: str, coded: Coded, idgen: _Ids
) -> None:
    element = etree.SubElement(
        parent,
        _rim("Classification"),
        id=idgen.next("cl"),
        classificationScheme=scheme,
        classifiedObject=object_id,
        nodeRepresentation=coded.code,
    )
    _slot(element, "codingScheme", [coded.system])
    _name(element, coded.display)


def _author_classification(
    parent: etree._Element, scheme: str, object_id: str, author: Author, idgen: _Ids
) -> None:
    # IHE: the author classification has an empty nodeRepresentation and no codingScheme.
    element = etree.SubElement(
        parent,
        _rim("Classification"),
        id=idgen.next("cl"),
        classificationScheme=scheme,
        classifiedObject=object_id,
        nodeRepresentation="",
    )
    _slot(element, "authorPerson", [xcn_ps(author)])
    _slot(element, "authorInstitution", [xon(author)])
    if author.role_display:
        _slot(element, "authorRole", [author.role_display])
    _slot(element, "authorSpecialty", [author_specialty(author)])


_IDENTIFIER_NAMES = {
    ids.SS_UNIQUE_ID: "XDSSubmissionSet.uniqueId",
    ids.SS_SOURCE_ID: "XDSSubmissionSet.sourceId",
    ids.SS_PATIENT_ID: "XDSSubmissionSet.patientId",
    ids.DE_PATIENT_ID: "XDSDocumentEntry.patientId",
    ids.DE_UNIQUE_ID: "XDSDocumentEntry.uniqueId",
}


def _external_identifier(
    parent: etree._Element, scheme: str, object_id: str, value: str, idgen: _Ids
) -> None:
    element = etree.SubElement(
        parent,
        _rim("ExternalIdentifier"),
        id=idgen.next("ei"),
        registryObject=object_id,
        identificationScheme=scheme,
        value=value,
    )
    _name(element, _IDENTIFIER_NAMES[scheme])


def _submission_set(parent: etree._Element, sub: Submission, idgen: _Ids) -> None:
    package = etree.SubElement(parent, _rim("RegistryPackage"), id=SUBMISSION_SET_ID)
    _slot(package, "submissionTime", [dtm(sub.submission_time)])
    if sub.title:
        _name(package, sub.title)
    _author_classification(package, ids.SS_AUTHOR, SUBMISSION_SET_ID, sub.author, idgen)
    _coded_classification(
        package, ids.SS_CONTENT_TYPE_CODE, SUBMISSION_SET_ID, sub.content_type, idgen
    )
    _external_identifier(
        package,
        ids.SS_UNIQUE_ID,
        SUBMISSION_SET_ID,
        sub.unique_id,
        idgen,
    )
    _external_identifier(
        package,
        ids.SS_SOURCE_ID,
        SUBMISSION_SET_ID,
        sub.source_id,
        idgen,
    )
    _external_identifier(
        package,
        ids.SS_PATIENT_ID,
        SUBMISSION_SET_ID,
        sub.patient.ins.cx(),
        idgen,
    )
    etree.SubElement(
        parent,
        _rim("Classification"),
        id=idgen.next("cl"),
        classifiedObject=SUBMISSION_SET_ID,
        classificationNode=ids.SUBMISSION_SET_NODE,
    )


def _entry_common_slots(
    entry: etree._Element,
    *,
    creation: str,
    language: str,
    legal_authenticator: str,
    start: str,
    stop: str | None,
    patient: Patient,
    content: bytes,
) -> None:
    # Slot order follows spec §3.2; the registry does not care about order, readers do.
    _slot(entry, "creationTime", [creation])
    _slot(entry, "languageCode", [language])
    _slot(entry, "legalAuthenticator", [legal_authenticator])
    _slot(entry, "serviceStartTime", [start])
    if stop is not None:
        _slot(entry, "serviceStopTime", [stop])
    # No local IPP is known to the bridge: the INS is the source patient id (spec §3.2).
    _slot(entry, "sourcePatientId", [patient.ins.cx()])
    _slot(entry, "sourcePatientInfo", source_patient_info(patient))
    _slot(entry, "hash", [sha1_hex(content)])
    _slot(entry, "size", [str(len(content))])


def _document_entry(parent: etree._Element, doc: PackagedDocument, idgen: _Ids) -> None:
    clinical = doc.clinical
    codes = clinical.codes
    entry_id = doc.entry_id
    entry = etree.SubElement(
        parent,
        _rim("ExtrinsicObject"),
        id=entry_id,
        mimeType=DOCUMENT_MIME_TYPE,
        objectType=ids.DOCUMENT_ENTRY_OBJECT_TYPE,
    )
    _entry_common_slots(
        entry,
        creation=dtm(clinical.effective_time),
        language=LANGUAGE_CODE,
        legal_authenticator=xcn_ps(clinical.author),
        start=dtm(clinical.service_start),
        stop=dtm(clinical.service_stop) if clinical.service_stop is not None else None,
        patient=clinical.patient,
        content=doc.cda,
    )
    _name(entry, clinical.title)
    _author_classification(entry, ids.DE_AUTHOR, entry_id, clinical.author, idgen)
    _coded_classification(entry, ids.DE_CLASS_CODE, entry_id, codes.class_code, idgen)
    _coded_classification(entry, ids.DE_TYPE_CODE, entry_id, codes.type_code, idgen)
    for confidentiality in (codes.confidentiality, *codes.visibility):
        _coded_classification(entry, ids.DE_CONFIDENTIALITY_CODE, entry_id, confidentiality, idgen)
    _coded_classification(entry, ids.DE_FORMAT_CODE, entry_id, codes.format_code, idgen)
    for event in codes.event_codes:
        _coded_classification(entry, ids.DE_EVENT_CODE_LIST, entry_id, event, idgen)
    _coded_classification(
        entry, ids.DE_HEALTHCARE_FACILITY_TYPE_CODE, entry_id, codes.facility_type, idgen
    )
    _coded_classification(
        entry, ids.DE_PRACTICE_SETTING_CODE, entry_id, codes.practice_setting, idgen
    )
    _external_identifier(
        entry,
        ids.DE_PATIENT_ID,
        entry_id,
        clinical.patient.ins.cx(),
        idgen,
    )
    _external_identifier(
        entry,
        ids.DE_UNIQUE_ID,
        entry_id,
        clinical.unique_id,
        idgen,
    )


def _signature_entry(parent: etree._Element, sub: Submission, idgen: _Ids) -> None:
    signature = sub.signature
    entry_id = signature.entry_id
    now = dtm(sub.submission_time)
    # Facility type and practice setting are required on every DocumentEntry; the signature
    # takes those of the (first) document it signs, as the DMP reference client does.
    first = sub.documents[0].clinical.codes
    entry = etree.SubElement(
        parent,
        _rim("ExtrinsicObject"),
        id=entry_id,
        mimeType=DOCUMENT_MIME_TYPE,
        objectType=ids.DOCUMENT_ENTRY_OBJECT_TYPE,
    )
    _entry_common_slots(
        entry,
        creation=now,
        language=SIGNATURE_LANGUAGE,
        legal_authenticator=xcn_ps(sub.author),
        start=now,
        stop=now,
        patient=sub.patient,
        content=signature.xml,
    )
    _name(entry, SIGNATURE_TITLE)
    _author_classification(entry, ids.DE_AUTHOR, entry_id, sub.author, idgen)
    _coded_classification(entry, ids.DE_CLASS_CODE, entry_id, SIGNATURE_CLASS, idgen)
    _coded_classification(entry, ids.DE_TYPE_CODE, entry_id, SIGNATURE_TYPE, idgen)
    for confidentiality in SIGNATURE_CONFIDENTIALITY:
        _coded_classification(entry, ids.DE_CONFIDENTIALITY_CODE, entry_id, confidentiality, idgen)
    _coded_classification(entry, ids.DE_FORMAT_CODE, entry_id, SIGNATURE_FORMAT, idgen)
    _coded_classification(
        entry, ids.DE_HEALTHCARE_FACILITY_TYPE_CODE, entry_id, first.facility_type, idgen
    )
    _coded_classification(
        entry, ids.DE_PRACTICE_SETTING_CODE, entry_id, first.practice_setting, idgen
    )
    _coded_classification(entry, ids.DE_EVENT_CODE_LIST, entry_id, SIGNATURE_EVENT, idgen)
    _external_identifier(
        entry,
        ids.DE_PATIENT_ID,
        entry_id,
        sub.patient.ins.cx(),
        idgen,
    )
    _external_identifier(
        entry,
        ids.DE_UNIQUE_ID,
        entry_id,
        signature.unique_id,
        idgen,
    )


def _association(
    parent: etree._Element, assoc_id: str, kind: str, source: str, target: str, *, original: bool
) -> None:
    element = etree.SubElement(
        parent,
        _rim("Association"),
        id=assoc_id,
        associationType=kind,
        sourceObject=source,
        targetObject=target,
    )
    if original:
        _slot(element, "SubmissionSetStatus", [ids.SUBMISSION_SET_STATUS_ORIGINAL])


def _check(sub: Submission) -> None:
    if not sub.documents:
        raise ValueError("a submission needs at least one document")
    entry_ids = [d.entry_id for d in sub.documents] + [sub.signature.entry_id]
    if len(set(entry_ids)) != len(entry_ids) or SUBMISSION_SET_ID in entry_ids:
        raise ValueError(f"entry ids must be unique and differ from {SUBMISSION_SET_ID}")
    for doc in sub.documents:
        if doc.clinical.patient.ins != sub.patient.ins:
            # patientId must be identical everywhere in the set, or the DMP refuses it
            # (XDSPatientIdDoesNotMatch); catching it here names the faulty document.
            raise ValueError(f"{doc.entry_id}: patient INS differs from the submission set")


def build_submit_objects(sub: Submission) -> etree._Element:
    """`lcm:SubmitObjectsRequest` with the whole registry object list of the submission."""
    _check(sub)
    idgen = _Ids()
    request = etree.Element(f"{{{ids.NS_LCM}}}SubmitObjectsRequest", nsmap=_NSMAP)
    objects = etree.SubElement(request, _rim("RegistryObjectList"))
    _submission_set(objects, sub, idgen)
    for doc in sub.documents:
        _document_entry(objects, doc, idgen)
    _signature_entry(objects, sub, idgen)
    members = [d.entry_id for d in sub.documents] + [sub.signature.entry_id]
    for member in members:
        _association(
            objects,
            idgen.next("Assoc"),
            ids.ASSOC_HAS_MEMBER,
            SUBMISSION_SET_ID,
            member,
            original=True,
        )
    _association(
        objects,
        idgen.next("Assoc"),
        ids.ASSOC_SIGNS,
        sub.signature.entry_id,
        SUBMISSION_SET_ID,
        original=False,
    )
    return request


def _document_parts(sub: Submission) -> Sequence[PackagedDocument | SignatureDocument]:
    return (*sub.documents, sub.signature)


def build_provide_and_register(sub: Submission) -> etree._Element:
    """`xdsb:ProvideAndRegisterDocumentSetRequest`: metadata plus one XOP-referenced Document
    per entry. The MIME parts themselves (`content_id` → bytes) are the SOAP client's job."""
    root = etree.Element(
        f"{{{ids.NS_XDSB}}}ProvideAndRegisterDocumentSetRequest",
        nsmap={**_NSMAP, "xop": ids.NS_XOP},
    )
    root.append(build_submit_objects(sub))
    for part in _document_parts(sub):
        document = etree.SubElement(root, f"{{{ids.NS_XDSB}}}Document", id=part.entry_id)
        etree.SubElement(document, f"{{{ids.NS_XOP}}}Include", href=f"cid:{part.content_id}")
    return root
