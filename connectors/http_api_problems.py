"""RFC 7807 problem answers of the local HTTP API, in French.

Every refusal is `application/problem+json` with `type`, `title`, `status`, `detail` (the same
French reason the folder channel writes in `NAME.reason.txt`) and `code` (the stable
`BridgeError` code). Details name fields and rules, never a patient: the errors of the core are
written that way (bridge.errors), and the API never echoes request content back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bridge.errors import BridgeError, IntakeRejected

PROBLEM_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:dmp-bridge:probleme:"
RETRY_AFTER_SECONDS = 30

TITLES_FR: Mapping[int, str] = {
    400: "Requête refusée",
    401: "Authentification requise",
    404: "Introuvable",
    405: "Méthode non permise",
    409: "Clé d'idempotence déjà utilisée",
    413: "Requête trop volumineuse",
    415: "Type de contenu non pris en charge",
    421: "Hôte non autorisé",
    500: "Erreur interne",
    503: "Service momentanément indisponible",
}

# Codes of the HTTP layer itself whose status is not 400.
_STATUS_OF_CODE: Mapping[str, int] = {
    "HTTP_BODY_TOO_LARGE": 413,
    "HTTP_UNSUPPORTED_MEDIA_TYPE": 415,
}

# Headers on every answer: nothing cached (job states change, problems are per request), no
# content sniffing. No CORS header is ever sent: a web page has no business calling us.
COMMON_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def dumps(data: Any) -> str:
    """JSON with French text kept readable (UTF-8, no \\u escapes)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def problem(status: int, code: str, detail_fr: str,
            headers: Mapping[str, str] | None = None) -> web.Response:
    body = {
        "type": TYPE_PREFIX + code,
        "title": TITLES_FR.get(status, "Erreur"),
        "status": status,
        "detail": detail_fr,
        "code": code,
    }
    return web.json_response(body, status=status, content_type=PROBLEM_TYPE, dumps=dumps,
                             headers={**COMMON_HEADERS, **(headers or {})})


def rejection(exc: BridgeError) -> web.Response:
    """The answer to a refused input: 400, or 413 / 415 for the HTTP layer's own codes."""
    return problem(_STATUS_OF_CODE.get(exc.code, 400), exc.code, exc.message_fr)


def rejected(code: str, message_fr: str, event: str) -> IntakeRejected:
    return IntakeRejected(message_fr, code=code, event=event)


def too_large(limit: int) -> IntakeRejected:
    shown = f"{limit / (1024 * 1024):.0f} Mo" if limit >= 1024 * 1024 else f"{limit // 1024} Ko"
    return rejected(
        "HTTP_BODY_TOO_LARGE",
        f"La requête dépasse {shown}, la taille maximale acceptée par dmp-bridge : réduisez "
        "le document (numérisation en noir et blanc, 200 dpi) puis envoyez-le à nouveau.",
        "http_body_too_large",
    )


def unauthorized() -> web.Response:
    return problem(
        401, "HTTP_UNAUTHORIZED",
        "Jeton d'accès absent ou incorrect : envoyez l'en-tête « Authorization: Bearer "
        "<jeton> » avec le jeton du fichier créé par « dmp-bridge init » (lisible par le "
        "compte du service seulement).",
        headers={"WWW-Authenticate": 'Bearer realm="dmp-bridge"'},
    )


def host_refused() -> web.Response:
    return problem(
        421, "HTTP_HOST_REFUSED",
        "L'en-tête Host de la requête ne désigne pas ce poste : l'API de dmp-bridge ne répond "
        "qu'aux adresses 127.0.0.1, localhost et [::1] avec son port. Appelez-la par l'une "
        "d'elles.",
    )


def store_unavailable() -> web.Response:
    return problem(
        503, "STORE_UNAVAILABLE",
        "dmp-bridge n'a pas pu enregistrer le document (file d'attente indisponible, disque "
        "plein ?) : rien n'a été conservé. Renvoyez-le dans quelques instants.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def key_reused() -> web.Response:
    return problem(
        409, "IDEMPOTENCY_KEY_REUSED",
        "Cette clé d'idempotence (en-tête Idempotency-Key) a déjà servi pour un autre "
        "document : chaque document doit avoir sa propre clé. Rien n'a été enregistré.",
    )


def not_found(job_id: int | None = None) -> web.Response:
    if job_id is None:
        return problem(404, "NOT_FOUND",
                       "Cette adresse n'existe pas dans l'API de dmp-bridge : consultez "
                       "/api/openapi.json.")
    return problem(404, "UNKNOWN_JOB",
                   f"Aucun document n° {job_id} dans la file d'attente de dmp-bridge.")


def method_not_allowed() -> web.Response:
    return problem(405, "METHOD_NOT_ALLOWED",
                   "Cette méthode n'est pas permise à cette adresse : consultez "
                   "/api/openapi.json.")


def internal_error() -> web.Response:
    return problem(500, "INTERNAL_ERROR",
                   "Erreur interne de dmp-bridge : renvoyez la requête plus tard ; si l'erreur "
                   "persiste, contactez le support.")
