"""A CDA received from the source goes to the DMP as it is: the ITI-41 package around its bytes.

The CDA is the signed, authored document: its bytes are never rewritten. Its id/@root (minted by
the source) is the XDS uniqueId; creationTime, title, service times, confidentiality and language
come from its header; the other codes from the feeding matrix row of its typeCode; the patient
(with its identity status, which a CDA does not carry) from the sidecar. The hash, the size and
the XAdES manifest are computed over the exact bytes received.

Pure apart from the `sign` callable. A pass-through CDA always travels alone (never in a lot).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable

from bridge.cda_header import CdaHeader, read_cda_header
from bridge.classify import FORMAT_PDF, Resolution, content_type
from bridge.domain import (
    ClinicalDocument,
    Coded,
    DocumentCodes,
    PackagedDocument,
    SignatureDocument,
    Submission,
)
from bridge.ebrim import build_provide_and_register
from bridge.errors import IntakeRejected, MappingRejected
from bridge.packaging import Package, oid_from_uuid
from bridge.sidecar import DocumentRequest
from bridge.xades import SigningCertificate, build_unsigned_xades
from mappings.valuesets import VS, load_value_set

_MAX_SNIFF = 4096


def looks_like_cda(payload: bytes) -> bool:
    """Cheap sniff: the payload starts with `<` after an optional BOM and whitespace.

    The caller still parses it (`read_cda_header`) to know it is a ClinicalDocument.
    """
    head = payload[:_MAX_SNIFF].removeprefix(b"\xef\xbb\xbf").lstrip()
    return head.startswith(b"<")


def read_passthrough_header(payload: bytes, request: DocumentRequest, *,
                            file_name: str) -> CdaHeader | None:
    """The header of a payload that is a CDA, None for anything else (a PDF)."""
    if not looks_like_cda(payload):
        return None
    try:
        return read_cda_header(payload, file_name=file_name,
                               identity_status=request.patient.identity_status)
    except IntakeRejected:
        return None


def _format_code(header: CdaHeader, row_format: Coded) -> Coded:
    if header.level == 1 and header.non_xml_media_type == "application/pdf":
        if row_format.code == FORMAT_PDF:
            return row_format
        concept = load_value_set(VS.FORMAT_CODE).get(FORMAT_PDF)
        if concept is None:  # pragma: no cover - the shipped JDV_J60 has it
            raise MappingRejected(f"Format {FORMAT_PDF} absent du JDV_J60.")
        return Coded(concept.code, concept.display, concept.system)
    if header.level == 3 and row_format.code != FORMAT_PDF:
        return row_format
    raise MappingRejected(
        "Le CDA reçu ne correspond pas au format prévu par la matrice d'alimentation pour ce "
        f"type de document ({row_format.code}) : niveau {header.level}, corps "
        f"{header.non_xml_media_type or 'structuré'}. Envoyez un CDA de niveau 1 contenant un "
        "PDF, ou le modèle structuré attendu.",
        code="CDA_FORMAT_MISMATCH", event="cda_format_mismatch")


def passthrough_codes(header: CdaHeader, resolution: Resolution) -> DocumentCodes:
    """The matrix's codes, with what the CDA header says where the DMP compares them."""
    codes = resolution.codes
    row_type = codes.type_code
    if header.type_code is None or (header.type_code.code, header.type_code.system) != (
            row_type.code, row_type.system):
        found = header.type_code.code if header.type_code else "absent"
        raise MappingRejected(
            f"Le type du CDA reçu (code {found}) diffère de celui que la matrice d'alimentation "
            f"prévoit pour ce document ({row_type.code} « {row_type.display} »). Corrigez le type "
            "du document dans le logiciel.",
            code="CDA_TYPE_MISMATCH", event="cda_type_mismatch")
    return dataclasses.replace(
        codes,
        type_code=header.type_code,
        format_code=_format_code(header, codes.format_code),
        confidentiality=header.confidentiality or codes.confidentiality,
        practice_setting=header.practice_setting or codes.practice_setting,
        facility_type=header.facility_type or codes.facility_type,
    )


