"""The bridge's figures in the Prometheus text exposition format (no health data: counts only).

`queue_metrics` is what `dmp-bridge status --prometheus` writes (for node_exporter's textfile
collector). `render_metrics` adds what the dashboard's `/metrics` serves (`metrics_handler`):
intake→done latency as a cumulative histogram, attempts, the recent send rate and the open
alerts. Labels are job states and alert severities only; no name, INS, file or document id.

The figures come from the store's rows (`Store.list_jobs`): a done job's `updated_at` is when
it became done (a purge of its bytes does not touch it), so `updated_at - received_at` is its
intake→done latency, and done rows are never deleted, so the histogram only grows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from bridge.jobs import JobState, conservation
from bridge.store_port import Store

if TYPE_CHECKING:
    from service.alerts import OpenAlert

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Upper bounds (seconds) of the latency buckets: from a quick send to a long outage.
LATENCY_BUCKETS = (1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0, 7 * 86400.0)
RATE_WINDOW = dt.timedelta(minutes=15)
SEVERITIES = ("avertissement", "critique")  # service.alerts.Severity values
MANY = 10_000_000


def queue_metrics(counts: Mapping[JobState, int], received: int) -> str:
    """Jobs per state, documents received, and whether the conservation invariant holds."""
    return "\n".join(_queue_lines(counts, received)) + "\n"


def _queue_lines(counts: Mapping[JobState, int], received: int) -> list[str]:
    return [
        "# HELP dmp_bridge_jobs Documents in the queue, by state.",
        "# TYPE dmp_bridge_jobs gauge",
        *(f'dmp_bridge_jobs{{state="{state.value}"}} {counts.get(state, 0)}'
          for state in JobState),
        "# HELP dmp_bridge_received_total Documents received since the installation.",
        "# TYPE dmp_bridge_received_total counter",
        f"dmp_bridge_received_total {received}",
        "# HELP dmp_bridge_conservation_ok 1 when received = the sum of all states (nothing lost).",
        "# TYPE dmp_bridge_conservation_ok gauge",
        f"dmp_bridge_conservation_ok {int(conservation(counts, received))}",
    ]


@dataclass(frozen=True)
class Figures:
    """Everything `/metrics` shows, read from the store at one instant."""

    counts: Mapping[JobState, int]
    received: int
    latencies: tuple[float, ...]  # seconds, intake → done, one per done job
    attempts: int  # attempts consumed, all jobs
    done_recently: int  # jobs that became done within RATE_WINDOW before `now`


def figures_from_store(store: Store, now: dt.datetime) -> Figures:
    """Blocking: call it in a worker thread."""
    counts, received = store.tally()
    jobs = store.list_jobs(None, MANY)
    done = [job for job in jobs if job.state is JobState.DONE]
    latencies = tuple(max(0.0, (job.updated_at - job.received_at).total_seconds())
                      for job in done)
    recent = sum(1 for job in done if now - job.updated_at <= RATE_WINDOW)
    return Figures(counts, received, latencies, sum(job.attempts for job in jobs), recent)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def render_metrics(figures: Figures, open_alerts: Sequence[OpenAlert] | None = None) -> str:
    """The full exposition text for `/metrics`."""
    lines = _queue_lines(figures.counts, figures.received)
    lines += [
        "# HELP dmp_bridge_intake_to_done_seconds Time from intake to registration in the DMP.",
        "# TYPE dmp_bridge_intake_to_done_seconds histogram",
    ]
    for bound in LATENCY_BUCKETS:
        within = sum(1 for latency in figures.latencies if latency <= bound)
        lines.append(f'dmp_bridge_intake_to_done_seconds_bucket{{le="{_number(bound)}"}} {within}')
    lines += [
        f'dmp_bridge_intake_to_done_seconds_bucket{{le="+Inf"}} {len(figures.latencies)}',
        f"dmp_bridge_intake_to_done_seconds_sum {_number(round(sum(figures.latencies), 3))}",
        f"dmp_bridge_intake_to_done_seconds_count {len(figures.latencies)}",
        "# HELP dmp_bridge_attempts_total Submission attempts consumed (environment failures "
        "consume none).",
        "# TYPE dmp_bridge_attempts_total counter",
        f"dmp_bridge_attempts_total {figures.attempts}",
        "# HELP dmp_bridge_send_rate_per_minute Documents registered per minute over the last "
        f"{int(RATE_WINDOW.total_seconds() // 60)} minutes.",
        "# TYPE dmp_bridge_send_rate_per_minute gauge",
        "dmp_bridge_send_rate_per_minute "
        f"{_number(round(figures.done_recently / (RATE_WINDOW.total_seconds() / 60), 3))}",
    ]
    if open_alerts is not None:
        lines += [
            "# HELP dmp_bridge_open_alerts Alerts under way, by severity.",
            "# TYPE dmp_bridge_open_alerts gauge",
            *(f'dmp_bridge_open_alerts{{severity="{severity}"}} '
              f"{sum(1 for alert in open_alerts if alert.severity.value == severity)}"
              for severity in SEVERITIES),
        ]
    return "\n".join(lines) + "\n"


def metrics_handler(
    store: Store,
    *,
    open_alerts: Callable[[], Sequence[OpenAlert]] | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler for `GET /metrics` (mount it on the dashboard's 127.0.0.1 listener:
    `app.router.add_get("/metrics", metrics_handler(store, open_alerts=engine.open_alerts))`)."""

    async def handle(_request: web.Request) -> web.Response:
        figures = await asyncio.to_thread(figures_from_store, store, clock())
        alerts = open_alerts() if open_alerts is not None else None
        return web.Response(body=render_metrics(figures, alerts).encode("utf-8"),
                            headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})

    return handle
