"""The HTTPS client of the DMP (connectors/dmp_client.py) against real TLS servers on 127.0.0.1.

What matters for exactly-once delivery is `maybe_delivered`: False only when the server cannot
have seen the request (nothing connected, TLS refused), True as soon as it may have read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from bridge.soap import HttpRequestBody
from connectors.dmp_client import DmpClient, HttpAnswer, TransportError
from connectors.software_credentials import SoftwareCredentials
from service.test_pki import TestPki as Pki
from service.test_pki import generate_test_pki

SERVICES = "/si-dmp-server/v2/services"
REQUEST = HttpRequestBody(
    content_type='application/soap+xml; charset=UTF-8; '
                 'action="urn:ihe:iti:2007:RegistryStoredQuery"',
    body=b'<?xml version="1.0" encoding="UTF-8"?><Envelope>requete</Envelope>',
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return generate_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return generate_test_pki(tmp_path_factory.mktemp("autre-pki"))


def client_context(pki: Pki) -> ssl.SSLContext:
    return SoftwareCredentials(
        tls_cert=pki.org_auth.cert, tls_key=pki.org_auth.key,
        sign_cert=pki.org_sign.cert, sign_key=pki.org_sign.key, server_ca=pki.ca_cert,
    ).ssl_context()


def server_context(server_pki: Pki, client_ca: Path) -> ssl.SSLContext:
    """The DMP side: its server certificate, and client certificates required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca))
    context.load_cert_chain(str(server_pki.server.cert), str(server_pki.server.key))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@contextlib.asynccontextmanager
async def https_server(handler: Handler, context: ssl.SSLContext) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 with mutual TLS; yields its base URL."""
    app = web.Application()
    app.router.add_post(SERVICES + "/{service}", handler)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = runner.addresses[0][1]
        yield f"https://127.0.0.1:{port}{SERVICES}"
    finally:
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens here any more


async def test_an_answer_is_returned_with_status_content_type_and_body(pki: Pki) -> None:
    received: list[tuple[str, str, bytes]] = []

    async def answer(request: web.Request) -> web.Response:
        received.append((request.match_info["service"], request.content_type,
                         await request.read()))
        return web.Response(status=200, body=b"<Envelope>reponse</Envelope>",
                            content_type="application/soap+xml", charset="utf-8")

    async with (https_server(answer, server_context(pki, pki.ca_cert)) as base_url,
                DmpClient(base_url, client_context(pki), timeout_seconds=10) as client):
        result = await client.post("registry", REQUEST)

    assert result == HttpAnswer(200, "application/soap+xml; charset=utf-8",
                                b"<Envelope>reponse</Envelope>")
    assert received == [("registry", "application/soap+xml", REQUEST.body)]


async def test_a_closed_port_means_the_request_was_not_delivered(pki: Pki) -> None:
    base_url = f"https://127.0.0.1:{closed_port()}{SERVICES}"

    async with DmpClient(base_url, client_context(pki), timeout_seconds=10) as client:
        with pytest.raises(TransportError) as caught:
            await client.post("registry", REQUEST)

    assert caught.value.maybe_delivered is False


async def test_an_untrusted_server_certificate_means_the_request_was_not_delivered(
        pki: Pki, other_pki: Pki) -> None:
    seen: list[bytes] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.Response(status=200, body=b"<Envelope/>")

    # A server whose certificate comes from another authority than the one we trust.
    async with (https_server(answer, server_context(other_pki, pki.ca_cert)) as base_url,
                DmpClient(base_url, client_context(pki), timeout_seconds=10) as client):
        with pytest.raises(TransportError) as caught:
            await client.post("registry", REQUEST)

    assert caught.value.maybe_delivered is False
    assert "Certificate" in caught.value.detail
    assert seen == []


async def test_a_server_that_reads_the_request_then_hangs_up_may_have_processed_it(
        pki: Pki) -> None:
    requests: list[bytes] = []

    async def read_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            requests.append(await reader.readexactly(length))
        finally:
            writer.close()  # no answer at all: as if the server crashed after processing
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    server = await asyncio.start_server(read_then_close, "127.0.0.1", 0,
                                        ssl=server_context(pki, pki.ca_cert))
    try:
        port = server.sockets[0].getsockname()[1]
        base_url = f"https://127.0.0.1:{port}{SERVICES}"
        async with DmpClient(base_url, client_context(pki), timeout_seconds=10) as client:
            with pytest.raises(TransportError) as caught:
                await client.post("repository", REQUEST)
    finally:
        server.close()
        await server.wait_closed()

    assert requests == [REQUEST.body]
    assert caught.value.maybe_delivered is True


async def test_a_timeout_after_the_request_was_read_may_have_processed_it(pki: Pki) -> None:
    request_read = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        request_read.set()
        await release.wait()  # the DMP is still working when the client gives up
        return web.Response(status=200, body=b"<Envelope>trop tard</Envelope>")

    async with https_server(slow, server_context(pki, pki.ca_cert)) as base_url:
        try:
            async with DmpClient(base_url, client_context(pki), timeout_seconds=0.5) as client:
                with pytest.raises(TransportError) as caught:
                    await client.post("repository", REQUEST)
        finally:
            release.set()

    assert request_read.is_set()
    assert caught.value.maybe_delivered is True
