"""GET /api/v1/documents/{id}: state, last reason and timeline, without patient data."""

from __future__ import annotations

import datetime as dt

import aiohttp

from bridge.jobs import Job, JobEvent, JobState
from connectors.http_api import HttpApi
from connectors.sqlite_store import SqliteStore
from mappings.matrix import Matrix
from tests.http_api.conftest import AUTH, assert_problem, json_body, running, url


async def test_state_reason_and_timeline(api: HttpApi, store: SqliteStore,
                                         session: aiohttp.ClientSession) -> None:
    async with session.post(url(api), json=json_body(), headers=AUTH) as response:
        link = response.headers["Location"]
        job_id = (await response.json())["id"]
    now = dt.datetime.now(dt.UTC)
    store.claim(now, dt.timedelta(minutes=5))
    store.transition(job_id, JobState.HELD, code="IDENTITY_PROV",
                     message_fr="Identité provisoire : qualifiez-la (INS 285077512345655).",
                     now=now)
    async with session.get(url(api, link), headers=AUTH) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.json()
    assert body["id"] == job_id
    assert (body["etat"], body["libelle"]) == ("held", "en attente d'une action")
    assert body["canal"] == "http"
    assert body["lien"] == link
    assert body["motif"]["code"] == "IDENTITY_PROV"
    # A NIR-shaped value in a message is masked (messages should never carry one anyway).
    assert "285077512345655" not in str(body)
    assert [(e["de"], e["vers"], e["code"]) for e in body["historique"]] == [
        (None, "queued", "RECEIVED"), ("queued", "active", body["historique"][1]["code"]),
        ("active", "held", "IDENTITY_PROV")]
    assert all(e["message"] and e["date"].endswith("+00:00") for e in body["historique"])
    assert set(body) == {"id", "etat", "libelle", "canal", "recu_le", "mis_a_jour_le",
                         "tentatives", "prochain_essai", "motif", "historique", "lien"}


async def test_unknown_job_is_a_404(api: HttpApi, session: aiohttp.ClientSession) -> None:
    async with session.get(url(api, "/api/v1/documents/999"), headers=AUTH) as response:
        body = await assert_problem(response, 404, "UNKNOWN_JOB")
    assert "999" in body["detail"]
    async with session.get(url(api, "/api/v1/documents/abc"), headers=AUTH) as response:
        await assert_problem(response, 404, "NOT_FOUND")


async def test_a_failing_lookup_is_a_503(store: SqliteStore, matrix: Matrix,
                                         session: aiohttp.ClientSession) -> None:
    def broken(job_id: int) -> tuple[Job, list[JobEvent]] | None:
        raise OSError("disk")

    async with (running(store, matrix, lookup=broken) as api,
                session.get(url(api, "/api/v1/documents/1"), headers=AUTH) as response):
        await assert_problem(response, 503, "STORE_UNAVAILABLE")
        assert response.headers["Retry-After"] == "30"
