"""The HTTPS client that talks to the DMP (or the simulator): one POST per transaction.

It moves bytes and reports what happened on the wire; it decides nothing. Whether a failure
happened before or after the request could reach the server matters for exactly-once delivery:
a request that may have arrived makes the job ambiguous, never blindly resent.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiohttp

from bridge.soap import HttpRequestBody

MAX_ANSWER_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class HttpAnswer:
    """The raw answer of the server."""

    status: int
    content_type: str
    body: bytes


class TransportError(Exception):
    """No usable answer. `maybe_delivered` is True when the request may have been processed."""

    def __init__(self, detail: str, *, maybe_delivered: bool, tls: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.maybe_delivered = maybe_delivered
        self.tls = tls  # the TLS handshake failed: certificates or trust, not the network


class DmpClient:
    """A pooled HTTPS session with mutual TLS, bound to one base URL."""

    def __init__(
        self, base_url: str, ssl_context: ssl.SSLContext, *, timeout_seconds: float = 60.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=15)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> DmpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, service: str) -> str:
        """`repository`, `registry`… under the base URL."""
        return f"{self.base_url}/{service}"

    async def post(self, service: str, request: HttpRequestBody) -> HttpAnswer:
        """POST the request; raise TransportError when no complete answer came back."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, connector=aiohttp.TCPConnector(ssl=self._ssl, limit=4)
            )
        try:
            async with self._session.post(
                self.url(service),
                data=request.body,
                headers={"Content-Type": request.content_type},
            ) as response:
                body = await response.content.read(MAX_ANSWER_BYTES + 1)
                if len(body) > MAX_ANSWER_BYTES:
                    raise TransportError("answer too large", maybe_delivered=True)
                return HttpAnswer(response.status, response.headers.get("Content-Type", ""), body)
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            # The TLS handshake failed: the server never saw the request.
            raise TransportError(f"{type(exc).__name__}: {exc}", maybe_delivered=False,
                                 tls=True) from None
        except aiohttp.ClientConnectorError as exc:
            # The TCP connection failed: the server never saw the request.
            raise TransportError(f"{type(exc).__name__}: {exc}", maybe_delivered=False) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The request may have been read and processed before the connection broke.
            raise TransportError(f"{type(exc).__name__}: {exc}", maybe_delivered=True) from None
