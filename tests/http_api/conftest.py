"""The HTTP API on a real loopback socket, with a real SQLite store and the real matrix."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.jobs import Intake, Job
from connectors.http_api import EXTRA_TITLES_FR, HttpApi, HttpOutcome, LookupFn, store_lookup
from connectors.http_api_problems import TITLES_FR
from connectors.sqlite_store import SqliteStore
from mappings.matrix import Matrix
from mappings.matrix_load import load_matrix
from service.labels import STATE_LABELS
from service.sample_pdf import make_pdf
from tests.factories import make_sidecar_dict

FRENCH = re.compile(r"(?i)\b(le|la|les|de|du|des|est|un|une|pas)\b")
Enqueue = Callable[[Intake], Awaitable[tuple[Job, bool]]]
TOKEN = "t" * 8 + "0123456789abcdefghijklmnopqrstuvwxyz-_"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PDF = make_pdf(["Compte rendu de soins infirmiers", "Pansement, surveillance."])


@pytest.fixture(scope="session")
def matrix() -> Matrix:
    return load_matrix()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open(tmp_path / "file.sqlite3") as opened:
        yield opened


def store_enqueue(store: SqliteStore) -> Enqueue:
    async def enqueue(intake: Intake) -> tuple[Job, bool]:
        return await asyncio.to_thread(store.enqueue, intake)
    return enqueue


@contextlib.asynccontextmanager
async def running(store: SqliteStore, matrix: Matrix | None, *,
                  enqueue: Enqueue | None = None, lookup: LookupFn | None = None,
                  **options: Any) -> AsyncIterator[HttpApi]:
    outcomes: list[HttpOutcome] = []
    api = HttpApi(enqueue or store_enqueue(store), lookup or store_lookup(store), token=TOKEN,
                  matrix=matrix, labels=STATE_LABELS, on_outcome=outcomes.append, **options)
    api.outcomes = outcomes  # type: ignore[attr-defined]
    await api.start()
    try:
        yield api
    finally:
        await api.stop()


@pytest.fixture
async def api(store: SqliteStore, matrix: Matrix) -> AsyncIterator[HttpApi]:
    async with running(store, matrix) as started:
        yield started


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def url(api: HttpApi, path: str = "/api/v1/documents") -> str:
    return f"http://127.0.0.1:{api.port}{path}"


def sidecar_bytes(sidecar: dict[str, Any] | None = None) -> bytes:
    return json.dumps(sidecar or make_sidecar_dict(), ensure_ascii=False, indent=2).encode()


def multipart(pdf: bytes = PDF, metadata: bytes | None = None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", pdf, filename="document.pdf", content_type="application/pdf")
    form.add_field("metadata", sidecar_bytes() if metadata is None else metadata,
                   filename="document.json", content_type="application/json")
    return form


def json_body(pdf: bytes = PDF, sidecar: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"pdf_base64": base64.b64encode(pdf).decode("ascii"),
            "metadata": sidecar or make_sidecar_dict()}


async def assert_problem(response: aiohttp.ClientResponse, status: int, code: str | None = None
                         ) -> dict[str, Any]:
    """A valid RFC 7807 body, in French, with the answer's status."""
    assert response.status == status, await response.text()
    return check_problem(status, response.headers, await response.read(), code)


def check_problem(status: int, headers: Mapping[str, str], raw: bytes,
                  code: str | None = None) -> dict[str, Any]:
    """The body and headers of a problem answer (from aiohttp or read off a raw socket)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    assert lowered["content-type"].split(";")[0] == "application/problem+json"
    body = json.loads(raw)
    assert set(body) == {"type", "title", "status", "detail", "code"}
    assert body["status"] == status
    assert body["type"] == f"urn:dmp-bridge:probleme:{body['code']}"
    assert body["title"] == {**TITLES_FR, **EXTRA_TITLES_FR}[status]
    assert isinstance(body["detail"], str) and len(body["detail"]) > 20
    assert FRENCH.search(body["detail"]), body["detail"]
    if code is not None:
        assert body["code"] == code
    assert "access-control-allow-origin" not in lowered
    assert lowered["cache-control"] == "no-store"
    return body
