"""The `dmp-bridge` command line. Every subcommand explains itself with --help, in French."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.jobs import JobState
from service import cli_card, cli_ops
from service.cli_commands import COMMANDS, EXIT_CONFIG, Handler
from service.config import CONFIG_NAME, ConfigError

# Subcommand groups that live in their own modules: each adds its parsers and returns the
# handlers of the commands it added (by name).
EXTENSIONS = (cli_card, cli_ops)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(CONFIG_NAME),
        help=f"fichier de configuration (défaut : ./{CONFIG_NAME})",
    )


def build_parser(handlers: dict[str, Handler] | None = None) -> argparse.ArgumentParser:
    """The whole parser; the extensions' handlers are added to `handlers` when given."""
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
    sim.add_argument(
        "--lenient",
        action="store_true",
        help="accepter les variantes connues des clients réels (heure locale, SHA-1, …) "
        "en les journalisant, au lieu de les refuser",
    )

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
    status.add_argument("--prometheus", action="store_true",
                        help="sortie au format texte Prometheus (métriques, sans donnée de santé)")

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

    matrix = sub.add_parser(
        "matrix",
        help="vérifier ou afficher la matrice d'alimentation",
        description="La matrice d'alimentation : quel professionnel envoie quel document, avec "
        "quels codes. « check » la vérifie contre les jeux de valeurs officiels, « show » "
        "l'affiche.",
    )
    matrix_sub = matrix.add_subparsers(dest="matrix_command", required=True, metavar="ACTION")
    check = matrix_sub.add_parser(
        "check",
        help="vérifier la matrice (codes, classes, professions, libellés en double)",
        description="Vérifie la matrice nationale, la surcouche régionale et les réglages du "
        "cabinet (ou, si FICHIER est donné, la matrice nationale et ce fichier de surcouche). "
        "Chaque problème nomme le fichier, la ligne et la correction. Code de sortie 2 en cas "
        "de problème.",
    )
    _config_arg(check)
    check.add_argument("file", type=Path, nargs="?", metavar="FICHIER",
                       help="fichier de surcouche (TOML) à vérifier")
    show_matrix = matrix_sub.add_parser(
        "show",
        help="afficher les lignes de la matrice",
        description="Affiche les lignes de la matrice en vigueur, éventuellement pour une "
        "profession (code TRE_G15 : 10 médecin, 21 pharmacien, 60 infirmier…).",
    )
    _config_arg(show_matrix)
    show_matrix.add_argument("--profession", metavar="CODE", help="code TRE_G15")
    show_matrix.add_argument("--specialite", metavar="CODE", help="code JDV_J01 (ex. G15_10/SM54)")

    preview = sub.add_parser(
        "preview",
        help="aperçu de ce qui serait envoyé pour un fichier, sans rien envoyer",
        description="Pour un fichier de dépôt (PDF et sa fiche JSON, CDA .xml, message HL7 "
        ".hl7/.er7, archive XDM .zip, HPRIM .hpr/.hpm) : chaque métadonnée qui serait envoyée, "
        "la ligne de la matrice et l'entrée du jeu de valeurs qui l'ont choisie, et pourquoi le "
        "document serait mis en attente ou refusé. Un fichier d'un dossier surveillé est jugé "
        "avec le profil de ce dossier. Rien n'est envoyé.",
    )
    _config_arg(preview)
    preview.add_argument("path", type=Path, metavar="CHEMIN",
                         help="fichier .pdf, .json, .xml, .hl7, .er7, .zip, .hpr ou .hpm")

    report = sub.add_parser(
        "report",
        help="rapport Ségur : documents éligibles et alimentés par type et par mois",
        description="Pour les documents que la matrice marque « alimentation automatique » "
        "(Ségur), compte par type et par mois les documents reçus et ceux enregistrés dans le "
        "DMP, face à l'objectif de 90 %.",
    )
    _config_arg(report)
    report.add_argument("--csv", action="store_true", help="sortie CSV (séparateur ;)")

    release = sub.add_parser(
        "release",
        help="libérer un document en attente (après l'avoir vu avec le patient)",
        description="Remet dans la file d'envoi un document en attente d'une action, par exemple "
        "un document « à confirmer avec le patient » une fois le patient informé. Les contrôles "
        "d'identité et d'opposition s'appliquent toujours.",
    )
    _config_arg(release)
    release.add_argument("job_id", type=int, metavar="NUMERO", help="numéro du document")

    replay = sub.add_parser(
        "replay",
        help="renvoyer un document refusé, une fois la cause corrigée",
        description="Remet dans la file d'envoi un document refusé (état « refusé »), par "
        "exemple après la correction d'un certificat ou de la matrice. Il est renvoyé avec les "
        "mêmes identifiants.",
    )
    _config_arg(replay)
    replay.add_argument("job_id", type=int, metavar="NUMERO", help="numéro du document")

    cancel = sub.add_parser(
        "cancel",
        help="annuler l'envoi d'un document en attente",
        description="Abandonne l'envoi d'un document en attente d'une action. Il reste visible "
        "(état « refusé ») et peut être renvoyé plus tard.",
    )
    _config_arg(cancel)
    cancel.add_argument("job_id", type=int, metavar="NUMERO", help="numéro du document")
    _add_extensions(sub, handlers)
    return parser


def _add_extensions(sub: Any, handlers: dict[str, Handler] | None) -> None:
    for extension in EXTENSIONS:
        added = extension.register(sub, _config_arg)
        if handlers is not None:
            handlers.update(added)


def main(argv: Sequence[str] | None = None) -> int:
    handlers: dict[str, Handler] = dict(COMMANDS)
    args = build_parser(handlers).parse_args(argv)
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print(f"dmp-bridge : {exc.message_fr}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
