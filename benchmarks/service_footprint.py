"""Footprint of the real `dmp-bridge run` process: start time, idle memory and CPU, stop time,
and time to first dispatch with a 10 000-job backlog.

Why the targets: the bridge runs all day in the background of a practice PC next to the
practice software. It must start fast (a service restart is invisible), weigh little when idle
(RSS ≤ 60 MB as issue 5 writes it, i.e. 60 × 10⁶ bytes = 57.22 MiB — this script prints MiB,
the unit of /proc; CPU ≤ 0.5 % of one core: a laptop on battery must not notice it), stop within
the 10 s a service manager waits before killing (Windows SCM, systemd), and a large backlog
left by an outage must not delay the first submission after a restart (≤ 2 s).

Which packages: as a practice runs it. The development venv (.venv) also holds the test tools
(pytest, mypy, import-linter…), and some runtime libraries use what they find: structlog
imports `rich` (≈ 3 MiB with pygments) when it is installed, and rich is here only for
import-linter. So the bridge is started from a throwaway venv (`python -m venv --without-pip`)
whose site-packages holds only the runtime distributions: the transitive requirements of the
installed `dmp-bridge` distribution with the `carte` extra (`pip install dmp-bridge[carte]`),
computed with importlib.metadata and `packaging` markers, each linked file by file from .venv
as its RECORD lists them. The project itself is installed in .venv in editable mode: its
packages (this work tree's files) are linked into that site-packages as a wheel would install
them and compiled there (`compileall`, as pip does), so the bridge loads .pyc files like at a
practice — with PYTHONDONTWRITEBYTECODE set (as in this environment) an editable bridge
compiles its ~170 modules at every start, which costs start time and ≈ 1 MiB of RSS. A copy
of what pip installs, not an import hook: no dev package's .pth runs, importlib.metadata sees
only runtime distributions, nothing in the process is patched. If that venv cannot be built,
everything runs from .venv and says so. The same process run from .venv is measured too (one
RSS figure, for information).

How: an installation made by `service.init.init_installation(dir, test_pki=True)` with the
embedded simulator on a free port (like tests/e2e/conftest.py), default settings otherwise.
- ready = the simulator port accepts TCP connections AND the JSON log has `bridge_starting`
  (both are waited for; the time of each is printed);
- RSS = VmRSS of /proc/PID/status 10 s after ready — the embedded DMP simulator lives in the
  same process and is counted in it (a start with `simulator.embedded = false` gives the bridge
  alone, for information); its split between anonymous memory and the largest shared libraries
  (/proc/PID/smaps) is printed with it;
- library floor (for information): which modules the idle bridge has imported is read from a
  probe start of the same process with PYTHONPROFILEIMPORTTIME=1 (the interpreter prints every
  import it runs, `-X importtime`), stopped after the same idle time; a fresh interpreter of the
  same venv (`python -c`) then imports every one of them that is not ours (not under the
  project's packages) and prints its RSS: what the interpreter and the libraries weigh with
  none of the bridge's code or state: importing these libraries, the bridge cannot weigh less;
- idle CPU % = Δ(utime + stime) of /proc/PID/stat over the following 10 s ÷ 10 s (100 % = one
  core); idle means an empty queue, the folder rescan and the dispatcher's idle poll running;
- stop = SIGTERM → process exit;
- first dispatch = spawn → first `job_finished` or `iti41_accepted` event in the JSON log, after
  10 000 jobs were queued directly through `SqliteStore.enqueue` (small PDFs).
Linux only (/proc, symlinks).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as metadata
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import _common
from packaging.requirements import Requirement

from bridge.jobs import Intake
from connectors.sqlite_store import SqliteStore
from service.config import BridgeConfig, load_config
from service.init import init_installation
from service.sample_pdf import make_pdf

NAME = "service_footprint"
DMP_BRIDGE = Path(sys.executable).with_name("dmp-bridge")
PROJECT = "dmp-bridge"
RUNTIME_EXTRAS = frozenset({"carte"})  # what a practice installs: dmp-bridge[carte]
IDLE_SECONDS = 10.0
BACKLOG = 10_000
TARGET_RSS_MB = 60  # decimal megabytes, as issue 5 writes the target
TARGET_RSS_MIB = TARGET_RSS_MB * 1e6 / 2**20  # 57.22: the figures are in MiB (/proc counts KiB)
TARGET_CPU_PERCENT = 0.5
TARGET_STOP_SECONDS = 10.0
TARGET_FIRST_DISPATCH_SECONDS = 2.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IMPORT_LINE = re.compile(r"^import time:\s*\d+\s*\|\s*\d+\s*\|\s*(\S+)\s*$")

# Run by the venv's interpreter with the module names as JSON on stdin: imports each one (the
# bridge's failed optional imports — msvcrt, brotli… — fail here too), then prints its RSS.
FLOOR_CODE = """
import importlib, json, sys
names = json.load(sys.stdin)
failed = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name)
with open("/proc/self/status") as status:
    kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
