"""The composition root: builds the bridge from its configuration and runs it until stopped.

Start order matters for durability: the store is opened and recovered (ACTIVE jobs back to
QUEUED or AMBIGUOUS) before the first dispatch; the folder intake finishes pairs left in
`en-cours/` by a crash before it looks at new files.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from bridge.errors import BridgeError
from bridge.identity_gate import Target
from bridge.jobs import Intake, Job
from bridge.lot_keys import with_lot_keys
from bridge.retry import RetryPolicy
from bridge.sidecar import parse_sidecar
from bridge.vihf import Software
from connectors.folder_intake import FolderIntake, Outcome
from connectors.software_credentials import CredentialsError, SoftwareCredentials
from connectors.sqlite_patients import SqlitePatientRegistry
from connectors.sqlite_store import SqliteStore
from connectors.zam_sender import ZamNotifier
from mappings.matrix import Matrix
from service.alerts import AlertEngine, engine_for
from service.api_token import ensure_token_file, load_token
from service.audit_care import keep_audit_retention
from service.audit_trail import AuditTrail
from service.config import BridgeConfig, ConfigError
from service.dispatcher import Dispatcher, Finished, Gatekeeping
from service.labels import STATE_LABELS
from service.local_listener import LocalListener
from service.matrix_loading import matrix_from_config
from service.queue_care import QueueCare
from service.runtime_parts import (
    Credentialing,
    alert_monitor,
    finished_observers,
    folder_intakes,
    open_credentials,
    open_zam,
)

if TYPE_CHECKING:
    from service.simulator.config import SimulatorConfig
    from service.simulator.server import RunningSimulator

log = structlog.get_logger("dmp_bridge.service")

SOFTWARE_NAME = "dmp-bridge"
GRACE_SECONDS = 7.0  # for the job in hand at stop time; the whole stop must stay under 10 s
SOFTWARE_VERSION = "0.1.0"
# Not homologated by the CNDA: the simulator accepts this test value; production will need ours.
HOMOLOGATION_ID = "DMP-BRIDGE-NON-HOMOLOGUE"


@dataclass
class Hooks:
    """Optional observers (the demo prints what happens to each file)."""

    on_intake: Callable[[Outcome], None] | None = None
    on_finished: Callable[[Finished], None] | None = None
    on_ready: Callable[[Bridge], None] | None = None


@dataclass
class Bridge:
    """The running parts, for the demo and the tests."""

    config: BridgeConfig
    store: SqliteStore
    dispatcher: Dispatcher
    intake: FolderIntake
    simulator: RunningSimulator | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def retry_policy(config: BridgeConfig) -> RetryPolicy:
    return RetryPolicy(
        first_delay=dt.timedelta(seconds=config.dmp.retry_first_seconds),
        max_delay=dt.timedelta(seconds=config.dmp.retry_max_seconds),
        max_attempts=config.dmp.retry_max_attempts,
    )


def simulator_config(config: BridgeConfig) -> SimulatorConfig:
    from service.simulator.config import SimulatorConfig  # loaded only when a simulator runs

    return SimulatorConfig(
        db_path=config.simulator_db_path,
        ca_cert=config.path(config.simulator.client_ca),
        server_cert=config.path(config.simulator.server_cert),
        server_key=config.path(config.simulator.server_key),
        port=config.simulator.port,
    )


def load_credentials(config: BridgeConfig) -> SoftwareCredentials:
    """The establishment certificates: two PKCS#12 files (as the IGC Santé delivers them) with
    their passphrase file, or PEM pairs (the test PKI)."""
    c = config.credentials
    try:
        if c.tls_p12 is not None or c.sign_p12 is not None:
            if c.tls_p12 is None or c.sign_p12 is None or c.p12_passphrase_file is None:
                raise ConfigError(
                    "Section [credentials] : tls_p12, sign_p12 et p12_passphrase_file vont "
                    "ensemble ; indiquez les deux fichiers .p12 remis par l'IGC Santé et le "
                    "fichier qui contient leur phrase de passe.")
            return SoftwareCredentials.from_pkcs12(
                tls_p12=config.path(c.tls_p12),
                sign_p12=config.path(c.sign_p12),
                passphrase_file=config.path(c.p12_passphrase_file),
                server_ca=config.path(config.dmp.server_ca),
                work_dir=config.path(config.bridge.data_dir),
            )
        return SoftwareCredentials(
            tls_cert=config.path(c.tls_cert), tls_key=config.path(c.tls_key),
            sign_cert=config.path(c.sign_cert), sign_key=config.path(c.sign_key),
            server_ca=config.path(config.dmp.server_ca),
        )
    except CredentialsError as exc:
        raise ConfigError(exc.message_fr) from None


async def run_bridge(
    config: BridgeConfig, hooks: Hooks | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run until `stop` is set, SIGINT/SIGTERM arrives, or the task is cancelled."""
    hooks = hooks or Hooks()
    stop = stop or asyncio.Event()
    matrix = matrix_from_config(config)  # a faulty matrix stops the start (ConfigError)
    software = Software(SOFTWARE_NAME, SOFTWARE_VERSION, config.bridge.source_id,
                        HOMOLOGATION_ID)
    credentialing = open_credentials(config, software, load_credentials)
    api_token = load_token(config.api_token_path) if config.http.enabled else None
    simulator = await _embedded_simulator(config)
    store = await asyncio.to_thread(SqliteStore.open, config.store_path)
    registry = await asyncio.to_thread(SqlitePatientRegistry, config.store_path)
    audit = await asyncio.to_thread(AuditTrail.for_config, config)
    zam = await open_zam(config)
    listener: LocalListener | None = None
    tasks: list[asyncio.Task[None]] = []  # cancelled here too if the start fails half-way
    try:
        recovered = await asyncio.to_thread(store.recover_on_start, dt.datetime.now(dt.UTC))
        log.info("bridge_starting", recovered_jobs=recovered, simulator=simulator is not None,
                 mode=config.credentials.mode)
        dispatcher = Dispatcher(
            store, None, None,
            wallet=credentialing.wallet,
            audit=audit,
            source_id=config.bridge.source_id,
            software=software,
            gate=Gatekeeping(matrix, Target(config.bridge.environment), registry),
            lifetime=dt.timedelta(days=config.dmp.lifetime_days),
            on_finished=finished_observers(zam, hooks.on_finished),
            retry=retry_policy(config),
            lot_max=config.dmp.lot_max_documents,
            care=QueueCare(store, lifetime=dt.timedelta(days=config.dmp.lifetime_days),
                           retention=dt.timedelta(days=config.bridge.retention_days)),
        )

        async def enqueue(intake: Intake) -> tuple[Job, bool]:
            # The patient's DMP choices first: once the job is committed the dispatcher may take
            # it at once, and an opposition stated with this very document must already count
            # (for it and for every document already waiting).
            # With its patient and author keys, so it can join a lot of the same patient.
            # One hop to a worker thread for both (each hop costs as much as hashing the PDF).
            result = await asyncio.to_thread(record_and_enqueue, registry, store, intake)
            dispatcher.wake()
            return result

        intakes = folder_intakes(config, enqueue, matrix, hooks.on_intake)
        bridge = Bridge(config, store, dispatcher, intakes[0], simulator, tasks)
        bridge.tasks += [
            asyncio.create_task(dispatcher.run(), name="dispatcher"),
            *(asyncio.create_task(intake.run(), name=f"folder-intake-{n}")
              for n, intake in enumerate(intakes)),
        ]
        bridge.tasks += network_channels(config, enqueue, store, matrix, api_token,
                                         registry=registry, zam=zam.notifier if zam else None)
        if zam is not None:
            zam.start_resuming()
        engine = engine_for(config)
        bridge.tasks += _watchers(config, store, engine, credentialing, audit)
        if credentialing.cards is not None:
            await credentialing.cards.start()
        listener = await start_local_listener(config, store, dispatcher, credentialing, engine,
                                              audit=audit)
        _install_signal_handlers(stop)
        if hooks.on_ready is not None:
            hooks.on_ready(bridge)
        await _serve_until_stopped(bridge, stop)
    finally:
        await _cancel(tasks)
        if listener is not None:
            await listener.stop()
        await credentialing.close()
        if zam is not None:
            await zam.close()
        for closable in (audit, store, registry):
            await asyncio.to_thread(closable.close)
        if simulator is not None:
            await simulator.close()


