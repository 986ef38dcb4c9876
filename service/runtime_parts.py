"""The parts `service.runner` assembles, each built from the configuration.

- the wallet: the establishment's certificates (one DMP connection), or the CPS cards' runtime
  (one connection per logged-in card, added and removed as cards come and go);
- the watched folders, one `FolderIntake` per folder and profile;
- the alerts (certificates and cards included) and the loopback listener (dashboard, card API).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509

from bridge.cert_expiry import CertificateValidity
from bridge.jobs import Intake, Job
from bridge.vihf import Software
from connectors.dmp_client import DmpClient
from connectors.folder_intake import FolderIntake, Outcome
from connectors.software_credentials import SoftwareCredentials
from connectors.sqlite_store import SqliteStore
from connectors.zam_sender import SqliteZamOutbox, ZamDestination, ZamNotifier
from mappings.matrix import Matrix
from service.alerts import (
    AlertEngine,
    AlertMonitor,
    notifiers_from_config,
    snapshot_from_store,
)
from service.config import BridgeConfig, ConfigError
from service.dispatcher import Finished
from service.preview import folder_profile
from service.wallet import Wallet

if TYPE_CHECKING:  # imported at run time only in card mode (optional « carte » packages)
    from service.card_runtime import CardRuntime

CARD_RENEWAL_FR = ("Faites renouveler la carte CPS auprès de l'ANS (la nouvelle carte arrive "
                   "avant l'échéance) et insérez-la à la place de l'ancienne.")


@dataclass
class Credentialing:
    """How this bridge authenticates: exactly one of `software` and `cards` is set."""

    wallet: Wallet
    software: SoftwareCredentials | None = None
    cards: CardRuntime | None = None

    async def close(self) -> None:
        """Cards released, every DMP connection closed."""
        if self.cards is not None:
            await self.cards.close()
        for client in self.wallet.clients():
            await client.close()


def open_credentials(config: BridgeConfig, software: Software,
                     load_software: Callable[[BridgeConfig], SoftwareCredentials]
                     ) -> Credentialing:
    """The establishment's certificates with their DMP connection, or an empty wallet the
    cards will fill (`credentials.mode = "carte"`)."""
    source_id = config.bridge.source_id
    if config.credentials.mode == "carte":
        wallet = Wallet(source_id=source_id, software=software)
        try:
            from service.card_runtime import card_runtime

            return Credentialing(wallet, cards=card_runtime(config, wallet))
        except ImportError as exc:
            raise ConfigError(
                "Le mode carte (credentials.mode = \"carte\") demande les composants de la "
                f"carte CPS, absents ({exc.name}) : installez-les avec « .venv/bin/pip install "
                "-e '.[carte]' » (sous Linux, après « apt install swig libpcsclite-dev »), "
                "puis redémarrez."
            ) from None
    credentials = load_software(config)
    client = DmpClient(
        config.dmp.url, credentials.ssl_context(), timeout_seconds=config.dmp.timeout_seconds,
        rate_per_second=config.dmp.max_rate_per_second,
    )
    return Credentialing(Wallet.single(client, credentials, source_id=source_id,
                                       software=software), software=credentials)


def validities(credentialing: Credentialing) -> list[CertificateValidity]:
    """The certificates whose expiry is watched: the structure's, or the logged-in cards'."""
    if credentialing.software is not None:
        return list(credentialing.software.certificate_validities())
    found = []
    if credentialing.cards is not None:
        for label, der in credentialing.cards.manager.certificate_validities():
            cert = x509.load_der_x509_certificate(der)
            found.append(CertificateValidity(label, cert.not_valid_after_utc, CARD_RENEWAL_FR))
    return found


def folder_intakes(config: BridgeConfig,
                   enqueue: Callable[[Intake], Awaitable[tuple[Job, bool]]],
                   matrix: Matrix, on_outcome: Callable[[Outcome], None] | None
                   ) -> list[FolderIntake]:
    """One watcher per export folder (the main one first), each with its profile."""
    return [
        FolderIntake(
            config.path(section.folder),
            enqueue,
            stability=dt.timedelta(seconds=config.intake.stability_seconds),
            rescan_interval=config.intake.rescan_seconds,
            on_outcome=on_outcome,
            matrix=matrix,
            profile=folder_profile(section, config.mllp.author_sector),
            ignore=tuple(section.ignore),
        )
        for section in config.intake.folders()
    ]


def alert_monitor(config: BridgeConfig, store: SqliteStore, engine: AlertEngine,
                  credentialing: Credentialing) -> AlertMonitor:
    data_dir = config.path(config.bridge.data_dir)
    return AlertMonitor(engine, notifiers_from_config(config),
                        lambda: snapshot_from_store(store, data_dir, validities(credentialing)))


@dataclass
class Zam:
    """ZAM^Z01 business acknowledgements: their durable outbox and the sender."""

    outbox: SqliteZamOutbox
    notifier: ZamNotifier
    resume_task: asyncio.Task[int] | None = None

    def start_resuming(self) -> None:
        """Send, in the background, the acknowledgements a previous run left undelivered."""
        self.resume_task = asyncio.create_task(self.notifier.resume(), name="zam-resume")

    async def close(self) -> None:
        if self.resume_task is not None:
            self.resume_task.cancel()
        await self.notifier.aclose()
        await asyncio.to_thread(self.outbox.close)


async def open_zam(config: BridgeConfig) -> Zam | None:
    """The ZAM sender when HL7 over MLLP is on and a destination is configured."""
    if not config.mllp.enabled or config.mllp.zam_port is None:
        return None
    outbox = await asyncio.to_thread(SqliteZamOutbox, config.store_path)
    return Zam(outbox, ZamNotifier(outbox, ZamDestination(
        config.mllp.zam_host, config.mllp.zam_port, attempts=config.mllp.zam_attempts,
        first_delay=config.mllp.zam_first_delay_seconds)))


def finished_observers(zam: Zam | None, other: Callable[[Finished], None] | None
                       ) -> Callable[[Finished], None] | None:
    """What the dispatcher calls when a job reaches a new state: the ZAM (never waited for),
    then the caller's own observer."""
    if zam is None:
        return other

    def observe(finished: Finished) -> None:
        zam.notifier.notify_soon(finished.job, finished.decision)
        if other is not None:
            other(finished)

    return observe
