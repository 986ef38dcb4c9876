"""The regional feeding matrix: which document each kind of professional sends, with which codes.

The matrix is data (`mappings/matrices/*.toml`), layered:

1. `national.toml` — the rows rebuilt from national artefacts (spec `matrix-and-intake.md` A.3);
2. the region's overlay (`<region>.toml`, default Bretagne) — `[[override]]`, `[[add]]`,
   `[[disable]]` entries against national row ids;
3. extra overlay files (e.g. a URPS file), same shapes;
4. per-practice overrides from the bridge configuration, same shapes, applied last.

Every row remembers which file and layer set it (`MatrixRow.origin`), so the dashboard can say
where a decision comes from. Structural faults (bad TOML, missing keys, wrong types, an override
of an unknown id) raise `MatrixError`; coded content is checked against the value sets by
`mappings.matrix_check.check_matrix`. Reading and layering the files is
`mappings.matrix_load.load_matrix`; this module is the model and its lookups.

The classCode is never chosen here: it is derived from the typeCode through ASS_X04. A row only
carries `class_code` when X04 has no entry for its typeCode (then marked `class_status`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "FORMAT_PDF",
    "TYPE_SYSTEMS",
    "Category",
    "Matrix",
    "MatrixError",
    "MatrixProblem",
    "MatrixRow",
    "normalize_label",
]

#: Short names a matrix file may use for the typeCode system (OBX-3.3 style) → OID.
TYPE_SYSTEMS: Mapping[str, str] = MappingProxyType(
    {
        "LN": "2.16.840.1.113883.6.1",  # LOINC
        "A05": "1.2.250.1.213.1.1.4.12",  # TRE_A05 TypeDocComplementaire
        "TRE_A05": "1.2.250.1.213.1.1.4.12",
    }
)
#: `format = "pdf"` in a matrix file: a PDF wrapped in a CDA R2 level 1 (JDV_J60).
FORMAT_PDF = "urn:ihe:iti:xds-sd:pdf:2008"
FORMAT_SHORTHANDS: Mapping[str, str] = MappingProxyType({"pdf": FORMAT_PDF})



# ─── values ──────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class MatrixProblem:
    """One thing wrong in a matrix: where (file, row) and, in French, what and how to fix it."""

    file: str
    row_id: str | None
    message_fr: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f" [{self.row_id}]" if self.row_id else "")
        return f"{where} : {self.message_fr}"


class MatrixError(ValueError):
    """The matrix cannot be loaded; `problems` lists every fault found, each with its fix."""

    def __init__(self, problems: Sequence[MatrixProblem]) -> None:
        self.problems: list[MatrixProblem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class MatrixRow:
    """One kind of document a category of professional sends, and the DMP codes it gets."""

    id: str
    categories: tuple[str, ...]
    label: str
    aliases: tuple[str, ...]  # as written; compared through normalize_label
    type_code: str
    type_system: str  # OID (LOINC or TRE_A05)
    class_code: str | None  # only when X04 has no entry; otherwise derived by class_of()
    class_status: str  # "DERIVED" (from ASS_X04) or the status of the explicit class
    classeur: str  # one of Matrix.classeurs (ASCII key)
    confidentiality: str  # HL7 N / R / V
    visibility: tuple[str, ...]  # TRE_A07 flags sent as extra confidentialityCodes
    format_code: str  # JDV_J60
    structured_required: bool  # the DMP wants this structured model: never send a PDF of it
    confirm_with_patient: bool  # hold until a person confirms (announcement rule, R1111-53)
    auto_feed: bool  # Ségur automatic feeding: send without asking
    event_codes: tuple[tuple[str, str, str], ...]  # (code, system OID, display)
    practice_setting: str | None  # JDV_J04; None = the category default
    facility_type: str | None  # JDV_J02; None = the category default
    obligation: str  # legal obligation in French, "" when none
    status: str  # CONFIRMED / INFERRED (row status of the spec)
    source: str
    origin: str  # file and layer that set this row, then each layer that changed it
    # Row keys ("type_code", "format") whose code is knowingly absent from the shipped value
    # sets (e.g. a typeCode only in a newer J07): check_matrix accepts the gap, and reports it
    # as stale once the value sets contain the code.
    outside_value_sets: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        """Normalized names this row answers to: id, label, aliases (deduplicated, in order)."""
        seen: dict[str, None] = {}
        for text in (self.id, self.label, *self.aliases):
            key = normalize_label(text)
            if key:
                seen.setdefault(key, None)
        return tuple(seen)


@dataclass(frozen=True)
class Category:
    """A kind of professional (or establishment) that has its own set of rows."""

    key: str
    label_fr: str
    professions: tuple[str, ...]  # TRE_G15; empty = chosen by configuration only (ES)
    specialties: tuple[str, ...]  # JDV_J01 codes, or prefixes ending in "*"; empty = any
    default_practice_setting: str  # JDV_J04
    default_facility_type: str  # JDV_J02
    origin: str = "national.toml"  # the file (or configuration layer) that defined it


@dataclass(frozen=True)
class Matrix:
    """The merged matrix: national rows with every overlay applied, in order."""

    name: str
    version: str
    date: str
    layers: tuple[str, ...]
    categories: Mapping[str, Category]
    rows: tuple[MatrixRow, ...]
    classeurs: Mapping[str, str]
    files: tuple[str, ...] = field(default=(), compare=False)

    def category_of(self, profession_code: str, specialty_code: str | None) -> str | None:
        """The category of a professional; a specialty match beats a profession-only match.

        Among the categories listing `profession_code`, one whose specialties match exactly wins
        over a prefix match (the longer prefix wins), which wins over a category with no
        specialty list. A category whose specialty list does not match is not a candidate.
        Categories without professions (establishments) are never chosen here.
        """
        best: tuple[int, str] | None = None
        for key, category in self.categories.items():
            if profession_code not in category.professions:
                continue
            score = _specialty_score(category.specialties, specialty_code)
            if score is not None and (best is None or score > best[0]):
                best = (score, key)
        return None if best is None else best[1]

    def rows_for(self, category: str) -> list[MatrixRow]:
        """Rows a category may send, in file order."""
        return [row for row in self.rows if category in row.categories]

    def row_for_kind(self, category: str, local_kind: str) -> MatrixRow | None:
        """The row the practice software means by `local_kind` (id, label or alias)."""
        wanted = normalize_label(local_kind)
        if not wanted:
            return None
        for row in self._ordered(category):
            if wanted in row.names():
                return row
        return None

    def row_for_type(self, category: str, type_code: str) -> MatrixRow | None:
        """The row of a category for a typeCode (its own rows first, then shared ones)."""
        for row in self._ordered(category):
            if row.type_code == type_code:
                return row
        return None

    def _ordered(self, category: str) -> list[MatrixRow]:
        # A row's first category is its home: PHA-08a (PHA, IDE, SF) answers for a pharmacist
        # before MG-20 (MG, PHA, IDE, SF), which carries the same codes.
        rows = self.rows_for(category)
        return [r for r in rows if r.categories[0] == category] + [
            r for r in rows if r.categories[0] != category
        ]


def _specialty_score(specialties: Sequence[str], specialty: str | None) -> int | None:
    if not specialties:
        return 0
    if specialty is None:
        return None
    best: int | None = None
    for pattern in specialties:
        if pattern.endswith("*"):
            prefix = pattern[:-1]
            score = 1 + len(prefix) if specialty.startswith(prefix) else None
        else:
            score = 10_000 if specialty == pattern else None
        if score is not None and (best is None or score > best):
            best = score
    return best


def normalize_label(text: str) -> str:
    """Compare labels as people mean them: no case, no accents, no punctuation, single spaces."""
    folded = text.casefold().replace("œ", "oe").replace("æ", "ae")
    decomposed = unicodedata.normalize("NFKD", folded)
    chars = []
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        chars.append(ch if ch.isalnum() else " ")
    return " ".join("".join(chars).split())
