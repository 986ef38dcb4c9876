"""The bridge's own web listener on 127.0.0.1: the dashboard, the card API, /metrics.

One port (`[dashboard] port`) for what a person or a supervision tool on this PC looks at. It
listens on the loopback address only; each part checks the local token itself: the dashboard
with a login page and a session cookie, the card API with `Authorization: Bearer`, /metrics (counts
only, no health data) with either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog
from aiohttp import web

from connectors.loopback_server import LoopbackServer

log = structlog.get_logger("dmp_bridge.listener")


@dataclass
class LocalListener:
    """The dashboard at "/" and sub-applications by prefix, served on 127.0.0.1:`port`."""

    port: int
    subapps: dict[str, web.Application] = field(default_factory=dict)
    root: web.Application | None = None  # the dashboard, at "/"
    _server: LoopbackServer | None = None

    def build(self) -> web.Application:
        app = self.root if self.root is not None else web.Application()
        for prefix, sub in self.subapps.items():
            app.add_subapp(prefix, sub)
        return app

    async def start(self) -> None:
        self._server = LoopbackServer("127.0.0.1", self.port)
        await self._server.start(self.build())
        log.info("local_listener_started", port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None
