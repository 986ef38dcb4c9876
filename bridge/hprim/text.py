"""Bytes of an HPRIM file → lines of text: the charset and the line ends vary between senders.

HPRIM files come from old lab systems and mail clients: UTF-8 (with or without BOM), Latin-1 or
Windows-1252, lines ended by CR, LF or CRLF. A file holding NUL bytes is UTF-16 or binary: it is
refused, because decoding it as a single-byte charset would turn names into garbage silently.
"""

from __future__ import annotations

import re

from bridge.errors import IntakeRejected

MAX_HPRIM_BYTES = 2 * 1024 * 1024  # a results file with thousands of lines stays far below
_LINE_END = re.compile(r"\r\n|\r|\n")


def decode_text(data: bytes, *, file_name: str, what: str) -> str:
    """The text of the file; IntakeRejected (French reason) when it cannot be read safely."""
    if len(data) > MAX_HPRIM_BYTES:
        raise IntakeRejected(
            f"Le fichier {file_name} dépasse {MAX_HPRIM_BYTES // (1024 * 1024)} Mo : ce n'est "
            f"pas un fichier {what} ordinaire. Vérifiez l'export du logiciel.",
            code="HPRIM_TOO_LARGE", event="hprim_too_large")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data:
        raise IntakeRejected(
            f"Le fichier {file_name} n'est pas un texte {what} lisible : son encodage (UTF-16 ou "
            "fichier binaire) n'est pas pris en charge. Réglez l'export du logiciel en UTF-8, "
            "ISO-8859-1 ou Windows-1252.",
            code="HPRIM_CHARSET", event="hprim_charset_unsupported")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Windows-1252 leaves 5 bytes undefined; Latin-1 maps every byte, so this never fails.
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def split_lines(text: str) -> list[str]:
    """Lines, whatever the line ends; a final line end does not make an empty last line."""
    lines = _LINE_END.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines
