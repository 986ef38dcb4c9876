"""The dashboard on a real loopback socket, with a real SQLite store, the real matrix and real
test PKI certificates; a browser-like HTTP visitor that keeps cookies and sends Origin."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.ins import nir_key
from bridge.jobs import Intake, Job
from bridge.lot_keys import with_lot_keys
from bridge.vihf import Software
from connectors.dmp_client import DmpClient
from connectors.software_credentials import SoftwareCredentials
from connectors.sqlite_store import SqliteStore
from mappings.matrix_load import load_matrix
from service.audit_trail import AuditTrail
from service.config import BridgeConfig, BridgeSection, CredentialsSection
from service.dashboard import DashboardServer, build_dashboard
from service.dispatcher import Dispatcher, Gatekeeping
from service.sample_pdf import make_pdf
from service.simulator.config import SimulatorConfig
from service.simulator.server import RunningSimulator, start_simulator
from service.test_pki import pki_layout
from tests.dashboard.panels import EmulatedCard, FixedAlerts
from tests.factories import make_sidecar_dict

TOKEN = "jeton-de-test-" + "Z9" * 20
CANARY_NAME = "CANARI-TEMOIN"
CANARY_GIVEN = "Philomène"
CANARY_INS = "1850675123456" + f"{nir_key('1850675123456'):02d}"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def canary_sidecar() -> dict[str, Any]:
    sidecar = make_sidecar_dict()
    sidecar["patient"].update(ins=CANARY_INS, birth_family_name=CANARY_NAME,
                              given_names=[CANARY_GIVEN], sex="M", birth_date="1985-06-30")
    return sidecar


def queue(store: SqliteStore, key: str, sidecar: dict[str, Any] | None = None, *,
          channel: str = "folder", received_at: dt.datetime | None = None) -> Job:
    """Commit one document the way the runner does (with its lot keys)."""
    intake = Intake(channel, f"{key}.pdf", key, make_pdf([key]),
                    json.dumps(sidecar or make_sidecar_dict()).encode("utf-8"),
                    received_at or dt.datetime.now(dt.UTC))
    job, _ = store.enqueue(with_lot_keys(intake))
    return job


@pytest.fixture
def config(tmp_path: Path, pki_dir: Path, credentials: SoftwareCredentials) -> BridgeConfig:
    """A configuration in `tmp_path`, with the session's test PKI (made by `credentials`)."""
    pki = pki_layout(pki_dir)
    return BridgeConfig(
        bridge=BridgeSection(source_id="1.2.250.1.999.1.1"),
        credentials=CredentialsSection(tls_cert=pki.org_auth.cert, tls_key=pki.org_auth.key,
                                       sign_cert=pki.org_sign.cert, sign_key=pki.org_sign.key),
        base_dir=tmp_path,
    )


@pytest.fixture
def store(config: BridgeConfig) -> Iterator[SqliteStore]:
    with SqliteStore.open(config.store_path) as opened:
        yield opened


@pytest.fixture
def card() -> EmulatedCard:
    return EmulatedCard()


@pytest.fixture
def alerts() -> FixedAlerts:
    return FixedAlerts()


@dataclass
class Woken:
    """Counts the dashboard's `on_change` calls (the dispatcher's wake-up)."""

    count: int = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def woken() -> Woken:
    return Woken()


@pytest.fixture
def audit(config: BridgeConfig) -> Iterator[AuditTrail]:
    """The installation's audit journal, as the runner gives it to the dashboard."""
    with AuditTrail.for_config(config) as trail:
        yield trail


@pytest.fixture
async def dashboard(store: SqliteStore, config: BridgeConfig, card: EmulatedCard,
                    alerts: FixedAlerts, woken: Woken,
                    audit: AuditTrail) -> AsyncIterator[DashboardServer]:
    server = DashboardServer(build_dashboard(store, config, token=TOKEN, card=card,
                                             alerts=alerts, on_change=woken, audit=audit))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Visitor:
    """A browser as the server sees it: cookies kept, Origin sent with each POST."""

    def __init__(self, server: DashboardServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.base = f"http://127.0.0.1:{server.port}"

    async def get(self, path: str, **options: Any) -> tuple[aiohttp.ClientResponse, str]:
        """The answer and its text as a person reads it (HTML entities decoded)."""
        async with self.session.get(self.base + path, **options) as response:
            return response, html.unescape(await response.text())

    async def post(self, path: str, data: Any = None, *, origin: str | None = "same",
                   **options: Any) -> tuple[aiohttp.ClientResponse, str]:
        headers = dict(options.pop("headers", {}))
        if origin == "same":
            headers["Origin"] = self.base
        elif origin is not None:
            headers["Origin"] = origin
        async with self.session.post(self.base + path, data=data, headers=headers,
                                     **options) as response:
            return response, html.unescape(await response.text())

    async def csrf(self, path: str = "/") -> str:
        _, page = await self.get(path)
        found = CSRF_FIELD.search(page)
        assert found, f"no CSRF field on {path}"
        return found.group(1)

    async def login(self, token: str = TOKEN) -> tuple[aiohttp.ClientResponse, str]:
        login_csrf = await self.csrf("/connexion")
        return await self.post("/connexion", {"csrf": login_csrf, "jeton": token})


@pytest.fixture
async def visitor(dashboard: DashboardServer) -> AsyncIterator[Visitor]:
    # unsafe=True: aiohttp's cookie jar otherwise ignores cookies of an IP address host.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Visitor(dashboard, session)


@pytest.fixture
async def signed_in(visitor: Visitor) -> Visitor:
    response, _ = await visitor.login()
    assert response.status == 200 and response.url.path == "/"
    return visitor


@pytest.fixture
async def signed_in_other(dashboard: DashboardServer) -> AsyncIterator[Visitor]:
    """A second browser, signed in (the first one stays a stranger)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        other = Visitor(dashboard, session)
        response, _ = await other.login()
        assert response.status == 200
        yield other


SOFTWARE = Software("dmp-bridge", "test", "2.25.1", "TEST")


@pytest.fixture
async def simulator(tmp_path: Path, pki_dir: Path,
                    credentials: SoftwareCredentials) -> AsyncIterator[RunningSimulator]:
    pki = pki_layout(pki_dir)
    running = await start_simulator(SimulatorConfig(
        db_path=tmp_path / "sim.sqlite3", ca_cert=pki.ca_cert, server_cert=pki.server.cert,
        server_key=pki.server.key))
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def dispatcher(store: SqliteStore, simulator: RunningSimulator,
                     credentials: SoftwareCredentials) -> AsyncIterator[Dispatcher]:
    """The real dispatcher, as the runner builds it, against the DMP simulator."""
    client = DmpClient(simulator.base_url, credentials.ssl_context(), timeout_seconds=10,
                       rate_per_second=5)
    try:
        yield Dispatcher(store, client, credentials, source_id="2.25.1", software=SOFTWARE,
                         gate=Gatekeeping(load_matrix()))
    finally:
        await client.close()


def to_confirm() -> dict[str, object]:
    sidecar = make_sidecar_dict()
    sidecar["document"]["confirm_with_patient"] = True
    return sidecar


def registered(simulator: RunningSimulator) -> int:
    return len([d for d in simulator.store.documents() if not d.is_signature])
