"""Operations subcommands: `audit verify`, `doctor`, `retry`, `service install`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.audit import VerificationResult
from service.cli_commands import Handler, cmd_retry
from service.config import load_config


def register(sub: Any, config_arg: Callable[[argparse.ArgumentParser], None]) -> dict[str, Handler]:
    """Adds this module's subcommands to `sub` (argparse subparsers); their handlers by name."""
    audit = sub.add_parser(
        "audit",
        help="vérifier le journal d'audit",
        description="Le journal d'audit garde une trace scellée (chaînage d'empreintes) de chaque "
        "envoi, de chaque résultat et de chaque action d'une personne. « verify » vérifie qu'aucun "
        "enregistrement n'a été modifié, supprimé ou déplacé. Code de sortie 1 sinon.",
    )
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_sub.add_parser(
        "verify",
        help="vérifier l'intégrité du journal d'audit",
        description="Relit tout le journal d'audit et vérifie chaque sceau. En cas d'altération, "
        "indique la ligne et ce qui a été trouvé (enregistrement modifié, supprimé ou déplacé).",
    )
    config_arg(verify)

    doctor = sub.add_parser(
        "doctor",
        help="vérifier l'installation (dossiers, certificats, carte, DMP, horloge, disque)",
        description="Vérifie la configuration, les dossiers, la file d'attente, le journal "
        "d'audit, la carte (mode carte), les certificats, la connexion TLS au DMP, l'horloge et "
        "l'espace disque. Une ligne ✔ ou ✘ par point, avec quoi faire. Code de sortie 1 si un "
        "point est en échec.",
    )
    config_arg(doctor)

    retry = sub.add_parser(
        "retry",
        help="renvoyer maintenant un document en attente d'un nouvel essai (ou refusé)",
        description="Un document « nouvel essai programmé » (panne passagère, carte absente…) "
        "repart tout de suite au lieu d'attendre son prochain essai. Pour un document refusé, "
        "c'est exactement « dmp-bridge replay ». L'action est inscrite au journal d'audit.",
    )
    config_arg(retry)
    retry.add_argument("job_id", type=int, metavar="NUMERO", help="numéro du document")

    service = sub.add_parser(
        "service",
        help="installer la passerelle comme service du système (démarrage automatique)",
        description="Installe dmp-bridge comme service qui démarre avec l'ordinateur. Linux : "
        "unité systemd dmp-bridge.service (redémarrage en cas d'échec, protections du "
        "système), puis systemctl daemon-reload et enable --now. Windows : avec pywin32, "
        "service Windows à démarrage automatique ; sans, les commandes à lancer sont affichées "
        "(chemin non testé automatiquement).",
    )
    service_sub = service.add_subparsers(dest="service_command", required=True, metavar="ACTION")
    install = service_sub.add_parser(
        "install",
        help="installer et démarrer le service",
        description="Écrit l'unité systemd (Linux) ou enregistre le service Windows, puis le "
        "démarre. Avec --dry-run, écrit seulement le fichier et affiche les commandes.",
    )
    config_arg(install)
    install.add_argument("--dry-run", action="store_true",
                         help="écrire l'unité sans rien lancer (aucune commande systemctl)")
    install.add_argument("--utilisateur", metavar="COMPTE",
                         help="compte du système qui fait tourner le service (défaut : le "
                         "propriétaire du fichier de configuration)")
    install.add_argument("--dossier-unites", type=Path, metavar="DOSSIER",
                         help="dossier des unités systemd (défaut : /etc/systemd/system)")
    return {"audit": _cmd_audit, "doctor": _cmd_doctor, "retry": cmd_retry,
            "service": _cmd_service}


# -- audit verify ----------------------------------------------------------------------------------


