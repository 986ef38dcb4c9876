"""Fixtures: a test PKI (with a CPS-like certificate), a running simulator on a real TLS
socket (strict, and lenient), an HTTP client session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from service.simulator import RunningSimulator, SimulatorConfig, start_simulator
from tests.simulator.pki_maker import SimPki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SimPki:
    # RSA key generation is the slow part: one PKI for the whole session.
    return make_pki(tmp_path_factory.mktemp("pki"))


def _config(pki: SimPki, tmp_path: Path, *, strict: bool) -> SimulatorConfig:
    return SimulatorConfig(
        db_path=tmp_path / ("simulateur.sqlite" if strict else "simulateur-tolerant.sqlite"),
        ca_cert=pki.ca_cert,
        server_cert=pki.server.cert,
        server_key=pki.server.key,
        strict=strict,
    )


@pytest.fixture
async def simulator(pki: SimPki, tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(_config(pki, tmp_path, strict=True))
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def lenient_simulator(pki: SimPki, tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(_config(pki, tmp_path, strict=False))
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client