async def _embedded_simulator(config: BridgeConfig) -> RunningSimulator | None:
    if not config.simulator.embedded:
        return None
    from service.simulator.server import start_simulator  # a production bridge has none

    return await start_simulator(simulator_config(config))


def _watchers(config: BridgeConfig, store: SqliteStore, engine: AlertEngine,
              credentialing: Credentialing, audit: AuditTrail) -> list[asyncio.Task[None]]:
    """The background rounds: alerts, and the audit journal's retention."""
    return [
        asyncio.create_task(alert_monitor(config, store, engine, credentialing).run(),
                            name="alerts"),
        asyncio.create_task(keep_audit_retention(audit, config.bridge.audit_retention_days),
                            name="audit-retention"),
    ]


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel what still runs (after a graceful stop nothing does; after a failed start the
    dispatcher and the watchers must not outlive the store they use)."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _serve_until_stopped(bridge: Bridge, stop: asyncio.Event) -> None:
    """Wait for `stop` (or a task's end), then stop gracefully.

    No new file is taken, the job in hand may finish for a few seconds (the whole stop stays
    under 10 s); a job cut short is ACTIVE in the store and comes back QUEUED or AMBIGUOUS at
    the next start, so cutting it loses nothing.
    """
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *bridge.tasks], return_when=asyncio.FIRST_COMPLETED)
    log.info("bridge_stopping")
    for intake_task in bridge.tasks[1:]:  # the channels: take nothing new
        intake_task.cancel()
    bridge.dispatcher.stop_taking_work()
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(bridge.tasks[0]), timeout=GRACE_SECONDS)
    for task in [waiter, *bridge.tasks]:
        task.cancel()
    for task in bridge.tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if task in done and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    log.info("bridge_stopped")


