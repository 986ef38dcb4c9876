"""`dmp-bridge service install`: the systemd unit it writes (--dry-run runs no systemctl)."""

from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path

import pytest

from service.service_install import windows_commands
from service.windows_service import config_command, stored_config_path
from tests.ops.conftest import Installation


def install(installation: Installation, units: Path, capsys: pytest.CaptureFixture[str],
            *extra: str) -> tuple[str, str]:
    code = installation.cli("service", "install", "--dry-run", "--dossier-unites", str(units),
                            *extra)
    assert code == 0
    return (units / "dmp-bridge.service").read_text(encoding="utf-8"), capsys.readouterr().out


def settings(unit: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in unit.splitlines()
                if "=" in line and not line.startswith("#"))


def test_dry_run_writes_the_unit_and_only_shows_the_commands(
        installation: Installation, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unit, out = install(installation, tmp_path / "unites", capsys, "--utilisateur", "soignante")
    config_path = installation.config_path.resolve()
    values = settings(unit)
    assert values["ExecStart"].endswith(f"run --config {config_path}")
    assert Path(values["ExecStart"].split(" ")[0]).name in ("dmp-bridge", "python", "python3")
    assert values["User"] == "soignante"
    assert values["Restart"] == "on-failure" and values["TimeoutStopSec"] == "15"
    assert values["KillSignal"] == "SIGTERM" and values["UMask"] == "0077"
    for hardening in ("NoNewPrivileges", "ProtectKernelTunables", "RestrictSUIDSGID",
                      "LockPersonality", "PrivateDevices"):
        assert values[hardening] == "true", hardening
    assert values["ProtectSystem"] == "strict"
    data_dir = installation.config.path(installation.config.bridge.data_dir)
    assert f"-{data_dir}" in values["ReadWritePaths"].split(" ")
    assert values["WantedBy"] == "multi-user.target"
    assert "À lancer : systemctl daemon-reload" in out
    assert "À lancer : systemctl enable --now dmp-bridge.service" in out
    assert "aucune commande n'a été lancée" in out


def test_card_mode_keeps_access_to_the_card_reader(
        installation: Installation, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = installation.config_path.read_text(encoding="utf-8")
    installation.config_path.write_text(
        text.replace('mode = "etablissement"', 'mode = "carte"'), encoding="utf-8")
    unit, _ = install(installation, tmp_path / "unites", capsys, "--utilisateur", "soignante")
    assert "PrivateDevices" not in unit and "pcscd.service" in settings(unit)["After"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_unit(installation: Installation, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    install(installation, tmp_path / "unites", capsys, "--utilisateur", getpass.getuser())
    result = subprocess.run(["systemd-analyze", "verify",
                             str(tmp_path / "unites" / "dmp-bridge.service")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "Unknown key" not in result.stderr and "Invalid" not in result.stderr


def test_every_watched_export_folder_is_writable_by_the_service(
        installation: Installation, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "autre-disque" / "export-labo"
    with installation.config_path.open("a", encoding="utf-8") as toml:
        toml.write(f'\n[[intake.profiles]]\nfolder = "{elsewhere.as_posix()}"\nkind = "bilan"\n'
                   '\n[[intake.profiles]]\nfolder = "export-cabinet"\n')
    unit, _ = install(installation, tmp_path / "unites", capsys, "--utilisateur", "soignante")
    writable = settings(unit)["ReadWritePaths"].split(" ")
    base = installation.config.base_dir
    assert f"-{elsewhere}" in writable
    assert f"-{base / 'export-cabinet'}" in writable
    assert f"-{base / 'depot'}" in writable  # the main folder stays


def test_on_windows_the_service_is_told_where_its_configuration_is(tmp_path: Path) -> None:
    """pywin32 runs the service in pythonservice.exe: the install stores the absolute path of
    the configuration in the service's registration, and the service reads that back."""
    python = Path("C:/Programmes/Python311/python.exe")
    config = tmp_path / "cabinet" / "dmp-bridge.toml"
    install, store, start = windows_commands(python, config)
    assert install == [str(python), "-m", "service.windows_service", "--startup", "auto",
                       "install"]
    assert store[:3] == [str(python), "-m", "service.windows_service"]
    assert start == ["sc.exe", "start", "dmp-bridge"]
    stored = config_command(store[3:])  # what `python -m service.windows_service …` does
    assert stored == config.resolve() and stored.is_absolute()
    assert stored_config_path(str(stored)) == config.resolve()  # what the service reads


@pytest.mark.parametrize("argv", [["install"], ["--startup", "auto", "install"], ["config"],
                                  ["config", "a.toml", "b.toml"], ["remove"]])
def test_other_service_command_lines_are_left_to_pywin32(argv: list[str]) -> None:
    assert config_command(argv) is None


@pytest.mark.parametrize(("stored", "words"), [
    (None, "ne sait pas où est sa configuration"),
    ("", "ne sait pas où est sa configuration"),
    (1, "ne sait pas où est sa configuration"),
    ("dmp-bridge.toml", "n'est pas absolu"),
])
def test_a_service_without_a_stored_configuration_refuses_to_guess(stored: object,
                                                                   words: str) -> None:
    with pytest.raises(ValueError, match=words) as refused:
        stored_config_path(stored)
    assert "dmp-bridge service install" in str(refused.value)
