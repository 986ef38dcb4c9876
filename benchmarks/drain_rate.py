"""Backlog drain rate: the real Dispatcher empties a 200-job queue into the in-process DMP
simulator over mutual TLS, at the configured feeding rate.

Why the target (0.95 ≤ measured ÷ configured ≤ 1.0): the DMP asks bulk feeders to stay under
5 transactions/s per structure (DESIGN.md §4, default 4/s), so the rate limit must never be
exceeded (≤ 1.0, and no 1-second window with more than `rate` requests), while a backlog after
an outage should drain at the allowed speed, not far below it (≥ 0.95): packaging, signing,
the store's commits and the DMP's answer must all fit inside the 1/rate slot.

Measured rate: N documents are N − 1 intervals, so the steady rate is
(N − 1) ÷ (time the last request left − time the first left), with every job checked DONE.
The end-to-end figure N ÷ (start → last job finished) is printed too; it includes the TLS
handshake and the last answer's latency, and its fencepost can make it read slightly above the
rate without any request being early.

Run: `.venv/bin/python benchmarks/drain_rate.py [--rate 5] [--jobs 200]` (run_all runs 5 and 4).
The simulator is the real one (checks TLS, VIHF, XAdES, schemas) in the same process and event
loop, as in `dmp-bridge run`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
from pathlib import Path

import _common

from bridge.jobs import Intake, JobState
from bridge.vihf import Software
from connectors.dmp_client import DmpClient
from connectors.sqlite_store import SqliteStore
from mappings.matrix_load import load_matrix
from service.dispatcher import Dispatcher, Finished, Gatekeeping
from service.logs import configure_logging
from service.simulator.config import SimulatorConfig
from service.simulator.server import start_simulator
from service.test_pki import generate_test_pki
from tests.factories import make_sidecar_dict, make_software_credentials

NAME = "drain_rate"
SOURCE_ID = "2.25.1"
SOFTWARE = Software("dmp-bridge", "bench", SOURCE_ID, "BENCH")
TARGET_RATIO = 0.95


def fill_backlog(store: SqliteStore, jobs: int) -> None:
    """`jobs` queued documents: distinct 100 KB PDFs with a valid sidecar each."""
    sidecar = json.dumps(make_sidecar_dict()).encode("utf-8")
    for n in range(jobs):
        pdf = _common.make_pdf_100k(n)
        name = f"soins-{n}.pdf"
        store.enqueue(Intake("folder", name, _common.folder_key(name, pdf, sidecar), pdf,
                             sidecar, dt.datetime.now(dt.UTC)))


def busiest_window(times: list[float]) -> int:
    """Most requests that left within any 1-second window starting at a request."""
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


async def drain(tmp: Path, rate: float, jobs: int) -> None:
    pki = generate_test_pki(tmp / "pki")
    credentials = make_software_credentials(tmp / "pki")
    simulator = await start_simulator(SimulatorConfig(
        db_path=tmp / "sim.sqlite3", ca_cert=pki.ca_cert, server_cert=pki.server.cert,
        server_key=pki.server.key))
    store = SqliteStore.open(tmp / "queue.sqlite3")
    client = DmpClient(simulator.base_url, credentials.ssl_context(), timeout_seconds=30,
                       rate_per_second=rate)
    loop = asyncio.get_running_loop()
    finished: list[tuple[float, JobState]] = []

    def on_finished(event: Finished) -> None:
        finished.append((loop.time(), event.job.state))

    dispatcher = Dispatcher(store, client, credentials, source_id=SOURCE_ID, software=SOFTWARE,
                            gate=Gatekeeping(load_matrix()), on_finished=on_finished)
    try:
        await asyncio.to_thread(fill_backlog, store, jobs)
        print(f"  backlog: {store.counts()[JobState.QUEUED]} queued jobs (100 KB PDF each)")
        start = loop.time()
        while await dispatcher.run_once():
            pass
        end = loop.time()
        counts = store.counts()
    finally:
        await client.close()
        store.close()
        await simulator.close()

    sent = list(client.sent_at)
    done = counts[JobState.DONE]
    not_done = {s.value: n for s, n in counts.items() if n and s is not JobState.DONE}
    steady = (len(sent) - 1) / (sent[-1] - sent[0])
    print(f"  jobs done: {done}/{jobs}" + (f"; other states: {not_done}" if not_done else ""))
    print(f"  requests sent: {len(sent)}; first→last request: {sent[-1] - sent[0]:.2f} s")
    print(f"  end to end: {jobs} jobs in {end - start:.2f} s = {jobs / (end - start):.3f} "
          f"documents/s (start → last job finished; includes the fencepost)")
    print(f"  steady drain rate: {steady:.3f} documents/s (configured {rate:g}/s)")
    print(f"  busiest 1-second window (DmpClient.sent_at): {busiest_window(sent)} requests "
          f"(limit {int(rate)})")
    ratio = steady / rate if done == jobs else 0.0
    _common.report(f"{NAME} (rate {rate:g})", f"drain rate ÷ configured rate ({rate:g}/s)",
                   ratio, "", TARGET_RATIO, higher_is_better=True,
                   note=f"{steady:.3f} docs/s, {done}/{jobs} done, busiest 1 s window = "
                   f"{busiest_window(sent)}, never above 1.0: {ratio <= 1.0}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    configure_logging(None, "warning")  # the per-job info events would drown the figures
    print(f"{NAME}: {args.jobs}-job backlog, rate_per_second={args.rate:g}, mutual TLS")
    started = time.monotonic()
    with _common.temp_dir_on_project_disk("dmp-bench-drain-") as tmp:
        asyncio.run(drain(tmp, args.rate, args.jobs))
    print(f"  (script wall time {time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
