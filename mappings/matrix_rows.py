"""One feeding matrix row: built from its `[[row]]` / `[[add]]` table, or from a row and the
fields of an `[[override]]` of it.

Missing, unknown or mistyped keys are added to the file's `Collector`; a row that lacks a
required key is not built at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from mappings.matrix import FORMAT_SHORTHANDS, TYPE_SYSTEMS, MatrixRow
from mappings.matrix_toml import Collector, typed_bool, typed_list, typed_str

_STATUSES = frozenset({"CONFIRMED", "INFERRED"})
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")

_ROW_REQUIRED = (
    "id",
    "categories",
    "label",
    "aliases",
    "type_code",
    "type_system",
    "classeur",
    "status",
    "source",
)
_ROW_OPTIONAL = (
    "class_code",
    "class_status",
    "confidentiality",
    "visibility",
    "format",
    "structured_required",
    "confirm_with_patient",
    "auto_feed",
    "event_codes",
    "practice_setting",
    "facility_type",
    "obligation",
    "outside_value_sets",
)
ROW_KEYS = frozenset(_ROW_REQUIRED + _ROW_OPTIONAL)
#: What `outside_value_sets` may name.
OUTSIDE_VALUE_SETS_KEYS = frozenset({"type_code", "format"})

_FIELD_FR = {
    "id": "l'identifiant (id)",
    "categories": "les catégories (categories)",
    "label": "le libellé (label)",
    "aliases": "les libellés du logiciel (aliases)",
    "type_code": "le typeCode (type_code)",
    "type_system": "le système du typeCode (type_system)",
    "classeur": "le classeur (classeur)",
    "status": "le statut (status)",
    "source": "la source (source)",
}


def _type_system_oid(c: Collector, row_id: str | None, value: str) -> str:
    if value in TYPE_SYSTEMS:
        return TYPE_SYSTEMS[value]
    if _OID.match(value):
        return value
    c.add(
        row_id,
        f'type_system « {value} » inconnu : écrivez "LN" (LOINC), "A05" '
        "(TRE_A05) ou l'OID du système de codes.",
    )
    return value


def _event_codes(
    c: Collector, row_id: str | None, value: object
) -> tuple[tuple[str, str, str], ...]:
    out: list[tuple[str, str, str]] = []
    fix = (
        'écrivez event_codes = [{ code = "…", system = "OID", display = "…" }] ou event_codes = [].'
    )
    if not isinstance(value, list):
        c.add(row_id, f"« event_codes » doit être une liste : {fix}")
        return ()
    for item in value:
        if (
            isinstance(item, dict)
            and set(item) <= {"code", "system", "display"}
            and all(isinstance(item.get(k), str) for k in ("code", "system"))
            and isinstance(item.get("display", ""), str)
        ):
            out.append((item["code"], item["system"], item.get("display", "")))
        else:
            c.add(row_id, f"event_codes : entrée invalide {item!r} ; {fix}")
    return tuple(out)


def row_id_of(entry: Mapping[str, object]) -> str | None:
    value = entry.get("id")
    return value if isinstance(value, str) else None


def build_row(c: Collector, entry: object, where: str, origin: str) -> MatrixRow | None:
    if not isinstance(entry, dict):
        c.add(None, f"{where} : chaque ligne doit être une table [[row]] / [[add]].")
        return None
    row_id = row_id_of(entry)
    before = len(c.problems)
    for key in _ROW_REQUIRED:
        if key not in entry:
            c.add(
                row_id,
                f"{where} : il manque {_FIELD_FR.get(key, key)} ; ajoutez la clé "
                f"« {key} » à la ligne.",
            )
    for key in sorted(set(entry) - ROW_KEYS):
        c.add(
            row_id,
            f"{where} : clé « {key} » inconnue ; clés possibles : "
            f"{', '.join(sorted(ROW_KEYS))}. Corrigez l'orthographe ou supprimez-la.",
        )
    if len(c.problems) > before:
        return None
    return _row_from_fields(c, row_id, where, entry, origin)


def _row_from_fields(
    c: Collector, row_id: str | None, where: str, entry: Mapping[str, object], origin: str
) -> MatrixRow:
    def s(key: str, default: str = "") -> str:
        return typed_str(c, row_id, where, key, entry[key]) if key in entry else default

    def lst(key: str) -> tuple[str, ...]:
        return typed_list(c, row_id, where, key, entry[key]) if key in entry else ()

    def flag(key: str) -> bool:
        return typed_bool(c, row_id, where, key, entry[key]) if key in entry else False

    def opt(key: str) -> str | None:
        return typed_str(c, row_id, where, key, entry[key]) if key in entry else None

    status = s("status")
    if status and status not in _STATUSES:
        c.add(
            row_id, f'{where} : status « {status} » invalide ; écrivez "CONFIRMED" ou "INFERRED".'
        )
    class_code = opt("class_code")
    class_status = s("class_status", "DERIVED")
    if class_code is not None and class_status not in _STATUSES:
        c.add(
            row_id,
            f"{where} : une classe explicite (class_code) doit dire d'où elle vient : "
            'ajoutez class_status = "INFERRED" (ou "CONFIRMED").',
        )
    if class_code is None and "class_status" in entry:
        c.add(
            row_id,
            f"{where} : class_status sans class_code ; supprimez class_status "
            "(la classe est déduite du typeCode par ASS_X04).",
        )
    fmt = s("format", "pdf")
    outside = lst("outside_value_sets")
    for key in sorted(set(outside) - OUTSIDE_VALUE_SETS_KEYS):
        c.add(
            row_id,
            f"{where} : outside_value_sets ne peut citer que "
            f"{', '.join(sorted(OUTSIDE_VALUE_SETS_KEYS))} (trouvé « {key} »).",
        )
    categories = lst("categories")
    if "categories" in entry and not categories:
        c.add(
            row_id,
            f"{where} : la ligne ne vise aucune catégorie ; indiquez au moins une "
            'catégorie, par exemple categories = ["IDE"].',
        )
    return MatrixRow(
        id=s("id"),
        categories=categories,
        label=s("label"),
        aliases=lst("aliases"),
        type_code=s("type_code"),
        type_system=_type_system_oid(c, row_id, s("type_system")),
        class_code=class_code,
        class_status=class_status,
        classeur=s("classeur"),
        confidentiality=s("confidentiality", "N"),
        visibility=lst("visibility"),
        format_code=FORMAT_SHORTHANDS.get(fmt, fmt),
        structured_required=flag("structured_required"),
        confirm_with_patient=flag("confirm_with_patient"),
        auto_feed=flag("auto_feed"),
        event_codes=_event_codes(c, row_id, entry["event_codes"]) if "event_codes" in entry else (),
        practice_setting=opt("practice_setting"),
        facility_type=opt("facility_type"),
        obligation=s("obligation"),
        status=status,
        source=s("source"),
        origin=origin,
        outside_value_sets=outside,
    )


def apply_override(
    c: Collector, row: MatrixRow, entry: Mapping[str, object], where: str, layer: str
) -> MatrixRow:
    """A copy of `row` with the override's fields; `<list>_add` appends to a list field."""
    merged: dict[str, object] = {
        "id": row.id,
        "categories": list(row.categories),
        "label": row.label,
        "aliases": list(row.aliases),
        "type_code": row.type_code,
        "type_system": row.type_system,
        "classeur": row.classeur,
        "confidentiality": row.confidentiality,
        "visibility": list(row.visibility),
        "format": row.format_code,
        "structured_required": row.structured_required,
        "confirm_with_patient": row.confirm_with_patient,
        "auto_feed": row.auto_feed,
        "event_codes": [{"code": a, "system": b, "display": d} for a, b, d in row.event_codes],
        "obligation": row.obligation,
        "status": row.status,
        "source": row.source,
        "outside_value_sets": list(row.outside_value_sets),
    }
    for key in ("class_code", "practice_setting", "facility_type"):
        if getattr(row, key) is not None:
            merged[key] = getattr(row, key)
    if row.class_code is not None:
        merged["class_status"] = row.class_status
    changed: list[str] = []
    for key, value in entry.items():
        if key in ("id", "reason"):
            continue
        if key.endswith("_add"):
            base = key[: -len("_add")]
            extra = typed_list(c, row.id, where, key, value)
            current = merged[base]
            assert isinstance(current, list)
            merged[base] = current + [v for v in extra if v not in current]
            changed.append(base)
        else:
            merged[key] = value
            changed.append(key)
    new = _row_from_fields(c, row.id, where, merged, "")
    return replace(new, origin=f"{row.origin}; {layer} override ({', '.join(changed)})")
