"""What each `dmp-bridge` subcommand does (the parser and `main` are in `service.cli`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path

from bridge.jobs import JobState
from mappings.matrix import Matrix
from mappings.matrix_load import load_matrix
from service.audit_trail import AuditTrail, operator_actor
from service.config import BridgeConfig, ConfigError, load_config
from service.labels import STATE_LABELS
from service.operations import Action, apply_action, retry_action

EXIT_CONFIG = 2
Handler = Callable[[argparse.Namespace], int]


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
    import dataclasses

    from service.logs import configure_logging
    from service.runner import simulator_config
    from service.simulator.server import run_simulator_forever

    config = _load(args.config)
    configure_logging(None, config.logging.level)
    settings = dataclasses.replace(simulator_config(config), strict=not args.lenient)
    run_simulator_forever(settings)
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
        counts, received = store.tally()
    balanced = conservation(counts, received)
    if args.prometheus:
        from service.metrics import queue_metrics

        sys.stdout.write(queue_metrics(counts, received))
        return 0 if balanced else 1
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


def _operator_action(args: argparse.Namespace, action: Action | None) -> int:
    """Do `action` (None: what `retry` means for this job) as the OS account that typed the
    command, recorded in the audit journal. Exit 1 if nothing was done or the journal could not
    be written (the action itself then stands)."""
    config = _load(args.config)
    with _open_store(config) as store, AuditTrail.for_config(config) as trail:
        chosen = action if action is not None else retry_action(store.get(args.job_id))
        outcome = apply_action(store, args.job_id, chosen, now=dt.datetime.now(dt.UTC),
                               actor=operator_actor(), audit=trail)
    print(outcome.message_fr, file=sys.stdout if outcome.done else sys.stderr)
    if outcome.audit_problem_fr is not None:
        print(outcome.audit_problem_fr, file=sys.stderr)
    return 0 if outcome.done and outcome.audited else 1


def _cmd_release(args: argparse.Namespace) -> int:
    return _operator_action(args, Action.RELEASE)


def _cmd_replay(args: argparse.Namespace) -> int:
    return _operator_action(args, Action.REPLAY)


def _cmd_cancel(args: argparse.Namespace) -> int:
    return _operator_action(args, Action.CANCEL)


def cmd_retry(args: argparse.Namespace) -> int:
    """A refused document: exactly `replay`. A deferred one (waiting for its next try): now,
    unless it shares its lot with other waiting documents (it leaves with them)."""
    return _operator_action(args, None)


def _matrix_for(args: argparse.Namespace) -> tuple[BridgeConfig | None, Matrix]:
    """The configuration (if the file exists) and the matrix it runs with."""
    from service.matrix_loading import matrix_from_config

    if args.config.exists():
        config = _load(args.config)
        return config, matrix_from_config(config)
    return None, load_matrix()


def _cmd_matrix(args: argparse.Namespace) -> int:
    from service.matrix_loading import (
        config_overrides,
        explain_problems,
        matrix_problems,
    )

    if args.matrix_command == "check":
        if args.file is not None:
            matrix, problems = matrix_problems(region=None, overrides=[],
                                               extra_files=[args.file])
        elif args.config.exists():
            config = _load(args.config)
            matrix, problems = matrix_problems(
                region=config.matrix.region, overrides=config_overrides(config),
                extra_files=[config.path(p) for p in config.matrix.extra_files])
        else:
            matrix, problems = matrix_problems(region="bretagne", overrides=[], extra_files=[])
        if problems or matrix is None:
            print(explain_problems(problems), file=sys.stderr)
            return EXIT_CONFIG
        print(f"Matrice valide : {matrix.name} {matrix.version} ({matrix.date}), "
              f"couches : {', '.join(matrix.layers)} ; {len(matrix.rows)} lignes.")
        return 0
    _, loaded = _matrix_for(args)
    categories = sorted(loaded.categories)
    if args.profession:
        category = loaded.category_of(args.profession, args.specialite)
        if category is None:
            print(f"Aucune catégorie de la matrice pour la profession {args.profession}.",
                  file=sys.stderr)
            return 1
        categories = [category]
    for key in categories:
        print(f"== {key} — {loaded.categories[key].label_fr}")
        for row in loaded.rows_for(key):
            flags = [name for name, on in (("à confirmer", row.confirm_with_patient),
                                           ("Ségur", row.auto_feed),
                                           ("structuré exigé", row.structured_required)) if on]
            extra = f" [{', '.join(flags)}]" if flags else ""
            visibility = f" {'+'.join(row.visibility)}" if row.visibility else ""
            print(f"  {row.id:<8} {row.type_code:<12} {row.classeur:<13} {row.label}"
                  f"{visibility}{extra}")
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from bridge.identity_gate import Target
    from service.preview import preview, profile_for

    config, matrix = _matrix_for(args)
    target = Target(config.bridge.environment) if config else Target.SIMULATOR
    # A file of a watched folder is judged with that folder's profile (author, kind, format).
    result = preview(args.path, matrix, target,
                     profile_for(config, args.path) if config else None)
    print(result.text)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from bridge.segur import report_csv, segur_report
    from service.dashboard.documents import fed_documents

    config, matrix = _matrix_for(args)
    if config is None:
        raise ConfigError(f"Le fichier de configuration {args.config} est introuvable : "
                          "indiquez-le avec --config.")
    with _open_store(config) as store:
        documents = fed_documents(store, matrix)  # the same figures as the dashboard's Rapport
    lines = segur_report(documents)
    if args.csv:
        sys.stdout.write(report_csv(lines))
        return 0
    if not lines:
        print("Aucun document éligible à l'alimentation automatique (Ségur) pour l'instant.")
    for line in lines:
        mark = "atteint" if line.meets_target else "non atteint"
        print(f"{line.month}  {line.type_code:<10} {line.type_label:<45} "
              f"{line.fed}/{line.eligible} ({line.ratio:.0%}, objectif 90 % {mark})")
    return 0


COMMANDS: dict[str, Handler] = {
    "init": _cmd_init,
    "run": _cmd_run,
    "simulator": _cmd_simulator,
    "demo": _cmd_demo,
    "status": _cmd_status,
    "list": _cmd_list,
    "show": _cmd_show,
    "release": _cmd_release,
    "replay": _cmd_replay,
    "matrix": _cmd_matrix,
    "preview": _cmd_preview,
    "report": _cmd_report,
    "cancel": _cmd_cancel,
}
