"""One HL7 v2 message of the ANS profile CISIS_CDA_HL7_V2 → what the queue needs.

Accepted: MDM^T02/T10/T04 (HL7 2.6; the profile's 2.0 variant without ORC/OBR too) and
ORU^R01 (HL7 2.5), with PRT segments, one document OBX of type ED (CDA R2, or a bare PDF as some
senders do), the MetaDMPMSS flags. The result is an `HL7Document` whose `sidecar_json` is exactly
the export-folder sidecar (bridge.sidecar), so the queue treats both channels alike.

Checks, in the order a sender would fix them: MSH (type 200, event 201, processing id 202,
version 203, MSH-10 101, charset 103/199), structure (PID and document OBX 100, cardinality 198),
action consistency (trigger / ORC-1 / OBX-11, 103), the document (101/102/207), the patient
(101/102/103, 903/904/905), the author (101/102/103), the dates (102), the flags (103).

Decisions:
- ORU with two documents (CDA N1 + N3 of the same content): the first is taken.
- DESTDMP=N: the message does not ask for the DMP, the only destination of this bridge → 207.
- The flags, the action (replace/delete) and the replaced document id are not part of the
  sidecar format: they are returned beside it (`flags`, `action`, `replaces_id`).
- The author's activity sector has no HL7 v2 field: the sidecar always states it, from an
  embedded CDA's author, else from the caller's `author_sector` (SA07 by default).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from bridge.cda_header import CdaHeader
from bridge.classify import find_row
from bridge.errors import BridgeError
from bridge.hl7_time import parse_hl7_ts
from bridge.hl7v2.content import read_content
from bridge.hl7v2.errors import ErrorCode, HL7Rejected, Location, rejected
from bridge.hl7v2.header import MessageHeader, decode_message, read_header
from bridge.hl7v2.people import DEFAULT_SECTOR, read_author, read_patient
from bridge.hl7v2.segments import Delimiters, Segment, split_segments, value
from bridge.sidecar import DocumentRequest, parse_sidecar
from mappings.matrix import Matrix


class Action(StrEnum):
    """What the sender asks for the document."""

    INITIAL = "initial"  # MDM^T02, ORC-1 NW, OBX-11 F
    REPLACE = "replace"  # MDM^T10, ORC-1 RO, OBX-11 C
    DELETE = "delete"  # MDM^T04, ORC-1 CA, OBX-11 D


_EVENTS = {("MDM", "T02"): Action.INITIAL, ("MDM", "T10"): Action.REPLACE,
           ("MDM", "T04"): Action.DELETE, ("ORU", "R01"): None}
_ORC = {"NW": Action.INITIAL, "RO": Action.REPLACE, "CA": Action.DELETE}
_OBX11 = {"F": Action.INITIAL, "C": Action.REPLACE, "D": Action.DELETE}
VERSIONS = frozenset({"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8"})
PROCESSING_IDS = frozenset({"P", "T", "D"})
META = "METADMPMSS"
SIDECAR_NAME = "message HL7"


@dataclass(frozen=True)
class HL7Document:
    """A message accepted for the queue: the document, its sidecar, and what the sidecar lacks."""

    kind: Literal["pdf", "cda"]
    content: bytes = field(repr=False)
    sidecar_json: bytes = field(repr=False)  # the bridge.sidecar format, UTF-8
    header: MessageHeader
    action: Action = Action.INITIAL
    replaces_id: str | None = None  # TXA-13 or the CDA's relatedDocument, for a replace/delete
    document_id: str | None = None  # TXA-12 (= the CDA id)
    flags: Mapping[str, bool] = field(default_factory=dict)  # MetaDMPMSS: MASQUE_PS=False…
    request: DocumentRequest | None = field(default=None, repr=False)  # the parsed sidecar


def _check_header(h: MessageHeader) -> None:
    where = Location("MSH", 1, 9)
    if h.message_type not in {"MDM", "ORU"}:
        raise rejected(
            f"Type de message « {h.message_type or 'vide'} » non pris en charge (MSH-9) : "
            "seuls MDM et ORU transmettent un document.",
            ErrorCode.MESSAGE_TYPE, where, resend=True)
    if (h.message_type, h.trigger_event) not in _EVENTS:
        raise rejected(
            f"Événement {h.message_type}^{h.trigger_event or '?'} non pris en charge (MSH-9) : "
            "attendu MDM^T02, MDM^T10, MDM^T04 ou ORU^R01.",
            ErrorCode.EVENT, Location("MSH", 1, 9, 2), resend=True)
    check_envelope(h, expected_versions="2.5 (ORU) ou 2.6 (MDM)")


def check_envelope(h: MessageHeader, *, expected_versions: str) -> None:
    """MSH-10, MSH-11 and MSH-12, as every message type needs them."""
    if not h.control_id:
        raise rejected("L'identifiant du message (MSH-10) est vide.",
                       ErrorCode.REQUIRED_FIELD, Location("MSH", 1, 10))
    if h.processing_id not in PROCESSING_IDS:
        raise rejected(
            f"Code de traitement « {h.processing_id or 'vide'} » non pris en charge (MSH-11) : "
            "attendu P (production), T (test) ou D.",
            ErrorCode.PROCESSING_ID, Location("MSH", 1, 11), resend=True)
    if h.version not in VERSIONS:
        raise rejected(
            f"Version HL7 « {h.version or 'vide'} » non prise en charge (MSH-12) : attendu "
            f"{expected_versions}.",
            ErrorCode.VERSION, Location("MSH", 1, 12), resend=True)


def _is_meta(obx: Segment, d: Delimiters) -> bool:
    return value(obx, 3, d, 3).upper() == META


def _document_obx(segments: list[Segment], h: MessageHeader, d: Delimiters) -> Segment:
    docs = [s for s in segments if s.name == "OBX" and not _is_meta(s, d)
            and value(s, 2, d).upper() in {"ED", "RP"}]
    if not docs:
        raise rejected("Le message ne contient pas de document (OBX de type ED).",
                       ErrorCode.SEGMENT_SEQUENCE, Location("OBX"))
    limit = 1 if h.message_type == "MDM" else 2
    if len(docs) > limit:
        raise rejected(
            f"Un message {h.message_type} transmet au plus {limit} document(s) ; celui-ci en "
            f"contient {len(docs)}.", ErrorCode.CARDINALITY, docs[limit].at(5))
    return docs[0]


def _action(h: MessageHeader, orc: Segment | None, obx: Segment, d: Delimiters) -> Action:
    action = _EVENTS[(h.message_type, h.trigger_event)]
    order = value(orc, 1, d).upper()
    if order:
        if order not in _ORC:
            raise rejected(f"Demande « {order} » inconnue (ORC-1) : attendu NW, RO ou CA.",
                           ErrorCode.TABLE_VALUE, orc.at(1) if orc else None)
        if action is not None and _ORC[order] != action:
            raise rejected(f"ORC-1 « {order} » ne correspond pas à l'événement "
                           f"{h.trigger_event} (MSH-9).", ErrorCode.TABLE_VALUE,
                           orc.at(1) if orc else None)
        action = _ORC[order]
    status = value(obx, 11, d).upper()
    if status:
        if status not in _OBX11:
            raise rejected(f"Statut « {status} » du document inconnu (OBX-11) : attendu F, C "
                           "ou D.", ErrorCode.TABLE_VALUE, obx.at(11))
        if action is not None and _OBX11[status] != action:
            raise rejected(f"Le statut du document OBX-11 « {status} » ne correspond pas à la "
                           "demande (MSH-9 / ORC-1).", ErrorCode.TABLE_VALUE, obx.at(11))
        action = _OBX11[status]
    return action or Action.INITIAL


# MetaDMPMSS flag → TRE_A07 visibility code (the profile abbreviates the third one).
VISIBILITY_FLAGS = {
    "MASQUE_PS": "MASQUE_PS",
    "INVISIBLE_PATIENT": "INVISIBLE_PATIENT",
    "INVISIBLE_REP_LEGAUX": "INVISIBLE_REPRESENTANTS_LEGAUX",
}


def _flags(segments: list[Segment], d: Delimiters) -> dict[str, bool]:
    flags: dict[str, bool] = {}
    for obx in segments:
        if obx.name != "OBX" or not _is_meta(obx, d) or value(obx, 2, d).upper() == "ED":
            continue
        code, answer = value(obx, 3, d).upper(), value(obx, 5, d).upper()
        if answer not in {"Y", "N"}:
            raise rejected(f"Valeur « {answer} » invalide pour {code} (OBX-5) : attendu Y ou N.",
                           ErrorCode.TABLE_VALUE, obx.at(5))
        flags[code] = answer == "Y"
    if flags.get("DESTDMP") is False:
        raise rejected(
            "Ce message ne demande pas l'envoi au DMP (DESTDMP = N) ; dmp-bridge n'envoie "
            "qu'au DMP : il n'a rien fait de ce message.", ErrorCode.APPLICATION, Location("OBX"))
    return flags


def _timestamp(raw: str, where: Location) -> str:
    try:
        return parse_hl7_ts(raw).isoformat()
    except ValueError:
        raise rejected(f"Date « {raw} » invalide : format attendu AAAAMMJJHHMM[SS].",
                       ErrorCode.DATA_TYPE, where) from None


def _document_date(segs: dict[str, Segment], h: MessageHeader, cda: CdaHeader | None) -> str:
    d = h.delimiters
    for name, n in (("TXA", 4), ("OBR", 7)):
        raw = value(segs.get(name), n, d)
        if raw:
            return _timestamp(raw, Location(name, 1, n))
    if cda is not None and cda.effective_time is not None:
        return cda.effective_time.isoformat()
    raw = value(segs.get("MSH"), 7, d)
    if not raw:
        raise rejected("La date du document est absente (TXA-4, OBR-7 ou MSH-7).",
                       ErrorCode.REQUIRED_FIELD, Location("TXA", 1, 4))
    return _timestamp(raw, Location("MSH", 1, 7))


def _document(segs: dict[str, Segment], obx: Segment, h: MessageHeader,
              cda: CdaHeader | None) -> dict[str, str]:
    d = h.delimiters
    txa, obr = segs.get("TXA"), segs.get("OBR")
    kind = (value(obx, 3, d) or value(txa, 2, d) or value(obr, 4, d)
            or (cda.type_code.code if cda is not None and cda.type_code else ""))
    if not kind:
        raise rejected("Le type du document (code LOINC en OBX-3) est absent.",
                       ErrorCode.REQUIRED_FIELD, obx.at(3))
    title = (value(obx, 3, d, 2) or value(txa, 2, d, 2) or value(obr, 4, d, 2)
             or (cda.title if cda is not None and cda.title else "") or kind)
    return {"kind": kind, "title": " ".join(title.split())[:200],
            "date": _document_date(segs, h, cda)}


def parse_message(data: bytes, *, matrix: Matrix | None = None,
                  author_sector: str = DEFAULT_SECTOR) -> HL7Document:
    """The document of one message, or HL7Rejected with the ACK's code and French reason.

    With a matrix, the document kind must be one the matrix knows for the author (as for the
    export folder): the sender hears it at once, in the ACK. `author_sector` is the author's
    activity sector (TRE_R02) HL7 v2 cannot carry: the channel's configuration gives it (an
    embedded CDA's own author sector wins).
    """
    header = read_header(data)
    _check_header(header)
    d = header.delimiters
    segments = split_segments(decode_message(data, header), d)
    segs = {s.name: s for s in reversed(segments)}  # the first of each name
    if "PID" not in segs:
        raise rejected("Le segment PID (patient) est absent.", ErrorCode.SEGMENT_SEQUENCE,
                       Location("PID"))
    if header.message_type == "MDM" and "TXA" not in segs:
        raise rejected("Le segment TXA (en-tête du document) est absent.",
                       ErrorCode.SEGMENT_SEQUENCE, Location("TXA"))
    obx = _document_obx(segments, header, d)
    action = _action(header, segs.get("ORC"), obx, d)
    content = read_content(obx, d)
    cda = content.cda
    replaces = value(segs.get("TXA"), 13, d) or (cda.related_document if cda else None)
    if action is not Action.INITIAL and not replaces:
        raise rejected("L'identifiant du document remplacé ou supprimé (TXA-13) est absent.",
                       ErrorCode.REQUIRED_FIELD, Location("TXA", 1, 13))
    flags = _flags(segments, d)
    document: dict[str, object] = dict(_document(segs, obx, header, cda))
    # The restrictions the professional set (MetaDMPMSS …=Y) travel with the document.
    visibility = [VISIBILITY_FLAGS[code] for code, on in flags.items()
                  if on and code in VISIBILITY_FLAGS]
    if visibility:
        document["visibility"] = visibility
    sidecar = {
        "patient": read_patient(segs["PID"], d, cda),
        "document": document,
        "author": read_author(segments, d, cda, sector=author_sector),
    }
    sidecar_json = json.dumps(sidecar, ensure_ascii=False, indent=1).encode("utf-8")
    request = _validate(sidecar_json, obx, matrix)
    return HL7Document(
        kind=content.kind, content=content.data, sidecar_json=sidecar_json, header=header,
        action=action, replaces_id=replaces or None,
        document_id=value(segs.get("TXA"), 12, d) or (cda.unique_id if cda else None),
        flags=flags, request=request)


def _validate(sidecar_json: bytes, obx: Segment, matrix: Matrix | None) -> DocumentRequest:
    """The sidecar must pass the folder's own check; its refusal becomes an HL7 code."""
    try:
        request = parse_sidecar(sidecar_json, file_name=SIDECAR_NAME)
        if matrix is not None:
            find_row(matrix, request.author, request.kind)
    except HL7Rejected:
        raise
    except BridgeError as exc:
        table = exc.code in {"PROFESSION_UNKNOWN", "SPECIALTY_UNKNOWN", "SECTOR_UNKNOWN",
                             "KIND_UNKNOWN", "MATRIX_NO_CATEGORY", "INS_OID"}
        where = obx.at(3) if exc.code.startswith(("KIND", "MATRIX")) else None
        raise rejected(exc.message_fr, ErrorCode.TABLE_VALUE if table else ErrorCode.DATA_TYPE,
                       where) from None
    return request
