"""The queue's figures in the Prometheus text exposition format (no health data: counts only).

Written by `dmp-bridge status --prometheus`, for node_exporter's textfile collector or any
scraper; the dashboard's `/metrics` will serve the same text.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.jobs import JobState, conservation


def queue_metrics(counts: Mapping[JobState, int], received: int) -> str:
    """Jobs per state, documents received, and whether the conservation invariant holds."""
    lines = [
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
    return "\n".join(lines) + "\n"
