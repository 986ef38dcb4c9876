"""Generic HL7 v2 ER7 parsing: segments, fields, repetitions, components, escapes.

Version-free on purpose (spec §D): the ANS profile puts PRT (HL7 2.7+) in 2.5/2.6 messages and
its 2.0 variant has MDM without ORC/OBR, which version-bound models refuse. Nothing here knows
what a segment means; `bridge.hl7v2.message` does.

Tolerance: segments may end with CR, LF or CRLF (the ANS sample files use LF). A line that does
not start like a segment (three letters or digits, then the field separator) continues the
previous one: some senders wrap long base64 values across lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridge.hl7v2.errors import ErrorCode, Location, rejected


@dataclass(frozen=True)
class Delimiters:
    """MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    def msh2(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


STANDARD = Delimiters()
_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")


def read_delimiters(first_line: str) -> Delimiters:
    """The delimiters declared at the start of MSH; HL7Rejected(100) when there is no MSH."""
    where = Location("MSH", 1, 2)
    if not first_line.startswith("MSH") or len(first_line) < 5:
        raise rejected(
            "Le message ne commence pas par un segment MSH : ce n'est pas un message HL7 v2.",
            ErrorCode.SEGMENT_SEQUENCE, Location("MSH"))
    sep = first_line[3]
    end = first_line.find(sep, 4)
    chars = first_line[4:end] if end >= 0 else first_line[4:]
    if sep.isalnum() or sep.isspace() or not 2 <= len(chars) <= 5:
        raise rejected("Les séparateurs déclarés dans MSH-1 et MSH-2 sont invalides.",
                       ErrorCode.DATA_TYPE, where)
    defaults = STANDARD.msh2()
    chars = chars[:4] + defaults[len(chars):]  # MSH-2 may omit trailing ones; 2.7 adds '#'
    all_chars = sep + chars[:4]
    if len(set(all_chars)) != 5 or any(c.isalnum() or c.isspace() for c in all_chars):
        raise rejected("Les séparateurs déclarés dans MSH-1 et MSH-2 sont invalides.",
                       ErrorCode.DATA_TYPE, where)
    return Delimiters(sep, chars[0], chars[1], chars[2], chars[3])


@dataclass(frozen=True)
class Segment:
    """One segment; `field(n)` is HL7 field n, raw (still escaped)."""

    name: str
    fields: tuple[str, ...]  # fields[0] is the name; for MSH, fields[1] is MSH-1
    sequence: int  # occurrence of this segment name in the message, from 1

    def field(self, n: int) -> str:
        return self.fields[n] if 0 < n < len(self.fields) else ""

    def at(self, n: int, component: int = 0) -> Location:
        return Location(self.name, self.sequence, n, component)


def split_segments(text: str, delims: Delimiters) -> list[Segment]:
    """All segments of a decoded message, in order.

    Linear in the size of the message: the pieces of a wrapped segment are collected and joined
    once (appending to a growing string made a line of 600 000 pieces take seconds).
    """
    pieces: list[list[str]] = []  # each segment's first line, then its wrapped continuations
    for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r"):
        if not line.strip():
            continue
        name = line[:3]
        if (len(line) == 3 or line[3:4] == delims.field) and _SEGMENT_NAME.match(name):
            pieces.append([line])
        elif pieces:
            pieces[-1].append(line.strip())  # a wrapped value (base64 cut into lines)
        else:
            pieces.append([line])
    counts: dict[str, int] = {}
    segments = []
    for line in map("".join, pieces):
        parts = line.split(delims.field)
        name = parts[0]
        counts[name] = counts.get(name, 0) + 1
        fields = ("MSH", delims.field, *parts[1:]) if name == "MSH" else tuple(parts)
        segments.append(Segment(name, fields, counts[name]))
    return segments


# ------------------------------------------------------------------------------------ escapes

def unescape(value: str, d: Delimiters) -> str:
    """Replace HL7 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\ \\.br\\)."""
    esc = d.escape
    if esc not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        end = value.find(esc, i + 1) if char == esc else -1
        if end < 0:
            out.append(char)
            i += 1
            continue
        out.append(_escape_meaning(value[i + 1:end], d, value[i:end + 1]))
        i = end + 1
    return "".join(out)


def _escape_meaning(seq: str, d: Delimiters, raw: str) -> str:
    simple = {"F": d.field, "S": d.component, "T": d.subcomponent, "R": d.repetition,
              "E": d.escape, ".br": "\n", "H": "", "N": ""}
    if seq in simple:
        return simple[seq]
    if seq.startswith("X") and len(seq) % 2 == 1:
        try:
            return bytes.fromhex(seq[1:]).decode("latin-1")
        except ValueError:
            return raw
    return raw


def escape(value: str, d: Delimiters = STANDARD) -> str:
    """Escape the delimiters in a text value; line breaks become \\.br\\."""
    out = value.replace(d.escape, f"{d.escape}E{d.escape}")
    for char, code in ((d.field, "F"), (d.component, "S"), (d.subcomponent, "T"),
                       (d.repetition, "R")):
        out = out.replace(char, f"{d.escape}{code}{d.escape}")
    out = out.replace("\r\n", "\n").replace("\r", "\n")
    return out.replace("\n", f"{d.escape}.br{d.escape}")


def recode(raw: str, source: Delimiters, target: Delimiters = STANDARD) -> str:
    """A raw field written with `source` delimiters, rewritten with `target` ones."""
    return target.repetition.join(
        target.component.join(
            target.subcomponent.join(escape(unescape(sub, source), target)
                                     for sub in comp.split(source.subcomponent))
            for comp in rep.split(source.component))
        for rep in raw.split(source.repetition))


# ---------------------------------------------------------------------------------- accessors

def repetitions(raw: str, d: Delimiters) -> list[str]:
    """The repetitions of a raw field (empty list for an empty field)."""
    return [] if raw == "" else raw.split(d.repetition)


def components(raw: str, d: Delimiters) -> list[str]:
    """The raw components of one repetition."""
    return raw.split(d.component)


def comp(raw: str, n: int, d: Delimiters, sub: int = 0) -> str:
    """Component n (from 1) of one repetition, subcomponent `sub` if > 0, unescaped."""
    parts = raw.split(d.component)
    value = parts[n - 1] if 0 < n <= len(parts) else ""
    if sub:
        subs = value.split(d.subcomponent)
        value = subs[sub - 1] if sub <= len(subs) else ""
    return unescape(value, d).strip()


def value(segment: Segment | None, n: int, d: Delimiters, component: int = 1) -> str:
    """Component of the first repetition of field n, unescaped ('' when absent)."""
    if segment is None:
        return ""
    reps = repetitions(segment.field(n), d)
    return comp(reps[0], component, d) if reps else ""
