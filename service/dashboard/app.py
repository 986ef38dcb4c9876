"""The local web dashboard: an aiohttp application, in French, on 127.0.0.1 only.

`build_dashboard` makes the application; `DashboardServer` serves it on loopback without an
access log (aiohttp's would write request lines we do not vet). Pages are in
`service.dashboard.pages`, the rules of access in `service.dashboard.auth`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import structlog
from aiohttp import web

from bridge.identity_gate import Target
from bridge.store_port import Store
from connectors.loopback_server import LoopbackServer
from connectors.sqlite_patients import SqlitePatientRegistry
from service.audit_trail import AuditTrail
from service.config import BridgeConfig
from service.dashboard.auth import (
    LOGIN_PATH,
    METRICS_PATH,
    SESSION_COOKIE,
    Sessions,
    host_check,
    refusal,
    security_headers,
    sessions_middleware,
)
from service.dashboard.context import DASHBOARD, Dashboard
from service.dashboard.pages import audit as audit_page
from service.dashboard.pages import card as card_page
from service.dashboard.pages import document, documents, home, login, matrix, patients, report
from service.dashboard.panels import AlertsPanel, CardPanel
from service.matrix_loading import matrix_from_config
from service.metrics import figures_from_store, render_metrics

log = structlog.get_logger("dmp_bridge.dashboard")

STATIC_DIR = Path(__file__).parent / "static"
# An upload to preview: a 15 Mo PDF (the largest accepted) and its sidecar, with room to spare.
MAX_BODY_BYTES = 40 * 1024 * 1024
JOB_ID = r"{job_id:[0-9]{1,18}}"


async def _metrics(request: web.Request) -> web.Response:
    """Counts only (no patient data), for a scraper: a signed-in browser or the bearer token."""
    ctx = request.app[DASHBOARD]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    bearer = scheme.lower() == "bearer" and ctx.sessions.token_matches(given)
    if not bearer and ctx.sessions.get(request.cookies.get(SESSION_COOKIE)) is None:
        return refusal(401, "Authentification requise : jeton de la passerelle (Bearer).")
    figures = await ctx.run(lambda: figures_from_store(ctx.store, dt.datetime.now(dt.UTC)))
    alerts = ctx.alerts.open_alerts() if ctx.alerts is not None else None
    return web.Response(text=render_metrics(figures, alerts),
                        content_type="text/plain", charset="utf-8")


def build_dashboard(store: Store, config: BridgeConfig, *, token: str,
                    card: CardPanel | None = None, alerts: AlertsPanel | None = None,
                    on_change: Callable[[], None] | None = None,
                    audit: AuditTrail | None = None) -> web.Application:
    """The dashboard's application. `token` is the local token (file `jeton-api`);
    `on_change` is called when a person sends a document back to the queue (wake the
    dispatcher); `audit` records each action of a person (done or refused), as
    "tableau-de-bord" (not closed here: it belongs to the caller). The patient registry is
    opened in the queue's file at startup."""
    ctx = Dashboard(store=store, config=config, matrix=matrix_from_config(config),
                    target=Target(config.bridge.environment), sessions=Sessions(token),
                    card=card, alerts=alerts, on_change=on_change, audit=audit)
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[
        security_headers, host_check, sessions_middleware(ctx.sessions)])
    app[DASHBOARD] = ctx

    async def open_registry(_app: web.Application) -> None:
        ctx.registry = await asyncio.to_thread(SqlitePatientRegistry, config.store_path)

    async def close_registry(_app: web.Application) -> None:
        if ctx.registry is not None:
            await asyncio.to_thread(ctx.registry.close)
            ctx.registry = None

    app.on_startup.append(open_registry)
    app.on_cleanup.append(close_registry)
    routes = app.router
    routes.add_get(LOGIN_PATH, login.show_login, allow_head=False)
    routes.add_post(LOGIN_PATH, login.login)
    routes.add_post("/deconnexion", login.logout)
    routes.add_get("/", home.home, allow_head=False)
    routes.add_get("/documents", documents.document_list, allow_head=False)
    routes.add_get(f"/documents/{JOB_ID}", document.document_page, allow_head=False)
    routes.add_post(f"/documents/{JOB_ID}/{{action:[a-z]{{1,20}}}}", document.document_action)
    routes.add_get("/carte", card_page.card_page, allow_head=False)
    routes.add_post("/carte/code", card_page.submit_pin)
    routes.add_get("/matrice", matrix.matrix_page, allow_head=False)
    routes.add_post("/matrice/apercu", matrix.preview_upload)
    routes.add_get("/patients", patients.patients_page, allow_head=False)
    routes.add_get("/rapport", report.report_page, allow_head=False)
    routes.add_get("/rapport.csv", report.report_csv_download, allow_head=False)
    routes.add_get(audit_page.PATH, audit_page.audit_page, allow_head=False)
    routes.add_get(METRICS_PATH, _metrics, allow_head=False)
    routes.add_static("/static/", STATIC_DIR, append_version=False)
    return app


class DashboardServer:
    """Serves the dashboard on loopback: `await start()`, then `await stop()` (or `run()`)."""

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = app
        self._server = LoopbackServer(host, port)

    @property
    def app(self) -> web.Application:
        return self._app

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        await self._server.start(self._app)
        log.info("dashboard_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        await self._server.stop()

    async def run(self) -> None:
        """Serve until cancelled."""
        await self._server.serve(self._app)
