"""Reading the feeding matrix files and applying their layers (national, region, URPS files,
practice overrides) into one `mappings.matrix.Matrix`; see that module for the layering rules.

Structural faults (bad TOML, missing keys, wrong types, an override of an unknown id) are
gathered per file and raised together as `MatrixError`, each with its file, row and fix.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from mappings.matrix import (
    FORMAT_SHORTHANDS,
    TYPE_SYSTEMS,
    Category,
    Matrix,
    MatrixError,
    MatrixProblem,
    MatrixRow,
)

_STATUSES = frozenset({"CONFIRMED", "INFERRED"})
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")

# ─── loading ─────────────────────────────────────────────────────────────────────────────

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
_ROW_KEYS = frozenset(_ROW_REQUIRED + _ROW_OPTIONAL)
#: What `outside_value_sets` may name.
OUTSIDE_VALUE_SETS_KEYS = frozenset({"type_code", "format"})
_OVERRIDE_EXTRA = frozenset(
    {"id", "reason", "aliases_add", "categories_add", "visibility_add", "outside_value_sets_add"}
)
_HEADER_KEYS = frozenset({"name", "version", "date", "region", "provenance", "sources", "base"})
_CATEGORY_KEYS = frozenset(
    {"label_fr", "professions", "specialties", "default_practice_setting", "default_facility_type"}
)
_NATIONAL_TOP = frozenset({"matrix", "classeurs", "categories", "row"})
_OVERLAY_TOP = frozenset({"matrix", "categories", "override", "add", "disable"})

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


class _Collector:
    """Gathers problems for one file so the user sees them all at once."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[MatrixProblem] = []

    def add(self, row_id: str | None, message_fr: str) -> None:
        self.problems.append(MatrixProblem(self.file, row_id, message_fr))


