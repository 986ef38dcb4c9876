"""HPRIM Santé 2.x records (`H|…`, `P|…`, `OBR|…`, `OBX|…`, `A|…`, `L|…`), one per line.

The delimiters are read from H-2, positionally: component, repetition, escape, sub-component
(`~^\\&` is the most common: `~` separates components — not HL7's order). A long record is cut
into an `A|` line whose content continues the previous record, even in the middle of a word.
The file ends with an `L|` record: without it the file is truncated (still being written, or
cut in transit) and is refused with the line where it stops.

Field numbers are counted as in the spec notes (spec/matrix-and-intake.md B.2.1), checked on the
real lines quoted there: in the header the field separator is H-1 (as HL7 counts MSH), so
`H|~^\\&|URG062.HPR` has H-2 = the delimiters and H-3 = the file name; in the other records the
record type is field 0 (`P|1|398|B10…||GAULLE~MARECHAL|PIT|19370325|F`: P-5 the names, P-7 the
birth date, P-8 the sex).
An OBX of type `FIC` points at a file dropped next to it (`14545486.pdf^PDF`): the report.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from bridge.errors import IntakeRejected
from bridge.hprim.text import decode_text, split_lines

MAX_RECORDS = 20_000
_RECORD_NAME = re.compile(r"^[A-Z][A-Z0-9]{0,2}$")
_SAFE_FILE_NAME = re.compile(r"^[^/\\:*?\"<>|\x00-\x1f]{1,120}$")
WHAT = "HPRIM Santé"


@dataclass(frozen=True)
class Delimiters:
    field: str
    component: str
    repetition: str
    escape: str
    subcomponent: str


@dataclass(frozen=True)
class Record:
    """One record after its `A|` continuations were joined; `line` is where it starts."""

    name: str
    fields: tuple[str, ...]
    line: int

    def field(self, n: int) -> str:
        """Field n as the spec numbers them (H-1 is the separator, P-0 the record type)."""
        index = n - 1 if self.name == "H" else n
        return self.fields[index] if 0 < index < len(self.fields) else ""


@dataclass(frozen=True)
class HprimPatient:
    prescriber_id: str
    lab_id: str
    third_id: str  # P-4.1: where some senders put the NIR or the INS
    third_id_authority: str  # P-4.2: the OID of that id, when given
    family_name: str
    given_names: tuple[str, ...]
    birth_name: str
    birth_date: dt.date | None
    sex: str | None  # F / M / U


@dataclass(frozen=True)
class HprimResult:
    value_type: str  # NM, ST, TX, CE, FIC…
    code: str
    label: str
    value: str
    unit: str
    status: str


@dataclass(frozen=True)
class HprimSanteFile:
    """What the file says, without its health data being logged anywhere."""

    file_name: str  # H-3
    sender_id: str
    sender_name: str
    message_type: str  # H-7: ORU results, ADM, ORM…
    processing: str  # H-12: P / T
    version: str  # H-13: H2.0…H2.4
    created: dt.datetime | None  # H-14, naive local time
    patients: tuple[HprimPatient, ...]
    tests: tuple[str, ...]  # OBR-4 labels
    collected: dt.datetime | None  # first OBR-7
    results: tuple[HprimResult, ...]
    files: tuple[str, ...]  # file names the FIC results point at, in order


def _malformed(file_name: str, line: int, problem: str) -> IntakeRejected:
    return IntakeRejected(
        f"Le fichier {file_name} n'est pas un fichier {WHAT} valide (ligne {line}) : {problem}. "
        "Réexportez-le depuis le logiciel du laboratoire, ou signalez-le à son éditeur.",
        code="HPRIM_MALFORMED", event="hprim_malformed")


def _truncated(file_name: str, line: int) -> IntakeRejected:
    return IntakeRejected(
        f"Le fichier {file_name} est tronqué : il s'arrête à la ligne {line} sans "
        "l'enregistrement de fin « L| ». Il a peut-être été copié pendant son écriture : "
        "déposez-le de nouveau en entier.",
        code="HPRIM_TRUNCATED", event="hprim_truncated")


def _delimiters(first: str, file_name: str) -> Delimiters:
    if len(first) < 7 or not first.startswith("H"):
        raise _malformed(file_name, 1, "le fichier doit commencer par l'en-tête « H|~^\\&| »")
    sep, chars = first[1], first[2:6]
    distinct = len(set(chars + sep)) == 5
    if sep.isalnum() or not distinct or any(c.isalnum() or c.isspace() for c in chars) \
            or first[6] != sep:
        raise _malformed(file_name, 1, "les séparateurs de l'en-tête (H-2) sont invalides, "
                                       "attendu par exemple « ~^\\& »")
    return Delimiters(sep, chars[0], chars[1], chars[2], chars[3])


def _records(lines: list[str], d: Delimiters, file_name: str) -> list[Record]:
    """Records with their continuations joined; checks the order H … L.

    Linear in the size of the file: the pieces of a record are collected and joined once
    (appending each `A|` line to a growing string made 500 000 of them take seconds).
    """
    joined: list[tuple[list[str], int]] = []  # each record's pieces, and the line it starts at
    last = 1
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(" \t")
        if not line.strip():
            continue
        last = number
        if line.startswith("A" + d.field):
            if not joined:
                raise _malformed(file_name, number, "une suite « A| » sans enregistrement avant")
            joined[-1][0].append(line[2:])
            continue
        joined.append(([line], number))
        if len(joined) > MAX_RECORDS:
            raise _malformed(file_name, number, f"plus de {MAX_RECORDS} enregistrements")
    records: list[Record] = []
    for pieces, number in joined:
        fields = tuple("".join(pieces).split(d.field))
        name = fields[0].strip().upper()
        if not _RECORD_NAME.match(name):
            raise _malformed(file_name, number, "ligne qui n'est pas un enregistrement "
                                                "(type inconnu ou séparateur « | » absent)")
        if name == "H" and records:
            raise _malformed(file_name, number, "un second en-tête « H| »")
        records.append(Record(name, fields, number))
    if not records:
        raise _malformed(file_name, 1, "le fichier est vide")
    ends = [r for r in records if r.name == "L"]
    if not ends:
        raise _truncated(file_name, last)
    if records[-1].name != "L":
        raise _malformed(file_name, ends[0].line + 1, "des lignes suivent l'enregistrement de "
                                                      "fin « L| »")
    return records


def _comp(value: str, n: int, d: Delimiters) -> str:
    parts = value.split(d.repetition, 1)[0].split(d.component)
    return parts[n - 1].strip() if 0 < n <= len(parts) else ""


def _date(raw: str, record: Record, what: str, file_name: str) -> dt.date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return dt.datetime.strptime(raw[:8], "%Y%m%d").date()
    except ValueError:
        raise _malformed(file_name, record.line,
                         f"{what} « {raw[:16]} » n'est pas une date AAAAMMJJ") from None


def _timestamp(raw: str, record: Record, what: str, file_name: str) -> dt.datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    digits = raw[:14]
    formats = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    try:
        return dt.datetime.strptime(digits, formats[len(digits)])
    except (KeyError, ValueError):
        raise _malformed(file_name, record.line, f"{what} « {raw[:16]} » n'est pas une date "
                                                 "AAAAMMJJ[HHMM[SS]]") from None


_SEXES = {"F": "F", "M": "M", "U": "U", "I": "U"}


def _patient(record: Record, d: Delimiters, file_name: str) -> HprimPatient:
    names = record.field(5)
    given = _comp(names, 2, d)
    return HprimPatient(
        prescriber_id=_comp(record.field(2), 1, d),
        lab_id=_comp(record.field(3), 1, d),
        third_id=_comp(record.field(4), 1, d).replace(" ", ""),
        third_id_authority=_comp(record.field(4), 2, d),
        family_name=_comp(names, 1, d),
        given_names=tuple(given.split()) if given else (),
        birth_name=_comp(record.field(6), 1, d),
        birth_date=_date(record.field(7), record, "la date de naissance (P-7)", file_name),
        sex=_SEXES.get(record.field(8).strip().upper()),
    )


def _fic_name(record: Record, d: Delimiters, file_name: str) -> str:
    name = _comp(record.field(5), 1, d)
    if not name:
        raise _malformed(file_name, record.line, "le résultat de type FIC (OBX-5) ne nomme "
                                                 "aucun fichier")
    if not _SAFE_FILE_NAME.match(name) or name in {".", ".."} or name.startswith("."):
        raise IntakeRejected(
            f"Le fichier {file_name} désigne un document « {name[:60]} » (OBX de type FIC, "
            f"ligne {record.line}) qui n'est pas un simple nom de fichier du dossier de dépôt : "
            "un chemin vers un autre dossier est refusé par sécurité. Le PDF doit être déposé "
            "à côté du fichier HPRIM et nommé sans chemin.",
            code="HPRIM_FILE_PATH", event="hprim_file_path_refused")
    return name


def parse_hprim_sante(data: bytes, *, file_name: str) -> HprimSanteFile:
    """Parse the file, or raise IntakeRejected saying precisely what is wrong and where."""
    lines = split_lines(decode_text(data, file_name=file_name, what=WHAT))
    first = next((line for line in lines if line.strip()), "")
    d = _delimiters(first.lstrip(), file_name)
    records = _records(lines, d, file_name)
    header = records[0]
    if header.name != "H":
        raise _malformed(file_name, header.line, "le fichier doit commencer par l'en-tête H|")
    patients, tests, results, files = [], [], [], []
    collected: dt.datetime | None = None
    current = ""
    for record in records[1:]:
        if record.name == "P":
            patients.append(_patient(record, d, file_name))
        elif record.name == "OBR":
            if not patients:
                raise _malformed(file_name, record.line, "une demande OBR avant tout patient P")
            label = _comp(record.field(4), 2, d) or _comp(record.field(4), 1, d)
            if label:
                tests.append(label)
            when = _timestamp(record.field(7), record, "la date de prélèvement (OBR-7)",
                              file_name)
            collected = collected or when
            current = "OBR"
        elif record.name == "OBX":
            if current != "OBR":
                raise _malformed(file_name, record.line, "un résultat OBX hors d'une demande OBR")
            value_type = record.field(2).strip().upper()
            if value_type == "FIC":
                files.append(_fic_name(record, d, file_name))
            results.append(HprimResult(
                value_type=value_type, code=_comp(record.field(3), 1, d),
                label=_comp(record.field(3), 2, d), value=_comp(record.field(5), 1, d),
                unit=record.field(6).strip(), status=record.field(11).strip().upper()))
    return HprimSanteFile(
        file_name=_comp(header.field(3), 1, d),
        sender_id=_comp(header.field(5), 1, d),
        sender_name=_comp(header.field(5), 2, d),
        message_type=_comp(header.field(7), 1, d).upper(),
        processing=_comp(header.field(12), 1, d).upper(),
        version=_comp(header.field(13), 1, d),
        created=_timestamp(header.field(14), header, "la date du fichier (H-14)", file_name),
        patients=tuple(patients),
        tests=tuple(tests),
        collected=collected,
        results=tuple(results),
        files=tuple(files),
    )


def looks_like_hprim_sante(data: bytes) -> bool:
    """Cheap sniff: the first non-blank line starts with `H` and a delimiter block."""
    head = data[:64].removeprefix(b"\xef\xbb\xbf").lstrip()
    return len(head) >= 7 and head[:1] == b"H" and not head[1:2].isalnum() \
        and head[6:7] == head[1:2]
