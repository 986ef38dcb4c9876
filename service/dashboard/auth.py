"""Who may see the dashboard, and from where.

- The Host header must name this listener (127.0.0.1, localhost or [::1] with its own port): a
  page served from a rebound DNS name reaches 127.0.0.1 but says another Host (DNS rebinding).
- A person signs in by pasting the local token (the file `jeton-api`); they then get a session
  cookie: random, HttpOnly, SameSite=Strict, known only to this process's memory (a restart
  signs everyone out). Without a session, every page but the sign-in form redirects to it, so
  nothing about a patient is ever served to someone who does not hold the token.
- Every POST must come from one of our own pages: its Origin (or, failing that, Referer) must be
  this listener, and it must carry the session's CSRF token (the sign-in form: a token in a
  cookie and in the form, compared).
- Every answer says `Cache-Control: no-store` and forbids framing and any foreign resource.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

log = structlog.get_logger("dmp_bridge.dashboard")

SESSION_COOKIE = "dmp_session"
LOGIN_COOKIE = "dmp_connexion"  # the sign-in form's own CSRF token (double submit)
IDLE_SECONDS = 4 * 3600.0  # signed out after 4 hours without a page view
LIFETIME_SECONDS = 12 * 3600.0  # and after 12 hours in any case (a working day)
MAX_SESSIONS = 32  # a practice has a few computers; the oldest session goes first
PUBLIC_PREFIXES = ("/static/",)
# Mounted beside the dashboard on the same listener, with their own token check
# (`Authorization: Bearer`, which no cross-site page can send): no session, no form CSRF.
API_PREFIX = "/api/"
LOGIN_PATH = "/connexion"
METRICS_PATH = "/metrics"

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Session:
    """One signed-in browser."""

    id: str
    csrf: str
    created: float
    last_seen: float
    notice: str | None = None  # shown once on the next page (after a redirect)
    notice_error: bool = False

    def tell(self, message: str, *, error: bool = False) -> None:
        self.notice, self.notice_error = message, error

    def take_notice(self) -> tuple[str | None, bool]:
        notice, error = self.notice, self.notice_error
        self.notice, self.notice_error = None, False
        return notice, error


SESSION_KEY = web.RequestKey("session", Session)


class Sessions:
    """The signed-in browsers, in memory only."""

    def __init__(self, token: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        if len(token) < 32:
            raise ValueError("the dashboard token must be at least 32 characters long")
        self._token = token.encode("utf-8")
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def token_matches(self, supplied: str) -> bool:
        """Constant time whatever the text given (only its length may show)."""
        return hmac.compare_digest(supplied.strip().encode("utf-8", errors="replace"),
                                   self._token)

    def open(self) -> Session:
        now = self._clock()
        self._expire(now)
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
            del self._sessions[oldest.id]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        now = self._clock()
        self._expire(now)
        session = self._sessions.get(session_id)
        if session is not None:
            session.last_seen = now
        return session

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _expire(self, now: float) -> None:
        for session in list(self._sessions.values()):
            if now - session.last_seen > IDLE_SECONDS or now - session.created > LIFETIME_SECONDS:
                del self._sessions[session.id]


def set_cookie(response: web.StreamResponse, name: str, value: str) -> None:
    """HttpOnly, SameSite=Strict, for the whole site, for this browser session only."""
    response.set_cookie(name, value, path="/", httponly=True, samesite="Strict")


def session_of(request: web.Request) -> Session:
    session: Session | None = request.get(SESSION_KEY)
    if session is None:  # a route left out of the middleware's care: treat as signed out
        raise web.HTTPSeeOther(LOGIN_PATH)
    return session


def _local_port(request: web.Request) -> int | None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return int(sockname[1])
    return None


def allowed_hosts(request: web.Request) -> frozenset[str]:
    port = _local_port(request)
    if port is None:
        return frozenset()
    return frozenset({f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"})


def _same_origin(request: web.Request, host: str) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        origin = request.headers.get("Referer")
    if not origin:
        return False
    parts = urlsplit(origin)
    return parts.scheme == "http" and parts.netloc.lower() == host


def refusal(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain", charset="utf-8")


def _secure(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The common headers on every answer; aiohttp's own errors in French; no traceback (nor
    anything of the request) ever reaches the browser or the logs."""
    try:
        response = await handler(request)
    except web.HTTPNotFound:
        response = refusal(404, "Page introuvable.")
    except web.HTTPMethodNotAllowed:
        response = refusal(405, "Action non permise sur cette page.")
    except web.HTTPRequestEntityTooLarge:
        response = refusal(413, "Fichier trop volumineux pour le tableau de bord.")
    except web.HTTPException as exc:  # redirects: raised on, with our headers
        _secure(exc)
        raise
    except Exception as exc:
        log.error("dashboard_request_failed", error=type(exc).__name__)
        response = refusal(500, "Erreur interne du tableau de bord : réessayez ; si elle "
                           "revient, consultez le journal de la passerelle.")
    _secure(response)
    return response


@web.middleware
async def host_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    host = request.headers.get("Host", "").strip().lower()
    if host not in allowed_hosts(request):
        log.warning("dashboard_host_refused")
        return refusal(421, "Hôte non autorisé : ouvrez le tableau de bord par "
                       "http://127.0.0.1:PORT/ sur l'ordinateur de la passerelle.")
    if (request.method == "POST" and not request.path.startswith(API_PREFIX)
            and not _same_origin(request, host)):
        log.warning("dashboard_origin_refused")
        return refusal(403, "Requête refusée : elle ne vient pas d'une page du tableau de bord.")
    return await handler(request)


def sessions_middleware(sessions: Sessions) -> Middleware:
    @web.middleware
    async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in (LOGIN_PATH, METRICS_PATH) or path.startswith((*PUBLIC_PREFIXES, API_PREFIX)):
            return await handler(request)
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            if request.method == "POST":
                return refusal(403, "Session expirée : reconnectez-vous avec le jeton.")
            raise web.HTTPSeeOther(LOGIN_PATH)
        if request.method == "POST":
            form = await request.post()
            supplied = form.get("csrf")
            if not isinstance(supplied, str) or not hmac.compare_digest(
                    supplied.encode("utf-8", errors="replace"), session.csrf.encode("ascii")):
                log.warning("dashboard_csrf_refused")
                return refusal(403, "Requête refusée : le formulaire a expiré. Rechargez la "
                               "page et recommencez.")
        request[SESSION_KEY] = session
        return await handler(request)

    return require_session
