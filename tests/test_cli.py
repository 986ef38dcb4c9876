"""The `dmp-bridge` command line (service/cli.py): help in French, init, and the queue commands
on a real SQLite store."""

from __future__ import annotations

import datetime as dt
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.jobs import Intake
from connectors.sqlite_store import SqliteStore
from service.cli import main
from service.config import CONFIG_NAME, load_config

SCRIPT = Path(sys.executable).parent / "dmp-bridge"
T0 = dt.datetime(2025, 3, 4, 9, 30, tzinfo=dt.UTC)

SUBCOMMAND_DESCRIPTIONS = {
    "init": "Crée DOSSIER/dmp-bridge.toml (commenté)",
    "run": "Surveille le dossier de dépôt et envoie les documents",
    "simulator": "Sert le simulateur du DMP sur 127.0.0.1",
    "demo": "Crée ./demo-dmp-bridge",
    "status": "Compte les documents par état",
    "list": "Liste les documents",
    "show": "Affiche l'état, le motif et l'historique d'un document",
    "release": "Remet dans la file d'envoi un document en attente",
    "cancel": "Abandonne l'envoi d'un document en attente",
    "replay": "Remet dans la file d'envoi un document refusé",
    "matrix": "La matrice d'alimentation",
    "preview": "Rien n'est envoyé",
    "report": "objectif de 90 %",
}


