"""The document carried by an OBX of type ED: a CDA R2 (the ANS profile) or a bare PDF.

OBX-5 (ED) = source^type^subtype^encoding^data. The type and subtype vary between senders
(`text^XML`, `TEXT^XML`, `application^pdf`, `AP^PDF`…), so the decoded bytes decide: `%PDF-`
is a PDF, `<` starts an XML document that must be a CDA R2, anything else is refused (the ANS
examples carry a placeholder sentence where the CDA should be: a correct receiver refuses it).

Error codes (ERR-3): undecodable base64, or bytes that are neither a CDA nor a PDF → 102 (data
type error); a CDA declaring a DOCTYPE (entity tricks, XXE) or a document over the size limit →
207 (refused by the application); a missing value → 101.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Literal

from bridge.cda_header import MAX_CDA_BYTES, CdaHeader, read_cda_header
from bridge.errors import IntakeRejected
from bridge.hl7v2.errors import ErrorCode, rejected
from bridge.hl7v2.segments import Delimiters, Segment, comp, repetitions
from bridge.pdf import MAX_PDF_BYTES, check_pdf
from bridge.xmlsafe import UnsafeXmlError, parse_xml

_WHERE_FR = "transmis en OBX-5"
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Content:
    """The decoded document and, for a CDA, its header."""

    kind: Literal["pdf", "cda"]
    data: bytes = field(repr=False)
    cda: CdaHeader | None = None


def _base64(obx: Segment, d: Delimiters) -> bytes:
    reps = repetitions(obx.field(5), d)
    if not reps:
        raise rejected("Le document (OBX-5) est vide.", ErrorCode.REQUIRED_FIELD, obx.at(5))
    if len(reps) > 1:
        raise rejected("OBX-5 ne doit contenir qu'un seul document.",
                       ErrorCode.CARDINALITY, obx.at(5))
    encoding = comp(reps[0], 4, d).upper()
    if encoding != "BASE64":
        raise rejected(
            f"Le document doit être encodé en Base64 (OBX-5.4), pas « {encoding or 'vide'} ».",
            ErrorCode.DATA_TYPE, obx.at(5, 4))
    text = "".join(comp(reps[0], 5, d).split())
    if not text:
        raise rejected("Le document (OBX-5.5) est vide.", ErrorCode.REQUIRED_FIELD, obx.at(5, 5))
    limit = max(MAX_CDA_BYTES, MAX_PDF_BYTES)
    if len(text) // 4 * 3 > limit:
        raise rejected(
            f"Le document dépasse {limit // (1024 * 1024)} Mo, la taille maximale acceptée : "
            "réduisez le PDF (numérisation en noir et blanc, 200 dpi).",
            ErrorCode.APPLICATION, obx.at(5, 5))
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise rejected(
            "Le document (OBX-5.5) n'est pas un Base64 valide : il a peut-être été tronqué. "
            "Renvoyez le message depuis le logiciel.",
            ErrorCode.DATA_TYPE, obx.at(5, 5)) from None


def read_content(obx: Segment, d: Delimiters) -> Content:
    """The document of one OBX; HL7Rejected with the profile's code when it is not usable."""
    value_type = comp(obx.field(2), 1, d).upper()
    if value_type != "ED":
        raise rejected(
            f"Le document doit être transmis dans un OBX de type ED (OBX-2), pas "
            f"« {value_type or 'vide'} » : les références (RP) ne sont pas prises en charge.",
            ErrorCode.DATA_TYPE, obx.at(2))
    data = _base64(obx, d)
    start = data[:1024].removeprefix(_UTF8_BOM).lstrip()
    if start.startswith(b"%PDF-"):
        try:
            check_pdf(data, file_name=_WHERE_FR)
        except IntakeRejected as exc:
            error = ErrorCode.APPLICATION if exc.code == "PDF_TOO_LARGE" else ErrorCode.DATA_TYPE
            raise rejected(exc.message_fr, error, obx.at(5, 5)) from None
        return Content("pdf", data)
    if start.startswith(b"<"):
        return Content("cda", data, _cda(data, obx))
    raise rejected(
        "Le contenu transmis en OBX-5 n'est ni un document CDA R2 ni un PDF : le logiciel a "
        "envoyé un texte à la place du document. Vérifiez l'export HL7 du logiciel.",
        ErrorCode.DATA_TYPE, obx.at(5, 5))


def _cda(data: bytes, obx: Segment) -> CdaHeader:
    try:
        return read_cda_header(data, file_name=_WHERE_FR)
    except IntakeRejected as exc:
        error = ErrorCode.DATA_TYPE
        try:
            parse_xml(data, max_bytes=MAX_CDA_BYTES, huge_text=True)
        except UnsafeXmlError as why:
            if "DOCTYPE" in why.reason or "too large" in why.reason:
                error = ErrorCode.APPLICATION  # readable, but refused by our security rules
        raise rejected(exc.message_fr, error, obx.at(5, 5)) from None
