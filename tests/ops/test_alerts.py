"""Alerts: one notification when an incident starts, one when it ends, however long it lasts
and however often it is evaluated — also across a restart; delivered to the log, by e-mail (a
real SMTP receiver on 127.0.0.1) and by webhook (a real aiohttp server), a failing channel never
stopping the others."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from bridge.cert_expiry import CertificateValidity
from bridge.jobs import JobState
from service.alerts import (
    AlertEngine,
    AlertMonitor,
    Kind,
    LogNotifier,
    Severity,
    SmtpNotifier,
    SmtpSettings,
    Snapshot,
    Thresholds,
    WebhookNotifier,
    deliver,
    snapshot_from_store,
)
from tests.ops.conftest import CANARY_INS, CANARY_NAME, T0, Installation, add_job, free_port

HOUR = dt.timedelta(hours=1)
CALM = Snapshot(free_disk_bytes=10 * 1024**3)
DEAD = Snapshot(dead=2, free_disk_bytes=10 * 1024**3)


def engine(tmp_path: Path) -> AlertEngine:
    return AlertEngine(Thresholds(queue_age=dt.timedelta(hours=24)), tmp_path / "alertes.json")


def test_an_incident_is_announced_once_however_often_it_is_evaluated(tmp_path: Path) -> None:
    alerts = engine(tmp_path)
    sent = []
    for hour in range(200):  # eight days of evaluations
        sent += alerts.evaluate(DEAD, T0 + hour * HOUR)
    assert [(n.kind, n.key) for n in sent] == [(Kind.STARTED, "dead")]
    assert "2 documents refusés attendent une correction" in sent[0].text_fr


def test_its_end_is_announced_once_with_its_start(tmp_path: Path) -> None:
    alerts = engine(tmp_path)
    alerts.evaluate(DEAD, T0)
    alerts.evaluate(DEAD, T0 + HOUR)
    ended = alerts.evaluate(CALM, T0 + 2 * HOUR)
    assert [(n.kind, n.key, n.since, n.at) for n in ended] == [
        (Kind.ENDED, "dead", T0, T0 + 2 * HOUR)]
    assert alerts.evaluate(CALM, T0 + 3 * HOUR) == []
    assert alerts.open_alerts() == []


def test_a_restart_does_not_announce_an_open_incident_again(tmp_path: Path) -> None:
    first = engine(tmp_path)
    assert len(first.evaluate(DEAD, T0)) == 1
    restarted = engine(tmp_path)  # a new process reads the open alerts back
    assert restarted.evaluate(DEAD, T0 + HOUR) == []
    [alert] = restarted.open_alerts()
    assert (alert.key, alert.since, alert.severity) == ("dead", T0, Severity.WARNING)
    again = engine(tmp_path)
    assert [(n.kind, n.since) for n in again.evaluate(CALM, T0 + 2 * HOUR)] == [(Kind.ENDED, T0)]


@pytest.mark.parametrize(("snapshot", "key", "severity", "words"), [
    (Snapshot(oldest_waiting_at=T0 - dt.timedelta(hours=25)), "queue_age", Severity.WARNING,
     "Un document attend depuis 25 h (seuil 24 h)"),
    (Snapshot(awaiting_credentials=1), "awaiting_credentials", Severity.WARNING,
     "1 document attend une carte CPS"),
    (Snapshot(validities=(CertificateValidity("certificat ORG SIGN", T0 + dt.timedelta(days=20),
                                              "Commandez-le à l'ANS."),)),
     "expiry:certificat ORG SIGN", Severity.WARNING, "expire le 24/03/2025"),
    (Snapshot(validities=(CertificateValidity("carte CPS", T0 - HOUR, "Demandez-en une."),)),
     "expiry:carte CPS", Severity.CRITICAL, "a expiré le 04/03/2025"),
    (Snapshot(free_disk_bytes=100 * 1024 * 1024), "low_disk", Severity.CRITICAL,
     "100 Mo libres (seuil 500 Mo)"),
])
def test_each_kind_of_incident(tmp_path: Path, snapshot: Snapshot, key: str,
                               severity: Severity, words: str) -> None:
    [started] = engine(tmp_path).evaluate(snapshot, T0)
    assert (started.key, started.severity) == (key, severity)
    assert words in started.text_fr


def test_below_the_thresholds_nothing_is_announced(tmp_path: Path) -> None:
    quiet = Snapshot(oldest_waiting_at=T0 - dt.timedelta(hours=23),
                     validities=(CertificateValidity("certificat", T0 + dt.timedelta(days=90),
                                                     "…"),),
                     free_disk_bytes=600 * 1024 * 1024)
    assert engine(tmp_path).evaluate(quiet, T0) == []


def test_the_snapshot_reads_the_real_queue(installation: Installation) -> None:
    with installation.store() as store:
        add_job(store, 1, JobState.HELD, received_at=T0 - dt.timedelta(days=2))
        add_job(store, 2, JobState.DEAD, code="XDSRegistryError")
        add_job(store, 3, JobState.DEAD, code="CANCELLED_BY_USER")  # a person's choice
        add_job(store, 4, JobState.DEFERRED, code="AWAITING_CREDENTIALS")
        add_job(store, 5, JobState.DEFERRED, code="DMP_DOWN")
        add_job(store, 6, JobState.DONE, received_at=T0 - dt.timedelta(days=30))
        snapshot = snapshot_from_store(store, installation.config.store_path.parent)
    assert snapshot.oldest_waiting_at == T0 - dt.timedelta(days=2)
    assert (snapshot.dead, snapshot.awaiting_credentials) == (1, 1)
    assert snapshot.free_disk_bytes is not None and snapshot.free_disk_bytes > 0


# -- delivery ------------------------------------------------------------------------------------


@dataclass
class SmtpReceiver:
    """A minimal SMTP server (RFC 5321 happy path): enough for smtplib to deliver."""

    mails: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(text: str) -> None:
            writer.write(text.encode() + b"\r\n")
            await writer.drain()

        await reply("220 recepteur-test ESMTP")
        sender, recipients = "", []
        while line := await reader.readline():
            verb = line.decode().strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                await reply("250 recepteur-test")
            elif verb == "MAIL":
                sender, recipients = line.decode().strip()[10:], []
                await reply("250 OK")
            elif verb == "RCPT":
                recipients.append(line.decode().strip()[8:])
                await reply("250 OK")
            elif verb == "DATA":
                await reply("354 fin par <CRLF>.<CRLF>")
                data = b""
                while (chunk := await reader.readline()) != b".\r\n":
                    data += chunk
                self.mails.append((sender, recipients, data))
                await reply("250 OK message accepte")
            elif verb == "QUIT":
                await reply("221 au revoir")
                break
            else:
                await reply("502 non")
        writer.close()


@pytest.fixture
async def smtp_receiver() -> AsyncIterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    async with server:
        yield receiver


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/alertes", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/alertes", received
    finally:
        await runner.cleanup()


async def test_one_mail_per_start_and_per_end(smtp_receiver: SmtpReceiver, tmp_path: Path) -> None:
    mailer = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=smtp_receiver.port,
                                       sender="dmp-bridge@cabinet.test",
                                       recipients=("secretariat@cabinet.test", "urps@region.test")))
    snapshots = iter([DEAD] * 5 + [CALM] * 5)
    monitor = AlertMonitor(engine(tmp_path), [mailer], lambda: next(snapshots))
    for _ in range(10):
        await monitor.check_once()
    assert len(smtp_receiver.mails) == 2
    (sender, recipients, first), (_, _, last) = smtp_receiver.mails
    assert sender == "<dmp-bridge@cabinet.test>"
    assert recipients == ["<secretariat@cabinet.test>", "<urps@region.test>"]
    started = email.message_from_bytes(first, policy=email.policy.default)
    ended = email.message_from_bytes(last, policy=email.policy.default)
    assert started["Subject"].startswith("[dmp-bridge] Alerte (avertissement) : 2 documents")
    assert ended["Subject"].startswith("[dmp-bridge] Fin d'alerte")
    assert "dmp-bridge replay NUMERO" in started.get_content()  # type: ignore[attr-defined]
    assert "Terminée :" in ended.get_content()  # type: ignore[attr-defined]


async def test_the_webhook_gets_a_json_per_start_and_end(
        webhook: tuple[str, list[dict[str, object]]], tmp_path: Path) -> None:
    url, received = webhook
    alerts = engine(tmp_path)
    for snapshot, at in [(DEAD, T0), (DEAD, T0 + HOUR), (CALM, T0 + 2 * HOUR)]:
        await deliver(alerts.evaluate(snapshot, at), [WebhookNotifier(url)])
    assert [(r["event"], r["key"], r["severity"]) for r in received] == [
        ("alert_started", "dead", "avertissement"), ("alert_ended", "dead", "avertissement")]
    assert received[0]["since"] == received[1]["since"] == T0.isoformat()
    assert received[1]["at"] == (T0 + 2 * HOUR).isoformat()
    assert "refusés" in str(received[0]["text_fr"])


async def test_a_failing_channel_is_logged_and_the_others_still_deliver(
        webhook: tuple[str, list[dict[str, object]]], tmp_path: Path) -> None:
    url, received = webhook
    closed = free_port()
    channels = [
        SmtpNotifier(SmtpSettings(host="127.0.0.1", port=closed, sender="a@b.test",
                                  recipients=("c@d.test",), timeout=5)),
        WebhookNotifier(f"http://127.0.0.1:{closed}/alertes", timeout=5),
        WebhookNotifier(url.replace("/alertes", "/introuvable")),  # answers 404
        LogNotifier(),
        WebhookNotifier(url),
    ]
    with capture_logs() as logs:
        await deliver(engine(tmp_path).evaluate(DEAD, T0), channels)
    failures = [(e["notifier"], e["alert_key"]) for e in logs
                if e["event"] == "alert_delivery_failed"]
    assert failures == [("email", "dead"), ("webhook", "dead"), ("webhook", "dead")]
    started = [e for e in logs if e["event"] == "alert_started"]
    assert [(e["alert_key"], e["severity"]) for e in started] == [("dead", "avertissement")]
    assert len(received) == 1


async def test_logged_alerts_carry_no_health_data(installation: Installation,
                                                  tmp_path: Path) -> None:
    with installation.store() as store:
        add_job(store, 1, JobState.DEAD, code="XDSRegistryError")
        monitor = AlertMonitor(engine(tmp_path), [LogNotifier()],
                               lambda: snapshot_from_store(store, tmp_path))
        with capture_logs() as logs:
            [notification] = await monitor.check_once()
    assert notification.key == "dead"
    text = json.dumps(logs, default=str) + notification.text_fr
    assert CANARY_INS not in text and CANARY_NAME not in text and "soins-1" not in text


# -- expiry thresholds, disk hysteresis, delivery retried ------------------------------------------


def test_each_expiry_threshold_is_announced_once_as_the_incident_worsens(tmp_path: Path) -> None:
    card = CertificateValidity("carte CPS", T0 + dt.timedelta(days=40), "Demandez-en une.")
    sent = []
    for day in range(45):  # one evaluation an hour, a restart every day
        alerts = engine(tmp_path)
        for hour in range(24):
            sent += alerts.evaluate(Snapshot(validities=(card,), free_disk_bytes=10 * 1024**3),
                                    T0 + dt.timedelta(days=day, hours=hour))
    assert [(n.kind, n.severity, n.at.date() - T0.date()) for n in sent] == [
        (Kind.STARTED, Severity.WARNING, dt.timedelta(days=10)),  # 30 days left
        (Kind.ESCALATED, Severity.CRITICAL, dt.timedelta(days=33)),  # 7 days
        (Kind.ESCALATED, Severity.CRITICAL, dt.timedelta(days=39)),  # 1 day
        (Kind.ESCALATED, Severity.CRITICAL, dt.timedelta(days=40)),  # expired
    ]
    assert {n.key for n in sent} == {"expiry:carte CPS"}
    assert all(n.since == sent[0].since for n in sent)  # one incident, worsening
    assert "a expiré le" in sent[-1].text_fr
    assert sent[1].subject_fr.startswith("[dmp-bridge] Alerte aggravée (critique)")
    renewed = CertificateValidity("carte CPS", T0 + dt.timedelta(days=1500), "…")
    assert [n.kind for n in engine(tmp_path).evaluate(
        Snapshot(validities=(renewed,), free_disk_bytes=10 * 1024**3),
        T0 + dt.timedelta(days=46))] == [Kind.ENDED]


def test_a_disk_hovering_around_the_threshold_does_not_flap(tmp_path: Path) -> None:
    alerts = engine(tmp_path)  # threshold 500 MiB: ends above 500 + max(10 %, 100 MiB) = 600
    mib = 1024 * 1024
    sent = []
    for minute, free in enumerate([499, 501, 499, 550, 599, 520, 601, 560, 501, 499]):
        for n in alerts.evaluate(Snapshot(free_disk_bytes=free * mib), T0 + minute * HOUR):
            sent.append((n.kind, free))
    assert sent == [(Kind.STARTED, 499), (Kind.ENDED, 601), (Kind.STARTED, 499)]
    [alert] = alerts.open_alerts()
    assert "L'alerte prend fin au-dessus de 600 Mo libres" in alert.text_fr


def test_the_low_disk_margin_grows_with_the_threshold() -> None:
    mib = 1024 * 1024
    assert Thresholds(low_disk_bytes=500 * mib).low_disk_end_bytes == 600 * mib
    assert Thresholds(low_disk_bytes=5000 * mib).low_disk_end_bytes == 5500 * mib


async def test_a_start_the_relay_could_not_take_is_mailed_once_it_is_back(
        webhook: tuple[str, list[dict[str, object]]], tmp_path: Path) -> None:
    """The SMTP relay is down when the incident starts and still down when it ends (and the
    service restarts meanwhile): once it is back, both mails go, in order, once; the webhook,
    which worked all along, got each notification once."""
    url, received = webhook
    port = free_port()  # nothing listens there yet
    now = [T0]

    def monitor(snapshots: list[Snapshot]) -> AlertMonitor:
        mailer = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=port, sender="a@b.test",
                                           recipients=("c@d.test",), timeout=5))
        feed = iter(snapshots)
        return AlertMonitor(engine(tmp_path), [LogNotifier(), mailer, WebhookNotifier(url)],
                            lambda: next(feed), clock=lambda: now[0])

    with capture_logs() as logs:
        first = monitor([DEAD, DEAD])
        await first.check_once()
        now[0] += dt.timedelta(minutes=1)
        await first.check_once()  # too early to retry: the relay is not hammered
        restarted = monitor([CALM, CALM, CALM, CALM])
        now[0] += dt.timedelta(minutes=1)
        await restarted.check_once()  # ends; the relay is tried again (2 min), still down
    failures = [(e["notifier"], e["kind"]) for e in logs if e["event"] == "alert_delivery_failed"]
    assert failures == [("email", "debut"), ("email", "debut")]
    assert [r["event"] for r in received] == ["alert_started", "alert_ended"]
    assert [(p.notifier, p.notification.kind) for p in restarted.engine.pending()] == [
        ("email", Kind.STARTED), ("email", Kind.ENDED)]

    receiver = SmtpReceiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", port)
    async with server:
        now[0] += dt.timedelta(minutes=1)
        await restarted.check_once()  # retry not due yet (4 min after the second failure)
        assert receiver.mails == []
        now[0] += dt.timedelta(minutes=4)
        await restarted.check_once()
        now[0] += dt.timedelta(minutes=10)
        await restarted.check_once()
    subjects = [email.message_from_bytes(data, policy=email.policy.default)["Subject"]
                for _, _, data in receiver.mails]
    assert [s.split(" (")[0] for s in subjects] == ["[dmp-bridge] Alerte",
                                                    "[dmp-bridge] Fin d'alerte"]
    assert restarted.engine.pending() == []
    assert len(received) == 2
