"""The technical acknowledgment (ACK) of a received message (spec B.1.2).

Original mode (MSH-15 and MSH-16 empty): AA, AE or AR, always sent. Enhanced mode (the sender
set MSH-15 or MSH-16): commit acks CA, CE or CR, sent as MSH-15 asks — AL always (also when
empty), NE never, ER only on error, SU only on success. Application acks of enhanced mode are
not sent: the bridge tells the outcome of the DMP submission elsewhere.

MSA-2 echoes MSH-10; on an error, one ERR segment carries ERR-2 (location), ERR-3 (HL7 0357
code), ERR-4 (severity E), ERR-5 (the profile's 900–905 code, when there is one) and ERR-8 (the
French message for the user). The ACK keeps the message's MSH-11, MSH-12, MSH-17 and MSH-18, and
is encoded in the message's charset. Pure: the caller gives the time and the ACK's own MSH-10.
"""

from __future__ import annotations

import datetime as dt

from bridge.hl7v2.errors import (
    APP_LABELS,
    ERROR_LABELS,
    AckCode,
    HL7Rejected,
)
from bridge.hl7v2.header import CHARSETS, MessageHeader, answer_codec
from bridge.hl7v2.segments import escape

BRIDGE_APPLICATION = "DMP-BRIDGE"
DEFAULT_VERSION = "2.5"
_ENHANCED = {AckCode.AA: AckCode.CA, AckCode.AE: AckCode.CE, AckCode.AR: AckCode.CR}


def ack_code(header: MessageHeader | None, rejection: HL7Rejected | None) -> AckCode:
    """MSA-1 for this outcome, in the mode the sender asked for."""
    code = AckCode.AA if rejection is None else rejection.ack_code
    return _ENHANCED[code] if header is not None and header.enhanced else code


def ack_wanted(header: MessageHeader | None, rejection: HL7Rejected | None) -> bool:
    """False when enhanced-mode MSH-15 says this outcome gets no accept ack."""
    if header is None or not header.enhanced:
        return True
    mode = header.accept_ack or "AL"
    if mode == "NE":
        return False
    if mode == "ER":
        return rejection is not None
    if mode == "SU":
        return rejection is None
    return True


def _timestamp(now: dt.datetime) -> str:
    return now.strftime("%Y%m%d%H%M%S%z") if now.tzinfo else now.strftime("%Y%m%d%H%M%S")


def build_ack(
    header: MessageHeader | None,
    rejection: HL7Rejected | None,
    *,
    now: dt.datetime,
    control_id: str,
    data: bytes = b"",
) -> bytes | None:
    """The ACK bytes (without MLLP framing), or None when the sender asked for none.

    `header` is None when the message had no readable MSH: the ACK then has an empty MSA-2.
    `data` is the received message, used to pick the answer's charset when MSH-18 is empty.
    """
    if not ack_wanted(header, rejection):
        return None
    codec = answer_codec(header, data)
    if header is None:
        msh = ["MSH", "^~\\&", BRIDGE_APPLICATION, "", "", "", _timestamp(now), "", "ACK",
               escape(control_id), "P", DEFAULT_VERSION, "", "", "", "", "", "UNICODE UTF-8"]
        echo = ""
    else:
        charset = header.raw(18)
        if charset and " ".join(header.charset_name.upper().split()) not in CHARSETS:
            charset = "UNICODE UTF-8"  # we could not answer in a charset we do not know
        event = header.raw(9).split("^")[1] if "^" in header.raw(9) else ""
        msh = [
            "MSH", "^~\\&",
            header.raw(5) or BRIDGE_APPLICATION, header.raw(6), header.raw(3), header.raw(4),
            _timestamp(now), "", f"ACK^{event}^ACK" if event else "ACK", escape(control_id),
            header.raw(11) or "P", header.raw(12) or DEFAULT_VERSION,
            "", "", "", "", header.raw(17), charset,
        ]
        echo = header.raw(10)
    while msh and msh[-1] == "":
        msh.pop()
    segments = ["MSH|" + "|".join(msh[1:]), f"MSA|{ack_code(header, rejection)}|{echo}"]
    if rejection is not None:
        segments.append(_err(rejection))
    return ("\r".join(segments) + "\r").encode(codec, errors="replace")


def _err(rejection: HL7Rejected) -> str:
    error = f"{int(rejection.error)}^{ERROR_LABELS[rejection.error]}^messageErrorCondition"
    app = ""
    if rejection.app_code is not None:
        label = escape(APP_LABELS[rejection.app_code])
        app = f"{int(rejection.app_code)}^{label}^applicationErrorCondition"
    where = rejection.location.erl() if rejection.location else ""
    return "|".join(["ERR", "", where, error, "E", app, "", "", escape(rejection.message_fr)])
