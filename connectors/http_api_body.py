"""Reading a `POST /api/v1/documents` body: the PDF and its sidecar, whatever the encoding.

Two encodings carry the same thing (the folder channel's pair of files):
- `multipart/form-data` with a `file` part (the PDF bytes) and a `metadata` part (sidecar JSON);
- `application/json` `{"pdf_base64": "...", "metadata": {...}}`.

Both end as the same bytes: the PDF as sent, and the sidecar re-serialised in one canonical form
(sorted keys, no spaces, UTF-8), so the same document gets the same content hash — and so the
same job — whichever encoding the practice software uses.

Bodies are bounded while they are read (the multipart reader counts, `client_max_size` bounds
the JSON body) so a client cannot make us hold more than `max_bytes`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from bridge.sidecar import MAX_SIDECAR_BYTES
from connectors.http_api_problems import rejected, too_large

READ_CHUNK = 64 * 1024
MAX_KEY_LENGTH = 255
FILE_PART = "file"
METADATA_PART = "metadata"
JSON_PDF = "pdf_base64"
JSON_METADATA = "metadata"


@dataclass(frozen=True)
class Submission:
    """A document as received over HTTP, ready for `accept_pair`."""

    payload: bytes  # the PDF as sent
    metadata: bytes  # the sidecar, canonical JSON (or the raw bytes when they are not JSON)
    pdf_name: str  # how the French reasons name the PDF (the field, never a client file name)
    sidecar_name: str

    def digests(self) -> tuple[str, str]:
        """(content hash, hex SHA-256 of the PDF). The content hash is one hash for the pair:
        the same document by either encoding gives the same value. The PDF is hashed once, for
        it and for the queue (no cache: a cached_property would serialise concurrent uploads
        on its lock in Python 3.11)."""
        payload_sha256 = hashlib.sha256(self.payload).digest()
        content = hashlib.sha256(
            b"http-content\0" + payload_sha256 + hashlib.sha256(self.metadata).digest()
        ).hexdigest()
        return content, payload_sha256.hex()


def intake_key(header_key: str | None, content_sha256: str) -> str:
    """The queue's idempotency key: the client's Idempotency-Key, or else the content hash.

    Namespaced ("http", then "key" or "content") so no client key can collide with another
    channel's keys or with a content hash.
    """
    scoped = b"key\0" + header_key.encode("ascii") if header_key else (
        b"content\0" + content_sha256.encode("ascii"))
    return hashlib.sha256(b"http\0" + scoped).hexdigest()


def parse_idempotency_key(value: str | None) -> str | None:
    """The Idempotency-Key header (quotes of a structured-field string removed), or None."""
    if value is None:
        return None
    key = value.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or any(not 0x21 <= ord(c) <= 0x7E for c in key):
        raise rejected(
            "IDEMPOTENCY_KEY_INVALID",
            f"L'en-tête Idempotency-Key doit contenir de 1 à {MAX_KEY_LENGTH} caractères ASCII "
            "visibles, sans espace (par exemple un UUID) : corrigez-le.",
            "http_idempotency_key_invalid",
        )
    return key


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode(
        "utf-8")


def _canonical_sidecar(raw: bytes) -> bytes:
    """The sidecar part in canonical form; bytes that are not JSON are kept as they are, so
    `accept_pair` refuses them with exactly the folder channel's reason."""
    if len(raw) > MAX_SIDECAR_BYTES:
        return raw
    try:
        return canonical_json(json.loads(raw.decode("utf-8-sig")))
    except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return raw


def _json_invalid(what: str, where: str = "") -> Exception:
    return rejected(
        "HTTP_JSON_INVALID",
        f"{what} n'est pas un JSON valide en UTF-8{where}. Corrigez la requête ; le format "
        "attendu est décrit dans /api/openapi.json.",
        "http_json_invalid",
    )


