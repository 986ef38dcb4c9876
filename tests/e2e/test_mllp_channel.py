"""An HL7 v2 MDM^T02 carrying a PDF, sent over MLLP to the real process, reaches the simulator;
the sender gets AA only once the document is safely queued."""

from __future__ import annotations

import socket
import subprocess

from bridge.hl7v2.mllp import frame
from bridge.jobs import JobState
from service.simulator.storage import SimulatorStore
from tests.e2e.conftest import DMP_BRIDGE, Installation, free_port, wait_for
from tests.hl7.messages import encode, nurse_mdm


def send(port: int, message: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame(message))
        answer = b""
        while not answer.endswith(b"\x1c\r"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_an_hl7_document_reaches_the_dmp_and_is_acknowledged_after_commit(
        installation: Installation) -> None:
    port = free_port()
    text = installation.config_path.read_text(encoding="utf-8")
    installation.config_path.write_text(
        text.replace("enabled = false\nport = 2575", f"enabled = true\nport = {port}"),
        encoding="utf-8")
    process = subprocess.Popen([str(DMP_BRIDGE), "run", "--config", str(installation.config_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, timeout=30, what="the MLLP listener")
        ack = send(port, encode(nurse_mdm("E2E-1")))
        assert b"MSA|AA|E2E-1" in ack, ack
        assert len(installation.jobs()) == 1  # acknowledged means committed
        again = send(port, encode(nurse_mdm("E2E-1")))
        assert b"MSA|AA|E2E-1" in again

        def done() -> bool:
            jobs = installation.jobs()
            return len(jobs) == 1 and jobs[0].state is JobState.DONE  # type: ignore[attr-defined]

        wait_for(done, timeout=60, what="the HL7 document to be done")
    finally:
        process.terminate()
        process.wait(timeout=15)
    simulator = SimulatorStore(installation.config.simulator_db_path)
    try:
        documents = [d for d in simulator.documents() if not d.is_signature]
    finally:
        simulator.close()
    assert len(documents) == 1 and documents[0].type_code == "11506-3"
    # The message asked INVISIBLE_PATIENT=Y: the DMP must hide it from the patient.
    assert b"INVISIBLE_PATIENT" in documents[0].metadata_xml
