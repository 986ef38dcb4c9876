"""Footprint of the real `dmp-bridge run` process: start time, idle memory and CPU, stop time,
and time to first dispatch with a 10 000-job backlog.

Why the targets: the bridge runs all day in the background of a practice PC next to the
practice software. It must start fast (a service restart is invisible), weigh little when idle
(RSS ≤ 60 MB, CPU ≤ 0.5 % of one core — a laptop on battery must not notice it), stop within
the 10 s a service manager waits before killing (Windows SCM, systemd), and a large backlog
left by an outage must not delay the first submission after a restart (≤ 2 s).

How: an installation made by `service.init.init_installation(dir, test_pki=True)` with the
embedded simulator on a free port (like tests/e2e/conftest.py), default settings otherwise.
- ready = the simulator port accepts TCP connections AND the JSON log has `bridge_starting`
  (both are waited for; the time of each is printed);
- RSS = VmRSS of /proc/PID/status 10 s after ready — the embedded DMP simulator lives in the
  same process and is counted in it (a second start with `simulator.embedded = false` gives
  the bridge alone, for information); its split between anonymous memory and the largest shared
  libraries (/proc/PID/smaps) is printed with it;
- idle CPU % = Δ(utime + stime) of /proc/PID/stat over the following 10 s ÷ 10 s (100 % = one
  core); idle means an empty queue, the folder rescan and the dispatcher's idle poll running;
- stop = SIGTERM → process exit;
- first dispatch = spawn → first `job_finished` or `iti41_accepted` event in the JSON log, after
  10 000 jobs were queued directly through `SqliteStore.enqueue` (small PDFs).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _common

from bridge.jobs import Intake
from connectors.sqlite_store import SqliteStore
from service.config import BridgeConfig, load_config
from service.init import init_installation
from service.sample_pdf import make_pdf

NAME = "service_footprint"
DMP_BRIDGE = Path(sys.executable).with_name("dmp-bridge")
IDLE_SECONDS = 10.0
BACKLOG = 10_000
TARGET_RSS_MB = 60.0
TARGET_CPU_PERCENT = 0.5
TARGET_STOP_SECONDS = 10.0
TARGET_FIRST_DISPATCH_SECONDS = 2.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def install(folder: Path) -> tuple[Path, BridgeConfig]:
    """A test installation whose embedded simulator listens on a free port."""
    config_path = init_installation(folder, test_pki=True, overwrite=False)
    port = free_port()
    text = config_path.read_text(encoding="utf-8")
    text = text.replace("port = 8443", f"port = {port}").replace(
        "127.0.0.1:8443", f"127.0.0.1:{port}")
    config_path.write_text(text, encoding="utf-8")
    return config_path, load_config(config_path)


def spawn(config_path: Path, out: Path) -> subprocess.Popen[bytes]:
    with out.open("ab") as sink:
        return subprocess.Popen(
            [str(DMP_BRIDGE), "run", "--config", str(config_path)],
            stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def log_events(log_path: Path, offset: int) -> list[str]:
    """The `event` names written to the JSON log after byte `offset`."""
    return [event for event, _ in log_records(log_path, offset)]


def log_records(log_path: Path, offset: int) -> list[tuple[str, str]]:
    """(event, timestamp) of each line written to the JSON log after byte `offset`."""
    if not log_path.exists():
        return []
    with log_path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    records = []
    for line in data.splitlines():
        try:
            record = json.loads(line)
            records.append((str(record.get("event")), str(record.get("timestamp"))))
        except (ValueError, AttributeError):
            continue  # a line being written
    return records


def wait_until(process: subprocess.Popen[bytes], out: Path, predicate: Callable[[], bool],
               timeout: float, what: str) -> float:
    """Poll every 5 ms; the monotonic time at which `predicate` first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        if process.poll() is not None:
            sys.exit(f"dmp-bridge exited ({process.returncode}) waiting for {what}:\n"
                     + out.read_text(errors="replace")[-3000:])
        time.sleep(0.005)
    process.kill()
    sys.exit(f"timed out after {timeout} s waiting for {what}")


