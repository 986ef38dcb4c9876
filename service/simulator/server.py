"""The simulator's HTTPS server: mutual TLS, the DMP routes, the admin API.

Routes (spec §1.1): POST …/repository (ITI-41), POST …/registry (ITI-18, ITI-57),
POST …/patients (TD0.2), and the admin API under /_simulateur (see `admin`). Every SOAP request
is recorded with the TLS client certificate's subject DN. Checks run in a worker thread so that
a large submission does not stall other connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from service.simulator import routes
from service.simulator.admin import add_admin_routes
from service.simulator.config import SimulatorConfig
from service.simulator.dispatch import STATE, AppState, log, soap_response
from service.simulator.faults import FaultInjector
from service.simulator.judge import Judge
from service.simulator.patients import PatientStates
from service.simulator.responses import soap_fault
from service.simulator.storage import SimulatorStore
from service.simulator.transactions import transactions
from service.simulator.trust import Trust

BASE_PATH = "/si-dmp-server/v2/services"


@web.middleware
async def _internal_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException:
        raise
    except Exception as exc:  # the simulator must keep serving after any bug
        log.error("simulator_internal_error", error_type=type(exc).__name__)
        body = soap_fault("Erreur interne du simulateur.", code="XDSRegistryError", sender=False)
        return soap_response(body, status=500)


def _tls_context(config: SimulatorConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(config.ca_cert))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS is mandatory (spec §1.1)
    context.load_cert_chain(str(config.server_cert), str(config.server_key))
    return context


@dataclass
class RunningSimulator:
    """A started simulator. Tests read what it registered through `store`."""

    config: SimulatorConfig
    port: int
    store: SimulatorStore
    faults: FaultInjector
    patients: PatientStates
    _runner: web.AppRunner
    _state: AppState

    @property
    def base_url(self) -> str:
        return f"https://{self.config.host}:{self.port}{BASE_PATH}"

    @property
    def state_url(self) -> str:
        return f"https://{self.config.host}:{self.port}/_simulateur/etat"

    @property
    def admin_url(self) -> str:
        return f"https://{self.config.host}:{self.port}/_simulateur/admin"

    async def close(self) -> None:
        self._state.closing.set()  # releases the "sans_reponse" handlers
        await self._runner.cleanup()
        self.store.close()


def build_app(state: AppState) -> web.Application:
    app = web.Application(client_max_size=state.config.max_body_bytes,
                          middlewares=[_internal_errors])
    app[STATE] = state
    app.router.add_post(f"{BASE_PATH}/repository", routes.repository)
    app.router.add_post(f"{BASE_PATH}/registry", routes.registry)
    app.router.add_post(f"{BASE_PATH}/patients", routes.patients)
    add_admin_routes(app)
    return app


async def start_simulator(config: SimulatorConfig) -> RunningSimulator:
    """Start serving on `config.host:config.port` (0 = any free port) over mutual TLS."""
    store = SimulatorStore(config.db_path)
    judge = Judge(strict=config.strict, clock_skew_seconds=config.clock_skew_seconds,
                  max_document_bytes=config.max_body_bytes, store=store,
                  trust=Trust.from_file(config.ca_cert))
    state = AppState(config=config, judge=judge, transactions=transactions(judge))
    runner = web.AppRunner(build_app(state), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, ssl_context=_tls_context(config))
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        store.close()
        raise
    port = config.port
    server = site._server
    if isinstance(server, asyncio.Server) and server.sockets:
        port = server.sockets[0].getsockname()[1]
    log.info("simulator_started", port=port, strict=config.strict)
    return RunningSimulator(config, port, store, state.faults, judge.patients, runner, state)


def run_simulator_forever(config: SimulatorConfig) -> None:
    """Serve until Ctrl-C (`dmp-bridge simulator`)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Windows has no add_signal_handler: Ctrl-C then arrives as KeyboardInterrupt.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        simulator = await start_simulator(config)
        mode = "strict" if config.strict else "tolérant (--lenient)"
        print(f"Simulateur DMP ({mode}) à l'écoute sur {simulator.base_url} (Ctrl-C pour arrêter)")
        try:
            await stop.wait()
        finally:
            await simulator.close()
            log.info("simulator_stopped")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    print("Simulateur arrêté.")
