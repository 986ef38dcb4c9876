"""One aiohttp application served on a local address: start, stop, or run until cancelled.

Shared by the local HTTP API, the dashboard and the bridge's loopback listener. No access log
(aiohttp's would write request lines and headers nobody vetted for health data); signals are the
service's business, not aiohttp's. Port 0 picks a free port (tests); `port` tells the bound one.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

DEFAULT_KEEPALIVE_SECONDS = 75.0  # aiohttp's own default


class LoopbackServer:
    """Serves one application on `host`:`port`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 keepalive_timeout: float = DEFAULT_KEEPALIVE_SECONDS) -> None:
        self.host = host
        self._port = port
        self._keepalive = keepalive_timeout
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one before `start`)."""
        if self._runner is None or not self._runner.addresses:
            return self._port
        return int(self._runner.addresses[0][1])

    @property
    def started(self) -> bool:
        return self._runner is not None

    async def start(self, app: web.Application) -> None:
        """Listen; an unusable address raises (OSError) and leaves nothing behind."""
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               keepalive_timeout=self._keepalive)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve(self, app: web.Application) -> None:
        """Serve `app` until cancelled, then stop."""
        await self.start(app)
        try:
            await asyncio.Future()
        finally:
            await self.stop()
