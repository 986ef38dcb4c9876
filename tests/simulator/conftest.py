"""Fixtures: a test PKI, a running simulator on a real TLS socket, an mTLS client session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from service.simulator import RunningSimulator, SimulatorConfig, start_simulator
from service.test_pki import TestPki, generate_test_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    # RSA key generation is the slow part: one PKI for the whole session.
    return generate_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def simulator(pki: TestPki, tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    config = SimulatorConfig(
        db_path=tmp_path / "simulateur.sqlite",
        ca_cert=pki.ca_cert,
        server_cert=pki.server.cert,
        server_key=pki.server.key,
    )
    running = await start_simulator(config)
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
