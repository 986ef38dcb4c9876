"""Operations fixtures: a real installation made by `dmp-bridge init --test-pki` (made once, then
copied for each test: RSA keys are slow), its real SQLite queue, and jobs put in given states
through the store's own transitions."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.jobs import Intake, Job, JobState
from connectors.sqlite_store import SqliteStore
from service.cli import main
from service.config import BridgeConfig, load_config
from service.init import init_installation

T0 = dt.datetime(2025, 3, 4, 9, 30, tzinfo=dt.UTC)
LEASE = dt.timedelta(minutes=5)
# Health data that must never leave the store (canaries).
CANARY_INS = "279035121518989"
CANARY_NAME = "CANARI-PATIENTE"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Installation:
    config_path: Path
    config: BridgeConfig

    def cli(self, *argv: str) -> int:
        return main([*argv, "--config", str(self.config_path)])

    def store(self) -> SqliteStore:
        return SqliteStore.open(self.config.store_path)

    @property
    def journal(self) -> Path:
        return self.config.path(self.config.bridge.data_dir) / "audit" / "journal.jsonl"


@pytest.fixture(scope="session")
def installation_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("modele") / "cabinet"
    init_installation(folder, test_pki=True, overwrite=False)
    return folder


@pytest.fixture
def installation(installation_template: Path, tmp_path: Path) -> Installation:
    """A fresh copy of an installation, its simulator on a free port, a 1 MiB disk threshold."""
    folder = tmp_path / "cabinet"
    shutil.copytree(installation_template, folder)
    config_path = folder / "dmp-bridge.toml"
    port = free_port()
    text = (config_path.read_text(encoding="utf-8")
            .replace("port = 8443", f"port = {port}")
            .replace("127.0.0.1:8443", f"127.0.0.1:{port}")
            .replace("low_disk_mb = 500", "low_disk_mb = 1"))
    config_path.write_text(text, encoding="utf-8")
    return Installation(config_path, load_config(config_path))


def add_job(store: SqliteStore, n: int, state: JobState, *, code: str = "TEST",
            received_at: dt.datetime = T0, done_after: dt.timedelta = dt.timedelta(minutes=1),
            attempts: int = 0) -> Job:
    """A job (with canary health data in its bytes) brought to `state` by real transitions."""
    metadata = json.dumps({"patient": {"ins": CANARY_INS, "nom": CANARY_NAME}}).encode()
    job, _ = store.enqueue(Intake(channel="folder", source_ref=f"soins-{n}.pdf",
                                  idempotency_key=f"cle-{n}", payload=b"%PDF-1.4 %%EOF",
                                  metadata=metadata, received_at=received_at))
    if state is JobState.QUEUED:
        return job
    now = received_at + done_after
    for _ in range(attempts):  # each a real lease then a counted failure
        store.transition(job.id, JobState.ACTIVE, code="CLAIMED", message_fr="Pris.", now=now,
                         lease=LEASE)
        store.transition(job.id, JobState.DEFERRED, code="DMP_DOWN", message_fr="Panne.",
                         now=now, next_attempt_at=now, count_attempt=True)
    if state is JobState.HELD:
        return store.transition(job.id, state, code=code, message_fr="À voir.", now=now)
    active = store.transition(job.id, JobState.ACTIVE, code="CLAIMED", message_fr="Pris.",
                              now=now, lease=LEASE)
    if state is JobState.ACTIVE:
        return active
    if state is JobState.DEFERRED:
        return store.transition(job.id, state, code=code, message_fr="Nouvel essai plus tard.",
                                now=now, next_attempt_at=now + dt.timedelta(hours=1))
    return store.transition(job.id, state, code=code, message_fr="Résultat.", now=now)
