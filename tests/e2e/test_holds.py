"""Documents that must wait for a person wait — visibly, with a French reason — and go once
released; nothing of theirs reaches the simulator before."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

from bridge.jobs import JobState
from service.demo import sample_documents
from service.simulator.storage import SimulatorStore
from tests.e2e.conftest import DMP_BRIDGE, Installation, wait_for


def nurse_sidecar() -> dict[str, object]:
    sidecar = sample_documents(dt.datetime.now().astimezone())[0][1]
    return json.loads(json.dumps(sidecar))  # a deep copy


def states(inst: Installation) -> dict[str, tuple[JobState, str | None]]:
    return {job.source_ref: (job.state, job.last_error_code)  # type: ignore[attr-defined]
            for job in inst.jobs()}


def sent_to_simulator(inst: Installation) -> int:
    simulator = SimulatorStore(inst.config.simulator_db_path)
    try:
        return len([d for d in simulator.documents() if not d.is_signature])
    finally:
        simulator.close()


def cli(inst: Installation, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DMP_BRIDGE), *args, "--config", str(inst.config_path)],
                          capture_output=True, text=True, check=False)


def test_unqualified_identities_opposition_and_confirmation_all_wait_for_a_person(
        installation: Installation, bridge_process: subprocess.Popen[bytes]) -> None:
    provisional = nurse_sidecar()
    provisional["patient"]["identity_status"] = "PROV"  # type: ignore[index]
    opposed = nurse_sidecar()
    opposed["patient"].update(ins="185077512345608", feeding_opposition=True)  # type: ignore[attr-defined]
    same_patient_later = nurse_sidecar()
    same_patient_later["patient"]["ins"] = "185077512345608"  # type: ignore[index]
    to_confirm = nurse_sidecar()
    to_confirm["document"]["confirm_with_patient"] = True  # type: ignore[index]

    installation.drop("provisoire", provisional)
    installation.drop("oppose", opposed)
    wait_for(lambda: len(installation.jobs()) == 2, what="the first two jobs")
    installation.drop("oppose-plus-tard", same_patient_later)
    installation.drop("a-confirmer", to_confirm)

    expected = {
        "provisoire.pdf": (JobState.HELD, "IDENTITY_PROV"),
        "oppose.pdf": (JobState.HELD, "PATIENT_OPPOSED"),
        "oppose-plus-tard.pdf": (JobState.HELD, "PATIENT_OPPOSED"),
        "a-confirmer.pdf": (JobState.HELD, "CONFIRM_WITH_PATIENT"),
    }
    wait_for(lambda: states(installation) == expected, timeout=60, what=f"holds {expected}")
    assert sent_to_simulator(installation) == 0
    listing = cli(installation, "list", "--etat", "held").stdout
    assert "statut PROV" in listing and "opposé" in listing and "libérez-le" in listing

    job_id = next(job.id for job in installation.jobs()  # type: ignore[attr-defined]
                  if job.source_ref == "a-confirmer.pdf")  # type: ignore[attr-defined]
    released = cli(installation, "release", str(job_id))
    assert released.returncode == 0, released.stderr
    wait_for(lambda: states(installation)["a-confirmer.pdf"][0] is JobState.DONE, timeout=60,
             what="the released document to be sent")
    assert sent_to_simulator(installation) == 1
    # Releasing does not bypass the identity gate.
    provisional_id = next(job.id for job in installation.jobs()  # type: ignore[attr-defined]
                          if job.source_ref == "provisoire.pdf")  # type: ignore[attr-defined]
    assert cli(installation, "release", str(provisional_id)).returncode == 0
    wait_for(lambda: states(installation)["provisoire.pdf"] == (JobState.HELD, "IDENTITY_PROV"),
             timeout=30, what="the provisional identity to be held again")
    assert sent_to_simulator(installation) == 1
