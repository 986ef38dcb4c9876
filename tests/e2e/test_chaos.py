"""Crash chaos: documents keep flowing while the bridge process is SIGKILLed at random and
restarted. Nothing may be lost, nothing may reach the DMP twice.

The simulator runs as its own process here (the embedded one would die with the bridge). The
short form runs in CI; the full proof (300 documents, 20 kills) is marked `slow`:
`.venv/bin/pytest -m slow tests/e2e/test_chaos.py -s`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from bridge.jobs import JobState, conservation
from connectors.sqlite_store import SqliteStore
from service.demo import sample_documents
from service.sample_pdf import make_pdf
from service.simulator.storage import SimulatorStore
from tests.e2e.conftest import DMP_BRIDGE, Installation, wait_for


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([str(DMP_BRIDGE), *args], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def drop_documents(installation: Installation, count: int) -> None:
    template = sample_documents(dt.datetime.now().astimezone())[0][1]
    for n in range(count):
        sidecar = json.loads(json.dumps(template))
        sidecar["document"]["title"] = f"Fiche de soins n° {n}"
        installation.drop(f"chaos-{n:03d}", sidecar, pdf=make_pdf([f"Soins n° {n}"]))


def run_chaos(installation: Installation, tmp_path: Path, *, documents: int, kills: int,
              seed: int) -> None:
    rng = random.Random(seed)
    config_text = installation.config_path.read_text(encoding="utf-8")
    installation.config_path.write_text(
        config_text.replace("embedded = true", "embedded = false")
        .replace("max_rate_per_second = 4.0", "max_rate_per_second = 5.0"), encoding="utf-8")
    config = ["--config", str(installation.config_path)]
    port = installation.config.simulator.port
    simulator = start(["simulator", *config], tmp_path / "simulator.out")
    bridge: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: listening(port), timeout=30, what="the simulator")
        drop_documents(installation, documents)
        for _ in range(kills):
            bridge = start(["run", *config], tmp_path / "bridge.out")
            time.sleep(rng.uniform(0.4, 2.5))
            bridge.send_signal(signal.SIGKILL)  # no cleanup of any kind: a power cut
            bridge.wait()
        bridge = start(["run", *config], tmp_path / "bridge.out")
        total = documents

        def all_done() -> bool:
            jobs = installation.jobs()
            return len(jobs) == total and all(
                j.state is JobState.DONE for j in jobs)  # type: ignore[attr-defined]

        wait_for(all_done, timeout=60 + documents, what="every document to be done")
    finally:
        for process in (bridge, simulator):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    with SqliteStore.open(installation.config.store_path) as store:
        jobs = store.list_jobs(limit=10 * documents)
        counts, received = store.tally()
        attempts = sum(job.attempts for job in jobs)
    registry = SimulatorStore(installation.config.simulator_db_path)
    try:
        registered = [d for d in registry.documents() if not d.is_signature]
        sets = len({d.submission_unique_id for d in registered})
        iti41 = sum(1 for r in registry.requests() if r.service == "iti41")
    finally:
        registry.close()
    per_unique_id = Counter(doc.unique_id for doc in registered)
    titles = Counter(d.content.split(b"<title>", 1)[1].split(b"</title>", 1)[0]
                     for d in registered)
    lost = documents - len(titles)
    duplicated = sum(n - 1 for n in titles.values()) + sum(n - 1 for n in per_unique_id.values())
    print(f"\nchaos: documents={documents} kills={kills} lost={lost} duplicated={duplicated} "
          f"attempts={attempts} iti41={iti41} submission-sets={sets} received={received} "
          f"invariant="
          f"{'ok' if conservation(counts, received) else 'BROKEN'} states="
          f"{ {s.value: n for s, n in counts.items() if n} }")
    assert lost == 0 and duplicated == 0
    assert received == documents == len(jobs)
    assert conservation(counts, received)
    assert {job.document_unique_id for job in jobs} == set(per_unique_id)
    inbox = installation.inbox
    assert len(list((inbox / "done").iterdir())) == 2 * documents
    assert not any((inbox / "error").iterdir()) and not any((inbox / "en-cours").iterdir())
    assert not [p for p in inbox.iterdir() if p.is_file()]


def test_documents_survive_random_kills(installation: Installation, tmp_path: Path) -> None:
    run_chaos(installation, tmp_path, documents=40, kills=6, seed=20261121)


@pytest.mark.slow
def test_three_hundred_documents_survive_twenty_kills(installation: Installation,
                                                     tmp_path: Path) -> None:
    run_chaos(installation, tmp_path, documents=300, kills=20, seed=1)


def admin(installation: Installation, method: str, path: str,
          body: dict[str, object] | None = None) -> object:
    """Call the simulator's admin API over mutual TLS, as the bridge's structure."""
    import http.client
    import ssl

    from service.test_pki import pki_layout

    pki = pki_layout(installation.config.path(installation.config.dmp.server_ca).parent)
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.org_auth.cert), str(pki.org_auth.key))
    connection = http.client.HTTPSConnection("127.0.0.1", installation.config.simulator.port,
                                             context=context, timeout=10)
    try:
        connection.request(method, f"/_simulateur/admin/{path}",
                           body=json.dumps(body) if body is not None else None,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        assert response.status < 300, data
        return json.loads(data) if data else None
    finally:
        connection.close()


def test_a_kill_between_send_and_answer_ends_done_exactly_once(installation: Installation,
                                                                tmp_path: Path) -> None:
    """The simulator holds its answers; the bridge dies while one request waits for it. The DMP
    did register the document: at restart the bridge asks before resending, and finds it."""
    config_text = installation.config_path.read_text(encoding="utf-8")
    installation.config_path.write_text(config_text.replace("embedded = true", "embedded = false"),
                                        encoding="utf-8")
    config = ["--config", str(installation.config_path)]
    simulator = start(["simulator", *config], tmp_path / "simulator.out")
    bridge: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: listening(installation.config.simulator.port), what="the simulator")
        admin(installation, "POST", "pannes",
              {"type": "latence", "fois": 3, "secondes": 4, "service": "iti41"})
        drop_documents(installation, 3)
        bridge = start(["run", *config], tmp_path / "bridge.out")

        def in_flight() -> bool:
            return any(j.state is JobState.ACTIVE and j.attempts == 0  # type: ignore[attr-defined]
                       for j in installation.jobs())

        wait_for(in_flight, timeout=30, what="a request to be in flight")
        time.sleep(1.0)  # well inside the 4 s the simulator holds its answer
        bridge.send_signal(signal.SIGKILL)
        bridge.wait()
        time.sleep(4.0)  # the simulator finishes processing the orphaned request
        admin(installation, "DELETE", "pannes")
        bridge = start(["run", *config], tmp_path / "bridge.out")

        def all_done() -> bool:
            jobs = installation.jobs()
            return len(jobs) == 3 and all(j.state is JobState.DONE  # type: ignore[attr-defined]
                                          for j in jobs)

        wait_for(all_done, timeout=60, what="the three documents to be done")
    finally:
        for process in (bridge, simulator):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=15)
    with SqliteStore.open(installation.config.store_path) as store:
        jobs = store.list_jobs()
        confirmed = [j.id for j in jobs if any(e.code == "DMP_OK_CONFIRMED"
                                               for e in store.events(j.id))]
    registry = SimulatorStore(installation.config.simulator_db_path)
    try:
        registered = Counter(d.unique_id for d in registry.documents() if not d.is_signature)
    finally:
        registry.close()
    print(f"\nkill in the window: registered={len(registered)} confirmed by query={confirmed}")
    assert len(registered) == 3 and set(registered.values()) == {1}
    assert confirmed, "the killed request's job should be confirmed by an ITI-18 query"