def rss_mb(pid: int) -> tuple[float, float, int]:
    """VmRSS and VmHWM in MiB (kernel counts KiB) and the thread count, from /proc/PID/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024,
            int(fields["Threads"]))


def rss_breakdown(pid: int, top: int = 6) -> str:
    """Where the resident memory is, from /proc/PID/smaps: anonymous ([heap], stacks and other
    mappings of no file: Python objects, C heaps) vs the largest file-backed mappings (shared
    libraries and extension modules), in MiB."""
    per_file: dict[str, int] = {}
    current = "[anonymous]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):  # a mapping's header line
            path = head[5] if len(head) > 5 else ""
            current = Path(path).name if path.startswith("/") else "[anonymous]"
        elif head and head[0] == "Rss:":
            per_file[current] = per_file.get(current, 0) + int(head[1])
    anonymous = per_file.pop("[anonymous]", 0)
    largest = sorted(per_file.items(), key=lambda kv: -kv[1])[:top]
    return (f"anonymous {anonymous / 1024:.1f} MiB; files "
            f"{sum(per_file.values()) / 1024:.1f} MiB, largest: "
            + ", ".join(f"{name} {kb / 1024:.1f}" for name, kb in largest))


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat(5)


def stop(process: subprocess.Popen[bytes]) -> float:
    """SIGTERM, then seconds until the process has exited."""
    start = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return float("inf")
    return time.monotonic() - start


def prefill(store_path: Path, jobs: int) -> float:
    """Queue `jobs` small documents through the real store; seconds taken."""
    sidecar = _common.sidecar_bytes()
    start = time.monotonic()
    with SqliteStore.open(store_path) as store:
        for n in range(jobs):
            pdf = make_pdf([f"Document de charge {n}"])
            name = f"charge-{n}.pdf"
            store.enqueue(Intake("folder", name, _common.folder_key(name, pdf, sidecar), pdf,
                                 sidecar, dt.datetime.now(dt.UTC)))
    return time.monotonic() - start


def measure_idle(config_path: Path, config: BridgeConfig, out: Path) -> None:
    log_path, port = config.log_path, config.simulator.port
    spawned = time.monotonic()
    process = spawn(config_path, out)
    try:
        t_port = wait_until(process, out, lambda: port_open(port), 60, "the simulator port")
        t_log = wait_until(process, out, lambda: "bridge_starting" in log_events(log_path, 0),
                           60, "bridge_starting in the log")
        ready = max(t_port, t_log)
        print(f"  spawn → simulator port accepting: {t_port - spawned:.2f} s; "
              f"→ `bridge_starting` logged: {t_log - spawned:.2f} s")
        time.sleep(IDLE_SECONDS)
        rss, hwm, threads = rss_mb(process.pid)
        breakdown = rss_breakdown(process.pid)
        cpu_before, t0 = cpu_seconds(process.pid), time.monotonic()
        time.sleep(IDLE_SECONDS)
        cpu_percent = (cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - t0) * 100
        print(f"  RSS {IDLE_SECONDS:g} s after ready: {rss:.1f} MiB (peak VmHWM {hwm:.1f} MiB, "
              f"{threads} threads; the embedded DMP simulator is in this process)")
        print(f"    {breakdown}")
        print(f"  idle CPU over the next {IDLE_SECONDS:g} s: {cpu_percent:.2f} % of one core "
              f"(clock tick {1 / CLOCK_TICKS * 1000:.0f} ms)")
    finally:
        stop_seconds = stop(process)
    print(f"  stop (SIGTERM → exit, code {process.returncode}): {stop_seconds:.2f} s")
    _common.report(NAME, "spawn → ready (port open and bridge_starting logged)",
                   ready - spawned, "s", None, higher_is_better=False,
                   note=f"port {t_port - spawned:.2f} s, log {t_log - spawned:.2f} s")
    _common.report(NAME, "idle RSS (bridge + embedded simulator)", rss, "MiB", TARGET_RSS_MB,
                   higher_is_better=False, note=f"VmHWM {hwm:.1f} MiB, {threads} threads")
    _common.report(NAME, "idle CPU", cpu_percent, "% of a core", TARGET_CPU_PERCENT,
                   higher_is_better=False)
    _common.report(NAME, "stop time (SIGTERM, idle)", stop_seconds, "s", TARGET_STOP_SECONDS,
                   higher_is_better=False, note=f"exit code {process.returncode}")


def measure_rss_without_simulator(config_path: Path, config: BridgeConfig, out: Path) -> None:
    """For information: the same process with `simulator.embedded = false` (nothing to send to,
    the queue is empty), to tell the bridge's own memory from the simulator's."""
    original = config_path.read_text(encoding="utf-8")
    config_path.write_text(original.replace("embedded = true", "embedded = false"),
                           encoding="utf-8")
    offset = config.log_path.stat().st_size
    process = spawn(config_path, out)
    try:
        wait_until(process, out, lambda: "bridge_starting" in log_events(config.log_path, offset),
                   60, "bridge_starting in the log")
        time.sleep(IDLE_SECONDS)
        rss, _, threads = rss_mb(process.pid)
    finally:
        stop(process)
        config_path.write_text(original, encoding="utf-8")
    print(f"  RSS {IDLE_SECONDS:g} s after ready without the embedded simulator: {rss:.1f} MiB "
          f"({threads} threads)")
    _common.report(NAME, "idle RSS without the embedded simulator", rss, "MiB", TARGET_RSS_MB,
                   higher_is_better=False,
                   note="simulator.embedded = false (its modules are still imported by "
                   "service.runner); for information")


def measure_first_dispatch(config_path: Path, config: BridgeConfig, out: Path) -> None:
    seconds = prefill(config.store_path, BACKLOG)
    print(f"  pre-filled {BACKLOG} queued jobs through SqliteStore.enqueue in {seconds:.1f} s")
    log_path = config.log_path
    offset = log_path.stat().st_size
    first: list[str] = []

    def dispatched() -> bool:
        hits = [e for e in log_events(log_path, offset) if e in ("job_finished", "iti41_accepted")]
        first[:] = hits[:1]
        return bool(hits)

    spawned = time.monotonic()
    process = spawn(config_path, out)
    try:
        t_first = wait_until(process, out, dispatched, 60, "the first dispatch")
        print(f"  spawn → first dispatch (`{first[0]}` in the log): {t_first - spawned:.2f} s")
        stamps = dict(reversed(log_records(log_path, offset)))  # first occurrence of each
        gap = (dt.datetime.fromisoformat(stamps[first[0]])
               - dt.datetime.fromisoformat(stamps["bridge_starting"])).total_seconds()
        print(f"    of which `bridge_starting` → `{first[0]}` (log timestamps): {gap:.2f} s "
              "(expiry sweep of the queue, first package + VIHF, TLS handshake, the simulator's"
              " checks of the first request)")
        time.sleep(2.0)  # draining now, at the configured rate
    finally:
        stop_seconds = stop(process)
    print(f"  stop while draining the backlog (SIGTERM → exit, code {process.returncode}): "
          f"{stop_seconds:.2f} s")
    _common.report(NAME, f"spawn → first dispatch with {BACKLOG} queued", t_first - spawned,
                   "s", TARGET_FIRST_DISPATCH_SECONDS, higher_is_better=False,
                   note=f"first event: {first[0]}")
    _common.report(NAME, "stop time (SIGTERM, draining)", stop_seconds, "s",
                   TARGET_STOP_SECONDS, higher_is_better=False,
                   note=f"exit code {process.returncode}")


def main() -> None:
    print(f"{NAME}: the real `dmp-bridge run` process ({DMP_BRIDGE})")
    with _common.temp_dir_on_project_disk("dmp-bench-service-") as tmp:
        config_path, config = install(tmp / "cabinet")
        out = tmp / "bridge.out"
        measure_idle(config_path, config, out)
        measure_rss_without_simulator(config_path, config, out)
        measure_first_dispatch(config_path, config, out)


if __name__ == "__main__":
    main()
