"""`dmp-bridge service install`: the systemd unit it writes (--dry-run runs no systemctl)."""

from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path

import pytest

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
