"""Test factories: valid domain values for a nurse feeding a test patient's DMP.

Every factory takes keyword overrides (applied with `dataclasses.replace`), so a test states only
what it changes: `make_author(family_name="D'ARC & FILS")`. Codes are taken from the ANS value
sets (JDV_J01, J02, J04, J07, J08, J60) so the outputs also pass terminology checks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from bridge.cda import build_cda
from bridge.domain import (
    OID_AUTHOR_SPECIALTY,
    OID_CLASS,
    OID_CONFIDENTIALITY,
    OID_IHE_FORMAT,
    OID_LOINC,
    OID_PRACTICE_SETTING,
    OID_SECTOR,
    OID_VISIBILITY,
    Author,
    ClinicalDocument,
    Coded,
    DocumentCodes,
    IdentityStatus,
    Ins,
    InsOid,
    PackagedDocument,
    Patient,
    Sex,
    SignatureDocument,
    Submission,
)
from connectors.software_credentials import SoftwareCredentials
from service.test_pki import generate_test_pki

PARIS_WINTER = dt.timezone(dt.timedelta(hours=1), "CET")

# The ANS test INS of the reference CDA example (PAT-TROIS Dominique, born 1979-03-28 in 51215).
TEST_INS = "279035121518989"


def _tiny_pdf() -> bytes:
    """A minimal but well-formed PDF 1.4 (one empty A4 page) with a correct xref table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


TINY_PDF = _tiny_pdf()

NURSE_SPECIALTY = Coded("G15_60", "Infirmier", OID_AUTHOR_SPECIALTY)
TYPE_SOINS_INFIRMIERS = Coded(
    "11506-3", "CR ou fiche de suivi de soins par auxiliaire médical", OID_LOINC
)
CLASS_COMPTE_RENDU = Coded("10", "Compte rendu", OID_CLASS)
FORMAT_PDF = Coded(
    "urn:ihe:iti:xds-sd:pdf:2008", "Document à corps non structuré en Pdf/A-1", OID_IHE_FORMAT
)
PRACTICE_AMBULATOIRE = Coded("AMBULATOIRE", "Ambulatoire", OID_PRACTICE_SETTING)
FACILITY_CABINET = Coded("SA07", "Cabinet individuel", OID_SECTOR)
CONFIDENTIALITY_NORMAL = Coded("N", "Normal", OID_CONFIDENTIALITY)
MASQUE_PS = Coded("MASQUE_PS", "Masqué aux professionnels de santé", OID_VISIBILITY)
CONTENT_TYPE_CABINET = Coded("SA07", "Cabinet individuel", OID_SECTOR)


def make_author(**overrides: Any) -> Author:
    """A liberal nurse (RPPS 10101010101) in her individual practice.

    Her structure is the one of the test PKI's establishment certificates (`service.test_pki`,
    OU = Struct_IdNat), so the test credentials may send for her (`may_send_as`).
    """
    author = Author(
        rpps="10101010101",
        family_name="SOIGNANTE",
        given_name="Hélène",
        profession_code="60",
        specialty_code=NURSE_SPECIALTY.code,
        specialty_display=NURSE_SPECIALTY.display,
        structure_id="499700366240007",
        structure_name="Cabinet infirmier Soignante",
        sector_code="SA07",
    )
    return dataclasses.replace(author, **overrides)


def make_patient(**overrides: Any) -> Patient:
    """A qualified test identity (INS-NIR de test), the patient of the ANS reference example."""
    patient = Patient(
        ins=Ins(TEST_INS, InsOid.NIR_TEST),
        identity_status=IdentityStatus.QUAL,
        birth_family_name="PAT-TROIS",
        given_names=("DOMINIQUE", "MARIE-LOUISE"),
        birth_date=dt.date(1979, 3, 28),
        sex=Sex.F,
        birthplace_code="51215",
    )
    return dataclasses.replace(patient, **overrides)


def make_document_codes(**overrides: Any) -> DocumentCodes:
    """A nursing care report sent as a PDF in a CDA N1, normal confidentiality."""
    codes = DocumentCodes(
        type_code=TYPE_SOINS_INFIRMIERS,
        class_code=CLASS_COMPTE_RENDU,
        format_code=FORMAT_PDF,
        practice_setting=PRACTICE_AMBULATOIRE,
        facility_type=FACILITY_CABINET,
        confidentiality=CONFIDENTIALITY_NORMAL,
    )
    return dataclasses.replace(codes, **overrides)


