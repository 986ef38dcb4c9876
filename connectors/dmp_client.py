"""The HTTPS client that talks to the DMP (or the simulator): one POST per transaction.

It moves bytes and reports what happened on the wire; it decides nothing. Whether a failure
happened before or after the request could reach the server matters for exactly-once delivery:
a request that may have arrived makes the job ambiguous, never blindly resent.

With a CPS card the TLS is not done here (Python's `ssl` needs a key file): the client then
sends plain HTTP to a local gateway (`via`, e.g. `connectors.card_tls.CardTlsForwarder`), which
does the TLS to the real DMP. The DMP URL stays the one the SOAP messages name (WS-Addressing
`To`) and the Host header. When the gateway knows the request never left the machine (card
withdrawn, server not trusted, DMP unreachable), it answers 502 with `GATEWAY_ERROR_HEADER`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from bridge.soap import HttpRequestBody

MAX_ANSWER_BYTES = 10 * 1024 * 1024
# Set by the local TLS gateway on an answer of its own: "carte" (the card was withdrawn or
# cannot sign), "tls" (certificates, trust) or "network".
GATEWAY_ERROR_HEADER = "X-Dmp-Bridge-Passerelle"


@dataclass(frozen=True)
class HttpAnswer:
    """The raw answer of the server."""

    status: int
    content_type: str
    body: bytes


class TransportError(Exception):
    """No usable answer. `maybe_delivered` is True when the request may have been processed."""

    def __init__(self, detail: str, *, maybe_delivered: bool, tls: bool = False,
                 card: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.maybe_delivered = maybe_delivered
        self.tls = tls  # the TLS handshake failed: certificates or trust, not the network
        self.card = card  # the CPS card could not authenticate (withdrawn, logged out)


class RateLimiter:
    """Never more than `rate` requests per second: each request waits for its own time slot.

    It sits in the client, right before the bytes leave, so every transaction counts (feeds,
    queries, updates) and nothing between the slot and the send can bunch requests together.
    """

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> float:
        """Wait for the next slot; returns the loop time the request may leave at."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            delay = self._next - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            self._next = max(now, self._next) + self._interval
            return now


class DmpClient:
    """A pooled HTTPS session with mutual TLS, bound to one base URL, rate-limited.

    `via`: the base URL (http://127.0.0.1:N) of a local gateway that does the TLS to
    `base_url` itself; `ssl_context` may then be None.
    """

    def __init__(self, base_url: str, ssl_context: ssl.SSLContext | None, *,
                 timeout_seconds: float = 60.0, rate_per_second: float = 4.0,
                 via: str | None = None) -> None:
        if ssl_context is None and via is None:
            raise ValueError("DmpClient needs an SSL context, or a local gateway (via=)")
        self.base_url = base_url.rstrip("/")
        real = urlsplit(self.base_url)
        self._via = via
        self._wire_base = via.rstrip("/") + real.path if via is not None else self.base_url
        self._host = real.netloc.rpartition("@")[2]
        self._limiter = RateLimiter(rate_per_second)
        # When the last requests left (loop time): for the rate metric and its proof.
        self.sent_at: deque[float] = deque(maxlen=1000)
        self._ssl = ssl_context
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=15)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def __aenter__(self) -> DmpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections; a later `post` fails (never reopens): the credentials this
        client stood for (a card's session) are gone."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, service: str) -> str:
        """`repository`, `registry`… under the base URL."""
        return f"{self.base_url}/{service}"

    async def post(self, service: str, request: HttpRequestBody) -> HttpAnswer:
        """POST the request; raise TransportError when no complete answer came back."""
        if self._closed:
            # Nothing leaves: a card's connection is closed when the card is withdrawn.
            raise TransportError("connexion fermée (carte retirée ou identifiants changés)",
                                 maybe_delivered=False, tls=self._via is not None,
                                 card=self._via is not None)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(
                    ssl=self._ssl if self._ssl is not None else True, limit=4),
            )
        headers = {"Content-Type": request.content_type}
        if self._via is not None:
            headers["Host"] = self._host  # the real server's, not the gateway's
        self.sent_at.append(await self._limiter.wait())
        try:
            async with self._session.post(
                f"{self._wire_base}/{service}", data=request.body, headers=headers,
            ) as response:
                body = await _read_at_most(response.content, MAX_ANSWER_BYTES + 1)
                if len(body) > MAX_ANSWER_BYTES:
                    raise TransportError("answer too large", maybe_delivered=True)
                gateway_error = response.headers.get(GATEWAY_ERROR_HEADER)
                if self._via is not None and gateway_error is not None:
                    # The gateway answered for the DMP: the request never left the machine.
                    raise TransportError(body.decode("utf-8", "replace"),
                                         maybe_delivered=False,
                                         tls=gateway_error in ("tls", "carte"),
                                         card=gateway_error == "carte")
                return HttpAnswer(response.status, response.headers.get("Content-Type", ""), body)
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            # The TLS handshake failed: the server never saw the request.
            raise TransportError(f"{type(exc).__name__}: {exc}", maybe_delivered=False,
                                 tls=True) from None
        except aiohttp.ClientConnectorError as exc:
            # The TCP connection failed: the server never saw the request. Through a card's
            # local gateway, that gateway is gone: the card was withdrawn.
            raise TransportError(f"{type(exc).__name__}: {exc}", maybe_delivered=False,
                                 tls=self._via is not None, card=self._via is not None) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The request may have been read and processed before the connection broke.
            raise TransportError(f"{type(exc).__name__}: {exc}", maybe_delivered=True) from None


async def _read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or its first `limit` bytes: one `read(n)` returns what has arrived so
    far, which is less than the body as soon as it spans several TLS records."""
    chunks: list[bytes] = []
    size = 0
    while size < limit and (chunk := await stream.read(limit - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
