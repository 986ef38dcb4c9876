"""Alerts for the practice and the URPS: deduplicated incidents, announced once when they start
and once when they end, however long they last and however often they are evaluated.

Incidents (thresholds from `[alerts]`):
- `queue_age`: a document has been waiting (queued, deferred, ambiguous or held) longer than
  `alerts.queue_age_hours`;
- `dead`: refused documents wait for a correction (those a person cancelled do not count);
- `awaiting_credentials`: documents wait for a CPS card or their structure's certificates
  (deferred with `AWAITING_CREDENTIALS`, see `service.dispatcher`);
- `expiry:<role>`: a certificate or a card reached the first expiry threshold of
  `bridge.cert_expiry` (critical from 7 days and once expired);
- `low_disk`: the data folder's disk has less than `alerts.low_disk_mb` free.

`AlertEngine.evaluate(snapshot, now)` compares what is wrong now with the open alerts and returns
the notifications to send; the open alerts are kept in `<data_dir>/alertes-ouvertes.json` so a
restart does not announce them again (and does announce the end of one that cleared meanwhile).
Notifiers (log, e-mail, webhook) never raise: a failure is logged and the service goes on.
Texts carry counts, roles and dates only: never a patient, a name or a document.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import aiohttp
import structlog

from bridge.cert_expiry import THRESHOLD_DAYS, CertificateValidity, expiry_warnings
from bridge.jobs import JobState
from bridge.store_port import Store
from service.config import AlertsSection, BridgeConfig
from service.dispatcher import AWAITING_CREDENTIALS
from service.operations import CANCELLED_BY_USER  # a person chose to stop it: no alert

log = structlog.get_logger("dmp_bridge.alerts")

STATE_FILE = "alertes-ouvertes.json"
# From the first expiry threshold of bridge.cert_expiry (30 days: time to order a certificate
# from the IGC Santé, or a new card, and install it); critical from URGENT_DAYS on.
EXPIRY_WARNING = timedelta(days=max(THRESHOLD_DAYS))
URGENT_DAYS = 7
CHECK_EVERY = timedelta(minutes=1)
SEND_TIMEOUT_SECONDS = 15.0
WAITING_STATES = (JobState.QUEUED, JobState.DEFERRED, JobState.AMBIGUOUS, JobState.HELD)
MANY = 1_000_000


class Severity(StrEnum):
    """How urgent an alert is (French: shown as it is)."""

    WARNING = "avertissement"  # act today
    CRITICAL = "critique"  # documents no longer leave, or soon will not


class Kind(StrEnum):
    """Which end of an incident a notification announces."""

    STARTED = "debut"
    ENDED = "fin"


@dataclass(frozen=True)
class Snapshot:
    """What the engine looks at; `snapshot_from_store` builds it from the real system."""

    oldest_waiting_at: datetime | None = None  # received_at of the oldest waiting job
    dead: int = 0
    awaiting_credentials: int = 0
    validities: tuple[CertificateValidity, ...] = ()  # certificates and cards
    free_disk_bytes: int | None = None


@dataclass(frozen=True)
class Thresholds:
    queue_age: timedelta = timedelta(hours=24)
    low_disk_bytes: int = 500 * 1024 * 1024

    @classmethod
    def from_config(cls, alerts: AlertsSection) -> Thresholds:
        return cls(queue_age=timedelta(hours=alerts.queue_age_hours),
                   low_disk_bytes=alerts.low_disk_mb * 1024 * 1024)


@dataclass(frozen=True)
class OpenAlert:
    """An incident under way (what the dashboard lists)."""

    key: str
    severity: Severity
    text_fr: str
    since: datetime


@dataclass(frozen=True)
class Notification:
    kind: Kind
    key: str
    severity: Severity
    text_fr: str
    since: datetime  # when the incident started
    at: datetime  # when this notification was decided

    @property
    def event(self) -> str:
        return "alert_started" if self.kind is Kind.STARTED else "alert_ended"

    @property
    def subject_fr(self) -> str:
        head = "Alerte" if self.kind is Kind.STARTED else "Fin d'alerte"
        return f"[dmp-bridge] {head} ({self.severity}) : {self.text_fr[:80]}"


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.0f} h"


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def incidents(snapshot: Snapshot, now: datetime, thresholds: Thresholds) -> list[OpenAlert]:
    """What is wrong at `now` (pure); `since` is `now`, the engine keeps the real start."""
    found: list[OpenAlert] = []

    def add(key: str, severity: Severity, text: str) -> None:
        found.append(OpenAlert(key, severity, text, now))

    oldest = snapshot.oldest_waiting_at
    if oldest is not None and now - oldest > thresholds.queue_age:
        limit = _hours(thresholds.queue_age)
        add("queue_age", Severity.WARNING,
            f"Un document attend depuis {_hours(now - oldest)} (seuil {limit}) : consultez le "
            "tableau de bord ou « dmp-bridge list » pour voir ce qui le retient.")
    if snapshot.dead:
        n = snapshot.dead
        add("dead", Severity.WARNING,
            f"{n} {_plural(n, 'document refusé attend', 'documents refusés attendent')} une "
            "correction : « dmp-bridge list --etat dead » montre le motif ; une fois corrigé, "
            "« dmp-bridge replay NUMERO ».")
    if snapshot.awaiting_credentials:
        n = snapshot.awaiting_credentials
        add("awaiting_credentials", Severity.WARNING,
            f"{n} {_plural(n, 'document attend', 'documents attendent')} une carte CPS ou les "
            "certificats de sa structure : insérez la carte du professionnel concerné (ou "
            "installez les certificats), l'envoi repartira seul.")
    # The texts and thresholds of bridge.cert_expiry (30, 7, 1 days, expired), each certificate
    # one incident from its first threshold until it is renewed.
    for warning in expiry_warnings(snapshot.validities, now, frozenset()).warnings:
        urgent = warning.expired or (warning.threshold_days or 0) <= URGENT_DAYS
        add(f"expiry:{warning.role}", Severity.CRITICAL if urgent else Severity.WARNING,
            warning.message_fr)
    free = snapshot.free_disk_bytes
    if free is not None and free < thresholds.low_disk_bytes:
        add("low_disk", Severity.CRITICAL,
            f"Espace disque faible pour les données : {free // (1024 * 1024)} Mo libres (seuil "
            f"{thresholds.low_disk_bytes // (1024 * 1024)} Mo). Libérez de la place : la "
            "passerelle ne peut plus recevoir de documents quand le disque est plein.")
    return found


class AlertEngine:
    """Open alerts and their transitions; persisted in `state_path` (None: memory only)."""

    def __init__(self, thresholds: Thresholds, state_path: Path | None = None) -> None:
        self._thresholds = thresholds
        self._state_path = state_path
        self._open: dict[str, OpenAlert] = self._load()

    def evaluate(self, snapshot: Snapshot, now: datetime) -> list[Notification]:
        """The notifications for what started or ended since the last evaluation."""
        current = {alert.key: alert for alert in incidents(snapshot, now, self._thresholds)}
        notifications: list[Notification] = []
        for key, alert in list(current.items()):
            known = self._open.get(key)
            if known is None:
                notifications.append(Notification(Kind.STARTED, key, alert.severity,
                                                  alert.text_fr, now, now))
            else:  # still open: the text (counts, days left) follows, the start stays
                current[key] = OpenAlert(key, alert.severity, alert.text_fr, known.since)
        for key, known in self._open.items():
            if key not in current:
                notifications.append(Notification(Kind.ENDED, key, known.severity,
                                                  known.text_fr, known.since, now))
        changed = current.keys() != self._open.keys()
        self._open = current
        if changed:
            self._save()
        return notifications

    def open_alerts(self) -> list[OpenAlert]:
        """The incidents under way, most severe then oldest first (for the dashboard)."""
        return sorted(self._open.values(),
                      key=lambda a: (a.severity is not Severity.CRITICAL, a.since, a.key))

    def _load(self) -> dict[str, OpenAlert]:
        if self._state_path is None or not self._state_path.exists():
            return {}
        try:
            raw = json.loads(self._state_path.read_text(encoding="utf-8"))
            alerts = [OpenAlert(item["key"], Severity(item["severity"]), item["text_fr"],
                                datetime.fromisoformat(item["since"])) for item in raw["open"]]
        except (OSError, ValueError, KeyError, TypeError):
            # Unreadable: start afresh (the open incidents are announced once more, not lost).
            log.warning("alert_state_unreadable")
            return {}
        return {alert.key: alert for alert in alerts}

    def _save(self) -> None:
        if self._state_path is None:
            return
        items = [{**asdict(a), "severity": a.severity.value, "since": a.since.isoformat()}
                 for a in self._open.values()]
        data = json.dumps({"open": items}, ensure_ascii=False, indent=1).encode("utf-8")
        tmp = self._state_path.with_name(self._state_path.name + ".tmp")
        try:
            self._state_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0),
                         0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._state_path)
        except OSError as exc:  # disk full…: alerts keep working in memory
            log.error("alert_state_not_saved", error_type=type(exc).__name__)


# -- what the engine looks at ------------------------------------------------------------------


def snapshot_from_store(store: Store, data_dir: Path,
                        validities: Iterable[CertificateValidity] = ()) -> Snapshot:
    """Read the queue and the disk (blocking: call it in a worker thread)."""
    oldest: datetime | None = None
    for state in WAITING_STATES:
        for job in store.list_jobs(state, MANY):
            if oldest is None or job.received_at < oldest:
                oldest = job.received_at
    dead = sum(1 for job in store.list_jobs(JobState.DEAD, MANY)
               if job.last_error_code != CANCELLED_BY_USER)
    waiting = sum(1 for job in store.list_jobs(JobState.DEFERRED, MANY)
                  if job.last_error_code == AWAITING_CREDENTIALS)
    try:
        free: int | None = shutil.disk_usage(data_dir).free
    except OSError:
        free = None
    return Snapshot(oldest, dead, waiting, tuple(validities), free)


# -- notifiers -----------------------------------------------------------------------------------


class Notifier(Protocol):
    name: str

    async def send(self, notification: Notification) -> None: ...


class LogNotifier:
    """`alert_started` / `alert_ended` in the operational log (key and severity, no text)."""

    name = "log"

    async def send(self, notification: Notification) -> None:
        method = log.warning if notification.kind is Kind.STARTED else log.info
        method(notification.event, alert=True, alert_key=notification.key,
               severity=notification.severity.value, since=notification.since.isoformat())


def _body_fr(notification: Notification) -> str:
    what = "Début" if notification.kind is Kind.STARTED else "Fin"
    return (
        f"{what} d'une alerte de dmp-bridge sur le poste {socket.gethostname()}.\n\n"
        f"{notification.text_fr}\n\n"
        f"Gravité : {notification.severity}\n"
        f"Depuis : {notification.since.astimezone(UTC):%d/%m/%Y %H:%M} UTC\n"
        + (f"Terminée : {notification.at.astimezone(UTC):%d/%m/%Y %H:%M} UTC\n"
           if notification.kind is Kind.ENDED else "")
    )


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = False
    user: str | None = None
    password_file: Path | None = None  # read at each send, never kept or logged
    timeout: float = SEND_TIMEOUT_SECONDS


class SmtpNotifier:
    """One e-mail per notification, sent with smtplib in a worker thread."""

    name = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    async def send(self, notification: Notification) -> None:
        await asyncio.to_thread(self._send, notification)

    def _send(self, notification: Notification) -> None:
        s = self.settings
        message = EmailMessage()
        message["Subject"] = notification.subject_fr
        message["From"] = s.sender
        message["To"] = ", ".join(s.recipients)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain="dmp-bridge.local")
        message.set_content(_body_fr(notification))
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.user is not None and s.password_file is not None:
                password = s.password_file.read_text(encoding="utf-8").strip()
                smtp.login(s.user, password)
            smtp.send_message(message)


class WebhookNotifier:
    """A JSON POST per notification (English keys, French text)."""

    name = "webhook"

    def __init__(self, url: str, *, timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, notification: Notification) -> None:
        body = {
            "event": notification.event,
            "key": notification.key,
            "severity": notification.severity.value,
            "text_fr": notification.text_fr,
            "since": notification.since.isoformat(),
            "at": notification.at.isoformat(),
            "host": socket.gethostname(),
        }
        async with aiohttp.ClientSession(timeout=self._timeout) as session, \
                session.post(self.url, json=body) as response:
            if response.status >= 300:
                raise aiohttp.ClientResponseError(response.request_info, (),
                                                  status=response.status)


def notifiers_from_config(config: BridgeConfig) -> list[Notifier]:
    """The log always; e-mail when `smtp_host`, `email_from` and `email_to` are set; the webhook
    when `webhook_url` is."""
    alerts = config.alerts
    notifiers: list[Notifier] = [LogNotifier()]
    if alerts.smtp_host and alerts.email_from and alerts.email_to:
        notifiers.append(SmtpNotifier(SmtpSettings(
            host=alerts.smtp_host, port=alerts.smtp_port, sender=alerts.email_from,
            recipients=tuple(alerts.email_to), starttls=alerts.smtp_starttls,
            user=alerts.smtp_user,
            password_file=(config.path(alerts.smtp_password_file)
                           if alerts.smtp_password_file else None))))
    if alerts.webhook_url:
        notifiers.append(WebhookNotifier(alerts.webhook_url))
    return notifiers


async def deliver(notifications: Sequence[Notification], notifiers: Sequence[Notifier]) -> None:
    """Send each notification through each notifier; a failure is logged, never raised."""
    for notification in notifications:
        for notifier in notifiers:
            try:
                await notifier.send(notification)
            except Exception as exc:  # an unreachable relay must never stop the service
                log.error("alert_delivery_failed", notifier=notifier.name,
                          alert_key=notification.key, kind=notification.kind.value,
                          error_type=type(exc).__name__)


class AlertMonitor:
    """Evaluates every `every` and delivers; the integrator runs `run()` as a task."""

    def __init__(self, engine: AlertEngine, notifiers: Sequence[Notifier],
                 take_snapshot: Callable[[], Snapshot], *, every: timedelta = CHECK_EVERY,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self._notifiers = notifiers
        self._take = take_snapshot
        self._every = every
        self._clock = clock

    async def check_once(self) -> list[Notification]:
        snapshot = await asyncio.to_thread(self._take)
        notifications = self.engine.evaluate(snapshot, self._clock())
        await deliver(notifications, self._notifiers)
        return notifications

    async def run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception as exc:  # a store hiccup: try again at the next round
                log.error("alert_check_failed", error_type=type(exc).__name__)
            await asyncio.sleep(self._every.total_seconds())


def engine_for(config: BridgeConfig) -> AlertEngine:
    data_dir = config.path(config.bridge.data_dir)
    return AlertEngine(Thresholds.from_config(config.alerts), data_dir / STATE_FILE)

