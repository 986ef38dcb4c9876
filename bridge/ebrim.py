"""Build the ITI-41 ProvideAndRegisterDocumentSetRequest (ebRIM 3.0 metadata + XOP references).

Layout and values per spec/dmp-protocol.md §2.2, §3, §4.3 and §4.4: one SubmissionSet, one
DocumentEntry per CDA (1..n, one patient), one DocumentEntry for the XAdES signature of the set,
HasMember associations, the `signs` association, and one RPLC association per replacing
document. Ids are symbolic ("SubmissionSet01", "Document01", "Assoc01"…); the registry assigns
the entryUUIDs. Pure: no clock, no random ids, so a retry rebuilds byte-identical metadata from
the stored job.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from bridge import xds_ids as ids
from bridge.domain import (
    OID_CONFIDENTIALITY,
    OID_VISIBILITY,
    Coded,
    PackagedDocument,
    Patient,
    SignatureDocument,
    Submission,
)
from bridge.ebrim_parts import (
    LANGUAGE_CODE,
    NSMAP,
    SUBMISSION_SET_ID,
    Ids,
    SubmissionSetHeader,
    association,
    author_classification,
    coded_classification,
    external_identifier,
    name,
    rim,
    sha1_hex,
    slot,
    submission_set,
)
from bridge.xds_formats import dtm, source_patient_info, xcn_ps

__all__ = [
    "DOCUMENT_MIME_TYPE",
    "LANGUAGE_CODE",
    "SUBMISSION_SET_ID",
    "build_provide_and_register",
    "build_submit_objects",
    "sha1_hex",
]

DOCUMENT_MIME_TYPE = "text/xml"

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


def _header(sub: Submission) -> SubmissionSetHeader:
    return SubmissionSetHeader(
        unique_id=sub.unique_id,
        source_id=sub.source_id,
        submission_time=sub.submission_time,
        author=sub.author,
        patient=sub.patient.ins,
        content_type=sub.content_type,
        title=sub.title,
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
    slot(entry, "creationTime", [creation])
    slot(entry, "languageCode", [language])
    slot(entry, "legalAuthenticator", [legal_authenticator])
    slot(entry, "serviceStartTime", [start])
    if stop is not None:
        slot(entry, "serviceStopTime", [stop])
    # No local IPP is known to the bridge: the INS is the source patient id (spec §3.2).
    slot(entry, "sourcePatientId", [patient.ins.cx()])
    slot(entry, "sourcePatientInfo", source_patient_info(patient))
    slot(entry, "hash", [sha1_hex(content)])
    slot(entry, "size", [str(len(content))])


def _document_entry(parent: etree._Element, doc: PackagedDocument, idgen: Ids) -> None:
    clinical = doc.clinical
    codes = clinical.codes
    entry_id = doc.entry_id
    entry = etree.SubElement(
        parent,
        rim("ExtrinsicObject"),
        id=entry_id,
        mimeType=DOCUMENT_MIME_TYPE,
        objectType=ids.DOCUMENT_ENTRY_OBJECT_TYPE,
    )
    _entry_common_slots(
        entry,
        creation=dtm(clinical.effective_time),
        language=clinical.language,
        legal_authenticator=xcn_ps(clinical.author),
        start=dtm(clinical.service_start),
        stop=dtm(clinical.service_stop) if clinical.service_stop is not None else None,
        patient=clinical.patient,
        content=doc.cda,
    )
    name(entry, clinical.title)
    author_classification(entry, ids.DE_AUTHOR, entry_id, clinical.author, idgen)
    coded_classification(entry, ids.DE_CLASS_CODE, entry_id, codes.class_code, idgen)
    coded_classification(entry, ids.DE_TYPE_CODE, entry_id, codes.type_code, idgen)
    for confidentiality in (codes.confidentiality, *codes.visibility):
        coded_classification(entry, ids.DE_CONFIDENTIALITY_CODE, entry_id, confidentiality, idgen)
    coded_classification(entry, ids.DE_FORMAT_CODE, entry_id, codes.format_code, idgen)
    for event in codes.event_codes:
        coded_classification(entry, ids.DE_EVENT_CODE_LIST, entry_id, event, idgen)
    coded_classification(
        entry, ids.DE_HEALTHCARE_FACILITY_TYPE_CODE, entry_id, codes.facility_type, idgen
    )
    coded_classification(
        entry, ids.DE_PRACTICE_SETTING_CODE, entry_id, codes.practice_setting, idgen
    )
    external_identifier(
        entry,
        ids.DE_PATIENT_ID,
        entry_id,
        clinical.patient.ins.cx(),
        idgen,
    )
    external_identifier(
        entry,
        ids.DE_UNIQUE_ID,
        entry_id,
        clinical.unique_id,
        idgen,
    )


def _signature_entry(parent: etree._Element, sub: Submission, idgen: Ids) -> None:
    signature = sub.signature
    entry_id = signature.entry_id
    now = dtm(sub.submission_time)
    # Facility type and practice setting are required on every DocumentEntry; the signature
    # takes those of the (first) document it signs, as the DMP reference client does.
    first = sub.documents[0].clinical.codes
    entry = etree.SubElement(
        parent,
        rim("ExtrinsicObject"),
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
    name(entry, SIGNATURE_TITLE)
    author_classification(entry, ids.DE_AUTHOR, entry_id, sub.author, idgen)
    coded_classification(entry, ids.DE_CLASS_CODE, entry_id, SIGNATURE_CLASS, idgen)
    coded_classification(entry, ids.DE_TYPE_CODE, entry_id, SIGNATURE_TYPE, idgen)
    for confidentiality in SIGNATURE_CONFIDENTIALITY:
        coded_classification(entry, ids.DE_CONFIDENTIALITY_CODE, entry_id, confidentiality, idgen)
    coded_classification(entry, ids.DE_FORMAT_CODE, entry_id, SIGNATURE_FORMAT, idgen)
    coded_classification(
        entry, ids.DE_HEALTHCARE_FACILITY_TYPE_CODE, entry_id, first.facility_type, idgen
    )
    coded_classification(
        entry, ids.DE_PRACTICE_SETTING_CODE, entry_id, first.practice_setting, idgen
    )
    coded_classification(entry, ids.DE_EVENT_CODE_LIST, entry_id, SIGNATURE_EVENT, idgen)
    external_identifier(
        entry,
        ids.DE_PATIENT_ID,
        entry_id,
        sub.patient.ins.cx(),
        idgen,
    )
    external_identifier(
        entry,
        ids.DE_UNIQUE_ID,
        entry_id,
        signature.unique_id,
        idgen,
    )


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
        if (doc.replaces_entry_uuid is None) != (doc.clinical.replaces_unique_id is None):
            # The CDA relatedDocument and the RPLC association say the same thing twice; a
            # replacement with only one of them would be registered as a new document.
            raise ValueError(f"{doc.entry_id}: RPLC needs both the entryUUID and the uniqueId")


def build_submit_objects(sub: Submission) -> etree._Element:
    """`lcm:SubmitObjectsRequest` with the whole registry object list of the submission."""
    _check(sub)
    idgen = Ids()
    request = etree.Element(f"{{{ids.NS_LCM}}}SubmitObjectsRequest", nsmap=NSMAP)
    objects = etree.SubElement(request, rim("RegistryObjectList"))
    submission_set(objects, _header(sub), idgen)
    for doc in sub.documents:
        _document_entry(objects, doc, idgen)
    _signature_entry(objects, sub, idgen)
    members = [d.entry_id for d in sub.documents] + [sub.signature.entry_id]
    for member in members:
        association(
            objects,
            idgen.next("Assoc"),
            ids.ASSOC_HAS_MEMBER,
            SUBMISSION_SET_ID,
            member,
            original=True,
        )
    association(
        objects,
        idgen.next("Assoc"),
        ids.ASSOC_SIGNS,
        sub.signature.entry_id,
        SUBMISSION_SET_ID,
        original=False,
    )
    for doc in sub.documents:
        if doc.replaces_entry_uuid is not None:
            # TD2.1 (spec §4.4): the new entry replaces the registered one; the DMP deprecates it.
            association(
                objects,
                idgen.next("Assoc"),
                ids.ASSOC_RPLC,
                doc.entry_id,
                doc.replaces_entry_uuid,
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
        nsmap={**NSMAP, "xop": ids.NS_XOP},
    )
    root.append(build_submit_objects(sub))
    for part in _document_parts(sub):
        document = etree.SubElement(root, f"{{{ids.NS_XDSB}}}Document", id=part.entry_id)
        etree.SubElement(document, f"{{{ids.NS_XOP}}}Include", href=f"cid:{part.content_id}")
    return root
