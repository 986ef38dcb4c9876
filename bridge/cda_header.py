"""Read the header of a CDA R2 document (N1 or N3) written by practice software.

Such a document is passed through to the DMP as it is: we never rewrite its bytes, so everything
the XDS metadata needs is read from its header (spec/dmp-protocol.md §4.2), and everything that
would make the DMP refuse it (the structuration minimale schematron 1.2.250.1.213.1.1.1.1, the
INS rules, the RPPS of the author) is listed in French in `CdaHeader.problems`. Only bytes that
are not a CDA at all raise `IntakeRejected`: a readable CDA with problems is a value the caller
can show, hold or dead-letter with the reason.

Decisions:

- Identity. A CDA carries the INS and its traits but never the identity status (QUAL, VALI…),
  which lives in the practice's référentiel. So the header holds `ins` (checked with
  `bridge.ins.parse_ins`) and `patient_traits` (INS + traits, no status), and `patient`
  (a `bridge.domain.Patient`) only when the caller passes the `identity_status` it knows; we
  never guess a status, not even a low one, because the identity gate's message would then lie.
- Times. A HL7 TS without a UTC offset is read as Europe/Paris wall-clock time: the software
  that writes it runs in France, and reading it as UTC would move the document by one or two
  hours. On a repeated autumn hour the first (summer-time) occurrence is taken, in the spring gap
  the winter offset (PEP 495 fold=0). Every returned datetime carries a fixed offset.
- Ids. `unique_id` is `id/@root` alone and must be an OID of at most 64 characters (XDS
  uniqueId); `id/@extension`, if any, is kept apart in `unique_id_extension`.
- Author. `author` is None when the first author has no RPPS (PS_IdNat "8" + 11 digits); other
  missing parts become empty strings and are listed in `problems`. The profession is the TRE_G15
  code of the specialty prefix ("G15_10/SM26" → "10"), empty for other specialties; the sector is
  the healthCareFacility code.

The parts are read by `bridge.cda_header_document` (ids, codes, body, main act…),
`bridge.cda_header_patient` and `bridge.cda_header_author`; this module checks the bytes are a
CDA and assembles the `CdaHeader`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from bridge.cda import NS_HL7
from bridge.cda_header_author import read_author
from bridge.cda_header_document import (
    check_presence,
    check_templates,
    read_body,
    read_document_codes,
    read_legal_authenticator,
    read_related_document,
    read_service_event,
    read_unique_id,
    read_version,
)
from bridge.cda_header_patient import PatientTraits, read_patient
from bridge.cda_header_xml import attr, find, find_all, read_time, required_coded, text_of
from bridge.domain import Author, Coded, IdentityStatus, Ins, Patient
from bridge.errors import IntakeRejected
from bridge.xmlsafe import DEFAULT_MAX_BYTES, UnsafeXmlError, parse_xml

__all__ = ["MAX_CDA_BYTES", "CdaHeader", "PatientTraits", "read_cda_header"]

MAX_CDA_BYTES = DEFAULT_MAX_BYTES  # 20 MiB: a CDA wrapping the largest PDF accepted in practice

_ROOT_TAG = f"{{{NS_HL7}}}ClinicalDocument"


@dataclass(frozen=True)
class CdaHeader:
    """What the DMP metadata needs from a received CDA, and why the DMP would refuse it."""

    unique_id: str | None  # id/@root: the XDS uniqueId
    unique_id_extension: str | None  # id/@extension, kept apart
    set_id: str | None  # setId/@root
    version: int | None
    title: str | None
    effective_time: dt.datetime | None  # aware; XDS creationTime
    type_code: Coded | None
    confidentiality: Coded | None
    language: str | None
    template_ids: tuple[str, ...]  # roots, in document order
    level: Literal[1, 3] | None  # 1 = nonXMLBody, 3 = structuredBody
    non_xml_media_type: str | None  # e.g. "application/pdf" for an N1
    ins: Ins | None  # a checked INS, None when absent or invalid
    patient_traits: PatientTraits | None
    patient: Patient | None  # only when the caller gave the identity status
    author: Author | None  # the first author; None without a RPPS
    practice_setting: Coded | None  # main serviceEvent performer standardIndustryClassCode
    facility_type: Coded | None  # healthCareFacility code
    service_start: dt.datetime | None
    service_stop: dt.datetime | None
    legal_authenticator: bool
    related_document: str | None  # parentDocument/id/@root of a relatedDocument RPLC
    problems: tuple[str, ...]  # in French; the DMP would refuse the document while non-empty

    @property
    def acceptable(self) -> bool:
        return not self.problems


def _parse(data: bytes, file_name: str) -> Any:
    if len(data) > MAX_CDA_BYTES:
        raise IntakeRejected(
            f"Le fichier {file_name} dépasse {MAX_CDA_BYTES // (1024 * 1024)} Mo, la taille "
            "maximale d'un document CDA : réduisez le PDF ou scindez le document.",
            code="CDA_UNREADABLE",
            event="cda_unreadable",
        )
    try:
        root = parse_xml(data, max_bytes=MAX_CDA_BYTES, huge_text=True)
    except UnsafeXmlError:
        raise IntakeRejected(
            f"Le fichier {file_name} n'est pas un document XML lisible : il est mal formé, ou "
            "contient une déclaration DOCTYPE, refusée par sécurité. Réexportez le document CDA "
            "depuis le logiciel.",
            code="CDA_UNREADABLE",
            event="cda_unreadable",
        ) from None
    if root.tag != _ROOT_TAG:
        raise IntakeRejected(
            f"Le fichier {file_name} n'est pas un document CDA R2 : l'élément racine doit être "
            f"ClinicalDocument dans l'espace de noms {NS_HL7}. Vérifiez le fichier exporté.",
            code="CDA_UNREADABLE",
            event="cda_unreadable",
        )
    return root


# ---------------------------------------------------------------------------------- entry point


def read_cda_header(
    data: bytes, *, file_name: str, identity_status: IdentityStatus | None = None
) -> CdaHeader:
    """Read a received CDA's header; raise IntakeRejected only when it is not a CDA at all."""
    root = _parse(data, file_name)
    problems: list[str] = []
    level, media_type = read_body(root, problems)
    templates = tuple(
        r for r in (attr(t, "root") for t in find_all(root, "templateId")) if r is not None
    )
    check_templates(templates, level, problems)
    unique_id, extension = read_unique_id(root, problems)
    type_code, confidentiality, language = read_document_codes(root, problems)
    check_presence(root, problems)
    effective_time = read_time(
        find(root, "effectiveTime"), "Date du document (effectiveTime)", problems, required=True
    )
    ins, traits = read_patient(root, problems)
    facility = required_coded(
        find(root, "componentOf/encompassingEncounter/location/healthCareFacility/code"),
        "Type de structure (healthCareFacility/code)",
        problems,
    )
    start, stop, setting = read_service_event(root, problems)
    return CdaHeader(
        unique_id=unique_id,
        unique_id_extension=extension,
        set_id=attr(find(root, "setId"), "root"),
        version=read_version(root, problems),
        title=text_of(find(root, "title")),
        effective_time=effective_time,
        type_code=type_code,
        confidentiality=confidentiality,
        language=language,
        template_ids=templates,
        level=level,
        non_xml_media_type=media_type,
        ins=ins,
        patient_traits=traits,
        patient=traits.with_status(identity_status) if traits and identity_status else None,
        author=read_author(root, facility.code if facility else "", problems),
        practice_setting=setting,
        facility_type=facility,
        service_start=start,
        service_stop=stop,
        legal_authenticator=read_legal_authenticator(root, problems),
        related_document=read_related_document(root),
        problems=tuple(problems),
    )
