"""The business acknowledgment `ZAM^Z01^ZAM_Z01` ("accusé de réception DMP", ANS profile
CISIS_CDA_HL7_V2 2.1, profils-messages.md "Contraintes à appliquer au message ZAM^Z01").

A sender that set the MetaDMPMSS flag `ACK_RECEPTION = Y` on a document asks to be told, later,
what the DMP did with it. Once the outcome is final (registered: `Y`; refused for good: `N`), the
bridge sends back, over MLLP, to the sender's own listener:

    MSH|^~\\&|<our MSH-3/4 = its MSH-5/6>|<its MSH-3/4>|<now>||ZAM^Z01^ZAM_Z01|<id>|P|2.6|||||
        FRA|UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2
    EVN||<now>
    OBX|1|CWE|ACK_RECEPTION_DMP^Accusé de réception DMP^AckMetierZAM|<its MSH-10>|
        Y^<texte>^expandedYes-NoIndicator||||||F
    ERR|||207^Application internal error^messageErrorCondition|E|<code>^<code>^DMP_ERROR_CODE|||…
        (ERR only when N)

OBX-4 carries the MSH-10 of the message that brought the document (how the sender matches the
ZAM to it). The ANS example writes the ERR-5 coding system `DMPERRORCODE`, the profile's table
`DMP_ERROR_CODE`: we follow the profile's text. The French sentence for the user goes in
OBX-5.2 (success) and ERR-8 (failure); neither holds health data (job codes and reasons only).

Pure: the caller gives the time and the ZAM's own MSH-10. `ZamRequest` is what must be kept from
the reception (the original MSH) until the outcome is known; it is plain JSON for storage.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from bridge.hl7v2.ack import BRIDGE_APPLICATION
from bridge.hl7v2.errors import ERROR_LABELS, ErrorCode
from bridge.hl7v2.header import MessageHeader
from bridge.hl7v2.segments import escape

ACK_RECEPTION = "ACK_RECEPTION"  # the MetaDMPMSS flag that asks for a ZAM^Z01
ZAM_VERSION = "2.6"
ZAM_PROFILE = "2.1^CISIS_CDA_HL7_V2"
ZAM_CHARSETS = {"UNICODE UTF-8": "utf-8", "8859/15": "iso-8859-15"}  # the profile's two


@dataclass(frozen=True)
class ZamRequest:
    """What the ZAM needs from the original message (no health data: names of systems, ids)."""

    control_id: str  # its MSH-10 → our OBX-4
    sending_application: str  # its MSH-3 → our MSH-5
    sending_facility: str  # its MSH-4 → our MSH-6
    receiving_application: str  # its MSH-5 → our MSH-3
    receiving_facility: str  # its MSH-6 → our MSH-4
    processing_id: str  # its MSH-11 (P/T/D), echoed
    charset: str  # our MSH-18: its own when the profile allows it, else UNICODE UTF-8

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ZamRequest:
        data = json.loads(text)
        return cls(**{k: str(data.get(k, "")) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ZamOutcome:
    """The DMP's final word on the document."""

    received: bool  # True: registered in the DMP (Y); False: refused for good (N)
    code: str = ""  # the DMP's (or the bridge's) error code, for ERR-5.1
    message_fr: str = ""  # what happened, for the user


def zam_requested(flags: Mapping[str, bool]) -> bool:
    """True when the message's MetaDMPMSS flags ask for a reception acknowledgment."""
    return flags.get(ACK_RECEPTION) is True


def zam_request(header: MessageHeader) -> ZamRequest:
    charset = " ".join(header.charset_name.upper().split())
    return ZamRequest(
        control_id=header.control_id,
        sending_application=header.sending_application,
        sending_facility=header.sending_facility,
        receiving_application=header.receiving_application,
        receiving_facility=header.receiving_facility,
        processing_id=header.processing_id or "P",
        charset=charset if charset in ZAM_CHARSETS else "UNICODE UTF-8",
    )


def _timestamp(now: dt.datetime) -> str:
    return now.strftime("%Y%m%d%H%M%S%z") if now.tzinfo else now.strftime("%Y%m%d%H%M%S")


def build_zam(request: ZamRequest, outcome: ZamOutcome, *, now: dt.datetime,
              control_id: str) -> bytes:
    """The ZAM^Z01 bytes (without MLLP framing), in the request's charset."""
    ts = _timestamp(now)
    msh = "|".join([
        "MSH", "^~\\&", escape(request.receiving_application or BRIDGE_APPLICATION),
        escape(request.receiving_facility), escape(request.sending_application),
        escape(request.sending_facility), ts, "", "ZAM^Z01^ZAM_Z01", escape(control_id),
        escape(request.processing_id or "P"), ZAM_VERSION, "", "", "", "", "FRA",
        request.charset, "", "", ZAM_PROFILE])
    answer = "Y" if outcome.received else "N"
    text = outcome.message_fr or (
        "Document enregistré dans le DMP du patient." if outcome.received
        else "Le document n'a pas pu être enregistré dans le DMP.")
    obx = "|".join([
        "OBX", "1", "CWE", "ACK_RECEPTION_DMP^Accusé de réception DMP^AckMetierZAM",
        escape(request.control_id),
        f"{answer}^{escape(_short(text))}^expandedYes-NoIndicator",
        "", "", "", "", "", "F"])
    segments = [msh, f"EVN||{ts}", obx]
    if not outcome.received:
        code = escape(outcome.code or "ERREUR")
        segments.append("|".join([
            "ERR", "", "", f"207^{ERROR_LABELS[ErrorCode.APPLICATION]}^messageErrorCondition", "E",
            f"{code}^{code}^DMP_ERROR_CODE", "", "", escape(text)]))
    codec = ZAM_CHARSETS.get(request.charset, "utf-8")
    return ("\r".join(segments) + "\r").encode(codec, errors="replace")


def _short(text: str, limit: int = 199) -> str:
    """CWE-2 is a short text: the first sentence, cut at `limit` characters."""
    first = text.split(". ", maxsplit=1)[0].strip()
    return first if len(first) <= limit else first[: limit - 3] + "..."
