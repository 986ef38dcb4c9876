"""The MSH segment: who sent the message, what it is, how to answer, and its charset (MSH-18).

`read_header` works on raw bytes and is the one step that must succeed for an ACK to echo
MSH-10: the MSH segment is ASCII in every charset the profile allows, so it is read as Latin-1
before the message's own charset is known. `decode_message` then decodes the whole message
strictly in the declared charset.

Charsets (MSH-18, HL7 table 0211): `UNICODE UTF-8`, `8859/1`, `8859/15` (the ANS profile's
examples use UTF-8 and 8859/15) and `ASCII`. An empty MSH-18 means ASCII in HL7, but French
practice software that leaves it empty writes UTF-8 or Latin-9: we read such a message as UTF-8
when its bytes are valid UTF-8, else as 8859/15, and answer in the same charset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bridge.hl7v2.errors import ErrorCode, HL7Rejected, Location, rejected
from bridge.hl7v2.segments import (
    Delimiters,
    comp,
    read_delimiters,
    recode,
    repetitions,
    split_segments,
)

CHARSETS: dict[str, str] = {
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",  # seen in the wild
    "8859/1": "iso-8859-1",
    "8859/15": "iso-8859-15",
    "ASCII": "ascii",
}
DEFAULT_CHARSETS = ("utf-8", "iso-8859-15")  # MSH-18 empty: the first that decodes


@dataclass(frozen=True)
class MessageHeader:
    """What the MSH says, unescaped; `raw_*` keep the fields as sent, for the ACK."""

    delimiters: Delimiters
    sending_application: str  # MSH-3.1
    sending_facility: str  # MSH-4.1
    receiving_application: str  # MSH-5.1
    receiving_facility: str  # MSH-6.1
    message_type: str  # MSH-9.1
    trigger_event: str  # MSH-9.2
    control_id: str  # MSH-10
    processing_id: str  # MSH-11.1
    version: str  # MSH-12.1
    accept_ack: str  # MSH-15: AL, NE, ER, SU, or '' (original mode)
    application_ack: str  # MSH-16
    country: str  # MSH-17
    charset_name: str  # MSH-18 first repetition, as sent ('' when absent)
    profile: str  # MSH-21.1 (e.g. "2.1" for CISIS_CDA_HL7_V2 2.1)
    raw_msh: tuple[str, ...]  # MSH fields re-written with standard delimiters (index = MSH-n)

    @property
    def enhanced(self) -> bool:
        """Enhanced acknowledgment mode: the sender set MSH-15 or MSH-16."""
        return bool(self.accept_ack or self.application_ack)

    @property
    def sender(self) -> str:
        """`application/facility`: names, never health data."""
        return f"{self.sending_application}/{self.sending_facility}"

    def raw(self, n: int) -> str:
        return self.raw_msh[n] if 0 < n < len(self.raw_msh) else ""


def _first_line(data: bytes) -> str:
    cut = len(data)
    for terminator in (b"\r", b"\n"):
        index = data.find(terminator)
        if 0 <= index < cut:
            cut = index
    return data[: min(cut, 65536)].decode("latin-1")


def read_header(data: bytes) -> MessageHeader:
    """The MSH of a message; raises HL7Rejected only when there is no readable MSH."""
    line = _first_line(data.lstrip(b"\r\n\t \x0b"))
    d = read_delimiters(line)
    msh = split_segments(line, d)[0]

    def first(n: int, component: int = 1) -> str:
        reps = repetitions(msh.field(n), d)
        return comp(reps[0], component, d) if reps else ""

    raw = tuple(["MSH", "|", "^~\\&"] + [recode(f, d) for f in msh.fields[3:]])
    return MessageHeader(
        delimiters=d,
        sending_application=first(3),
        sending_facility=first(4),
        receiving_application=first(5),
        receiving_facility=first(6),
        message_type=first(9, 1).upper(),
        trigger_event=first(9, 2).upper(),
        control_id=first(10),
        processing_id=first(11).upper(),
        version=first(12),
        accept_ack=first(15).upper(),
        application_ack=first(16).upper(),
        country=first(17),
        charset_name=first(18),
        profile=first(21),
        raw_msh=raw,
    )


def codec_of(header: MessageHeader) -> str | None:
    """The Python codec for MSH-18; None when MSH-18 is empty (guess), HL7Rejected if unknown."""
    name = " ".join(header.charset_name.upper().split())
    if not name:
        return None
    codec = CHARSETS.get(name)
    if codec is None:
        raise rejected(
            f"Le jeu de caractères « {header.charset_name} » (MSH-18) n'est pas pris en charge : "
            "utilisez UNICODE UTF-8, 8859/1 ou 8859/15.",
            ErrorCode.TABLE_VALUE, Location("MSH", 1, 18))
    return codec


def answer_codec(header: MessageHeader | None, data: bytes = b"") -> str:
    """The codec of the ACK: the message's own (UTF-8 when unknown or not supported)."""
    if header is None:
        return "utf-8"
    try:
        codec = codec_of(header)
    except HL7Rejected:  # a charset we do not know: answer in UTF-8, and say so in MSH-18
        return "utf-8"
    return codec or guess_codec(data)


def guess_codec(data: bytes) -> str:
    for codec in DEFAULT_CHARSETS:
        try:
            data.decode(codec)
        except UnicodeDecodeError:
            continue
        return codec
    return DEFAULT_CHARSETS[-1]  # 8859/15 decodes any byte string


def decode_message(data: bytes, header: MessageHeader) -> str:
    """The whole message as text, decoded strictly in its declared charset."""
    codec = codec_of(header) or guess_codec(data)
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise rejected(
            f"Le message contient des octets invalides pour le jeu de caractères déclaré "
            f"« {header.charset_name or codec} » (MSH-18), à la position {exc.start} : "
            "corrigez MSH-18 ou l'encodage du message dans le logiciel.",
            ErrorCode.OTHER, Location("MSH", 1, 18)) from None


def idempotency_key(header: MessageHeader) -> str:
    """Same sender (MSH-3 + MSH-4) and same MSH-10 → same key → one job."""
    parts = ("mllp", header.sending_application, header.sending_facility, header.control_id)
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def source_ref(header: MessageHeader) -> str:
    """`MSH-10@application/facility` (no health data), for the job list and the logs."""
    return f"{header.control_id}@{header.sender}"[:200]
