"""Slow or stuck clients on real sockets (issue 7): none can hold the API, the others are served.

- headers that never end: the connection is closed at the header deadline;
- a body that never ends: 408 with a French problem at the body deadline, nothing queued;
- more uploads at once than the cap: 503 + Retry-After at once, nothing read, nothing queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from connectors.http_api import HttpApi
from connectors.sqlite_store import SqliteStore
from mappings.matrix import Matrix
from tests.factories import make_sidecar_dict
from tests.http_api.conftest import (
    AUTH,
    TOKEN,
    assert_problem,
    check_problem,
    json_body,
    running,
    url,
)

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def document(title: str) -> bytes:
    """A complete JSON POST body; each title makes another document (another job)."""
    sidecar = make_sidecar_dict()
    sidecar["document"]["title"] = title
    return json.dumps(json_body(sidecar=sidecar)).encode("utf-8")


def head(port: int, length: int) -> bytes:
    return (f"POST /api/v1/documents HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode("ascii")


@contextlib.asynccontextmanager
async def connection(port: int) -> AsyncIterator[Connection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one HTTP/1.1 answer."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    status_line, *lines = raw.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 30)
    return int(status_line.split()[1]), headers, body


async def trickle(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    """Send `data` one byte every `every` seconds, until done, cancelled or cut."""
    with contextlib.suppress(ConnectionError):
        for i in range(len(data)):
            writer.write(data[i:i + 1])
            await writer.drain()
            await asyncio.sleep(every)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (at most 10 s) for a state of the server."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.02)
    assert condition(), what


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionError:
        return True


def outcome_codes(api: HttpApi) -> list[str]:
    outcomes: list[Any] = api.outcomes  # type: ignore[attr-defined]
    return [o.code for o in outcomes]


async def test_headers_sent_byte_by_byte_are_cut_at_the_header_deadline(
        store: SqliteStore, matrix: Matrix, session: aiohttp.ClientSession) -> None:
    async with running(store, matrix, header_timeout=1.0) as api, \
            connection(api.port) as (reader, writer):
        # Headers that would take 100 s to arrive.
        slow = asyncio.create_task(trickle(writer, head(api.port, 10) + b"x" * 10, every=0.2))
        try:
            # Meanwhile another client is served…
            async with session.get(url(api, "/api/openapi.json")) as response:
                assert response.status == 200
            # … and the trickling one is cut, without any answer: it never made a request.
            assert await closed_by_server(reader)
            assert not slow.done(), "the client stopped before the server cut it"
        finally:
            slow.cancel()
    assert store.received() == 0
    assert outcome_codes(api) == []


async def test_a_body_that_never_ends_gets_408_and_nothing_is_queued(
        store: SqliteStore, matrix: Matrix, session: aiohttp.ClientSession) -> None:
    stuck, complete = document("Envoyé trop lentement"), document("Envoyé normalement")
    async with running(store, matrix, body_timeout=5.0) as api, \
            connection(api.port) as (reader, writer):
        writer.write(head(api.port, len(stuck)) + stuck[:40])
        slow = asyncio.create_task(trickle(writer, stuck[40:], every=0.5))
        try:
            await until(lambda: api.uploads_in_progress == 1, "the slow upload to start")
            # While the slow body is being waited for, another client is served.
            async with session.post(url(api), data=complete, headers={
                    **AUTH, "Content-Type": "application/json"}) as response:
                assert response.status == 202, await response.text()
            assert api.uploads_in_progress == 1, "the slow upload ended before the other"

            status, headers, body = await read_response(reader)
            assert not slow.done(), "the client stopped before the deadline"
        finally:
            slow.cancel()
        check_problem(status, headers, body, "HTTP_BODY_TIMEOUT")
        assert status == 408
        assert "5 secondes" in json.loads(body)["detail"]
        assert headers["connection"] == "close"
        assert api.uploads_in_progress == 0
    [job] = store.list_jobs()  # the other client's document only
    assert job.channel == "http"
    assert outcome_codes(api) == ["", "HTTP_BODY_TIMEOUT"]


async def test_more_uploads_than_the_cap_get_503_with_retry_after(
        store: SqliteStore, matrix: Matrix, session: aiohttp.ClientSession) -> None:
    first, second, third = (document(f"Document {n}") for n in (1, 2, 3))
    post = {"data": third, "headers": {**AUTH, "Content-Type": "application/json"}}
    async with running(store, matrix, max_uploads=2, body_timeout=60.0) as api, \
            connection(api.port) as one, connection(api.port) as two:
        # Two uploads under way, their bodies half sent.
        for (_, writer), body in ((one, first), (two, second)):
            writer.write(head(api.port, len(body)) + body[:len(body) // 2])
            await writer.drain()
        await until(lambda: api.uploads_in_progress == 2, "both uploads to start")

        async with session.post(url(api), **post) as response:
            problem = await assert_problem(response, 503, "HTTP_TOO_MANY_UPLOADS")
            assert response.headers["Retry-After"] == "5"
        assert "2 documents" in problem["detail"]
        assert store.received() == 0

        # Once one upload ends, the next document is taken.
        one[1].write(first[len(first) // 2:])
        status, _, _ = await read_response(one[0])
        assert status == 202
        async with session.post(url(api), **post) as response:
            assert response.status == 202, await response.text()
        two[1].write(second[len(second) // 2:])
        status, _, _ = await read_response(two[0])
        assert status == 202
    assert store.received() == 3
    assert outcome_codes(api).count("HTTP_TOO_MANY_UPLOADS") == 1
