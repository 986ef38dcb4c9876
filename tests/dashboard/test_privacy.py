"""Nothing about a patient is served to someone without the token: every route of the
application, every method, answered without a session, is scanned for a canary patient."""

from __future__ import annotations

import datetime as dt
import re

from aiohttp import web

from bridge.jobs import JobState
from connectors.sqlite_patients import SqlitePatientRegistry
from connectors.sqlite_store import SqliteStore
from service.config import BridgeConfig
from service.dashboard import DashboardServer
from tests.dashboard.conftest import (
    CANARY_GIVEN,
    CANARY_INS,
    CANARY_NAME,
    Visitor,
    canary_sidecar,
    queue,
)

CANARIES = (CANARY_NAME, CANARY_GIVEN, CANARY_INS, "30/06/1985", "1985-06-30")


def concrete_paths(app: web.Application, job_id: int) -> list[tuple[str, str]]:
    """(method, path) of every route, with its variables filled in."""
    found = []
    for resource in app.router.resources():
        info = resource.get_info()
        if "prefix" in info:  # the static files
            found.append(("GET", f"{info['prefix']}/dashboard.css"))
            continue
        path = info.get("path") or info.get("formatter", "")
        path = path.replace("{job_id}", str(job_id)).replace("{action}", "liberer")
        assert "{" not in path, path
        for route in resource:
            found.append((route.method, path))
    return found


def leaks(text: str) -> list[str]:
    return [canary for canary in CANARIES if canary.lower() in text.lower()]


async def test_no_route_says_anything_about_a_patient_without_the_token(
        dashboard: DashboardServer, store: SqliteStore, config: BridgeConfig,
        visitor: Visitor, signed_in_other: Visitor) -> None:
    job = queue(store, "canari", canary_sidecar())
    store.transition(job.id, JobState.HELD, code="PATIENT_OPPOSED",
                     message_fr="Le patient s'est opposé.", now=dt.datetime.now(dt.UTC))
    with SqlitePatientRegistry(config.store_path) as registry:
        registry.record(CANARY_INS, now=dt.datetime.now(dt.UTC), feeding_opposition=True,
                        consultation_consent_at=dt.date(2026, 3, 1))
    routes = concrete_paths(dashboard.app, job.id)
    assert len(routes) >= 15
    scanned = 0
    for method, path in routes:
        for follow in (False, True):
            async with visitor.session.request(
                    method, visitor.base + path, allow_redirects=follow,
                    headers={"Origin": visitor.base}, data={"csrf": "x"}) as response:
                body = await response.text()
                headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
                assert not leaks(body + headers + str(response.url)), (method, path)
                if path not in ("/connexion", "/static/dashboard.css", "/metrics"):
                    assert response.status in (303, 403, 401, 200), (method, path)
                scanned += 1
    assert scanned == 2 * len(routes)

    # The same routes do show the patient to a signed-in user: the scan above can fail.
    seen = set()
    for method, path in routes:
        if method == "GET":
            _, page = await signed_in_other.get(path)
            if leaks(page):
                seen.add(path)
    assert {"/documents", f"/documents/{job.id}", "/patients"} <= seen


async def test_the_sign_in_page_and_refusals_name_no_one(
        visitor: Visitor, store: SqliteStore) -> None:
    queue(store, "canari", canary_sidecar())
    _, page = await visitor.get("/connexion")
    assert not leaks(page)
    assert not re.search(r"[12][0-9]{14}", page)  # nothing shaped like an INS either


async def test_the_token_itself_never_appears_in_a_page(signed_in: Visitor) -> None:
    from tests.dashboard.conftest import TOKEN

    for path in ("/", "/documents", "/carte", "/matrice", "/patients", "/rapport"):
        _, page = await signed_in.get(path)
        assert TOKEN not in page


