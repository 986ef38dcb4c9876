"""The simulator's own reading of MTOM/XOP bodies (RFC 2387 multipart/related + XOP 1.0).

Independent of the bridge's writer on purpose (DESIGN.md §3). It accepts what the spec says a
DMP client may send (spec §2.1): Content-IDs `0.2`-style or `uuid@host`, with or without angle
brackets, CRLF or bare LF line ends, and binary, 8bit or base64 part encodings. It refuses, with
`MtomError` and never with a crash: a missing boundary, a part without a closing delimiter, an
unresolvable `cid:`, a duplicate Content-ID and bodies above the size limit.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import email.parser
from dataclasses import dataclass
from urllib.parse import unquote

from lxml import etree

from service.simulator.namespaces import XOP, q

DEFAULT_MAX_BYTES = 50 * 1024 * 1024


class MtomError(ValueError):
    """The body is not an acceptable MTOM message; `message_fr` says why, for the Fault."""

    def __init__(self, message_fr: str) -> None:
        super().__init__(message_fr)
        self.message_fr = message_fr


@dataclass(frozen=True)
class MimePart:
    """One body part: its Content-ID (no angle brackets), content type and decoded bytes."""

    content_id: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class MtomMessage:
    """The root (SOAP envelope) bytes and the other parts by Content-ID."""

    root: bytes
    root_content_type: str
    parts: dict[str, bytes]


def _header_params(value: str) -> email.message.Message:
    msg = email.message.Message()
    msg["Content-Type"] = value
    return msg


def media_type(content_type: str) -> str:
    """`multipart/related; …` → `multipart/related` (lower case)."""
    return _header_params(content_type).get_content_type()


def normalize_cid(value: str) -> str:
    """`<0.2>`, `0.2`, `cid:0.2`, `cid:abc%40host` → the bare Content-ID."""
    text = value.strip()
    if text.lower().startswith("cid:"):
        text = unquote(text[4:])
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return text


def _split_parts(body: bytes, boundary: bytes) -> list[bytes]:
    delimiter = b"--" + boundary
    pos = body.find(delimiter)
    if pos < 0 or (pos > 0 and body[pos - 1 : pos] != b"\n"):
        raise MtomError("Délimiteur MIME introuvable dans le corps de la requête.")
    parts: list[bytes] = []
    while True:
        after = pos + len(delimiter)
        if body[after : after + 2] == b"--":
            return parts
        eol = body.find(b"\n", after)
        if eol < 0:
            raise MtomError("Partie MIME tronquée (fin de ligne manquante après le délimiteur).")
        start = eol + 1
        nxt = body.find(b"\n" + delimiter, start - 1)
        if nxt < 0:
            raise MtomError("Partie MIME sans délimiteur de fin.")
        end = nxt
        if end > start and body[end - 1 : end] == b"\r":
            end -= 1
        parts.append(body[start:max(start, end)])
        pos = nxt + 1


def _parse_part(raw: bytes) -> MimePart:
    if raw.startswith((b"\r\n", b"\n")):
        head, content = b"", raw[2:] if raw.startswith(b"\r\n") else raw[1:]
    else:
        cuts = [(raw.find(sep), sep) for sep in (b"\r\n\r\n", b"\n\n") if raw.find(sep) >= 0]
        if not cuts:
            raise MtomError("En-têtes de partie MIME mal formés.")
        cut, sep = min(cuts)
        head, content = raw[:cut], raw[cut + len(sep) :]
    headers = email.parser.BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
    encoding = (headers.get("Content-Transfer-Encoding") or "binary").strip().lower()
    if encoding == "base64":
        try:
            data = base64.b64decode(b"".join(content.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MtomError("Partie MIME en base64 illisible.") from exc
    elif encoding in ("binary", "8bit", "7bit"):
        data = content
    else:
        raise MtomError(f"Content-Transfer-Encoding non pris en charge : {encoding[:40]}.")
    return MimePart(
        content_id=normalize_cid(headers.get("Content-ID") or ""),
        content_type=str(headers.get("Content-Type") or ""),
        data=data,
    )


def parse_mtom(
    content_type: str, body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> MtomMessage:
    """Split a `multipart/related` body into its root part and the other parts by Content-ID."""
    if len(body) > max_bytes:
        raise MtomError(f"Requête trop volumineuse ({len(body)} octets > {max_bytes}).")
    params = _header_params(content_type)
    if params.get_content_type() != "multipart/related":
        raise MtomError("Type de contenu attendu : multipart/related (MTOM/XOP).")
    boundary = params.get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 200:
        raise MtomError("Paramètre boundary absent ou invalide dans Content-Type.")
    parts = [_parse_part(raw) for raw in _split_parts(body, boundary.encode("latin-1"))]
    if not parts:
        raise MtomError("Message MTOM sans aucune partie.")
    by_id: dict[str, MimePart] = {}
    for part in parts:
        if part.content_id and part.content_id in by_id:
            raise MtomError("Content-ID présent deux fois dans le message MTOM.")
        if part.content_id:
            by_id[part.content_id] = part
    start = params.get_param("start")
    if isinstance(start, str) and start.strip():
        root = by_id.get(normalize_cid(start))
        if root is None:
            raise MtomError("La partie racine désignée par le paramètre start est absente.")
    else:
        root = parts[0]
    others = {cid: part.data for cid, part in by_id.items() if part is not root}
    return MtomMessage(root=root.data, root_content_type=root.content_type, parts=others)


def include_bytes(element: etree._Element, parts: dict[str, bytes]) -> bytes:
    """The bytes an element carries: its `xop:Include` part, or inline base64 text."""
    includes = element.findall(q(XOP, "Include"))
    if len(includes) > 1:
        raise MtomError("Plusieurs xop:Include dans un même élément.")
    if includes:
        href = includes[0].get("href") or ""
        if not href.lower().startswith("cid:"):
            raise MtomError("xop:Include sans référence cid: valide.")
        data = parts.get(normalize_cid(href))
        if data is None:
            raise MtomError("xop:Include désigne une partie MIME absente du message.")
        return data
    try:
        return base64.b64decode("".join((element.text or "").split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MtomError("Contenu base64 illisible dans xdsb:Document.") from exc
