"""A PDF posted to the local HTTP API of the real process reaches the simulator; 202 means it
is committed; the same Idempotency-Key never makes a second document."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import uuid

from service.api_token import load_token
from service.sample_pdf import make_pdf
from service.simulator.storage import SimulatorStore
from tests.e2e.conftest import DMP_BRIDGE, Installation, free_port, wait_for
from tests.factories import make_sidecar_dict


def post(port: int, token: str, body: dict[str, object], key: str) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/api/v1/documents", body=json.dumps(body), headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json",
            "Idempotency-Key": key})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def get(port: int, token: str, path: str) -> dict[str, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        data: dict[str, object] = json.loads(connection.getresponse().read())
        return data
    finally:
        connection.close()


def test_a_document_posted_to_the_api_reaches_the_dmp_once(installation: Installation) -> None:
    import base64

    port = free_port()
    text = installation.config_path.read_text(encoding="utf-8")
    installation.config_path.write_text(
        text.replace("enabled = false\nport = 8787", f"enabled = true\nport = {port}"),
        encoding="utf-8")
    token = load_token(installation.config.api_token_path)
    process = subprocess.Popen([str(DMP_BRIDGE), "run", "--config", str(installation.config_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, timeout=30, what="the HTTP API")
        body = {"pdf_base64": base64.b64encode(make_pdf(["Soins"])).decode(),
                "metadata": make_sidecar_dict()}
        key = str(uuid.uuid4())
        status, accepted = post(port, token, body, key)
        assert status == 202, accepted
        assert len(installation.jobs()) == 1  # 202 means committed
        assert post(port, token, body, key)[0] == 202  # a replay: still one document
        link = str(accepted["lien"])
        wait_for(lambda: get(port, token, link)["etat"] == "done", timeout=60,
                 what="the posted document to be done")
    finally:
        process.terminate()
        process.wait(timeout=15)
    simulator = SimulatorStore(installation.config.simulator_db_path)
    try:
        assert len([d for d in simulator.documents() if not d.is_signature]) == 1
    finally:
        simulator.close()
    assert len(installation.jobs()) == 1