async def read_submission(request: web.Request, max_bytes: int) -> Submission:
    """The PDF and sidecar of the request; raises IntakeRejected (400/413/415) otherwise."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large(max_bytes)
    if request.content_type == "multipart/form-data":
        return await _read_multipart(request, max_bytes)
    if request.content_type == "application/json":
        return await _read_json(request, max_bytes)
    raise rejected(
        "HTTP_UNSUPPORTED_MEDIA_TYPE",
        "Type de contenu non pris en charge : envoyez « multipart/form-data » (parties "
        f"« {FILE_PART} » et « {METADATA_PART} ») ou « application/json » "
        f"(« {JSON_PDF} » et « {JSON_METADATA} »).",
        "http_unsupported_media_type",
    )


async def _read_part(part: BodyPartReader, budget: int, max_bytes: int) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(READ_CHUNK):
        data += chunk
        if len(data) > budget:
            raise too_large(max_bytes)
    return bytes(data)


async def _read_multipart(request: web.Request, max_bytes: int) -> Submission:
    parts: dict[str, bytes] = {}
    budget = max_bytes
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name not in (FILE_PART,
                                                                           METADATA_PART):
                raise _multipart_invalid(
                    f"seules les parties « {FILE_PART} » et « {METADATA_PART} » sont attendues")
            if part.name in parts:
                raise _multipart_invalid(f"la partie « {part.name} » est envoyée deux fois")
            data = await _read_part(part, budget, max_bytes)
            budget -= len(data)
            parts[part.name] = data
    except ValueError:  # no boundary, broken framing, bad part headers
        raise _multipart_invalid("le corps multipart est illisible") from None
    missing = [name for name in (FILE_PART, METADATA_PART) if name not in parts]
    if missing:
        raise _multipart_invalid(f"la partie « {missing[0]} » manque")
    return Submission(
        payload=parts[FILE_PART],
        metadata=_canonical_sidecar(parts[METADATA_PART]),
        pdf_name=f"« {FILE_PART} »",
        sidecar_name=f"« {METADATA_PART} »",
    )


def _multipart_invalid(why: str) -> Exception:
    return rejected(
        "HTTP_MULTIPART_INVALID",
        f"Requête multipart/form-data invalide : {why}. Envoyez le PDF dans la partie "
        f"« {FILE_PART} » et sa fiche JSON dans la partie « {METADATA_PART} ».",
        "http_multipart_invalid",
    )


async def _read_json(request: web.Request, max_bytes: int) -> Submission:
    try:
        body = await request.read()  # bounded by the application's client_max_size
    except web.HTTPRequestEntityTooLarge:
        raise too_large(max_bytes) from None
    if len(body) > max_bytes:
        raise too_large(max_bytes)
    try:
        raw = json.loads(body.decode("utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise _json_invalid("Le corps de la requête",
                            f" (ligne {exc.lineno}, colonne {exc.colno})") from None
    except (UnicodeDecodeError, ValueError, RecursionError):  # ValueError: a 4301-digit number
        raise _json_invalid("Le corps de la requête") from None
    expected = {JSON_PDF, JSON_METADATA}
    if not isinstance(raw, dict) or set(raw) != expected or not isinstance(raw[JSON_PDF], str):
        raise rejected(
            "HTTP_JSON_SHAPE",
            f"Le corps JSON doit être un objet avec exactement deux clés : « {JSON_PDF} » (le "
            f"PDF encodé en base64, une chaîne) et « {JSON_METADATA} » (la fiche du document).",
            "http_json_shape",
        )
    try:
        pdf = base64.b64decode("".join(raw[JSON_PDF].split()), validate=True)
    except (binascii.Error, ValueError):
        raise rejected(
            "HTTP_BASE64_INVALID",
            f"« {JSON_PDF} » n'est pas un base64 valide (alphabet standard A-Z a-z 0-9 + /, "
            "complété par =) : encodez le PDF à nouveau.",
            "http_base64_invalid",
        ) from None
    try:
        metadata = canonical_json(raw[JSON_METADATA])
    except (RecursionError, ValueError):
        raise _json_invalid(f"« {JSON_METADATA} »") from None
    return Submission(payload=pdf, metadata=metadata, pdf_name=f"« {JSON_PDF} »",
                      sidecar_name=f"« {JSON_METADATA} »")
