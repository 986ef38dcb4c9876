"""The stop path another thread uses (the Windows service manager's SvcStop): the bridge stops
cleanly, well within 10 s, and a job in hand is not lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from service.init import init_installation
from service.windows_service import ThreadSafeStop, run_until_stopped
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.usefixtures("restore_logging")


def test_a_stop_requested_from_another_thread_ends_the_bridge_cleanly(tmp_path: Path) -> None:
    config_path = init_installation(tmp_path / "cabinet", test_pki=True, overwrite=False)
    port = free_port()
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(text.replace("port = 8443", f"port = {port}")
                           .replace("127.0.0.1:8443", f"127.0.0.1:{port}"), encoding="utf-8")
    stop = ThreadSafeStop()
    failure: list[BaseException] = []

    def service_thread() -> None:
        try:
            run_until_stopped(config_path, stop)
        except BaseException as exc:  # reported to the test thread
            failure.append(exc)

    worker = threading.Thread(target=service_thread)
    worker.start()
    time.sleep(1.5)  # let it start (the stop is honoured even if asked earlier)
    stop.request()
    worker.join(timeout=10)  # the requirement: stopped within 10 s
    assert not worker.is_alive()
    assert failure == []
