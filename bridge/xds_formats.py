"""HL7 v2 data types written inside XDS slots, and the CDA timestamp format.

Pure string formatting (spec/dmp-protocol.md §3.4): every value comes in as an argument, nothing
reads the clock. Free text that lands inside an HL7 v2 component (names, display names) is
escaped, so a `^` or `&` in a structure name cannot shift the components the DMP parses.
"""

from __future__ import annotations

import datetime as dt

from bridge.domain import OID_AUTHOR_SPECIALTY, OID_RPPS, OID_STRUCTURE, Author, Patient

# HL7 v2 escape sequences for the default delimiters |^~\& (HL7 v2.5 §2.7.4). The escape
# character itself is replaced first, otherwise the backslashes we insert would be escaped again.
_ESCAPES: tuple[tuple[str, str], ...] = (
    ("\\", "\\E\\"),
    ("|", "\\F\\"),
    ("^", "\\S\\"),
    ("&", "\\T\\"),
    ("~", "\\R\\"),
)


def hl7_escape(text: str) -> str:
    """Escape the HL7 v2 delimiters `\\ | ^ & ~` in free text; accents are kept as they are."""
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return text


def _require_aware(t: dt.datetime) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        # A naive time would be read as UTC by the DMP and shift the document by one or two hours.
        raise ValueError("naive datetime refused: pass a timezone-aware datetime")


def dtm(t: dt.datetime) -> str:
    """XDS DTM in UTC, `YYYYMMDDhhmmss` (IHE ITI TF-3 §4.2.3.1.5)."""
    _require_aware(t)
    return t.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")


def hl7_date(d: dt.date) -> str:
    """A calendar date as `YYYYMMDD` (PID-7, CDA birthTime)."""
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def cda_ts(t: dt.datetime) -> str:
    """CDA TS with the local offset, `YYYYMMDDhhmmss+hhmm`, as in the ANS examples."""
    _require_aware(t)
    return t.strftime("%Y%m%d%H%M%S%z")


def xcn_ps(author: Author) -> str:
    """authorPerson / legalAuthenticator XCN of an RPPS holder (PS_IdNat, IDNPS)."""
    return (
        f"{author.ps_idnat}^{hl7_escape(author.family_name)}^{hl7_escape(author.given_name)}"
        f"^^^^^^&{OID_RPPS}&ISO^D^^^IDNPS"
    )


def xon(author: Author) -> str:
    """authorInstitution XON of the author's structure (Struct_IdNat, IDNST)."""
    name = hl7_escape(author.structure_name)
    return f"{name}^^^^^&{OID_STRUCTURE}&ISO^IDNST^^^{author.structure_id}"


def author_specialty(author: Author) -> str:
    """authorSpecialty `code^display^OID` (TRE_A02 / JDV_J01)."""
    return (
        f"{hl7_escape(author.specialty_code)}^{hl7_escape(author.specialty_display)}"
        f"^{OID_AUTHOR_SPECIALTY}"
    )


def source_patient_info(patient: Patient) -> list[str]:
    """sourcePatientInfo values: birth name and first given name (PID-5), birth date, sex.

    Informative only: the DMP never computes identity from it, the INS in patientId rules.
    """
    pid5 = f"{hl7_escape(patient.birth_family_name)}^{hl7_escape(patient.first_given_name)}^^^^^L"
    return [
        f"PID-5|{pid5}",
        f"PID-7|{hl7_date(patient.birth_date)}",
        f"PID-8|{patient.sex.value}",
    ]
