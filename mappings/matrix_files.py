"""The files a feeding matrix is built from: the national file and the regional overlays shipped
in `mappings/matrices`, the extra overlay files given by path (e.g. a URPS file), and the
practice's overrides from the configuration, in the order they apply.

The national file is read whole here (`load_national`); an overlay is only read as TOML, to be
applied by `mappings.matrix_load`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mappings.matrix import Category, MatrixError, MatrixProblem, MatrixRow
from mappings.matrix_rows import build_row
from mappings.matrix_sections import check_keys, read_categories, read_header, tables_of
from mappings.matrix_toml import Collector, read_toml, typed_str

_NATIONAL_TOP = frozenset({"matrix", "classeurs", "categories", "row"})


class Layer:
    """One overlay: a file or a mapping from the configuration."""

    def __init__(self, name: str, doc: Mapping[str, object], kind: str) -> None:
        self.name = name
        self.doc = doc
        self.kind = kind  # "region", "extra", "practice"


def packaged(name: str) -> bytes | None:
    resource = resources.files("mappings").joinpath("matrices", name)
    return resource.read_bytes() if resource.is_file() else None


def available_regions() -> list[str]:
    folder = resources.files("mappings").joinpath("matrices")
    return sorted(
        p.name.removesuffix(".toml")
        for p in folder.iterdir()
        if p.name.endswith(".toml") and p.name != "national.toml"
    )


@dataclass
class NationalBase:
    """The national file, parsed: what every overlay starts from."""

    header: dict[str, str]
    classeurs: dict[str, str]
    categories: dict[str, Category]
    rows: list[MatrixRow]


def load_national() -> NationalBase:
    data = packaged("national.toml")
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
    c = Collector("national.toml")
    doc = read_toml("national.toml", data)
    check_keys(c, doc, _NATIONAL_TOP)
    header = read_header(c, doc, ("name", "version", "date", "provenance"))
    classeurs: dict[str, str] = {}
    raw = doc.get("classeurs")
    if isinstance(raw, dict):
        for key, label in raw.items():
            classeurs[key] = typed_str(c, None, "[classeurs]", key, label)
    else:
        c.add(None, "il manque la table [classeurs] (clé ASCII = libellé français).")
    categories = read_categories(c, doc.get("categories"), "national.toml")
    rows: list[MatrixRow] = []
    for i, entry in enumerate(tables_of(c, doc, "row")):
        row = build_row(c, entry, f"[[row]] n°{i + 1}", "national.toml (national)")
        if row is not None:
            rows.append(row)
    if c.problems:
        raise MatrixError(c.problems)
    return NationalBase(header, classeurs, categories, rows)


def overlay_layers(
    region: str | None, overrides: Sequence[Mapping[str, object]], extra_files: Sequence[Path]
) -> list[Layer]:
    """The overlays in the order they apply: region, extra files, then the practice's own."""
    layers: list[Layer] = []
    if region is not None:
        file = f"{region}.toml"
        data = packaged(file)
        if data is None:
            raise MatrixError(
                [
                    MatrixProblem(
                        file,
                        None,
                        f"aucune matrice régionale « {region} » ; régions disponibles : "
                        f"{', '.join(available_regions()) or 'aucune'} (ou region = None pour la "
                        "seule matrice nationale).",
                    )
                ]
            )
        layers.append(Layer(file, read_toml(file, data), f"region {region}"))
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
        layers.append(Layer(path.name, read_toml(path.name, data), "extra"))
    for i, mapping in enumerate(overrides):
        layers.append(Layer(f"overrides[{i}]", mapping, "practice"))
    return layers
