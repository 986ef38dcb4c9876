"""Which DMP codes a document gets, from its kind and its author (built-in mapping for now)."""

from __future__ import annotations

from bridge.domain import (
    OID_CLASS,
    OID_CONFIDENTIALITY,
    OID_IHE_FORMAT,
    OID_LOINC,
    OID_PRACTICE_SETTING,
    OID_SECTOR,
    Author,
    Coded,
    DocumentCodes,
)
from bridge.errors import MappingRejected
from mappings.builtin import DOCUMENT_KINDS, FORMAT_PDF_IN_CDA, PRACTICE_SETTING_AMBULATORY, SECTORS


def document_codes(kind_key: str, author: Author) -> DocumentCodes:
    """The XDS classification of a PDF of this kind written by this author."""
    kind = DOCUMENT_KINDS.get(kind_key)
    if kind is None:
        raise MappingRejected(
            f"Le type de document « {kind_key} » n'est pas connu de dmp-bridge.",
            code="KIND_UNKNOWN",
            event="document_kind_unknown",
        )
    sector = SECTORS.get(author.sector_code)
    if sector is None:
        raise MappingRejected(
            f"Le secteur d'activité « {author.sector_code} » n'est pas connu.",
            code="SECTOR_UNKNOWN",
            event="sector_unknown",
        )
    return DocumentCodes(
        type_code=Coded(kind.type_code, kind.type_display, OID_LOINC),
        class_code=Coded(kind.class_code, kind.class_display, OID_CLASS),
        format_code=Coded(*FORMAT_PDF_IN_CDA, OID_IHE_FORMAT),
        practice_setting=Coded(*PRACTICE_SETTING_AMBULATORY, OID_PRACTICE_SETTING),
        facility_type=Coded(author.sector_code, sector, OID_SECTOR),
        confidentiality=Coded("N", "Normal", OID_CONFIDENTIALITY),
    )


def content_type(author: Author) -> Coded:
    """The submission set's contentTypeCode (JDV_J59): the author's activity sector (TRE_R02)."""
    return Coded(
        author.sector_code, SECTORS.get(author.sector_code, author.sector_code), OID_SECTOR
    )