async def start_local_listener(config: BridgeConfig, store: SqliteStore, dispatcher: Dispatcher,
                               credentialing: Credentialing, engine: AlertEngine, *,
                               audit: AuditTrail) -> LocalListener | None:
    """The dashboard (and, in card mode, the card API) on 127.0.0.1. A busy port does not stop
    the bridge: documents keep flowing, and the log says what to change."""
    cards = credentialing.cards
    if not config.dashboard.enabled and cards is None:
        return None
    token = await asyncio.to_thread(ensure_token_file, config.api_token_path)
    listener = LocalListener(config.dashboard.port)
    if config.dashboard.enabled:
        from service.dashboard import build_dashboard

        listener.root = build_dashboard(
            store, config, token=token, card=None if cards is None else cards.manager,
            alerts=engine, on_change=dispatcher.wake, audit=audit)
    if cards is not None:
        from service.card_api import card_api

        listener.subapps["/api/v1/carte"] = card_api(cards.manager, token)
    try:
        await listener.start()
    except OSError as exc:
        log.error("local_listener_unavailable", port=config.dashboard.port,
                  error=exc.strerror or type(exc).__name__, alert=True)
        return None
    return listener


def network_channels(config: BridgeConfig, enqueue: Callable[[Intake], Awaitable[tuple[Job, bool]]],
                     store: SqliteStore, matrix: Matrix, api_token: str | None, *,
                     registry: SqlitePatientRegistry | None = None,
                     zam: ZamNotifier | None = None) -> list[asyncio.Task[None]]:
    """The listeners the configuration enables (HL7 v2 over MLLP, the local HTTP API). Each is
    imported only when enabled: both are off by default, and an idle bridge should not carry
    their modules (issue 5's memory target)."""
    tasks = []
    if config.mllp.enabled:
        from connectors.mllp_server import MllpServer, MllpSettings, patient_recorder

        adt = registry is not None and config.mllp.accept_adt
        mllp = MllpServer(enqueue, MllpSettings(
            port=config.mllp.port, max_frame_bytes=config.mllp.max_message_kb * 1024,
            idle_timeout=config.mllp.idle_timeout_seconds,
            frame_timeout=config.mllp.frame_timeout_seconds,
            author_sector=config.mllp.author_sector), matrix=matrix,
            on_patient=patient_recorder(registry) if adt and registry is not None else None,
            on_committed=zam.remember if zam is not None else None)
        tasks.append(asyncio.create_task(mllp.run(), name="mllp"))
    if api_token is not None:
        from connectors.http_api import HttpApi, store_lookup

        api = HttpApi(enqueue, store_lookup(store), token=api_token, matrix=matrix,
                      labels=STATE_LABELS, port=config.http.port,
                      max_body_bytes=config.http.max_body_mb * 1024 * 1024,
                      body_timeout=config.http.body_timeout_seconds,
                      header_timeout=config.http.header_timeout_seconds,
                      max_uploads=config.http.max_concurrent_uploads)
        tasks.append(asyncio.create_task(api.run(), name="http"))
    return tasks


def record_and_enqueue(registry: SqlitePatientRegistry, store: SqliteStore,
                       intake: Intake) -> tuple[Job, bool]:
    """The patient's choices, then the durable job (blocking: a worker thread's work)."""
    record_patient_choices(registry, intake)
    return store.enqueue(with_lot_keys(intake))


def record_patient_choices(registry: SqlitePatientRegistry, intake: Intake) -> None:
    """Opposition and consultation consent, as the sidecar states them (if it does)."""
    try:
        request = parse_sidecar(intake.metadata, file_name=intake.source_ref)
    except BridgeError:
        return  # accepted at intake, so this does not happen; nothing to record anyway
    if request.feeding_opposition is None and request.consultation_consent_date is None:
        return
    registry.record(request.patient.ins.matricule, now=dt.datetime.now(dt.UTC),
                    feeding_opposition=request.feeding_opposition,
                    consultation_consent_at=request.consultation_consent_date)


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows event loops: there Ctrl-C raises KeyboardInterrupt instead,
        # and the service stop path (a later issue) sets `stop` itself.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
