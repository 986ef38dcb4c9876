"""Who may call the API, from where, and what it never says (DESIGN.md §6)."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from structlog.testing import capture_logs

from connectors.http_api import HttpApi
from connectors.sqlite_store import SqliteStore
from tests.factories import make_sidecar_dict
from tests.http_api.conftest import (
    AUTH,
    PDF,
    TOKEN,
    assert_problem,
    json_body,
    multipart,
    sidecar_bytes,
    url,
)


@pytest.mark.parametrize("authorization", [
    None,
    "Bearer ",
    f"Bearer {TOKEN[:-1]}x",
    f"Bearer {TOKEN}x",
    f"Basic {TOKEN}",
    TOKEN,
    "Bearer é" + TOKEN,
])
async def test_401_without_the_right_token(api: HttpApi, store: SqliteStore,
                                           session: aiohttp.ClientSession,
                                           authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with session.post(url(api), json=json_body(), headers=headers) as response:
        await assert_problem(response, 401, "HTTP_UNAUTHORIZED")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    async with session.get(url(api, "/api/v1/documents/1"), headers=headers) as response:
        await assert_problem(response, 401, "HTTP_UNAUTHORIZED")
    assert store.received() == 0


async def test_the_scheme_is_case_insensitive(api: HttpApi,
                                              session: aiohttp.ClientSession) -> None:
    async with session.post(url(api), json=json_body(),
                            headers={"Authorization": f"bearer {TOKEN}"}) as response:
        assert response.status == 202


@pytest.mark.parametrize("host", [
    "evil.example:{port}",  # DNS rebinding: the page's own name
    "127.0.0.1",  # no port
    "127.0.0.1:1",  # another port
    "localhost.evil.example:{port}",
    "",
])
async def test_a_foreign_host_header_is_refused(api: HttpApi, store: SqliteStore,
                                                session: aiohttp.ClientSession,
                                                host: str) -> None:
    headers = {"Host": host.format(port=api.port)}
    async with session.post(url(api), json=json_body(), headers={**AUTH, **headers}) as response:
        await assert_problem(response, 421, "HTTP_HOST_REFUSED")
    async with session.get(url(api, "/api/openapi.json"), headers=headers) as response:
        await assert_problem(response, 421, "HTTP_HOST_REFUSED")
    assert store.received() == 0


@pytest.mark.parametrize("host", ["localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}",
                                  "127.0.0.1:{port}"])
async def test_loopback_names_are_allowed(api: HttpApi, session: aiohttp.ClientSession,
                                          host: str) -> None:
    async with session.get(url(api, "/api/openapi.json"),
                           headers={"Host": host.format(port=api.port)}) as response:
        assert response.status == 200


async def test_no_cors(api: HttpApi, session: aiohttp.ClientSession) -> None:
    origin = {"Origin": "https://evil.example"}
    async with session.options(url(api), headers={
            **origin, "Access-Control-Request-Method": "POST"}) as response:
        # A preflight carries no token: refused, and never with CORS headers.
        await assert_problem(response, 401, "HTTP_UNAUTHORIZED")
    async with session.options(url(api), headers={**AUTH, **origin}) as response:
        await assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    async with session.post(url(api), json=json_body(), headers={**AUTH, **origin}) as response:
        assert response.status == 202
        assert not [h for h in response.headers if h.lower().startswith("access-control")]
    async with session.get(url(api, "/api/openapi.json"), headers=origin) as response:
        assert not [h for h in response.headers if h.lower().startswith("access-control")]


async def test_unknown_address_is_a_problem(api: HttpApi, session: aiohttp.ClientSession) -> None:
    async with session.get(url(api, "/api/v1/inconnu"), headers=AUTH) as response:
        await assert_problem(response, 404, "NOT_FOUND")


CANARY_FAMILY = "ZORGLUBOVITCH"
CANARY_GIVEN = "Pétronille"
CANARY_INS = "285077512345655"  # valid key
CANARY_TITLE = "Plaie-canari-7319"


def canary_sidecar() -> dict[str, object]:
    sidecar = make_sidecar_dict()
    sidecar["patient"].update(ins=CANARY_INS, birth_family_name=CANARY_FAMILY,
                              given_names=[CANARY_GIVEN], used_family_name=CANARY_FAMILY)
    sidecar["document"]["title"] = CANARY_TITLE
    return sidecar


async def test_patient_data_never_leaves_in_answers_or_logs(
        api: HttpApi, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    canaries = [CANARY_FAMILY, CANARY_GIVEN, CANARY_INS, CANARY_TITLE, CANARY_INS[:13]]
    seen: list[str] = []

    async def keep(response: aiohttp.ClientResponse) -> None:
        seen.append(await response.text())
        seen.append(str(dict(response.headers)))

    sidecar = canary_sidecar()
    bad_field = canary_sidecar()
    bad_field["patient"]["sex"] = CANARY_FAMILY
    with capture_logs() as logs:
        async with session.post(url(api), data=multipart(metadata=sidecar_bytes(sidecar)),
                                headers={**AUTH, "Idempotency-Key": CANARY_INS}) as response:
            assert response.status == 202
            job_id = (await response.json())["id"]
            await keep(response)
        async with session.post(url(api), json=json_body(sidecar=sidecar),
                                headers={**AUTH, "Idempotency-Key": CANARY_INS}) as response:
            assert response.status == 202
            await keep(response)
        async with session.post(url(api), json=json_body(pdf=PDF + b"\n", sidecar=sidecar),
                                headers={**AUTH, "Idempotency-Key": CANARY_INS}) as response:
            assert response.status == 409
            await keep(response)
        async with session.post(url(api), json=json_body(sidecar=bad_field),
                                headers=AUTH) as response:
            assert response.status == 400
            await keep(response)
        async with session.post(url(api), data=multipart(pdf=CANARY_FAMILY.encode()),
                                headers=AUTH) as response:
            assert response.status == 400
            await keep(response)
        async with session.get(url(api, f"/api/v1/documents/{job_id}"), headers=AUTH) as response:
            assert response.status == 200
            await keep(response)
        async with session.post(url(api), json=json_body(sidecar=sidecar),
                                headers={"Authorization": f"Bearer {CANARY_INS}"}) as response:
            await keep(response)
    assert len(logs) >= 6
    texts = {"answers": "\n".join(seen), "structlog": repr(logs), "logging": caplog.text}
    for where, text in texts.items():
        for canary in canaries:
            assert canary not in text, (canary, where)
