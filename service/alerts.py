"""Alerts for the practice and the URPS: deduplicated incidents, announced once when they start
and once when they end, however long they last and however often they are evaluated.

Incidents (thresholds from `[alerts]`):
- `queue_age`: a document has been waiting (queued, deferred, ambiguous or held) longer than
  `alerts.queue_age_hours`;
- `dead`: refused documents wait for a correction (those a person cancelled do not count);
- `awaiting_credentials`: documents wait for a CPS card or their structure's certificates
  (deferred with `AWAITING_CREDENTIALS`, see `service.dispatcher`);
- `expiry:<role>`: a certificate or a card reached the first expiry threshold of
  `bridge.cert_expiry` (critical from 7 days and once expired). Each further threshold (7 days,
  1 day, expired) is announced once more, as an aggravation of the same incident (its `level`);
- `low_disk`: the data folder's disk has less than `alerts.low_disk_mb` free. Hysteresis: it
  ends only once the free space is back above the threshold plus a margin (10 % of the
  threshold, at least 100 MiB: `Thresholds.low_disk_end_bytes`), so a disk hovering around the
  threshold does not send a start and an end every minute.

`AlertEngine.evaluate(snapshot, now)` compares what is wrong now with the open alerts and returns
the notifications to send (started, escalated, ended); the open alerts are kept in
`<data_dir>/alertes-ouvertes.json` so a restart does not announce them again (and does announce
the end of one that cleared meanwhile).

Delivery (`AlertMonitor`): each notification is written, in the same file and the same atomic
save as the open alerts, to an outbox with one entry per notifier, then sent; an entry leaves
the outbox once its notifier delivered it. A notifier that fails (SMTP relay down) keeps its
entries, retried in order at later rounds with a growing delay (2, 4, 8… minutes, at most one
hour; one failed attempt per notifier per round), given up after `PENDING_MAX_AGE`; the other
notifiers are not sent anything twice. A crash between the save and the sending loses nothing.
Notifiers (log, e-mail, webhook) never raise: a failure is logged and the service goes on.
Texts carry counts, roles and dates only: never a patient, a name or a document.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
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
# Low disk ends above threshold + max(10 % of it, 100 MiB): see the module docstring.
LOW_DISK_MARGIN_RATIO = 0.10
LOW_DISK_MARGIN_MIN = 100 * 1024 * 1024
# A notification a notifier could not deliver is tried again after 2, 4, 8… minutes (at most
# RETRY_MAX), and given up after PENDING_MAX_AGE (the log keeps it; the next change is sent).
RETRY_MAX = timedelta(hours=1)
PENDING_MAX_AGE = timedelta(days=7)
PENDING_MAX_PER_NOTIFIER = 200
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
    ESCALATED = "aggravation"  # same incident, a more urgent threshold (expiry: 7 d, 1 d…)
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

    @property
    def low_disk_end_bytes(self) -> int:
        """Free space above which an open low-disk alert ends (hysteresis)."""
        margin = max(int(self.low_disk_bytes * LOW_DISK_MARGIN_RATIO), LOW_DISK_MARGIN_MIN)
        return self.low_disk_bytes + margin

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
    level: str = ""  # the threshold reached ("30", "7", "1", "expire" for expiry; else "")


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
        return {Kind.STARTED: "alert_started", Kind.ESCALATED: "alert_escalated",
                Kind.ENDED: "alert_ended"}[self.kind]

    @property
    def subject_fr(self) -> str:
        head = {Kind.STARTED: "Alerte", Kind.ESCALATED: "Alerte aggravée",
                Kind.ENDED: "Fin d'alerte"}[self.kind]
        return f"[dmp-bridge] {head} ({self.severity}) : {self.text_fr[:80]}"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "key": self.key, "severity": self.severity.value,
                "text_fr": self.text_fr, "since": self.since.isoformat(),
                "at": self.at.isoformat()}

    @classmethod
    def from_json(cls, item: dict[str, str]) -> Notification:
        return cls(Kind(item["kind"]), item["key"], Severity(item["severity"]), item["text_fr"],
                   datetime.fromisoformat(item["since"]), datetime.fromisoformat(item["at"]))


@dataclass(frozen=True)
class Pending:
    """A notification one notifier has not delivered yet (the outbox)."""

    notifier: str
    notification: Notification
    tries: int = 0
    next_try: datetime | None = None  # None: at once

    def to_json(self) -> dict[str, object]:
        return {"notifier": self.notifier, "notification": self.notification.to_json(),
                "tries": self.tries,
                "next_try": None if self.next_try is None else self.next_try.isoformat()}

    @classmethod
    def from_json(cls, item: dict[str, object]) -> Pending:
        notification = item["notification"]
        next_try = item.get("next_try")
        if not isinstance(notification, dict) or not isinstance(item["notifier"], str):
            raise TypeError("pending")
        return cls(item["notifier"], Notification.from_json(notification),
                   int(str(item.get("tries", 0))),
                   None if next_try is None else datetime.fromisoformat(str(next_try)))


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.0f} h"


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def incidents(snapshot: Snapshot, now: datetime, thresholds: Thresholds,
              open_keys: Collection[str] = ()) -> list[OpenAlert]:
    """What is wrong at `now` (pure); `since` is `now`, the engine keeps the real start.
    `open_keys`: the alerts open so far (an open low-disk alert ends higher up: hysteresis)."""
    found: list[OpenAlert] = []

    def add(key: str, severity: Severity, text: str, level: str = "") -> None:
        found.append(OpenAlert(key, severity, text, now, level))

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
        level = "expire" if warning.expired else str(warning.threshold_days)
        add(f"expiry:{warning.role}", Severity.CRITICAL if urgent else Severity.WARNING,
            warning.message_fr, level)
    free = snapshot.free_disk_bytes
    floor = (thresholds.low_disk_end_bytes if "low_disk" in open_keys
             else thresholds.low_disk_bytes)
    if free is not None and free < floor:
        mib = 1024 * 1024
        add("low_disk", Severity.CRITICAL,
            f"Espace disque faible pour les données : {free // mib} Mo libres (seuil "
            f"{thresholds.low_disk_bytes // mib} Mo). Libérez de la place : la passerelle ne "
            "peut plus recevoir de documents quand le disque est plein. L'alerte prend fin "
            f"au-dessus de {thresholds.low_disk_end_bytes // mib} Mo libres.")
    return found


class AlertEngine:
    """Open alerts, their transitions and the outbox of notifications not yet delivered;
    persisted in `state_path` (None: memory only)."""

    def __init__(self, thresholds: Thresholds, state_path: Path | None = None) -> None:
        self._thresholds = thresholds
        self._state_path = state_path
        self._open, self._pending = self._load()

    def evaluate(self, snapshot: Snapshot, now: datetime,
                 notifiers: Sequence[str] = ()) -> list[Notification]:
        """The notifications for what started, escalated or ended since the last evaluation.
        With `notifiers` (their names), each is also put in the outbox for each of them, saved
        with the open alerts before anything is sent (see `AlertMonitor`)."""
        current = {alert.key: alert
                   for alert in incidents(snapshot, now, self._thresholds, self._open.keys())}
        notifications: list[Notification] = []
        for key, alert in list(current.items()):
            known = self._open.get(key)
            if known is None:
                notifications.append(Notification(Kind.STARTED, key, alert.severity,
                                                  alert.text_fr, now, now))
                continue
            if alert.level != known.level and known.level:  # a further threshold: once each
                notifications.append(Notification(Kind.ESCALATED, key, alert.severity,
                                                  alert.text_fr, known.since, now))
            # still open: the text (counts, days left) and the level follow, the start stays
            current[key] = OpenAlert(key, alert.severity, alert.text_fr, known.since,
                                     alert.level)
        for key, known in self._open.items():
            if key not in current:
                notifications.append(Notification(Kind.ENDED, key, known.severity,
                                                  known.text_fr, known.since, now))
        changed = ({(a.key, a.level) for a in current.values()}
                   != {(a.key, a.level) for a in self._open.values()})
        self._open = current
        for notification in notifications:
            self._pending += [Pending(name, notification) for name in notifiers]
        if changed or (notifications and notifiers):
            self._save()
        return notifications

    def open_alerts(self) -> list[OpenAlert]:
        """The incidents under way, most severe then oldest first (for the dashboard)."""
        return sorted(self._open.values(),
                      key=lambda a: (a.severity is not Severity.CRITICAL, a.since, a.key))

    # -- the outbox --------------------------------------------------------------------------

    def pending(self) -> list[Pending]:
        """What the notifiers have not delivered yet, oldest first."""
        return list(self._pending)

    def due(self, now: datetime) -> list[Pending]:
        """The outbox entries to try now, in order; at most the first due entry of a notifier
        whose earlier entries wait for their retry time (order is kept per notifier)."""
        waiting: set[str] = set()
        due: list[Pending] = []
        for item in self._pending:
            if item.notifier in waiting:
                continue
            if item.next_try is not None and item.next_try > now:
                waiting.add(item.notifier)
                continue
            due.append(item)
        return due

    def settle(self, delivered: Collection[Pending], failed: Collection[Pending],
               now: datetime) -> None:
        """After a round: delivered entries leave the outbox, failed ones wait longer (and
        every later entry of their notifier with them); too old ones are given up."""
        if not delivered and not failed:
            return
        failed_notifiers = {item.notifier for item in failed}
        kept: list[Pending] = []
        for item in self._pending:
            if item in delivered:
                continue
            later = item
            if item in failed:
                tries = item.tries + 1
                delay = min(CHECK_EVERY * 2 ** tries, RETRY_MAX)
                later = Pending(item.notifier, item.notification, tries, now + delay)
            if now - later.notification.at > PENDING_MAX_AGE:
                log.error("alert_delivery_abandoned", notifier=later.notifier,
                          alert_key=later.notification.key, kind=later.notification.kind.value)
                continue
            kept.append(later)
        for name in failed_notifiers:  # bounded: the oldest of a notifier go first
            mine = [item for item in kept if item.notifier == name]
            for item in mine[:max(0, len(mine) - PENDING_MAX_PER_NOTIFIER)]:
                kept.remove(item)
                log.error("alert_delivery_abandoned", notifier=item.notifier,
                          alert_key=item.notification.key, kind=item.notification.kind.value)
        self._pending = kept
        self._save()

    # -- the state file ----------------------------------------------------------------------

    def _load(self) -> tuple[dict[str, OpenAlert], list[Pending]]:
        if self._state_path is None or not self._state_path.exists():
            return {}, []
        try:
            raw = json.loads(self._state_path.read_text(encoding="utf-8"))
            alerts = [OpenAlert(item["key"], Severity(item["severity"]), item["text_fr"],
                                datetime.fromisoformat(item["since"]), item.get("level", ""))
                      for item in raw["open"]]
            pending = [Pending.from_json(item) for item in raw.get("pending", [])]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            # Unreadable: start afresh (the open incidents are announced once more, not lost).
            log.warning("alert_state_unreadable")
            return {}, []
        return {alert.key: alert for alert in alerts}, pending

    def _save(self) -> None:
        if self._state_path is None:
            return
        items = [{**asdict(a), "severity": a.severity.value, "since": a.since.isoformat()}
                 for a in self._open.values()]
        state = {"open": items, "pending": [item.to_json() for item in self._pending]}
        data = json.dumps(state, ensure_ascii=False, indent=1).encode("utf-8")
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
        method = log.info if notification.kind is Kind.ENDED else log.warning
        method(notification.event, alert=True, alert_key=notification.key,
               severity=notification.severity.value, since=notification.since.isoformat())


def _body_fr(notification: Notification) -> str:
    what = {Kind.STARTED: "Début", Kind.ESCALATED: "Aggravation",
            Kind.ENDED: "Fin"}[notification.kind]
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
        # Imported at the first e-mail: most installations send none, and a running bridge
        # should not carry smtplib until it does.
        import smtplib
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

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


async def send_one(notification: Notification, notifier: Notifier) -> bool:
    """Send through one notifier; a failure is logged (and False), never raised."""
    try:
        await notifier.send(notification)
    except Exception as exc:  # an unreachable relay must never stop the service
        log.error("alert_delivery_failed", notifier=notifier.name,
                  alert_key=notification.key, kind=notification.kind.value,
                  error_type=type(exc).__name__)
        return False
    return True


async def deliver(notifications: Sequence[Notification], notifiers: Sequence[Notifier]) -> None:
    """Send each notification through each notifier once (no outbox: see `AlertMonitor`)."""
    for notification in notifications:
        for notifier in notifiers:
            await send_one(notification, notifier)


class AlertMonitor:
    """Evaluates every `every` and delivers; the integrator runs `run()` as a task."""

    def __init__(self, engine: AlertEngine, notifiers: Sequence[Notifier],
                 take_snapshot: Callable[[], Snapshot], *, every: timedelta = CHECK_EVERY,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        names = [notifier.name for notifier in notifiers]
        if len(set(names)) != len(names):
            raise ValueError(f"one notifier of each kind (the outbox is per name): {names}")
        self.engine = engine
        self._notifiers = {notifier.name: notifier for notifier in notifiers}
        self._take = take_snapshot
        self._every = every
        self._clock = clock

    async def check_once(self) -> list[Notification]:
        """Evaluate (the new notifications go to the outbox), then send what the outbox holds
        for now: the new ones, and earlier ones a notifier could not deliver."""
        snapshot = await asyncio.to_thread(self._take)
        now = self._clock()
        notifications = self.engine.evaluate(snapshot, now, list(self._notifiers))
        await self.flush(now)
        return notifications

    async def flush(self, now: datetime) -> None:
        """One round of the outbox: in order; a notifier that fails is not tried again before
        its retry time (its later entries wait behind the failed one)."""
        delivered: list[Pending] = []
        failed: list[Pending] = []
        down: set[str] = set()
        for item in self.engine.due(now):
            notifier = self._notifiers.get(item.notifier)
            if notifier is None:  # no longer configured: nothing to send it to
                delivered.append(item)
            elif item.notifier in down:
                continue
            elif await send_one(item.notification, notifier):
                delivered.append(item)
            else:
                failed.append(item)
                down.add(item.notifier)
        self.engine.settle(delivered, failed, now)

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

