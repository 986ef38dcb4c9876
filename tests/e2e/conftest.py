"""End-to-end fixtures: a real installation on disk and the real `dmp-bridge run` process, with
its embedded simulator on a real TLS socket of 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.sqlite_store import SqliteStore
from service.config import BridgeConfig, load_config
from service.init import init_installation
from service.sample_pdf import make_pdf

DMP_BRIDGE = Path(sys.executable).with_name("dmp-bridge")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], bool], *, timeout: float = 30.0, what: str = "") -> None:
    """Poll until `predicate()` holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Installation:
    """An installed bridge: its configuration and folders."""

    config_path: Path
    config: BridgeConfig

    @property
    def inbox(self) -> Path:
        return self.config.path(self.config.intake.folder)

    def drop(self, stem: str, sidecar: dict[str, object] | bytes, pdf: bytes | None = None) -> None:
        """Write NAME.pdf, then NAME.json, the way practice software should."""
        (self.inbox / f"{stem}.pdf").write_bytes(
            pdf if pdf is not None else make_pdf([f"Document {stem}"])
        )
        data = sidecar if isinstance(sidecar, bytes) else json.dumps(sidecar).encode("utf-8")
        (self.inbox / f"{stem}.json").write_bytes(data)

    def jobs(self) -> list[object]:
        if not self.config.store_path.exists():
            return []
        with SqliteStore.open(self.config.store_path) as store:
            return list(store.list_jobs(limit=1_000_000))


@pytest.fixture
def installation(tmp_path: Path) -> Installation:
    config_path = init_installation(tmp_path / "cabinet", test_pki=True, overwrite=False)
    port = free_port()
    text = config_path.read_text(encoding="utf-8")
    text = (
        text.replace("port = 8443", f"port = {port}")
        .replace("127.0.0.1:8443", f"127.0.0.1:{port}")
        .replace("stability_seconds = 2.0", "stability_seconds = 0.2")
        .replace("rescan_seconds = 2.0", "rescan_seconds = 0.5")
        .replace("port = 8790", f"port = {free_port()}")  # the dashboard
    )
    config_path.write_text(text, encoding="utf-8")
    return Installation(config_path, load_config(config_path))


def run_bridge_process(installation: Installation, tmp_path: Path, *,
                       env: dict[str, str] | None = None,
                       ready_port: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`dmp-bridge run` as a real process, until `ready_port` (default: the embedded simulator's)
    listens; stopped with SIGTERM afterwards, which must end it cleanly. Output in
    tmp_path/bridge.out."""
    out = (tmp_path / "bridge.out").open("wb")
    process = subprocess.Popen(
        [str(DMP_BRIDGE), "run", "--config", str(installation.config_path)],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
    )
    port = ready_port or installation.config.simulator.port

    def listening() -> bool:
        assert process.poll() is None, (tmp_path / "bridge.out").read_text()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, timeout=30, what=f"the bridge to listen on port {port}")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        out.close()
    assert process.returncode == 0, (tmp_path / "bridge.out").read_text()


@pytest.fixture
def bridge_process(installation: Installation, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`dmp-bridge run` as a real process; stopped with SIGTERM, which must end it cleanly."""
    yield from run_bridge_process(installation, tmp_path)