print(json.dumps({"rss_kib": kib, "failed": failed, "modules": len(sys.modules)}))
"""


@dataclass(frozen=True)
class Interpreter:
    """The Python that runs `dmp-bridge`, and what it is, for the output."""

    python: Path
    label: str


@dataclass(frozen=True)
class IdleMemory:
    rss: float  # MiB
    hwm: float  # MiB
    threads: int
    breakdown: str


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


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions() -> dict[str, metadata.Distribution]:
    """The distributions installed in this venv's site-packages, by normalized name: not
    whatever else is on sys.path (the work tree's stale `dmp_bridge.egg-info` of a former
    `setup.py develop` would be found first and lists an old set of files)."""
    places = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=places):
        found.setdefault(_normalized(dist.metadata["Name"]), dist)
    return found


def runtime_distributions(project: str = PROJECT,
                          extras: frozenset[str] = RUNTIME_EXTRAS) -> list[metadata.Distribution]:
    """`project` and its transitive requirements (with `extras` for the project and the extras
    each requirement names), as installed in this venv; markers are evaluated for this
    interpreter."""
    installed = installed_distributions()
    found: dict[str, tuple[metadata.Distribution, frozenset[str]]] = {}
    todo = [(project, extras)]
    while todo:
        name, wanted = todo.pop()
        key = _normalized(name)
        if key not in installed:
            raise RuntimeError(f"{name} is required but not installed in this venv")
        dist = installed[key]
        known = found.get(key)
        if known is not None and wanted <= known[1]:
            continue
        wanted |= known[1] if known is not None else frozenset()
        found[key] = (dist, wanted)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": extra})
                                         for extra in wanted | {""}):
                todo.append((req.name, frozenset(req.extras)))
    return [dist for dist, _ in found.values()]


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)


def _project_packages(project: metadata.Distribution) -> list[Path]:
    """Where the project's top-level packages are (its work tree, for an editable install)."""
    places = []
    for name in (project.read_text("top_level.txt") or "").split():
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"package {name} of {PROJECT} not found")
        places.append(Path(spec.submodule_search_locations[0]))
    return places


