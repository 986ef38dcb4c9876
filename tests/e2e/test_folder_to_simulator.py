"""A PDF dropped in the export folder reaches the DMP simulator — through the real process, real
files, a real SQLite queue and mutual TLS on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

from bridge.domain import InsOid
from bridge.jobs import JobState
from bridge.packaging import Package
from bridge.schemas import SchemaName, validation_errors
from bridge.xmlsafe import parse_xml
from connectors.sqlite_store import SqliteStore
from service.demo import sample_documents
from service.simulator.storage import SimulatorStore
from tests.e2e.conftest import DMP_BRIDGE, Installation, wait_for
from tests.transaction_helpers import inline_xop


def nurse_sidecar() -> dict[str, object]:
    stem, sidecar, _ = sample_documents(dt.datetime.now().astimezone())[0]
    assert stem == "demo-1-soins-infirmiers"
    return sidecar


def job_states(inst: Installation) -> list[JobState]:
    """States of all jobs; fails at once, with the French reason, if one went wrong."""
    jobs = inst.jobs()
    for job in jobs:
        state = job.state  # type: ignore[attr-defined]
        if state in (JobState.DEAD, JobState.HELD, JobState.CORRUPT, JobState.DEFERRED):
            raise AssertionError(f"job {state}: {job.last_error_fr}")  # type: ignore[attr-defined]
    return [job.state for job in jobs]  # type: ignore[attr-defined]


def test_a_dropped_pdf_is_registered_once_in_the_simulator(
    installation: Installation, bridge_process: subprocess.Popen[bytes]
) -> None:
    sidecar = nurse_sidecar()
    installation.drop("soins-du-jour", sidecar)

    wait_for(
        lambda: job_states(installation) == [JobState.DONE], timeout=60, what="the job to be done"
    )

    done = installation.inbox / "done"
    assert sorted(p.name for p in done.iterdir()) == ["soins-du-jour.json", "soins-du-jour.pdf"]
    assert not any((installation.inbox / "error").iterdir())
    assert not any((installation.inbox / "en-cours").iterdir())

    patient = sidecar["patient"]
    assert isinstance(patient, dict)
    cx = f"{patient['ins']}^^^&{InsOid.NIR_TEST.value}&ISO^NH"
    simulator = SimulatorStore(installation.config.simulator_db_path)
    try:
        held = simulator.by_patient(cx)
    finally:
        simulator.close()
    documents = [d for d in held if not d.is_signature]
    signatures = [d for d in held if d.is_signature]
    assert len(documents) == 1 and len(signatures) == 1
    # The codes come from the feeding matrix: a nurse's "CR soins infirmiers" is row IDE-02.
    assert (documents[0].type_code, documents[0].class_code) == ("11506-3", "10")
    assert documents[0].format_code == "urn:ihe:iti:xds-sd:pdf:2008"
    cda = parse_xml(documents[0].content, huge_text=True)
    assert validation_errors(cda, SchemaName.CDA) == []
    assert validation_errors(parse_xml(documents[0].metadata_xml), SchemaName.EBRS_LCM) == []

    with SqliteStore.open(installation.config.store_path) as store:
        job = store.list_jobs()[0]
        package = Package.from_bytes(store.package(job.id) or b"")
    assert job.document_unique_id == documents[0].unique_id
    request = inline_xop(package.body, dict(package.parts))
    assert validation_errors(request, SchemaName.XDS_B) == []

    status = subprocess.run(
        [str(DMP_BRIDGE), "status", "--json", "--config", str(installation.config_path)],
        capture_output=True,
        check=True,
        text=True,
    )
    figures = json.loads(status.stdout)
    assert figures["received"] == 1 and figures["balanced"] is True
    assert figures["states"]["done"] == 1


def test_no_health_data_reaches_the_logs_or_the_console(
        installation: Installation, bridge_process: subprocess.Popen[bytes],
        tmp_path: Path) -> None:
    sidecar = nurse_sidecar()
    patient = sidecar["patient"]
    assert isinstance(patient, dict)
    patient["birth_family_name"] = "CANARIFAMILLE"
    patient["given_names"] = ["Canariprenom"]
    sidecar["document"] = {**sidecar["document"], "title": "Titre canari confidentiel"}  # type: ignore[dict-item]
    installation.drop("canari-DUPONT-Jeanne", sidecar)
    wait_for(lambda: job_states(installation) == [JobState.DONE], timeout=60,
             what="the canary document to be done")

    canaries = [str(patient["ins"]), "CANARIFAMILLE", "Canariprenom", "canari confidentiel",
                str(patient["birth_date"]), str(patient["birth_date"]).replace("-", ""),
                "DUPONT"]
    journaux = installation.config.path(installation.config.bridge.data_dir) / "journaux"
    logs = [*journaux.glob("*"), tmp_path / "bridge.out"]
    assert logs
    for path in logs:
        text = path.read_text(encoding="utf-8", errors="replace")
        for canary in canaries:
            assert canary not in text, f"{canary!r} leaked into {path.name}"


def test_bad_inputs_are_quarantined_with_a_french_reason_and_nothing_is_sent(
    installation: Installation, bridge_process: subprocess.Popen[bytes]
) -> None:
    good = nurse_sidecar()
    wrong_key = json.loads(json.dumps(good))
    ins = wrong_key["patient"]["ins"]
    wrong_key["patient"]["ins"] = ins[:-1] + str((int(ins[-1]) + 1) % 10)
    missing = json.loads(json.dumps(good))
    del missing["patient"]["birth_date"]

    installation.drop("ins-errone", wrong_key)
    installation.drop("champ-manquant", missing)
    installation.drop("json-invalide", b'{"patient": {"ins": ')
    installation.drop("pas-un-pdf", good, pdf=b"PK\x03\x04 ceci est un fichier zip")

    error = installation.inbox / "error"
    wait_for(
        lambda: len(list(error.glob("*.reason.txt"))) == 4, timeout=30, what="four reason files"
    )
    reasons = {
        p.name.removesuffix(".reason.txt"): p.read_text(encoding="utf-8")
        for p in error.glob("*.reason.txt")
    }
    assert "clé du matricule INS est fausse" in reasons["ins-errone"]
    assert "patient.birth_date" in reasons["champ-manquant"]
    assert "n'est pas un JSON valide" in reasons["json-invalide"]
    assert "n'est pas un PDF" in reasons["pas-un-pdf"]
    for text in reasons.values():
        assert "Rien n'a été envoyé au DMP" in text
    assert installation.jobs() == []

    # The bridge is still running and still feeds the next good document.
    assert bridge_process.poll() is None
    installation.drop("apres-les-erreurs", good)
    wait_for(
        lambda: job_states(installation) == [JobState.DONE],
        timeout=60,
        what="the good document after the bad ones",
    )
    simulator = SimulatorStore(installation.config.simulator_db_path)
    try:
        assert len([d for d in simulator.documents() if not d.is_signature]) == 1
    finally:
        simulator.close()
