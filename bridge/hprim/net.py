"""HPRIM Net / « HPRIM Médecins » letters: a 12-line header, free text, an optional coded block.

    line 1  patient code          line 7  date of birth (jj/mm/aaaa or jj/mm/aa)
    line 2  family name           line 8  NIR: 13 digits, space, key (not an INS)
    line 3  given name            line 9  lab reference
    line 4-5 address              line 10 exam date (jj/mm/aaaa)
    line 6  postcode and town     line 11 sender: 10-character code + name
                                  line 12 receiver: 10-character code + name

Then the letter's text; the coded results between `****LAB****` and `****FIN****` (`RES|…` and
`TEX|…` lines); `****FINFICHIER****` ends the file. Variants met in the wild: a vendor pre-line
before line 1 (found by where the date of birth is), CR-only line ends, Latin-1 text, HTML
entities and `<br />` in the text, no coded block at all (a text-only letter).

A coded block opened and never closed, or a header shorter than 12 lines, means the file was
cut: it is refused as truncated.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass

from bridge.errors import IntakeRejected
from bridge.hprim.text import decode_text, split_lines

HEADER_LINES = 12
WHAT = "HPRIM Net"
LAB_START, LAB_END, FILE_END = "****LAB****", "****FIN****", "****FINFICHIER****"
_DATE = re.compile(r"^\s*([0-9]{2})/([0-9]{2})/([0-9]{2}|[0-9]{4})\s*$")
_NIR = re.compile(r"^\s*([0-9][0-9AB][0-9]{11})\s*([0-9]{2})\s*$")
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


@dataclass(frozen=True)
class HprimNetResult:
    label: str
    code: str
    value: str
    unit: str


@dataclass(frozen=True)
class HprimNetLetter:
    """The header and the parts of the letter."""

    patient_code: str
    family_name: str
    given_name: str
    birth_date: dt.date | None
    nir: str | None  # 13 characters + key, as written (not an INS: never qualified)
    lab_reference: str
    exam_date: dt.date | None
    sender_code: str
    sender_name: str
    receiver_code: str
    receiver_name: str
    text: str  # the human-readable letter (entities decoded, <br /> as line ends)
    results: tuple[HprimNetResult, ...]
    complete: bool  # ****FINFICHIER**** was present

    @property
    def text_only(self) -> bool:
        """A letter with no coded results: its text is the whole document."""
        return not self.results

    def text_body(self) -> bytes:
        """The letter's text as a text/plain document body: UTF-8, lines ended by CRLF (the
        canonical form of text/plain, RFC 2046), whatever the file's charset and line ends. A
        DOS end-of-file mark (Ctrl-Z) that old software leaves at the end is not text."""
        return "\r\n".join(split_lines(self.text.rstrip("\x1a").rstrip())).encode("utf-8")


def _refuse(file_name: str, problem: str, code: str = "HPRIM_MALFORMED") -> IntakeRejected:
    return IntakeRejected(
        f"Le fichier {file_name} n'est pas une lettre {WHAT} valide : {problem}. Réexportez-le "
        "depuis le logiciel de messagerie ou du laboratoire.", code=code,
        event=code.lower())


def _date(raw: str, line: int, what: str, file_name: str) -> dt.date | None:
    if not raw.strip():
        return None
    match = _DATE.match(raw)
    if match is None:
        raise _refuse(file_name, f"{what} (ligne {line}) « {raw.strip()[:12]} » n'est pas une "
                                 "date jj/mm/aaaa")
    day, month, year = (int(g) for g in match.groups())
    if len(match.group(3)) == 2:
        year += 1900 if year > dt.date.today().year % 100 else 2000
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise _refuse(file_name, f"{what} (ligne {line}) « {raw.strip()[:12]} » n'existe pas "
                                 "au calendrier") from None


def _header_start(lines: list[str]) -> int:
    """0, or 1 when a vendor pre-line stands before line 1 (the birth date tells where)."""
    for start in (0, 1):
        if len(lines) > start + 6 and _DATE.match(lines[start + 6]):
            return start
    return 0


def _code_and_name(raw: str) -> tuple[str, str]:
    return raw[:10].strip(), raw[10:].strip()


def _coded_block(lines: list[str], file_name: str) -> tuple[list[str], list[HprimNetResult]]:
    """The text lines outside the coded block, and the results inside it."""
    text, results = [], []
    inside = False
    for line in lines:
        marker = line.strip()
        if marker == LAB_START:
            inside = True
        elif marker == LAB_END:
            inside = False
        elif marker == FILE_END:
            break
        elif inside:
            parts = line.split("|")
            if parts[0].strip().upper() == "RES":
                parts += [""] * (6 - len(parts))
                results.append(HprimNetResult(parts[1].strip(), parts[2].strip(),
                                              parts[4].strip(), parts[5].strip()))
            elif parts[0].strip().upper() == "TEX":
                text.append("|".join(parts[1:]))
        else:
            text.append(line)
    if inside:
        raise _refuse(file_name, f"le bloc codé « {LAB_START} » n'est jamais fermé par "
                                 f"« {LAB_END} » : le fichier est tronqué, déposez-le de "
                                 "nouveau en entier", "HPRIM_TRUNCATED")
    return text, results


def parse_hprim_net(data: bytes, *, file_name: str) -> HprimNetLetter:
    """Parse a letter, or raise IntakeRejected saying precisely what is wrong."""
    lines = split_lines(decode_text(data, file_name=file_name, what=WHAT))
    start = _header_start(lines)
    header = lines[start:start + HEADER_LINES]
    if len(header) < HEADER_LINES:
        raise _refuse(file_name, f"l'en-tête compte {len(header)} ligne(s) au lieu de "
                                 f"{HEADER_LINES} : le fichier est tronqué ou n'est pas une "
                                 "lettre HPRIM", "HPRIM_TRUNCATED")
    if any(line.strip() in (LAB_START, LAB_END, FILE_END) for line in header):
        raise _refuse(file_name, "l'en-tête de 12 lignes est incomplet (marqueur **** trouvé "
                                 "dans l'en-tête)", "HPRIM_TRUNCATED")
    n = start + 1  # line number of header line 1, for the messages
    nir_match = _NIR.match(header[7])
    body_lines, results = _coded_block(lines[start + HEADER_LINES:], file_name)
    text = _BREAK.sub("\n", html.unescape("\n".join(body_lines))).strip()
    sender_code, sender_name = _code_and_name(header[10])
    receiver_code, receiver_name = _code_and_name(header[11])
    return HprimNetLetter(
        patient_code=header[0].strip(),
        family_name=header[1].strip(),
        given_name=header[2].strip(),
        birth_date=_date(header[6], n + 6, "la date de naissance", file_name),
        nir="".join(nir_match.groups()) if nir_match else None,
        lab_reference=header[8].strip(),
        exam_date=_date(header[9], n + 9, "la date de l'examen", file_name),
        sender_code=sender_code,
        sender_name=sender_name,
        receiver_code=receiver_code,
        receiver_name=receiver_name,
        text=text,
        results=tuple(results),
        complete=any(line.strip() == FILE_END for line in lines),
    )