def runtime_venv(folder: Path) -> tuple[Interpreter, str]:
    """A venv whose site-packages holds only the runtime distributions, linked file by file
    from this one, the project's packages compiled there (see the module docstring); its
    interpreter and a line saying what it has."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True,
                   capture_output=True)
    python = folder / "bin" / "python"
    site = Path(sysconfig.get_path("purelib", vars={"base": str(folder),
                                                    "platbase": str(folder)}))
    dists = runtime_distributions()
    links = 0
    for dist in dists:
        if dist.files is None:
            raise RuntimeError(f"{dist.metadata['Name']} has no RECORD: its files are unknown")
        editable = any(f.name.startswith("__editable__") for f in dist.files)
        for file in dist.files:
            source = Path(str(dist.locate_file(file)))
            if ".." in file.parts or not source.is_file() or file.name.startswith("__editable__"):
                continue  # console scripts (bin/), files pip recorded but that are gone, and
                #           the editable install's finder (its packages are linked below)
            _link(source, site / file)
            links += 1
        if editable:  # as a wheel installs it: the packages' files in site-packages, compiled
            packages = _project_packages(dist)
            for package in packages:
                for source in package.rglob("*"):
                    if source.is_file() and "__pycache__" not in source.parts:
                        _link(source, site / package.name / source.relative_to(package))
                        links += 1
            subprocess.run([str(python), "-m", "compileall", "-q",
                            *(str(site / package.name) for package in packages)],
                           check=True, capture_output=True)
    kept = {_normalized(d.metadata["Name"]) for d in dists}
    left_out = sorted(set(installed_distributions()) - kept)
    return (Interpreter(python, "runtime packages only"),
            f"runtime-only venv: {len(dists)} distributions ({links} files linked); left out "
            f"{len(left_out)}: {', '.join(left_out)}")


def spawn(interpreter: Interpreter, config_path: Path, out: Path,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`dmp-bridge run` (the console script, run by `interpreter`)."""
    with out.open("ab") as sink:
        return subprocess.Popen(
            [str(interpreter.python), str(DMP_BRIDGE), "run", "--config", str(config_path)],
            stdout=sink, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def log_size(log_path: Path) -> int:
    """Where the next lines of the JSON log will start (0 before the first start)."""
    return log_path.stat().st_size if log_path.exists() else 0


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


def rss_mib(pid: int) -> tuple[float, float, int]:
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


def idle_memory(pid: int) -> IdleMemory:
    rss, hwm, threads = rss_mib(pid)
    return IdleMemory(rss, hwm, threads, rss_breakdown(pid))


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


def measure_idle(interpreter: Interpreter, config_path: Path, config: BridgeConfig,
                 out: Path) -> IdleMemory:
    log_path, port = config.log_path, config.simulator.port
    offset = log_size(log_path)
    spawned = time.monotonic()
    process = spawn(interpreter, config_path, out)
    try:
        t_port = wait_until(process, out, lambda: port_open(port), 60, "the simulator port")
        t_log = wait_until(process, out,
                           lambda: "bridge_starting" in log_events(log_path, offset),
                           60, "bridge_starting in the log")
        ready = max(t_port, t_log)
        print(f"  spawn → simulator port accepting: {t_port - spawned:.2f} s; "
              f"→ `bridge_starting` logged: {t_log - spawned:.2f} s")
        time.sleep(IDLE_SECONDS)
        memory = idle_memory(process.pid)
        cpu_before, t0 = cpu_seconds(process.pid), time.monotonic()
        time.sleep(IDLE_SECONDS)
        cpu_percent = (cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - t0) * 100
        print(f"  RSS {IDLE_SECONDS:g} s after ready: {memory.rss:.1f} MiB (peak VmHWM "
              f"{memory.hwm:.1f} MiB, {memory.threads} threads; the embedded DMP simulator is in "
              "this process)")
        print(f"    {memory.breakdown}")
        print(f"  idle CPU over the next {IDLE_SECONDS:g} s: {cpu_percent:.2f} % of one core "
              f"(clock tick {1 / CLOCK_TICKS * 1000:.0f} ms)")
    finally:
        stop_seconds = stop(process)
    print(f"  stop (SIGTERM → exit, code {process.returncode}): {stop_seconds:.2f} s")
    _common.report(NAME, "spawn → ready (port open and bridge_starting logged)",
                   ready - spawned, "s", None, higher_is_better=False,
                   note=f"port {t_port - spawned:.2f} s, log {t_log - spawned:.2f} s; "
                   f"{interpreter.label}")
    _common.report(NAME, f"idle RSS (bridge + embedded simulator, {interpreter.label})",
                   memory.rss, "MiB", TARGET_RSS_MIB, higher_is_better=False,
                   note=f"target {TARGET_RSS_MB} MB = {TARGET_RSS_MIB:.2f} MiB; VmHWM "
                   f"{memory.hwm:.1f} MiB, {memory.threads} threads")
    _common.report(NAME, "idle CPU", cpu_percent, "% of a core", TARGET_CPU_PERCENT,
                   higher_is_better=False, note=interpreter.label)
    _common.report(NAME, "stop time (SIGTERM, idle)", stop_seconds, "s", TARGET_STOP_SECONDS,
                   higher_is_better=False, note=f"exit code {process.returncode}")
    return memory


def idle_rss(interpreter: Interpreter, config_path: Path, config: BridgeConfig, out: Path, *,
             embedded: bool = True, env: dict[str, str] | None = None) -> IdleMemory:
    """Start, wait until ready and IDLE_SECONDS more, read the memory, stop."""
    original = config_path.read_text(encoding="utf-8")
    if not embedded:
        config_path.write_text(original.replace("embedded = true", "embedded = false"),
                               encoding="utf-8")
    offset = log_size(config.log_path)
    process = spawn(interpreter, config_path, out, env)
    try:
        wait_until(process, out, lambda: "bridge_starting" in log_events(config.log_path, offset),
                   60, "bridge_starting in the log")
        time.sleep(IDLE_SECONDS)
        return idle_memory(process.pid)
    finally:
        stop(process)
        config_path.write_text(original, encoding="utf-8")


def project_bytecode_present() -> bool:
    """True when every module of the project's packages has an up-to-date .pyc next to it
    (`scripts/bootstrap.sh` compiles them), so .venv's interpreter loads them compiled."""
    for package in ("bridge", "connectors", "mappings", "service"):
        for source in (_common.ROOT / package).rglob("*.py"):
            cached = Path(importlib.util.cache_from_source(str(source)))
            if not cached.exists() or cached.stat().st_mtime < source.stat().st_mtime:
                return False
    return True


def measure_dev_venv(config_path: Path, config: BridgeConfig, out: Path) -> IdleMemory:
    """For information: the same process run by .venv's interpreter (test tools installed)."""
    dev = Interpreter(Path(sys.executable), "development venv .venv")
    memory = idle_rss(dev, config_path, config, out)
    compiled = ("project .pyc files reused" if project_bytecode_present() else
                "the project's modules compiled at every start: no .pyc next to them"
                + (" and PYTHONDONTWRITEBYTECODE is set" if os.environ.get(
                    "PYTHONDONTWRITEBYTECODE") else ""))
    print(f"  RSS {IDLE_SECONDS:g} s after ready, run from {dev.label}: {memory.rss:.1f} MiB "
          f"({memory.threads} threads; test tools installed, so structlog imports rich + "
          f"pygments; {compiled})")
    _common.report(NAME, "idle RSS (bridge + embedded simulator, development venv)", memory.rss,
                   "MiB", TARGET_RSS_MIB, higher_is_better=False,
                   note=f"structlog imports rich + pygments there; {compiled}; for information")
    return memory


def measure_rss_without_simulator(interpreter: Interpreter, config_path: Path,
                                  config: BridgeConfig, out: Path) -> IdleMemory:
    """For information: the same process with `simulator.embedded = false` (nothing to send to,
    the queue is empty), to tell the bridge's own memory from the simulator's."""
    memory = idle_rss(interpreter, config_path, config, out, embedded=False)
    print(f"  RSS {IDLE_SECONDS:g} s after ready without the embedded simulator: "
          f"{memory.rss:.1f} MiB ({memory.threads} threads)")
    _common.report(NAME, f"idle RSS without the embedded simulator ({interpreter.label})",
                   memory.rss, "MiB", TARGET_RSS_MIB, higher_is_better=False,
                   note="simulator.embedded = false; for information")
    return memory


def imported_modules(import_log: str) -> list[str]:
    """Every module the interpreter imported (or tried to), in the order of `-X importtime`."""
    names = []
    for line in import_log.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            names.append(match.group(1))
    return list(dict.fromkeys(names))


def _ours(top_level: str) -> bool:
    """A top-level module of this project: found in its work tree (outside the venv, which lives
    there too), or a file of its distribution (the editable install's finder)."""
    if top_level == "__main__":
        return True
    own_files = {str(f).split("/")[0].removesuffix(".py")
                 for f in installed_distributions()[PROJECT].files or []}
    if top_level in own_files:
        return True
    try:
        spec = importlib.util.find_spec(top_level)
    except (ImportError, ValueError):
        return False
    places = [*(spec.submodule_search_locations or []), spec.origin or ""] if spec else []
    venv = Path(sys.prefix).resolve()
    return any(Path(place).resolve().is_relative_to(_common.ROOT)
               and not Path(place).resolve().is_relative_to(venv)
               for place in places if place.startswith("/"))


def measure_library_floor(interpreter: Interpreter, config_path: Path, config: BridgeConfig,
                          folder: Path) -> float:
    """For information: the RSS of an interpreter that imports the libraries the idle bridge
    imported, and nothing of ours (see the module docstring)."""
    probe_out = folder / "importtime.out"
    idle_rss(interpreter, config_path, config, probe_out, env={"PYTHONPROFILEIMPORTTIME": "1"})
    names = imported_modules(probe_out.read_text(errors="replace"))
    tops = {name.partition(".")[0] for name in names}
    ours = {top for top in tops if _ours(top)}
    libraries = [name for name in names if name.partition(".")[0] not in ours]
    done = subprocess.run([str(interpreter.python), "-c", FLOOR_CODE], input=json.dumps(libraries),
                          capture_output=True, text=True, check=True,
                          cwd=folder)  # `-c` puts the current directory first on sys.path
    result = json.loads(done.stdout)
    floor = float(result["rss_kib"]) / 1024
    failed = set(result["failed"])
    third_party = sorted(top for top in tops - ours - failed
                         if top not in sys.stdlib_module_names
                         and not top.startswith("_sysconfigdata"))
    print(f"  library floor: {floor:.1f} MiB — a fresh `python -c` ({interpreter.label}) that "
          f"imports the {len(libraries)} library modules the idle bridge imported "
          f"({len(names) - len(libraries)} of ours left out: {', '.join(sorted(ours))})")
    print(f"    third-party top-level modules imported: {', '.join(third_party)}")
    print(f"    {len(result['failed'])} not importable here either (optional imports the "
          f"bridge tried too): {', '.join(sorted(result['failed']))}")
    _common.report(NAME, f"library floor: interpreter + the libraries only ({interpreter.label})",
                   floor, "MiB", None, higher_is_better=False,
                   note=f"{len(libraries)} modules, {result['modules']} in sys.modules")
    return floor


def verdict(bridge: float, without_simulator: float, floor: float) -> None:
    """Say plainly whether the RSS target is met, and why not."""
    if bridge <= TARGET_RSS_MIB:
        print(f"  RSS target met: {bridge:.1f} MiB ≤ {TARGET_RSS_MIB:.2f} MiB ({TARGET_RSS_MB} MB)")
        return
    print(f"  RSS target MISSED: {bridge:.1f} MiB > {TARGET_RSS_MIB:.2f} MiB ({TARGET_RSS_MB} MB)"
          f", by {bridge - TARGET_RSS_MIB:.1f} MiB.")
    print(f"    why: the interpreter and the libraries alone take {floor:.1f} MiB "
          f"({floor / TARGET_RSS_MIB:.0%} of the target"
          + (f", already {floor - TARGET_RSS_MIB:.1f} MiB above it" if floor > TARGET_RSS_MIB
             else f", leaving {TARGET_RSS_MIB - floor:.1f} MiB") + "); on top of them the "
          f"bridge's own code and state take {without_simulator - floor:.1f} MiB (RSS without the "
          f"simulator − floor) and the embedded simulator {bridge - without_simulator:.1f} MiB.")


def measure_first_dispatch(interpreter: Interpreter, config_path: Path, config: BridgeConfig,
                           out: Path) -> None:
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
    process = spawn(interpreter, config_path, out)
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
                   note=f"first event: {first[0]}; {interpreter.label}")
    _common.report(NAME, "stop time (SIGTERM, draining)", stop_seconds, "s",
                   TARGET_STOP_SECONDS, higher_is_better=False,
                   note=f"exit code {process.returncode}")


def main() -> None:
    print(f"{NAME}: the real `dmp-bridge run` process ({DMP_BRIDGE})")
    with _common.temp_dir_on_project_disk("dmp-bench-service-") as tmp:
        try:
            interpreter, what = runtime_venv(tmp / "runtime-venv")
        except (OSError, RuntimeError, subprocess.CalledProcessError,
                metadata.PackageNotFoundError) as exc:
            interpreter = Interpreter(Path(sys.executable), "development venv .venv")
            what = (f"the runtime-only venv could not be built ({exc}): everything below runs "
                    "from .venv, test tools included")
        print(f"  {what}")
        config_path, config = install(tmp / "cabinet")
        out = tmp / "bridge.out"
        memory = measure_idle(interpreter, config_path, config, out)
        alone = measure_rss_without_simulator(interpreter, config_path, config, out)
        floor = measure_library_floor(interpreter, config_path, config, tmp)
        if interpreter.python != Path(sys.executable):
            measure_dev_venv(config_path, config, out)
        verdict(memory.rss, alone.rss, floor)
        measure_first_dispatch(interpreter, config_path, config, out)


if __name__ == "__main__":
    main()