def _sequence_detail(path: Path, result: VerificationResult) -> str:
    """For a broken sequence: was the expected record moved further down, or is it gone?"""
    from bridge.audit import AuditError, AuditRecord, parse_line

    records: list[AuditRecord | None] = []
    for line in path.read_bytes().splitlines():
        try:
            records.append(parse_line(line + b"\n"))
        except AuditError:
            records.append(None)
    assert result.position is not None
    previous = next((r for r in reversed(records[: result.position - 1]) if r is not None), None)
    expected = 1 if previous is None else previous.sequence + 1
    for position, record in enumerate(records[result.position :], start=result.position + 1):
        if record is not None and record.sequence == expected:
            return (f"Constat : enregistrement DÉPLACÉ — le n°{expected}, attendu à la ligne "
                    f"{result.position}, se trouve à la ligne {position}.")
    found = records[result.position - 1]
    gone = (f"n°{expected} à n°{found.sequence - 1}" if found is not None
            and found.sequence - 1 > expected else f"n°{expected}")
    return f"Constat : enregistrement(s) SUPPRIMÉ(S) — {gone} absent(s) du journal."


def _cmd_audit(args: argparse.Namespace) -> int:
    from service.audit_trail import AuditTrail

    config = load_config(args.config)
    trail = AuditTrail.for_config(config)
    result = trail.verify()
    if result.ok:
        if result.count == 0:
            print("Journal d'audit vide : rien à vérifier.")
        else:
            print(f"Journal d'audit intègre : {result.count} enregistrements vérifiés, chaînage "
                  "et sceaux corrects.")
            print(f"  fichier : {trail.journal_path}")
        return 0
    if result.code == "AUDIT_TORN_TAIL":  # a crash mid-write, not tampering
        print(f"⚠ {result.message_fr}")
        return 0
    print(f"✘ {result.message_fr}", file=sys.stderr)
    what = {
        "AUDIT_EDITED": "Constat : enregistrement MODIFIÉ.",
        "AUDIT_BROKEN_LINK": "Constat : chaînage rompu (enregistrement modifié, supprimé ou "
        "inséré).",
        "AUDIT_TRUNCATED": "Constat : enregistrement(s) SUPPRIMÉ(S) à la fin du journal.",
        "AUDIT_MISPLACED_CHECKPOINT": "Constat : point de purge déplacé.",
    }.get(result.code)
    if result.code == "AUDIT_SEQUENCE":
        what = _sequence_detail(trail.journal_path, result)
    print(f"  position : ligne {result.position} ; code : {result.code}", file=sys.stderr)
    if what:
        print(f"  {what}", file=sys.stderr)
    print("  Gardez une copie du fichier tel quel et prévenez le responsable de la sécurité.",
          file=sys.stderr)
    return 1


# -- doctor ------------------------------------------------------------------------------------


def _cmd_doctor(args: argparse.Namespace) -> int:
    from service.doctor import report, run_checks

    text, code = report(run_checks(args.config))
    print(text)
    return code


# -- service install ---------------------------------------------------------------------------


def _default_user(config_path: Path) -> str:
    """The owner of the configuration file (who ran `init`), else the current account."""
    import getpass

    try:
        import pwd  # POSIX only

        return pwd.getpwuid(config_path.stat().st_uid).pw_name
    except (ImportError, KeyError, OSError):
        return getpass.getuser()


def _cmd_service(args: argparse.Namespace) -> int:
    import subprocess

    from service import service_install

    config = load_config(args.config)
    if sys.platform == "win32":  # pragma: no cover - see service.service_install
        plan = service_install.install_windows(args.config, dry_run=args.dry_run)
    else:
        user = args.utilisateur or _default_user(args.config)
        if user == "root":
            print("Attention : le service tournera sous le compte root ; préférez un compte "
                  "dédié (--utilisateur).", file=sys.stderr)
        try:
            plan = service_install.install_systemd(
                config, args.config, user=user, dry_run=args.dry_run,
                unit_dir=args.dossier_unites or service_install.UNIT_DIR)
        except OSError as exc:
            print(f"Installation impossible ({exc}) : lancez la commande en administrateur "
                  "(sudo).", file=sys.stderr)
            return 1
        except subprocess.CalledProcessError as exc:
            print(f"systemctl a échoué ({exc}) : voir « journalctl -xe ».", file=sys.stderr)
            return 1
    for path in plan.written:
        print(f"Écrit : {path}")
    for command in plan.commands:
        print(("À lancer : " if args.dry_run else "Lancé : ") + " ".join(command))
    for note in plan.notes:
        print(note)
    return 0
