"""`dmp-bridge service install`: run the bridge as an OS service, started at boot.

Linux (systemd): writes `/etc/systemd/system/dmp-bridge.service` (or the unit folder given),
running `dmp-bridge run --config <absolute path>` as the given account, restarted on failure,
stopped by SIGTERM within 15 s (the bridge's graceful stop takes under 10 s), with systemd's
hardening options (read-only system, private /tmp, no privilege gain, owner-only files); then
`systemctl daemon-reload` and `systemctl enable --now dmp-bridge.service`. `--dry-run` writes the
unit but runs nothing (tests, review before installing).

Windows: a thin, documented path that cannot be tested on the project's Linux machines. With
pywin32 installed it registers `service.windows_service.DmpBridgeService` (automatic start);
without it, it prints the `sc.exe` commands to run by hand. See `service.windows_service` for
how the service control manager stops the bridge.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from service.config import BridgeConfig

UNIT_NAME = "dmp-bridge.service"
UNIT_DIR = Path("/etc/systemd/system")
WINDOWS_SERVICE = "dmp-bridge"
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


def unit_text(config: BridgeConfig, config_path: Path, user: str) -> str:
    """The systemd unit for this installation."""
    writable = sorted({str(config.base_dir), str(config.path(config.bridge.data_dir)),
                       str(config.path(config.intake.folder))})
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


def install_windows(config_path: Path, *, dry_run: bool = False) -> InstallPlan:  # pragma: no cover
    """Windows only; not testable on Linux. With pywin32: `python -m service.windows_service
    --startup auto install` then `sc.exe start dmp-bridge`; without it, the `sc.exe` way is
    printed to be run by hand in an administrator console."""
    plan = InstallPlan()
    if importlib.util.find_spec("win32serviceutil") is not None:
        plan.commands = [
            [sys.executable, "-m", "service.windows_service", "--startup", "auto", "install"],
            ["sc.exe", "start", WINDOWS_SERVICE],
        ]
        plan.notes.append(
            f"Placez la configuration à côté de {Path(sys.executable).parent} "
            f"(dmp-bridge.toml) : le service Windows la lit là ; configuration actuelle : "
            f"{config_path.resolve()}.")
    else:
        command = " ".join(f'"{arg}"' if " " in arg else arg for arg in bridge_command(config_path))
        plan.notes.append(
            "pywin32 n'est pas installé (pip install pywin32) : sans lui, un programme comme "
            "NSSM doit porter la commande, par exemple dans une console administrateur :\n"
            f"  nssm install {WINDOWS_SERVICE} {command}\n"
            f"  sc.exe config {WINDOWS_SERVICE} start= auto\n"
            f"  sc.exe start {WINDOWS_SERVICE}")
        return plan
    if not dry_run:
        for cmd in plan.commands:
            subprocess.run(cmd, check=True)  # noqa: S603
    return plan