def _refuse(message: str, code: str) -> MappingRejected:
    return MappingRejected(message, code=code, event=code.lower())


def passthrough_document(request: DocumentRequest, header: CdaHeader,
                         codes: DocumentCodes) -> ClinicalDocument:
    """The metadata of the received CDA (no PDF: the CDA bytes are the document)."""
    if header.problems:
        raise _refuse("Le CDA reçu serait refusé par le DMP : " + " ; ".join(header.problems)
                      + ". Corrigez-le dans le logiciel qui l'a produit.", "CDA_NOT_ACCEPTABLE")
    if header.unique_id is None or header.effective_time is None:
        raise _refuse("Le CDA reçu n'a pas d'identifiant (id/@root) ou de date "
                      "(effectiveTime).", "CDA_NOT_ACCEPTABLE")
    if header.unique_id_extension:
        raise _refuse(
            f"L'identifiant du CDA reçu a une extension ({header.unique_id}^"
            f"{header.unique_id_extension}) : le DMP attend un OID seul comme identifiant "
            "unique. Faites produire par le logiciel un id sans @extension.",
            "CDA_ID_EXTENSION")
    if header.related_document is not None:
        raise _refuse("Le remplacement d'un document (relatedDocument RPLC) par un CDA transmis "
                      "tel quel n'est pas encore pris en charge : faites-le depuis le DMP.",
                      "CDA_REPLACEMENT_UNSUPPORTED")
    if header.ins != request.patient.ins:
        raise _refuse("L'INS du CDA reçu diffère de celui du patient de la fiche (PID) : "
                      "vérifiez le patient dans le logiciel.", "CDA_PATIENT_MISMATCH")
    if header.author is None or header.author.rpps != request.author.rpps:
        raise _refuse("L'auteur du CDA reçu (RPPS) diffère de l'auteur de la fiche : vérifiez "
                      "l'auteur dans le logiciel.", "CDA_AUTHOR_MISMATCH")
    return ClinicalDocument(
        unique_id=header.unique_id,
        set_id=header.set_id or header.unique_id,
        version=header.version or 1,
        title=header.title or request.title,
        effective_time=header.effective_time,
        service_start=header.service_start or header.effective_time,
        service_stop=header.service_stop,
        patient=request.patient,
        author=request.author,
        codes=codes,
        pdf=b"",
        language=header.language or "fr-FR",
    )


def build_passthrough_package(
    request: DocumentRequest,
    cda: bytes,
    *,
    header: CdaHeader,
    codes: DocumentCodes,
    submission_id: uuid.UUID,
    signature_id: uuid.UUID,
    now: dt.datetime,
    source_id: str,
    certificate: SigningCertificate,
    sign: Callable[[bytes], bytes],
) -> Package:
    """The ITI-41 package of one received CDA, its bytes untouched, alone in its submission."""
    clinical = passthrough_document(request, header, codes)
    document = PackagedDocument(entry_id="Document01",
                                content_id=f"doc-{submission_id}@dmp-bridge",
                                cda=cda, clinical=clinical)
    submission_uid = oid_from_uuid(submission_id)
    unsigned = build_unsigned_xades(submission_unique_id=submission_uid,
                                    documents=[(clinical.unique_id, cda)],
                                    certificate=certificate, signing_time=now)
    signature_xml = unsigned.complete(sign(unsigned.signed_info_c14n()))
    signature = SignatureDocument(entry_id="Signature01",
                                  content_id=f"sig-{signature_id}@dmp-bridge",
                                  unique_id=oid_from_uuid(signature_id), xml=signature_xml)
    submission = Submission(
        unique_id=submission_uid, source_id=source_id, submission_time=now,
        author=request.author, patient=request.patient, documents=(document,),
        signature=signature, content_type=content_type(request.author), title=clinical.title)
    return Package(
        document_unique_id=clinical.unique_id,
        submission_unique_id=submission_uid,
        body=build_provide_and_register(submission),
        parts=((document.content_id, cda), (signature.content_id, signature_xml)),
        passthrough=True,
    )
