"""The `dmp-bridge` command line. Every subcommand explains itself with --help, in French."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge.jobs import JobState
from service.config import CONFIG_NAME, BridgeConfig, ConfigError, load_config
from service.labels import STATE_LABELS

EXIT_CONFIG = 2



def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(CONFIG_NAME),
        help=f"fichier de configuration (défaut : ./{CONFIG_NAME})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmp-bridge",
        description="Passerelle qui alimente le DMP (Mon espace santé) avec les documents que "
        "le logiciel du cabinet dépose dans un dossier.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMANDE")

    init = sub.add_parser(
        "init",
        help="créer une configuration commentée et les dossiers",
        description="Crée DOSSIER/dmp-bridge.toml (commenté), le dossier de "
        "dépôt et le dossier des données.",
    )
    init.add_argument("folder", type=Path, metavar="DOSSIER", help="dossier d'installation")
    init.add_argument(
        "--test-pki",
        action="store_true",
        help="générer aussi une autorité et des certificats de TEST (simulateur)",
    )
    init.add_argument("--force", action="store_true", help="remplacer une configuration existante")

    run = sub.add_parser(
        "run",
        help="démarrer la passerelle (dossier surveillé + envoi au DMP)",
        description="Surveille le dossier de dépôt et envoie les documents au "
        "DMP (ou au simulateur intégré), jusqu'à Ctrl-C.",
    )
    _config_arg(run)

    sim = sub.add_parser(
        "simulator",
        help="démarrer seulement le simulateur du DMP",
        description="Sert le simulateur du DMP sur 127.0.0.1 (TLS mutuel) avec "
        "les certificats de la configuration, jusqu'à Ctrl-C.",
    )
    _config_arg(sim)

    demo = sub.add_parser(
        "demo",
        help="démonstration complète en une commande",
        description="Crée ./demo-dmp-bridge (configuration, certificats de "
        "test), démarre le simulateur et la passerelle, dépose "
        "trois documents d'exemple et montre ce qu'ils deviennent.",
    )
    demo.add_argument(
        "--dossier",
        type=Path,
        default=Path("."),
        help="où créer le dossier de démonstration (défaut : dossier courant)",
    )

    status = sub.add_parser(
        "status",
        help="état de la file d'attente",
        description="Compte les documents par état et vérifie l'invariant "
        "de conservation (reçus = somme des états).",
    )
    _config_arg(status)
    status.add_argument("--json", action="store_true", help="sortie JSON (supervision)")

    listing = sub.add_parser(
        "list",
        help="lister les documents de la file",
        description="Liste les documents, les plus récents d'abord.",
    )
    _config_arg(listing)
    listing.add_argument(
        "--etat", choices=sorted(state.value for state in JobState), help="filtrer par état"
    )
    listing.add_argument("--limite", type=int, default=50, help="nombre maximal de lignes")

    show = sub.add_parser(
        "show",
        help="détail et historique d'un document",
        description="Affiche l'état, le motif et l'historique d'un document.",
    )
    _config_arg(show)
    show.add_argument("job_id", type=int, metavar="NUMERO", help="numéro du document")
    return parser


def _load(path: Path) -> BridgeConfig:
    return load_config(path)


def _cmd_init(args: argparse.Namespace) -> int:
    from service.init import init_installation

    path = init_installation(args.folder, test_pki=args.test_pki, overwrite=args.force)
    print(f"Configuration : {path}")
    print(f"Démarrez la passerelle avec : dmp-bridge run --config {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from service.logs import configure_logging
    from service.runner import run_bridge

    config = _load(args.config)
    configure_logging(config.log_path, config.logging.level)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C on Windows consoles
        asyncio.run(run_bridge(config))
    return 0


def _cmd_simulator(args: argparse.Namespace) -> int:
    from service.logs import configure_logging
    from service.runner import simulator_config
    from service.simulator.server import run_simulator_forever

    config = _load(args.config)
    configure_logging(None, config.logging.level)
    run_simulator_forever(simulator_config(config))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from service.demo import run_demo

    return run_demo(args.dossier)


def _open_store(config: BridgeConfig):  # type: ignore[no-untyped-def]
    from connectors.sqlite_store import SqliteStore

    if not config.store_path.exists():
        raise ConfigError(
            f"Aucune file d'attente dans {config.store_path} : la passerelle n'a "
            "encore jamais démarré avec cette configuration."
        )
    return SqliteStore.open(config.store_path)


def _cmd_status(args: argparse.Namespace) -> int:
    from bridge.jobs import conservation

    config = _load(args.config)
    with _open_store(config) as store:
        counts = store.counts()
        received = store.received()
    balanced = conservation(counts, received)
    if args.json:
        print(
            json.dumps(
                {
                    "received": received,
                    "balanced": balanced,
                    "states": {s.value: n for s, n in counts.items()},
                }
            )
        )
        return 0 if balanced else 1
    print(f"Documents reçus : {received}")
    for state, count in counts.items():
        print(f"  {STATE_LABELS[state]:<32} {count}")
    print(
        "Conservation : "
        + (
            "vérifiée (aucun document perdu)"
            if balanced
            else "ÉCART DÉTECTÉ — lancez « dmp-bridge list » et contactez le support"
        )
    )
    return 0 if balanced else 1


def _cmd_list(args: argparse.Namespace) -> int:
    config = _load(args.config)
    with _open_store(config) as store:
        jobs = store.list_jobs(JobState(args.etat) if args.etat else None, args.limite)
    for job in jobs:
        reason = f" — {job.last_error_fr}" if job.last_error_fr else ""
        print(
            f"n° {job.id:<5} {job.state.value:<10} {job.channel:<7} "
            f"{job.received_at:%d/%m/%Y %H:%M}{reason}"
        )
    if not jobs:
        print("Aucun document.")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    config = _load(args.config)
    with _open_store(config) as store:
        job = store.get(args.job_id)
        events = store.events(args.job_id) if job else []
    if job is None:
        print(f"Aucun document n° {args.job_id}.", file=sys.stderr)
        return 1
    print(f"Document n° {job.id} — {STATE_LABELS[job.state]} ({job.state.value})")
    print(f"  reçu le {job.received_at:%d/%m/%Y %H:%M:%S} par {job.channel} ({job.source_ref})")
    print(f"  tentatives : {job.attempts}")
    if job.document_unique_id:
        print(f"  identifiant du document : {job.document_unique_id}")
    if job.last_error_fr:
        print(f"  motif : {job.last_error_fr}")
    print("  historique :")
    for event in events:
        origin = event.from_state.value if event.from_state else "—"
        print(
            f"    {event.at:%d/%m %H:%M:%S} {origin} → {event.to_state.value} "
            f"[{event.code}] {event.message_fr}"
        )
    return 0


COMMANDS = {
    "init": _cmd_init,
    "run": _cmd_run,
    "simulator": _cmd_simulator,
    "demo": _cmd_demo,
    "status": _cmd_status,
    "list": _cmd_list,
    "show": _cmd_show,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"dmp-bridge : {exc.message_fr}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
