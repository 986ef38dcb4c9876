"""What every page handler reaches through `request.app[DASHBOARD]`, and how it answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from aiohttp import web

from bridge.identity_gate import Target
from bridge.store_port import Store
from connectors.sqlite_patients import SqlitePatientRegistry
from mappings.matrix import Matrix
from service.audit_trail import AuditTrail
from service.config import BridgeConfig
from service.dashboard.auth import Sessions, session_of
from service.dashboard.html import Markup, page
from service.dashboard.panels import AlertsPanel, CardPanel

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Dashboard:
    """The parts the pages read and act on."""

    store: Store
    config: BridgeConfig
    matrix: Matrix
    target: Target
    sessions: Sessions
    card: CardPanel | None = None
    alerts: AlertsPanel | None = None
    on_change: Callable[[], None] | None = None
    audit: AuditTrail | None = None  # where a person's actions are recorded
    registry: SqlitePatientRegistry | None = field(default=None)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """A blocking call (store, registry, files) in a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    def changed(self) -> None:
        """A job went back to the queue: the dispatcher looks now rather than at its next poll."""
        if self.on_change is not None:
            self.on_change()


DASHBOARD = web.AppKey("dashboard", Dashboard)


def html_response(markup: Markup, *, status: int = 200) -> web.Response:
    return web.Response(text=markup, status=status, content_type="text/html", charset="utf-8")


def render(request: web.Request, title: str, body: Markup, *, current: str | None = None,
           status: int = 200) -> web.Response:
    """A page for the signed-in user, with the menu and the message left by the last action."""
    session = session_of(request)
    notice, error = session.take_notice()
    return html_response(page(title, body, current=current, csrf=session.csrf, notice=notice,
                              notice_error=error), status=status)


def redirect_with(request: web.Request, location: str, message: str, *,
                  error: bool = False) -> web.HTTPSeeOther:
    """Post/redirect/get: the message is kept in the session, never in the address."""
    session_of(request).tell(message, error=error)
    return web.HTTPSeeOther(location)
