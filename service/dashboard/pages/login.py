"""Signing in with the local token, and signing out."""

from __future__ import annotations

import hmac
import re
import secrets

import structlog
from aiohttp import web

from service.dashboard.auth import (
    LOGIN_COOKIE,
    LOGIN_PATH,
    SESSION_COOKIE,
    refusal,
    session_of,
    set_cookie,
)
from service.dashboard.context import DASHBOARD, html_response
from service.dashboard.html import Markup, hidden, page, tag

log = structlog.get_logger("dmp_bridge.dashboard")
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


def _form(login_csrf: str) -> Markup:
    field = (tag("label", "Jeton d'accès", for_="jeton")
             + Markup('<input type="password" id="jeton" name="jeton" required '
                      'autocomplete="off" spellcheck="false" size="50">'))
    help_text = tag("p", "Collez le contenu du fichier « jeton-api » du dossier des données de la "
                    "passerelle (donnees/jeton-api). Demandez-le à la personne qui a installé "
                    "dmp-bridge si vous ne l'avez pas.", class_="aide")
    button = tag("button", "Se connecter", type="submit", class_="bouton")
    return tag("form", hidden("csrf", login_csrf) + field + help_text + button, method="post",
               action=LOGIN_PATH, class_="connexion")


def _login_page(request: web.Request, error: str | None = None,
                status: int = 200) -> web.Response:
    # The browser's token is kept if it has one: its own background requests (the icon of the
    # tab, redirected here) must not replace the one of the form it shows.
    login_csrf = request.cookies.get(LOGIN_COOKIE, "")
    if not _TOKEN_SHAPE.fullmatch(login_csrf):
        login_csrf = secrets.token_urlsafe(32)
    response = html_response(page("Connexion", _form(login_csrf), notice=error,
                                  notice_error=error is not None), status=status)
    set_cookie(response, LOGIN_COOKIE, login_csrf)
    return response


async def show_login(request: web.Request) -> web.StreamResponse:
    sessions = request.app[DASHBOARD].sessions
    if sessions.get(request.cookies.get(SESSION_COOKIE)) is not None:
        raise web.HTTPSeeOther("/")
    return _login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    sessions = request.app[DASHBOARD].sessions
    form = await request.post()
    supplied_csrf, cookie_csrf = form.get("csrf"), request.cookies.get(LOGIN_COOKIE, "")
    if not (isinstance(supplied_csrf, str) and cookie_csrf
            and hmac.compare_digest(supplied_csrf.encode("utf-8", errors="replace"),
                                    cookie_csrf.encode("utf-8", errors="replace"))):
        log.warning("dashboard_login_csrf_refused")
        return refusal(403, "Requête refusée : le formulaire de connexion a expiré. Rechargez "
                       "la page et recommencez.")
    token = form.get("jeton")
    if not isinstance(token, str) or not sessions.token_matches(token):
        log.warning("dashboard_login_refused")
        return _login_page(request, "Jeton incorrect : copiez tout le contenu du fichier "
                           "donnees/jeton-api, sans espace en trop.", status=401)
    session = sessions.open()
    log.info("dashboard_login")
    response = web.HTTPSeeOther("/")
    set_cookie(response, SESSION_COOKIE, session.id)
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    request.app[DASHBOARD].sessions.close(session.id)
    log.info("dashboard_logout")
    response = web.HTTPSeeOther(LOGIN_PATH)
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