def make_clinical_document(**overrides: Any) -> ClinicalDocument:
    """A one-page nursing report written on 2024-01-15 at 10:30 Paris time (09:30 UTC)."""
    author = overrides.pop("author", None) or make_author()
    patient = overrides.pop("patient", None) or make_patient()
    document = ClinicalDocument(
        unique_id="1.2.250.1.999.1.1.4242.1",
        set_id="1.2.250.1.999.1.1.4242.1.1",
        version=1,
        title="Compte rendu de soins infirmiers",
        effective_time=dt.datetime(2024, 1, 15, 10, 30, 0, tzinfo=PARIS_WINTER),
        service_start=dt.datetime(2024, 1, 15, 10, 0, 0, tzinfo=PARIS_WINTER),
        service_stop=dt.datetime(2024, 1, 15, 10, 20, 0, tzinfo=PARIS_WINTER),
        patient=patient,
        author=author,
        codes=make_document_codes(),
        pdf=TINY_PDF,
    )
    return dataclasses.replace(document, **overrides)


def make_packaged_document(**overrides: Any) -> PackagedDocument:
    """A clinical document with its CDA bytes built by `bridge.cda.build_cda`."""
    clinical = overrides.pop("clinical", None) or make_clinical_document()
    packaged = PackagedDocument(
        entry_id="Document01",
        content_id="doc01@dmp-bridge.test",
        cda=build_cda(clinical),
        clinical=clinical,
    )
    return dataclasses.replace(packaged, **overrides)


SIGNATURE_PLACEHOLDER = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="1.2.250.1.999.1.1.4242.3"/>'
)


def make_signature_document(**overrides: Any) -> SignatureDocument:
    """A stand-in for the XAdES document (its content does not matter to the metadata)."""
    signature = SignatureDocument(
        entry_id="Signature01",
        content_id="sig01@dmp-bridge.test",
        unique_id="1.2.250.1.999.1.1.4242.3",
        xml=SIGNATURE_PLACEHOLDER,
    )
    return dataclasses.replace(signature, **overrides)


def make_submission(**overrides: Any) -> Submission:
    """One submission set: the nurse, the test patient, one document and its signature."""
    author = overrides.pop("author", None) or make_author()
    patient = overrides.pop("patient", None) or make_patient()
    documents = overrides.pop("documents", None)
    if documents is None:
        clinical = make_clinical_document(author=author, patient=patient)
        documents = (make_packaged_document(clinical=clinical),)
    submission = Submission(
        unique_id="1.2.250.1.999.1.1.4242.2",
        source_id="1.2.250.1.999.1.1",
        submission_time=dt.datetime(2024, 1, 15, 10, 35, 0, tzinfo=PARIS_WINTER),
        author=author,
        patient=patient,
        documents=tuple(documents),
        signature=make_signature_document(),
        content_type=CONTENT_TYPE_CABINET,
        title="Soins infirmiers du 15/01/2024",
    )
    return dataclasses.replace(submission, **overrides)


# ---------------------------------------------------------------- borders: sidecars, credentials


def make_sidecar_dict() -> dict[str, Any]:
    """A complete, valid sidecar (bridge.sidecar format) for the nurse and the test patient.

    Returns a fresh nested dict each time, so a test may change or delete any key in place.
    """
    return {
        "patient": {
            "ins": TEST_INS,
            "ins_oid": "1.2.250.1.213.1.4.10",
            "identity_status": "QUAL",
            "birth_family_name": "PAT-TROIS",
            "given_names": ["DOMINIQUE", "MARIE-LOUISE"],
            "used_family_name": None,
            "birth_date": "1979-03-28",
            "sex": "F",
            "birthplace_code": "51215",
        },
        "document": {
            "kind": "cr-soins-infirmiers",
            "title": "Compte rendu de soins infirmiers",
            "date": "2024-01-15T10:30:00+01:00",
        },
        "author": {
            "rpps": "10101010101",
            "family_name": "SOIGNANTE",
            "given_name": "Hélène",
            "profession": "60",
            "specialty": None,
            "structure_id": "499700366240007",
            "structure_name": "Cabinet infirmier Soignante",
            "sector": "SA07",
        },
    }


def make_software_credentials(directory: Path) -> SoftwareCredentials:
    """Establishment credentials (ORG AUTH_CLI + ORG SIGN) from a test PKI made in `directory`."""
    pki = generate_test_pki(directory)
    return SoftwareCredentials(
        tls_cert=pki.org_auth.cert, tls_key=pki.org_auth.key,
        sign_cert=pki.org_sign.cert, sign_key=pki.org_sign.key,
        server_ca=pki.ca_cert,
    )
