"""The sections of a feeding matrix file around its rows: the top-level tables allowed, the
`[matrix]` header, the `[categories.<KEY>]` tables and the `[[…]]` arrays of tables.

Each reader adds its faults to the file's `Collector` and returns what it could read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mappings.matrix import Category
from mappings.matrix_toml import Collector, typed_list, typed_str

_HEADER_KEYS = frozenset({"name", "version", "date", "region", "provenance", "sources", "base"})
_CATEGORY_KEYS = frozenset(
    {"label_fr", "professions", "specialties", "default_practice_setting", "default_facility_type"}
)


def check_keys(c: Collector, doc: Mapping[str, object], allowed: frozenset[str]) -> None:
    for key in sorted(set(doc) - allowed):
        c.add(
            None,
            f"section « {key} » inconnue ; sections possibles : "
            f"{', '.join(sorted(allowed))}. Corrigez l'orthographe ou supprimez-la.",
        )


def read_header(c: Collector, doc: Mapping[str, object], required: Iterable[str]) -> dict[str, str]:
    raw = doc.get("matrix")
    if raw is None:
        raw = {}
        if required:
            c.add(
                None,
                "il manque l'en-tête [matrix] (name, version, date, provenance) ; "
                "ajoutez-le en tête du fichier.",
            )
            return {}
    if not isinstance(raw, dict):
        c.add(None, "[matrix] doit être une table (name = …, version = …).")
        return {}
    for key in sorted(set(raw) - _HEADER_KEYS):
        c.add(
            None,
            f"[matrix] : clé « {key} » inconnue ; clés possibles : "
            f"{', '.join(sorted(_HEADER_KEYS))}.",
        )
    out: dict[str, str] = {}
    for key in required:
        if key not in raw:
            c.add(None, f'[matrix] : il manque « {key} » ; ajoutez {key} = "…".')
    for key in ("name", "version", "date", "region", "provenance", "base"):
        if key in raw:
            out[key] = typed_str(c, None, "[matrix]", key, raw[key])
    return out


def read_categories(c: Collector, raw: object, origin: str) -> dict[str, Category]:
    out: dict[str, Category] = {}
    if not isinstance(raw, dict):
        c.add(
            None,
            "il manque les catégories : ajoutez une table [categories.<CLÉ>] par "
            "catégorie de professionnels (MG, IDE, …).",
        )
        return out
    for key, table in raw.items():
        where = f"[categories.{key}]"
        if not isinstance(table, dict):
            c.add(None, f"{where} doit être une table.")
            continue
        missing = sorted(_CATEGORY_KEYS - set(table))
        for k in missing:
            c.add(None, f"{where} : il manque « {k} » ; ajoutez-le.")
        for k in sorted(set(table) - _CATEGORY_KEYS):
            c.add(
                None,
                f"{where} : clé « {k} » inconnue ; clés possibles : "
                f"{', '.join(sorted(_CATEGORY_KEYS))}.",
            )
        if missing:
            continue
        out[key] = Category(
            key=key,
            label_fr=typed_str(c, None, where, "label_fr", table["label_fr"]),
            professions=typed_list(c, None, where, "professions", table["professions"]),
            specialties=typed_list(c, None, where, "specialties", table["specialties"]),
            default_practice_setting=typed_str(
                c, None, where, "default_practice_setting", table["default_practice_setting"]
            ),
            default_facility_type=typed_str(
                c, None, where, "default_facility_type", table["default_facility_type"]
            ),
            origin=origin,
        )
    return out


def tables_of(c: Collector, doc: Mapping[str, object], key: str) -> list[object]:
    raw = doc.get(key, [])
    if isinstance(raw, list):
        return raw
    c.add(
        None, f"« {key} » doit être une liste de tables : écrivez [[{key}]] devant chaque entrée."
    )
    return []
