"""Reading a feeding matrix file as TOML, and its values with the type they must have.

Nothing here stops at the first fault: a `Collector` gathers the problems of one file (file, row,
French fix) so the user sees them all at once; `read_toml` alone raises `MatrixError`, since a
file that is not UTF-8 TOML has nothing more to check.
"""

from __future__ import annotations

import re
import tomllib

from mappings.matrix import MatrixError, MatrixProblem

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


class Collector:
    """Gathers problems for one file so the user sees them all at once."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[MatrixProblem] = []

    def add(self, row_id: str | None, message_fr: str) -> None:
        self.problems.append(MatrixProblem(self.file, row_id, message_fr))


def typed_str(c: Collector, row_id: str | None, where: str, key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    c.add(
        row_id,
        f"{where} : « {key} » doit être un texte entre guillemets "
        f'(trouvé : {type(value).__name__}). Écrivez par exemple {key} = "…".',
    )
    return ""


def typed_list(
    c: Collector, row_id: str | None, where: str, key: str, value: object
) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    c.add(
        row_id,
        f"{where} : « {key} » doit être une liste de textes, par exemple "
        f'{key} = ["A", "B"]. Corrigez la valeur.',
    )
    return ()


def typed_bool(c: Collector, row_id: str | None, where: str, key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    c.add(row_id, f"{where} : « {key} » doit valoir true ou false (sans guillemets).")
    return False


def read_toml(file: str, data: bytes) -> dict[str, object]:
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
