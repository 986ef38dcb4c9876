"""Who may see the dashboard and from where: the token, the session cookie, CSRF, Origin, Host."""

from __future__ import annotations

import aiohttp
from yarl import URL

from service.dashboard import DashboardServer
from service.dashboard.auth import IDLE_SECONDS, LIFETIME_SECONDS, MAX_SESSIONS, Sessions
from tests.dashboard.conftest import TOKEN, Visitor


async def test_every_page_sends_a_stranger_to_the_sign_in_form(visitor: Visitor) -> None:
    for path in ("/", "/documents", "/documents/1", "/carte", "/matrice", "/patients",
                 "/rapport", "/rapport.csv"):
        response, page = await visitor.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"] == "/connexion"
    response, page = await visitor.get("/")
    assert response.url.path == "/connexion"
    assert "Collez le contenu du fichier « jeton-api »" in page


async def test_the_token_opens_a_session_cookie_that_scripts_and_other_sites_cannot_use(
        visitor: Visitor) -> None:
    login_csrf = await visitor.csrf("/connexion")
    response, _ = await visitor.post("/connexion", {"csrf": login_csrf, "jeton": TOKEN},
                                     allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/"
    cookie = next(v for v in response.headers.getall("Set-Cookie")
                  if v.startswith("dmp_session="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path"} <= attributes
    assert "SameSite=Strict" in cookie
    assert "expires" not in attributes and "max-age" not in attributes  # gone with the browser
    session_id = cookie.split(";")[0].split("=", 1)[1]
    assert len(session_id) >= 40 and TOKEN not in cookie
    response, page = await visitor.get("/")
    assert response.status == 200 and "File d'attente" in page


async def test_a_wrong_token_is_refused_in_french(visitor: Visitor) -> None:
    response, page = await visitor.login(TOKEN[:-1] + "x")
    assert response.status == 401
    assert "Jeton incorrect" in page
    response, _ = await visitor.get("/", allow_redirects=False)
    assert response.status == 303


async def test_the_sign_in_form_needs_its_own_csrf_token(visitor: Visitor) -> None:
    await visitor.csrf("/connexion")  # the cookie is set, but the form does not carry it
    response, page = await visitor.post("/connexion", {"csrf": "autre", "jeton": TOKEN})
    assert response.status == 403 and "formulaire de connexion a expiré" in page
    response, _ = await visitor.get("/", allow_redirects=False)
    assert response.status == 303


async def test_a_post_without_the_csrf_token_is_refused(signed_in: Visitor) -> None:
    response, page = await signed_in.post("/deconnexion", {})
    assert response.status == 403 and "formulaire a expiré" in page
    response, _ = await signed_in.post("/deconnexion", {"csrf": "pas-le-bon"})
    assert response.status == 403
    response, _ = await signed_in.get("/", allow_redirects=False)
    assert response.status == 200  # still signed in: nothing was done


async def test_a_post_from_another_origin_is_refused_even_with_the_csrf_token(
        signed_in: Visitor) -> None:
    csrf = await signed_in.csrf()
    for origin in ("http://evil.example", "http://127.0.0.1:1", "null", None):
        response, page = await signed_in.post("/deconnexion", {"csrf": csrf}, origin=origin)
        assert response.status == 403, origin
        assert "ne vient pas d'une page du tableau de bord" in page
    response, _ = await signed_in.post("/deconnexion", {"csrf": csrf}, origin=None,
                                       headers={"Referer": signed_in.base + "/"},
                                       allow_redirects=False)
    assert response.status == 303  # no Origin but our own Referer: a browser's same-site form


async def test_a_rebound_dns_name_is_refused_whatever_the_path(
        dashboard: DashboardServer, signed_in: Visitor) -> None:
    for host in ("evil.example", f"evil.example:{dashboard.port}", "127.0.0.1",
                 f"localhost.evil.example:{dashboard.port}"):
        response, page = await signed_in.get("/", headers={"Host": host})
        assert response.status == 421, host
        assert "Hôte non autorisé" in page
    response, _ = await signed_in.get("/", headers={"Host": f"localhost:{dashboard.port}"})
    assert response.status == 200


async def test_signing_out_forgets_the_session(signed_in: Visitor) -> None:
    csrf = await signed_in.csrf()
    old_cookie = signed_in.session.cookie_jar.filter_cookies(
        URL(signed_in.base))["dmp_session"].value
    response, _ = await signed_in.post("/deconnexion", {"csrf": csrf})
    assert response.url.path == "/connexion"
    async with (aiohttp.ClientSession() as other,  # the old cookie, replayed
                other.get(signed_in.base + "/", allow_redirects=False,
                          headers={"Cookie": f"dmp_session={old_cookie}"}) as replay):
        assert replay.status == 303


async def test_every_answer_forbids_caching_framing_and_foreign_resources(
        visitor: Visitor, signed_in: Visitor) -> None:
    for path in ("/connexion", "/", "/static/dashboard.css", "/nulle-part"):
        response, _ = await signed_in.get(path, allow_redirects=False)
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    response, page = await signed_in.get("/nulle-part")
    assert response.status == 404 and "Page introuvable" in page


async def test_pages_load_nothing_from_elsewhere(signed_in: Visitor) -> None:
    for path in ("/connexion", "/", "/documents", "/carte", "/matrice", "/patients",
                 "/rapport"):
        _, page = await signed_in.get(path)
        assert "http://" not in page and "https://" not in page and "//" not in page.replace(
            "<!DOCTYPE html>", ""), path


async def test_metrics_need_the_token_and_carry_counts_only(
        visitor: Visitor) -> None:
    response, _ = await visitor.get("/metrics")
    assert response.status == 401
    response, text = await visitor.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200
    assert 'dmp_bridge_jobs{state="held"} 0' in text
    assert "dmp_bridge_conservation_ok 1" in text


def test_a_session_ends_after_hours_without_use_and_after_a_working_day() -> None:
    now = [0.0]
    sessions = Sessions(TOKEN, clock=lambda: now[0])
    idle = sessions.open()
    busy = sessions.open()
    for _ in range(int(IDLE_SECONDS // 3600) + 1):  # used every hour, until the idle one is gone
        now[0] += 3600
        assert sessions.get(busy.id) is busy
    assert sessions.get(idle.id) is None
    now[0] = LIFETIME_SECONDS + 1
    assert sessions.get(busy.id) is None


def test_sessions_are_bounded_and_the_oldest_goes_first() -> None:
    now = [0.0]
    sessions = Sessions(TOKEN, clock=lambda: now[0])
    first = sessions.open()
    for _ in range(MAX_SESSIONS):
        now[0] += 1
        sessions.open()
    assert sessions.get(first.id) is None
