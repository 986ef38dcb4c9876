"""The card's local API, for `dmp-bridge card …` (the dashboard has its own Carte page).

Mounted under /api/v1/carte on the loopback listener. A caller must present the local token
(`Authorization: Bearer …`, file donnees/jeton-api) and a Host naming this listener (DNS
rebinding); the PIN is accepted only as JSON in a POST body (never in a URL, which logs and
histories keep), goes straight to the card, and every answer says `Cache-Control: no-store`.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import asdict
from typing import Any

from aiohttp import web

from service.card_runtime import CardManager

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
MAX_BODY = 4096


def _answer(status: int, payload: dict[str, Any]) -> web.Response:
    return web.json_response(payload, status=status, headers={"Cache-Control": "no-store"})


async def _login_body(request: web.Request) -> dict[str, Any] | web.Response:
    """The checked JSON body of a login, or the answer that refuses it."""
    if request.content_type != "application/json":
        return _answer(415, {"message": "Corps JSON attendu."})
    try:
        # The whole body (client_max_size bounds it: 413 beyond), not what arrived first.
        body = json.loads(await request.read())
    except web.HTTPRequestEntityTooLarge:
        return _answer(413, {"message": "Requête trop grande."})
    except (ValueError, UnicodeDecodeError):
        return _answer(400, {"message": "Corps JSON illisible."})
    if not isinstance(body, dict) or not isinstance(body.get("pin"), str):
        return _answer(400, {"message": "Le champ « pin » est attendu."})
    reader, situation = body.get("lecteur"), body.get("situation")
    if (reader is not None and not isinstance(reader, str)) or (
            situation is not None and not isinstance(situation, int)):
        return _answer(400, {"message": "« lecteur » est un texte et « situation » un numéro."})
    return body


def card_api(manager: CardManager, token: str) -> web.Application:
    """The sub-application to mount at /api/v1/carte."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        host = request.headers.get("Host", "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in LOCAL_HOSTS:
            return _answer(421, {"message": "Hôte non autorisé : utilisez 127.0.0.1."})
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            return _answer(401, {"message": "Jeton absent ou faux : il est dans le fichier "
                                            "donnees/jeton-api de l'installation."})
        response: web.StreamResponse = await handler(request)
        return response

    async def status(request: web.Request) -> web.Response:
        return _answer(200, {"lecteurs": [asdict(view) for view in manager.readers()]})

    async def login(request: web.Request) -> web.Response:
        body = await _login_body(request)
        if isinstance(body, web.Response):
            return body
        problem = await manager.login(body.get("lecteur"), body.pop("pin"), body.get("situation"))
        if problem is not None:
            return _answer(409, {"message": problem})
        return _answer(200, {"message": "Carte connectée : les documents de son titulaire "
                                        "partent maintenant."})

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app.router.add_get("/etat", status)
    app.router.add_post("/connexion", login)
    return app