def _typed_str(c: _Collector, row_id: str | None, where: str, key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    c.add(
        row_id,
        f"{where} : « {key} » doit être un texte entre guillemets "
        f'(trouvé : {type(value).__name__}). Écrivez par exemple {key} = "…".',
    )
    return ""


def _typed_list(
    c: _Collector, row_id: str | None, where: str, key: str, value: object
) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    c.add(
        row_id,
        f"{where} : « {key} » doit être une liste de textes, par exemple "
        f'{key} = ["A", "B"]. Corrigez la valeur.',
    )
    return ()


def _typed_bool(c: _Collector, row_id: str | None, where: str, key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    c.add(row_id, f"{where} : « {key} » doit valoir true ou false (sans guillemets).")
    return False


def _type_system_oid(c: _Collector, row_id: str | None, value: str) -> str:
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
    c: _Collector, row_id: str | None, value: object
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


def _row_id_of(entry: Mapping[str, object]) -> str | None:
    value = entry.get("id")
    return value if isinstance(value, str) else None


def _build_row(c: _Collector, entry: object, where: str, origin: str) -> MatrixRow | None:
    if not isinstance(entry, dict):
        c.add(None, f"{where} : chaque ligne doit être une table [[row]] / [[add]].")
        return None
    row_id = _row_id_of(entry)
    before = len(c.problems)
    for key in _ROW_REQUIRED:
        if key not in entry:
            c.add(
                row_id,
                f"{where} : il manque {_FIELD_FR.get(key, key)} ; ajoutez la clé "
                f"« {key} » à la ligne.",
            )
    for key in sorted(set(entry) - _ROW_KEYS):
        c.add(
            row_id,
            f"{where} : clé « {key} » inconnue ; clés possibles : "
            f"{', '.join(sorted(_ROW_KEYS))}. Corrigez l'orthographe ou supprimez-la.",
        )
    if len(c.problems) > before:
        return None
    return _row_from_fields(c, row_id, where, entry, origin)


def _row_from_fields(
    c: _Collector, row_id: str | None, where: str, entry: Mapping[str, object], origin: str
) -> MatrixRow:
    def s(key: str, default: str = "") -> str:
        return _typed_str(c, row_id, where, key, entry[key]) if key in entry else default

    def lst(key: str) -> tuple[str, ...]:
        return _typed_list(c, row_id, where, key, entry[key]) if key in entry else ()

    def flag(key: str) -> bool:
        return _typed_bool(c, row_id, where, key, entry[key]) if key in entry else False

    def opt(key: str) -> str | None:
        return _typed_str(c, row_id, where, key, entry[key]) if key in entry else None

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


def _apply_override(
    c: _Collector, row: MatrixRow, entry: Mapping[str, object], where: str, layer: str
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
            extra = _typed_list(c, row.id, where, key, value)
            current = merged[base]
            assert isinstance(current, list)
            merged[base] = current + [v for v in extra if v not in current]
            changed.append(base)
        else:
            merged[key] = value
            changed.append(key)
    new = _row_from_fields(c, row.id, where, merged, "")
    return replace(new, origin=f"{row.origin}; {layer} override ({', '.join(changed)})")


class _Layer:
    """One overlay: a file or a mapping from the configuration."""

    def __init__(self, name: str, doc: Mapping[str, object], kind: str) -> None:
        self.name = name
        self.doc = doc
        self.kind = kind  # "region", "extra", "practice"


def _check_keys(c: _Collector, doc: Mapping[str, object], allowed: frozenset[str]) -> None:
    for key in sorted(set(doc) - allowed):
        c.add(
            None,
            f"section « {key} » inconnue ; sections possibles : "
            f"{', '.join(sorted(allowed))}. Corrigez l'orthographe ou supprimez-la.",
        )


def _header(c: _Collector, doc: Mapping[str, object], required: Iterable[str]) -> dict[str, str]:
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
            out[key] = _typed_str(c, None, "[matrix]", key, raw[key])
    return out


def _categories(c: _Collector, raw: object, origin: str) -> dict[str, Category]:
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
            label_fr=_typed_str(c, None, where, "label_fr", table["label_fr"]),
            professions=_typed_list(c, None, where, "professions", table["professions"]),
            specialties=_typed_list(c, None, where, "specialties", table["specialties"]),
            default_practice_setting=_typed_str(
                c, None, where, "default_practice_setting", table["default_practice_setting"]
            ),
            default_facility_type=_typed_str(
                c, None, where, "default_facility_type", table["default_facility_type"]
            ),
            origin=origin,
        )
    return out


def _tables(c: _Collector, doc: Mapping[str, object], key: str) -> list[object]:
    raw = doc.get(key, [])
    if isinstance(raw, list):
        return raw
    c.add(
        None, f"« {key} » doit être une liste de tables : écrivez [[{key}]] devant chaque entrée."
    )
    return []


def _read_toml(file: str, data: bytes) -> dict[str, object]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MatrixError(
            [
                MatrixProblem(
                    file,
                    None,
                    f"le fichier n'est pas en UTF-8 (octet {exc.start}) ; "
                    "réenregistrez-le en UTF-8.",
                )
            ]
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POSITION.search(str(exc))
        text = _TOML_POSITION.sub("", str(exc)).strip()
        where = f"ligne {m.group(1)}, colonne {m.group(2)}" if m else "position inconnue"
        raise MatrixError(
            [
                MatrixProblem(
                    file,
                    None,
                    f"syntaxe TOML invalide ({where}) : {text}. Corrigez cette ligne "
                    "(guillemets, crochets, virgules) puis rechargez la matrice.",
                )
            ]
        ) from exc


def _packaged(name: str) -> bytes | None:
    resource = resources.files("mappings").joinpath("matrices", name)
    return resource.read_bytes() if resource.is_file() else None


def _available_regions() -> list[str]:
    folder = resources.files("mappings").joinpath("matrices")
    return sorted(
        p.name.removesuffix(".toml")
        for p in folder.iterdir()
        if p.name.endswith(".toml") and p.name != "national.toml"
    )


@dataclass
class _Base:
    """The national file, parsed: what every overlay starts from."""

    header: dict[str, str]
    classeurs: dict[str, str]
    categories: dict[str, Category]
    rows: list[MatrixRow]


def _load_national() -> _Base:
    data = _packaged("national.toml")
    if data is None:
        raise MatrixError(
            [
                MatrixProblem(
                    "national.toml",
                    None,
                    "matrice nationale absente de l'installation ; réinstallez dmp-bridge.",
                )
            ]
        )
    c = _Collector("national.toml")
    doc = _read_toml("national.toml", data)
    _check_keys(c, doc, _NATIONAL_TOP)
    header = _header(c, doc, ("name", "version", "date", "provenance"))
    classeurs: dict[str, str] = {}
    raw = doc.get("classeurs")
    if isinstance(raw, dict):
        for key, label in raw.items():
            classeurs[key] = _typed_str(c, None, "[classeurs]", key, label)
    else:
        c.add(None, "il manque la table [classeurs] (clé ASCII = libellé français).")
    categories = _categories(c, doc.get("categories"), "national.toml")
    rows: list[MatrixRow] = []
    for i, entry in enumerate(_tables(c, doc, "row")):
        row = _build_row(c, entry, f"[[row]] n°{i + 1}", "national.toml (national)")
        if row is not None:
            rows.append(row)
    if c.problems:
        raise MatrixError(c.problems)
    return _Base(header, classeurs, categories, rows)


def _overlay_layers(
    region: str | None, overrides: Sequence[Mapping[str, object]], extra_files: Sequence[Path]
) -> list[_Layer]:
    """The overlays in the order they apply: region, extra files, then the practice's own."""
    layers: list[_Layer] = []
    if region is not None:
        file = f"{region}.toml"
        data = _packaged(file)
        if data is None:
            raise MatrixError(
                [
                    MatrixProblem(
                        file,
                        None,
                        f"aucune matrice régionale « {region} » ; régions disponibles : "
                        f"{', '.join(_available_regions()) or 'aucune'} (ou region = None pour la "
                        "seule matrice nationale).",
                    )
                ]
            )
        layers.append(_Layer(file, _read_toml(file, data), f"region {region}"))
    for path in extra_files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise MatrixError(
                [
                    MatrixProblem(
                        path.name,
                        None,
                        f"fichier illisible ({exc.strerror}) ; vérifiez le chemin {path} "
                        "et les droits de lecture.",
                    )
                ]
            ) from exc
        layers.append(_Layer(path.name, _read_toml(path.name, data), "extra"))
    for i, mapping in enumerate(overrides):
        layers.append(_Layer(f"overrides[{i}]", mapping, "practice"))
    return layers


def load_matrix(
    *,
    region: str | None = "bretagne",
    overrides: Sequence[Mapping[str, object]] = (),
    extra_files: Sequence[Path] = (),
) -> Matrix:
    """National matrix + the region's overlay + extra overlay files + practice overrides.

    `extra_files` are overlay files (e.g. a URPS file) with the same shapes as the region's.
    `overrides` are mappings shaped like an overlay file without its header:
    `{"override": [{"id": …, <field>: …}], "add": [<row>], "disable": [{"id": …}]}`, typically
    from the bridge configuration; they apply last, in order.
    Raises MatrixError listing the structural faults (each with file, row id and a fix).
    """
    base = _load_national()
    rows = base.rows
    categories = base.categories
    files = ["national.toml"]
    versions = [f"national@{base.header.get('version', '?')}"]
    dates = [base.header.get("date", "")]
    name = base.header.get("name", "")
    layers = _overlay_layers(region, overrides, extra_files)
    for layer in layers:
        c = _Collector(layer.name)
        _check_keys(c, layer.doc, _OVERLAY_TOP)
        if layer.kind != "practice":
            h = _header(c, layer.doc, ("name", "version", "date", "provenance"))
            label = h.get("region") or layer.name.removesuffix(".toml")
            versions.append(f"{label}@{h.get('version', '?')}")
            dates.append(h.get("date", ""))
            name = h.get("name", name)
            files.append(layer.name)
        if "categories" in layer.doc:
            # An overlay may add a category (or redefine one wholesale), e.g. orthophonistes.
            categories.update(_categories(c, layer.doc["categories"], layer.name))
        rows = _apply_layer(c, layer, rows)
        if c.problems:
            raise MatrixError(c.problems)
    return Matrix(
        name=name,
        version="+".join(versions),
        date=max(dates),
        layers=("national.toml (national)", *(f"{x.name} ({x.kind})" for x in layers)),
        categories=MappingProxyType(categories),
        rows=tuple(rows),
        classeurs=MappingProxyType(base.classeurs),
        files=tuple(files),
    )


def _apply_layer(c: _Collector, layer: _Layer, rows: list[MatrixRow]) -> list[MatrixRow]:
    tag = f"{layer.name} ({layer.kind})"
    known = {row.id for row in rows}
    for i, entry in enumerate(_tables(c, layer.doc, "override")):
        where = f"[[override]] n°{i + 1}"
        if not isinstance(entry, Mapping):
            c.add(None, f"{where} doit être une table.")
            continue
        row_id = _row_id_of(entry)
        if row_id is None:
            c.add(
                None,
                f"{where} : il manque l'id de la ligne à modifier ; ajoutez "
                'id = "IDE-02" (par exemple).',
            )
            continue
        if row_id not in known:
            c.add(
                row_id,
                f"{where} : aucune ligne « {row_id} » à modifier ; vérifiez l'id "
                "dans la matrice nationale (ou utilisez [[add]] pour une nouvelle "
                "ligne).",
            )
            continue
        bad = sorted(set(entry) - _ROW_KEYS - _OVERRIDE_EXTRA)
        for key in bad:
            c.add(
                row_id,
                f"{where} : clé « {key} » inconnue ; modifiez un champ de ligne "
                f"({', '.join(sorted(_ROW_KEYS - {'id'}))}) ou ajoutez à une liste "
                "avec aliases_add / categories_add / visibility_add.",
            )
        if bad:
            continue
        rows = [_apply_override(c, r, entry, where, tag) if r.id == row_id else r for r in rows]
    for i, entry in enumerate(_tables(c, layer.doc, "add")):
        row = _build_row(c, entry, f"[[add]] n°{i + 1}", f"{tag} add")
        if row is not None:
            rows.append(row)
            known.add(row.id)
    for i, entry in enumerate(_tables(c, layer.doc, "disable")):
        where = f"[[disable]] n°{i + 1}"
        row_id = _row_id_of(entry) if isinstance(entry, Mapping) else None
        if row_id is None:
            c.add(None, f'{where} : écrivez id = "…" (l\'id de la ligne à désactiver).')
            continue
        if row_id not in known:
            c.add(row_id, f"{where} : aucune ligne « {row_id} » à désactiver ; vérifiez l'id.")
            continue
        rows = [r for r in rows if r.id != row_id]
        known.discard(row_id)
    return rows
