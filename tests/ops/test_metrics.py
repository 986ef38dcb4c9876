"""`/metrics`: the Prometheus text served by `metrics_handler` on a real aiohttp listener, read
back and checked — the conservation invariant, latencies, attempts, rate and open alerts — and
no health data whatever the jobs carry."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from bridge.jobs import JobState
from service.alerts import AlertEngine, Snapshot, Thresholds
from service.metrics import LATENCY_BUCKETS, metrics_handler
from tests.ops.conftest import CANARY_INS, CANARY_NAME, T0, Installation, add_job, free_port

SAMPLE = re.compile(r'^([a-z_]+)(?:\{([a-z]+)="([^"]*)"\})? (-?[0-9.e+]+|\+Inf)$')


def parse(text: str) -> dict[tuple[str, str | None], float]:
    """Every sample as {(name, label value): value}; fails on any line it cannot read."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not Prometheus text: {line!r}"
        name, _, label, value = match.groups()
        samples[(name, label)] = float(value)
    return samples


async def scrape(handler: Callable[[web.Request], Awaitable[web.Response]]) -> tuple[str, str]:
    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            return await response.text(), response.headers["Content-Type"]
    finally:
        await runner.cleanup()


async def test_metrics_expose_the_queue_latencies_attempts_rate_and_alerts(
        installation: Installation) -> None:
    now = T0 + dt.timedelta(hours=2)
    with installation.store() as store:
        # Registered 10 s, 2 min and 90 min after intake (the last within the rate window).
        add_job(store, 1, JobState.DONE, done_after=dt.timedelta(seconds=10))
        add_job(store, 2, JobState.DONE, done_after=dt.timedelta(minutes=2), attempts=2)
        add_job(store, 3, JobState.DONE, received_at=T0 + dt.timedelta(minutes=20),
                done_after=dt.timedelta(minutes=90))
        add_job(store, 4, JobState.HELD)
        add_job(store, 5, JobState.DEAD, attempts=3)
        add_job(store, 6, JobState.QUEUED)
        alerts = AlertEngine(Thresholds())
        alerts.evaluate(Snapshot(dead=1, free_disk_bytes=1), now)
        text, content_type = await scrape(
            metrics_handler(store, open_alerts=alerts.open_alerts, clock=lambda: now))
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = parse(text)
    states = {label: value for (name, label), value in samples.items()
              if name == "dmp_bridge_jobs"}
    assert set(states) == {state.value for state in JobState}
    assert sum(states.values()) == samples[("dmp_bridge_received_total", None)] == 6
    assert samples[("dmp_bridge_conservation_ok", None)] == 1
    assert (states["done"], states["held"], states["dead"], states["queued"]) == (3, 1, 1, 1)
    buckets = [samples[("dmp_bridge_intake_to_done_seconds_bucket", f"{b:g}")]
               for b in LATENCY_BUCKETS]
    assert buckets == sorted(buckets)  # cumulative
    assert samples[("dmp_bridge_intake_to_done_seconds_bucket", "30")] == 1
    assert samples[("dmp_bridge_intake_to_done_seconds_bucket", "300")] == 2
    assert samples[("dmp_bridge_intake_to_done_seconds_bucket", "+Inf")] == 3
    assert samples[("dmp_bridge_intake_to_done_seconds_count", None)] == 3
    assert samples[("dmp_bridge_intake_to_done_seconds_sum", None)] == 10 + 120 + 5400
    assert samples[("dmp_bridge_attempts_total", None)] == 5
    assert samples[("dmp_bridge_send_rate_per_minute", None)] == round(1 / 15, 3)
    assert samples[("dmp_bridge_open_alerts", "avertissement")] == 1
    assert samples[("dmp_bridge_open_alerts", "critique")] == 1  # low disk
    for canary in (CANARY_INS, CANARY_NAME, "soins-", "cle-"):
        assert canary not in text


async def test_a_broken_invariant_shows_in_the_metrics(installation: Installation) -> None:
    with installation.store() as store:
        add_job(store, 1, JobState.DONE)
        add_job(store, 2, JobState.QUEUED)
    # A row vanishes behind the store's back (what conservation is there to catch).
    with sqlite3.connect(installation.config.store_path) as conn:
        conn.execute("DELETE FROM events WHERE job_id = 2")
        conn.execute("DELETE FROM payloads WHERE job_id = 2")
        conn.execute("DELETE FROM jobs WHERE id = 2")
    conn.close()
    with installation.store() as store:
        text, _ = await scrape(metrics_handler(store))
    samples = parse(text)
    assert samples[("dmp_bridge_received_total", None)] == 2
    assert samples[("dmp_bridge_conservation_ok", None)] == 0
    assert not any(name == "dmp_bridge_open_alerts" for name, _ in samples)