def run_cli(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture
def installation(tmp_path: Path) -> Path:
    """An installation made by `dmp-bridge init` (without test PKI: not needed here)."""
    folder = tmp_path / "cabinet"
    assert run_cli("init", str(folder)) == 0
    return folder / CONFIG_NAME


def enqueue(config_path: Path, count: int) -> None:
    config = load_config(config_path)
    with SqliteStore.open(config.store_path) as store:
        for n in range(1, count + 1):
            store.enqueue(Intake(channel="folder", source_ref=f"soins-{n}.pdf",
                                 idempotency_key=f"cle-{n}", payload=b"%PDF-1.4 %%EOF",
                                 metadata=b"{}", received_at=T0 + dt.timedelta(minutes=n)))


# -- help ---------------------------------------------------------------------------------------


def test_the_installed_command_explains_itself_in_french() -> None:
    result = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True,
                            encoding="utf-8", timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert "Passerelle qui alimente le DMP (Mon espace santé)" in result.stdout
    for command in SUBCOMMAND_DESCRIPTIONS:
        assert command in result.stdout


@pytest.mark.parametrize("command", sorted(SUBCOMMAND_DESCRIPTIONS))
def test_every_subcommand_explains_itself_in_french(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        run_cli(command, "--help")

    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert f"dmp-bridge {command}" in out
    assert SUBCOMMAND_DESCRIPTIONS[command] in " ".join(out.split())


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        run_cli()

    assert caught.value.code == 2
    assert "COMMANDE" in capsys.readouterr().err


# -- init ---------------------------------------------------------------------------------------


def test_init_creates_the_configuration_folders_and_private_test_keys(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "cabinet"

    assert run_cli("init", str(folder), "--test-pki") == 0

    assert f"Configuration : {folder / CONFIG_NAME}" in capsys.readouterr().out
    config = load_config(folder / CONFIG_NAME)
    for sub in ("en-cours", "done", "error"):
        assert (folder / "depot" / sub).is_dir()
    assert (folder / "donnees").is_dir()
    assert stat.S_IMODE((folder / "donnees").stat().st_mode) == 0o700
    pems = {p.name for p in (folder / "pki").glob("*.pem")}
    assert pems == {"ac-test.pem", "simulateur-serveur.pem", "org-auth-cli.pem", "org-sign.pem"}
    keys = sorted((folder / "pki").glob("*.key"))
    assert {p.name for p in keys} == {"ac-test.key", "simulateur-serveur.key",
                                      "org-auth-cli.key", "org-sign.key"}
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key.name
    for path in (config.credentials.tls_cert, config.credentials.sign_key, config.dmp.server_ca):
        assert config.path(path).is_file()


def test_init_twice_keeps_the_existing_configuration(tmp_path: Path) -> None:
    folder = tmp_path / "cabinet"
    assert run_cli("init", str(folder)) == 0
    first = load_config(folder / CONFIG_NAME).bridge.source_id

    assert run_cli("init", str(folder)) == 0

    assert load_config(folder / CONFIG_NAME).bridge.source_id == first


# -- status, list, show --------------------------------------------------------------------------


def test_status_counts_the_jobs_and_checks_conservation(
        installation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    enqueue(installation, 2)

    assert run_cli("status", "--config", str(installation)) == 0

    out = capsys.readouterr().out
    assert "Documents reçus : 2" in out
    assert any("en attente d'envoi" in line and line.split()[-1] == "2"
               for line in out.splitlines())
    assert "Conservation : vérifiée" in out


def test_status_json_is_machine_readable(installation: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    enqueue(installation, 2)

    assert run_cli("status", "--config", str(installation), "--json") == 0

    status = json.loads(capsys.readouterr().out)
    assert status["received"] == 2 and status["balanced"] is True
    assert status["states"]["queued"] == 2
    assert sum(status["states"].values()) == 2


def test_status_before_the_first_start_says_there_is_no_queue(
        installation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("status", "--config", str(installation)) == 2

    assert "Aucune file d'attente" in capsys.readouterr().err


def test_list_prints_one_line_per_job(installation: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    enqueue(installation, 2)

    assert run_cli("list", "--config", str(installation)) == 0

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert all("queued" in line and "folder" in line for line in lines)
    assert {line.split()[1] for line in lines} == {"1", "2"}


def test_list_of_an_empty_state_says_so(installation: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    enqueue(installation, 1)

    assert run_cli("list", "--config", str(installation), "--etat", "dead") == 0

    assert capsys.readouterr().out.strip() == "Aucun document."


def test_list_shows_the_most_recent_first(installation: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    enqueue(installation, 2)

    assert run_cli("list", "--config", str(installation)) == 0

    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.split()[1] == "2"


def test_show_prints_the_job_and_its_history(installation: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    enqueue(installation, 1)

    assert run_cli("show", "--config", str(installation), "1") == 0

    out = capsys.readouterr().out
    assert "Document n° 1 — en attente d'envoi (queued)" in out
    assert "par folder (soins-1.pdf)" in out
    assert "tentatives : 0" in out
    assert "historique :" in out
    assert "— → queued [RECEIVED] Document reçu (folder) et mis en file d'attente." in out


def test_show_of_an_unknown_job_says_so(installation: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    enqueue(installation, 1)

    assert run_cli("show", "--config", str(installation), "99") == 1

    assert "Aucun document n° 99." in capsys.readouterr().err


def test_status_exposes_the_invariant_as_prometheus_metrics(
        installation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    enqueue(installation, 2)
    assert run_cli("status", "--prometheus", "--config", str(installation)) == 0
    out = capsys.readouterr().out
    assert 'dmp_bridge_jobs{state="queued"} 2' in out
    assert "dmp_bridge_received_total 2" in out
    assert "dmp_bridge_conservation_ok 1" in out
    assert "# TYPE dmp_bridge_jobs gauge" in out


def test_card_mode_without_the_card_packages_says_how_to_install_them(
        installation: Path) -> None:
    config_path = installation
    text = config_path.read_text(encoding="utf-8").replace(
        'mode = "etablissement"', 'mode = "carte"')
    config_path.write_text(text, encoding="utf-8")
    # A Python where python-pkcs11 is not installed (the « carte » extra was not installed).
    script = ("import sys; sys.modules['pkcs11'] = None; from service.cli import main; "
              f"sys.exit(main(['run', '--config', {str(config_path)!r}]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "pip install -e '.[carte]'" in done.stderr
    assert "Traceback" not in done.stderr
