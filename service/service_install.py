"""`dmp-bridge service install`: run the bridge as an OS service, started at boot.

Linux (systemd): writes `/etc/systemd/system/dmp-bridge.service` (or the unit folder given),
running `dmp-bridge run --config <absolute path>` as the given account, restarted on failure,
stopped by SIGTERM within 15 s (the bridge's graceful stop takes under 10 s), with systemd's
hardening options (read-only system, private /tmp, no privilege gain, owner-only files); then
`systemctl daemon-reload` and `systemctl enable --now dmp-bridge.service`. `--dry-run` writes the
unit but runs nothing (tests, review before installing).

Windows: a thin, documented path that cannot be run on the project's Linux machines (the
command lines are built by `windows_commands`, which is tested). With pywin32 installed it
registers `service.windows_service.DmpBridgeService` (automatic start) and stores the absolute
configuration path in the service's registration (the service runs inside pythonservice.exe,
whose folder says nothing of the installation); without it, it prints the NSSM / `sc.exe`
commands to run by hand. See `service.windows_service` for how the configuration path is read
back and how the service control manager stops the bridge.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from service.config import BridgeConfig
from service.windows_service import CONFIG_VERB, SERVICE_NAME

UNIT_NAME = "dmp-bridge.service"
UNIT_DIR = Path("/etc/systemd/system")
WINDOWS_SERVICE = SERVICE_NAME
_TMP_DIRS = ("/tmp", "/var/tmp")  # noqa: S108 (compared with, never written to)


@dataclass
class InstallPlan:
    """What was written and what is (or would be) run, for the operator to read."""

    written: list[Path] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _quote(arg: str) -> str:
    """One ExecStart argument, quoted the way systemd reads it."""
    if arg and not any(c in arg for c in ' "\\\'$%;'):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$").replace("%", "%%")
    return f'"{escaped}"'


def bridge_command(config_path: Path) -> list[str]:
    """The command the service runs: the installed `dmp-bridge` script next to this Python."""
    script = Path(sys.executable).with_name("dmp-bridge")
    head = [str(script)] if script.is_file() else [sys.executable, "-m", "service.cli"]
    return [*head, "run", "--config", str(config_path.resolve())]


def writable_paths(config: BridgeConfig) -> list[str]:
    """The folders the service writes to: the installation, the data, and every watched export
    folder (the main one and each `[[intake.profiles]]` folder: pairs move to `en-cours/`,
    `done/`, `error/` there), absolute and sorted."""
    folders = {config.base_dir, config.path(config.bridge.data_dir),
               *(config.path(profile.folder) for profile in config.intake.folders())}
    return sorted(str(folder) for folder in folders)


def unit_text(config: BridgeConfig, config_path: Path, user: str) -> str:
    """The systemd unit for this installation."""
    writable = writable_paths(config)
    card = config.credentials.mode == "carte"
    # A private /tmp would hide an installation that lives under /tmp (a trial): keep it then.
    in_tmp = any(Path(p).is_relative_to(t) for p in writable for t in _TMP_DIRS)
    lines = [
        "# Écrit par « dmp-bridge service install ». Après modification :",
        "#   systemctl daemon-reload && systemctl restart dmp-bridge",
        "[Unit]",
        "Description=dmp-bridge — alimentation du DMP (Mon espace santé)",
        "Wants=network-online.target",
        "After=network-online.target" + (" pcscd.service" if card else ""),
        "",
        "[Service]",
        "Type=simple",
        f"User={user}",
        f"WorkingDirectory={_quote(str(config.base_dir))}",
        "ExecStart=" + " ".join(_quote(arg) for arg in bridge_command(config_path)),
        "Restart=on-failure",
        "RestartSec=10",
        # SIGTERM = graceful stop (the job in hand may finish; under 10 s); then SIGKILL.
        "KillSignal=SIGTERM",
        "TimeoutStopSec=15",
        "Environment=PYTHONUNBUFFERED=1",
        # Files the bridge creates are for its account only (DESIGN.md §6).
        "UMask=0077",
        "NoNewPrivileges=true",
        *([] if in_tmp else ["PrivateTmp=true"]),
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        # "-": a folder missing at start (a share not yet mounted) does not block the start.
        "ReadWritePaths=" + " ".join(_quote(f"-{path}") for path in writable),
        "ProtectKernelTunables=true",
        "ProtectKernelModules=true",
        "ProtectKernelLogs=true",
        "ProtectControlGroups=true",
        "ProtectClock=true",
        "ProtectHostname=true",
        "RestrictSUIDSGID=true",
        "RestrictRealtime=true",
        "RestrictNamespaces=true",
        "LockPersonality=true",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallArchitectures=native",
        "CapabilityBoundingSet=",
        # The card reader is reached through pcscd's socket, never a device node; without a
        # card, the service needs no device at all.
        *([] if card else ["PrivateDevices=true"]),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def install_systemd(config: BridgeConfig, config_path: Path, *, user: str,
                    unit_dir: Path = UNIT_DIR, dry_run: bool = False) -> InstallPlan:
    """Write the unit (0644: it holds no secret), then reload and start it unless `dry_run`.

    Raises OSError (not allowed to write the unit: run as root) or CalledProcessError.
    """
    plan = InstallPlan()
    unit_dir.mkdir(parents=True, exist_ok=True)
    unit = unit_dir / UNIT_NAME
    tmp = unit.with_name(unit.name + ".tmp")
    tmp.write_text(unit_text(config, config_path, user), encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(unit)
    plan.written.append(unit)
    plan.commands = [["systemctl", "daemon-reload"],
                     ["systemctl", "enable", "--now", UNIT_NAME]]
    if dry_run:
        plan.notes.append("Simulation (--dry-run) : aucune commande n'a été lancée.")
        return plan
    for command in plan.commands:
        subprocess.run(command, check=True)  # noqa: S603 (fixed arguments, no shell)
    plan.notes.append("Service installé et démarré ; son état : systemctl status dmp-bridge ; "
                      "ses journaux : journalctl -u dmp-bridge.")
    return plan


def windows_commands(python: Path, config_path: Path) -> list[list[str]]:
    """The pywin32 registration, in order: register the service (automatic start), store the
    ABSOLUTE configuration path in its registration (the service runs in pythonservice.exe and
    reads it back at start: `service.windows_service.stored_config_path`), then start it."""
    module = [str(python), "-m", "service.windows_service"]
    return [
        [*module, "--startup", "auto", "install"],
        [*module, CONFIG_VERB, str(config_path.resolve())],
        ["sc.exe", "start", WINDOWS_SERVICE],
    ]


def install_windows(config_path: Path, *, dry_run: bool = False) -> InstallPlan:
    """Windows only (the commands are built by `windows_commands`, tested on Linux; running
    them is not). With pywin32: register, store the configuration path, start; without it, the
    NSSM / `sc.exe` way is printed to be run by hand in an administrator console."""
    plan = InstallPlan()
    if importlib.util.find_spec("win32serviceutil") is not None:
        plan.commands = windows_commands(Path(sys.executable), config_path)
        plan.notes.append(f"Le service lira sa configuration ici : {config_path.resolve()} "
                          "(enregistré dans le service ; après un déplacement de "
                          "l'installation, relancez « dmp-bridge service install »).")
    else:  # pragma: no cover - Windows without pywin32
        command = " ".join(f'"{arg}"' if " " in arg else arg for arg in bridge_command(config_path))
        plan.notes.append(
            "pywin32 n'est pas installé (pip install pywin32) : sans lui, un programme comme "
            "NSSM doit porter la commande, par exemple dans une console administrateur :\n"
            f"  nssm install {WINDOWS_SERVICE} {command}\n"
            f"  sc.exe config {WINDOWS_SERVICE} start= auto\n"
            f"  sc.exe start {WINDOWS_SERVICE}")
        return plan
    if not dry_run:  # pragma: no cover - Windows only
        for cmd in plan.commands:
            subprocess.run(cmd, check=True)  # noqa: S603
    return plan
