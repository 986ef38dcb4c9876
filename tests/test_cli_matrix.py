"""The feeding matrix from the command line: check, show, preview, the Ségur report, and the
operator's release and cancel."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from bridge.jobs import Intake, JobState
from connectors.sqlite_store import SqliteStore
from service.cli import main
from service.config import CONFIG_NAME, load_config
from service.sample_pdf import make_pdf
from tests.factories import make_sidecar_dict

FIXTURES = Path(__file__).parent / "fixtures" / "ans"
NOW = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def installation(tmp_path: Path) -> Path:
    assert main(["init", str(tmp_path / "cabinet")]) == 0
    return tmp_path / "cabinet" / CONFIG_NAME


def broken_overlay(tmp_path: Path, row: str) -> Path:
    path = tmp_path / "urps.toml"
    path.write_text(
        '[matrix]\nname = "URPS test"\nversion = "1"\ndate = "2026-11-21"\n'
        'region = "test"\nprovenance = "test"\n' + row, encoding="utf-8")
    return path


def test_the_shipped_matrix_checks_clean(installation: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "check", "--config", str(installation)]) == 0
    assert "Matrice valide" in capsys.readouterr().out


@pytest.mark.parametrize(("row", "expected"), [
    ('[[add]]\nid = "URPS-01"\ncategories = ["IDE"]\nlabel = "Bidon"\naliases = []\n'
     'type_code = "99999-9"\ntype_system = "LN"\nclasseur = "compte-rendu"\n'
     'confidentiality = "N"\nformat = "pdf"\nstatus = "INFERRED"\nsource = "test"\n',
     "99999-9"),
    ('[[override]]\nid = "IDE-02"\nclass_code = "42"\n', "IDE-02"),
    ('[[override]]\nid = "IDE-99"\nlabel = "x"\n', "IDE-99"),
])
def test_a_broken_overlay_fails_the_check_naming_file_and_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str, expected: str) -> None:
    path = broken_overlay(tmp_path, row)
    assert main(["matrix", "check", str(path)]) == 2
    error = capsys.readouterr().err
    assert "urps.toml" in error
    assert expected in error
    assert "Corrigez" in error


def test_a_broken_practice_override_stops_the_service_start(
        installation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = installation.read_text(encoding="utf-8")
    installation.write_text(text + '\n[[matrix.override]]\nid = "IDE-02"\n'
                            'aliases_add = ["fiche de soins"]\n'
                            '[[matrix.add]]\nid = "CAB-01"\ncategories = ["IDE"]\n'
                            'label = "Doublon"\naliases = ["fiche de soins"]\n'
                            'type_code = "11506-3"\ntype_system = "LN"\n'
                            'classeur = "compte-rendu"\nconfidentiality = "N"\nformat = "pdf"\n'
                            'status = "INFERRED"\nsource = "cabinet"\n', encoding="utf-8")
    assert main(["run", "--config", str(installation)]) == 2
    error = capsys.readouterr().err
    assert "matrice d'alimentation est incohérente" in error
    assert "fiche de soins" in error


def test_matrix_show_lists_a_nurse_s_rows(installation: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "show", "--profession", "60", "--config", str(installation)]) == 0
    out = capsys.readouterr().out
    assert "IDE-02" in out and "11506-3" in out
    assert "MG-01" not in out


@pytest.mark.parametrize(("sample", "type_code", "row"), [
    ("DOC_NON_STRUCTURE_CDA-R2-N1.xml", "11502-2", "BIO-01"),
    ("11-cda-n1-cr-imagerie-pdf.xml", "18748-4", "RAD-01"),
    ("13-cda-n3-note-vaccination.xml", "87273-9", "MG-20"),
])
def test_preview_of_the_ans_cda_samples(capsys: pytest.CaptureFixture[str], sample: str,
                                        type_code: str, row: str, tmp_path: Path) -> None:
    assert main(["preview", str(FIXTURES / sample), "--config", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert f"typeCode            {type_code}" in out
    assert f"ligne {row}" in out
    assert "rien n'a été envoyé" in out


def test_preview_of_a_pdf_and_sidecar_says_why_it_would_wait(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sidecar = make_sidecar_dict()
    sidecar["patient"]["identity_status"] = "RECUP"
    (tmp_path / "soins.pdf").write_bytes(make_pdf(["Soins"]))
    (tmp_path / "soins.json").write_text(json.dumps(sidecar), encoding="utf-8")
    assert main(["preview", str(tmp_path / "soins.pdf"),
                 "--config", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "typeCode            11506-3" in out
    assert "classCode           10" in out
    assert "ligne IDE-02" in out
    assert "Verdict : REFUSÉ" in out and "statut RECUP" in out


def queue(installation: Path, sidecar: dict[str, object], key: str,
          state: JobState | None = None) -> int:
    config = load_config(installation)
    with SqliteStore.open(config.store_path) as store:
        job, _ = store.enqueue(Intake("folder", f"{key}.pdf", key, make_pdf([key]),
                                      json.dumps(sidecar).encode(), NOW))
        if state is JobState.HELD:
            store.transition(job.id, JobState.HELD, code="CONFIRM_WITH_PATIENT",
                             message_fr="à voir", now=NOW)
        elif state is JobState.DONE:
            store.transition(job.id, JobState.ACTIVE, code="TEST", message_fr="envoi", now=NOW,
                             lease=dt.timedelta(minutes=5))
            store.transition(job.id, JobState.DONE, code="DMP_OK", message_fr="ok", now=NOW)
        return job.id


def test_the_segur_report_counts_eligible_and_fed_documents(
        installation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pharmacist = make_sidecar_dict()
    pharmacist["author"].update(profession="21", specialty="G15_21/A", sector="SA33")
    pharmacist["document"]["kind"] = "CR d'entretien pharmaceutique"
    queue(installation, pharmacist, "entretien-1", JobState.DONE)
    queue(installation, pharmacist, "entretien-2")
    queue(installation, make_sidecar_dict(), "soins-1", JobState.DONE)  # not a Ségur type
    assert main(["report", "--csv", "--config", str(installation)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("mois;type;")
    assert lines[1:] == ["2026-11;78601-2;CR d'entretien pharmaceutique;2;1;50%;non"]


def test_a_held_document_is_released_or_cancelled_by_the_operator(
        installation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = queue(installation, make_sidecar_dict(), "a-voir-1", JobState.HELD)
    second = queue(installation, make_sidecar_dict(), "a-voir-2", JobState.HELD)
    assert main(["release", str(first), "--config", str(installation)]) == 0
    assert main(["cancel", str(second), "--config", str(installation)]) == 0
    assert main(["release", str(second), "--config", str(installation)]) == 1
    config = load_config(installation)
    with SqliteStore.open(config.store_path) as store:
        assert store.get(first).state is JobState.QUEUED  # type: ignore[union-attr]
        assert store.get(second).state is JobState.DEAD  # type: ignore[union-attr]
        assert store.events(first)[-1].code == "RELEASED_BY_USER"
    assert "n'est pas « en attente d'une action »" in capsys.readouterr().err
    assert main(["replay", str(second), "--config", str(installation)]) == 0
    with SqliteStore.open(config.store_path) as store:
        assert store.get(second).state is JobState.QUEUED  # type: ignore[union-attr]
