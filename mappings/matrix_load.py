"""Loading the feeding matrix: the national file, then each overlay (region, URPS files,
practice overrides) applied in order into one `mappings.matrix.Matrix`; see that module for the
layering rules.

Structural faults (bad TOML, missing keys, wrong types, an override of an unknown id) are
gathered per file and raised together as `MatrixError`, each with its file, row and fix. The
files are found and read by `mappings.matrix_files`, rows built by `mappings.matrix_rows`;
this module applies each overlay's `[[override]]`, `[[add]]` and `[[disable]]` entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from mappings.matrix import Matrix, MatrixError, MatrixRow
from mappings.matrix_files import Layer, load_national, overlay_layers
from mappings.matrix_rows import (
    OUTSIDE_VALUE_SETS_KEYS,
    ROW_KEYS,
    apply_override,
    build_row,
    row_id_of,
)
from mappings.matrix_sections import check_keys, read_categories, read_header, tables_of
from mappings.matrix_toml import Collector

__all__ = ["OUTSIDE_VALUE_SETS_KEYS", "load_matrix"]

_OVERRIDE_EXTRA = frozenset(
    {"id", "reason", "aliases_add", "categories_add", "visibility_add", "outside_value_sets_add"}
)
_OVERLAY_TOP = frozenset({"matrix", "categories", "override", "add", "disable"})


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
    base = load_national()
    rows = base.rows
    categories = base.categories
    files = ["national.toml"]
    versions = [f"national@{base.header.get('version', '?')}"]
    dates = [base.header.get("date", "")]
    name = base.header.get("name", "")
    layers = overlay_layers(region, overrides, extra_files)
    for layer in layers:
        c = Collector(layer.name)
        check_keys(c, layer.doc, _OVERLAY_TOP)
        if layer.kind != "practice":
            h = read_header(c, layer.doc, ("name", "version", "date", "provenance"))
            label = h.get("region") or layer.name.removesuffix(".toml")
            versions.append(f"{label}@{h.get('version', '?')}")
            dates.append(h.get("date", ""))
            name = h.get("name", name)
            files.append(layer.name)
        if "categories" in layer.doc:
            # An overlay may add a category (or redefine one wholesale), e.g. orthophonistes.
            categories.update(read_categories(c, layer.doc["categories"], layer.name))
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


def _apply_layer(c: Collector, layer: Layer, rows: list[MatrixRow]) -> list[MatrixRow]:
    tag = f"{layer.name} ({layer.kind})"
    known = {row.id for row in rows}
    for i, entry in enumerate(tables_of(c, layer.doc, "override")):
        where = f"[[override]] n°{i + 1}"
        if not isinstance(entry, Mapping):
            c.add(None, f"{where} doit être une table.")
            continue
        row_id = row_id_of(entry)
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
        bad = sorted(set(entry) - ROW_KEYS - _OVERRIDE_EXTRA)
        for key in bad:
            c.add(
                row_id,
                f"{where} : clé « {key} » inconnue ; modifiez un champ de ligne "
                f"({', '.join(sorted(ROW_KEYS - {'id'}))}) ou ajoutez à une liste "
                "avec aliases_add / categories_add / visibility_add.",
            )
        if bad:
            continue
        rows = [apply_override(c, r, entry, where, tag) if r.id == row_id else r for r in rows]
    for i, entry in enumerate(tables_of(c, layer.doc, "add")):
        row = build_row(c, entry, f"[[add]] n°{i + 1}", f"{tag} add")
        if row is not None:
            rows.append(row)
            known.add(row.id)
    for i, entry in enumerate(tables_of(c, layer.doc, "disable")):
        where = f"[[disable]] n°{i + 1}"
        row_id = row_id_of(entry) if isinstance(entry, Mapping) else None
        if row_id is None:
            c.add(None, f'{where} : écrivez id = "…" (l\'id de la ligne à désactiver).')
            continue
        if row_id not in known:
            c.add(row_id, f"{where} : aucune ligne « {row_id} » à désactiver ; vérifiez l'id.")
            continue
        rows = [r for r in rows if r.id != row_id]
        known.discard(row_id)
    return rows
