"""The API token file: 32 random bytes, readable by the service account only."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from pathlib import Path

import pytest

from connectors.http_api import HttpApi
from connectors.sqlite_store import SqliteStore
from service.api_token import create_token_file, ensure_token_file, load_token
from service.config import ConfigError
from service.labels import STATE_LABELS
from tests.http_api.conftest import TOKEN, running


def test_created_private_and_loaded(tmp_path: Path) -> None:
    path = tmp_path / "donnees" / "jeton-api"
    token = ensure_token_file(path)
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_token(path) == token
    assert ensure_token_file(path) == token  # init run again keeps it
    assert create_token_file(path) != token  # a new one on purpose
    assert not list(tmp_path.glob("**/*.tmp"))


def test_missing_bad_or_too_open(tmp_path: Path) -> None:
    path = tmp_path / "jeton-api"
    with pytest.raises(ConfigError, match="introuvable"):
        load_token(path)
    create_token_file(path)
    if os.name == "posix":
        path.chmod(0o644)
        with pytest.raises(ConfigError, match="chmod 600"):
            load_token(path)
        path.chmod(0o600)
    path.write_text("court\n", encoding="ascii")
    with pytest.raises(ConfigError, match="invalide"):
        load_token(path)


def test_short_token_refused(store: SqliteStore) -> None:
    async def enqueue(intake: object) -> object:
        raise AssertionError

    with pytest.raises(ValueError, match="32"):
        HttpApi(enqueue, lambda job_id: None, token="abc", matrix=None,  # type: ignore[arg-type]
                labels={})


async def test_run_serves_until_cancelled(store: SqliteStore) -> None:
    async with running(store, None) as probe:
        port = probe.port
    api = HttpApi(lambda intake: None, lambda job_id: None,  # type: ignore[arg-type,return-value]
                  token=TOKEN, matrix=None, labels=STATE_LABELS, port=port)
    task = asyncio.create_task(api.run())
    for _ in range(100):
        if api.started:
            break
        await asyncio.sleep(0.01)
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await writer.wait_closed()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
