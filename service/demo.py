"""`dmp-bridge demo`: a newcomer sees documents go through in a minute.

Creates a demo folder in the current directory (configuration, test certificates, export
folder), starts the embedded DMP simulator and the bridge, drops three sample PDFs with their
sidecars — two correct, one with a mistyped INS — and prints what happens to each.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import socket
from pathlib import Path

from bridge.ins import nir_key
from bridge.jobs import JobState
from connectors.folder_intake import Outcome
from service.config import CONFIG_NAME, load_config
from service.dispatcher import Finished
from service.init import init_installation
from service.labels import STATE_LABELS
from service.logs import configure_logging
from service.runner import Bridge, Hooks, run_bridge
from service.sample_pdf import make_pdf

DEMO_DIR = "demo-dmp-bridge"
TEST_INS_OID = "1.2.250.1.213.1.4.10"  # INS-NIR de test: never a real person


def _ins(nir13: str) -> str:
    return f"{nir13}{nir_key(nir13):02d}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sample_documents(now: dt.datetime) -> list[tuple[str, dict[str, object], list[str]]]:
    """(base name, sidecar, PDF lines) for the three demo documents. Fictitious patients."""
    nurse = {
        "rpps": "10101010101",
        "family_name": "MARTIN",
        "given_name": "Claire",
        "profession": "60",
        "structure_id": "499700366240007",
        "structure_name": "Cabinet infirmier des Lilas (démo)",
        "sector": "SA07",
    }
    doctor = {
        "rpps": "10202020202",
        "family_name": "DURAND",
        "given_name": "Paul",
        "profession": "10",
        "specialty": "G15_10/SM54",
        "structure_id": "499700366240007",
        "structure_name": "Cabinet médical des Lilas (démo)",
        "sector": "SA08",
    }
    date = now.replace(microsecond=0).isoformat()

    def patient(ins: str, family: str, given: list[str], born: str, sex: str) -> dict[str, object]:
        return {
            "ins": ins,
            "ins_oid": TEST_INS_OID,
            "identity_status": "QUAL",
            "birth_family_name": family,
            "given_names": given,
            "birth_date": born,
            "sex": sex,
            "birthplace_code": "75056",
        }

    good_ins = _ins("2790351215189")
    other_ins = _ins("1850775123456")
    bad_ins = other_ins[:-2] + f"{(int(other_ins[-2:]) + 1) % 100:02d}"
    return [
        (
            "demo-1-soins-infirmiers",
            {
                "patient": patient(
                    good_ins, "PAT-TROIS", ["Dominique", "Marie-Louise"], "1979-03-28", "F"
                ),
                "document": {
                    "kind": "CR soins infirmiers",
                    "title": "Fiche de soins infirmiers",
                    "date": date,
                },
                "author": nurse,
            },
            [
                "Fiche de soins infirmiers (document de démonstration)",
                "Pansement réalisé, cicatrisation en bonne voie.",
            ],
        ),
        (
            "demo-2-consultation",
            {
                "patient": patient(other_ins, "DEMO-PATIENT", ["Jean"], "1985-07-01", "M"),
                "document": {
                    "kind": "Compte rendu de consultation",
                    "title": "Compte rendu de consultation",
                    "date": date,
                },
                "author": doctor,
            },
            ["Compte rendu de consultation (document de démonstration)"],
        ),
        (
            "demo-3-ins-errone",
            {
                "patient": patient(bad_ins, "DEMO-PATIENT", ["Jean"], "1985-07-01", "M"),
                "document": {
                    "kind": "CR soins infirmiers",
                    "title": "Fiche de soins (INS erroné)",
                    "date": date,
                },
                "author": nurse,
            },
            ["Ce document a un INS mal saisi : dmp-bridge doit le refuser."],
        ),
    ]


def drop_samples(inbox: Path, now: dt.datetime) -> list[str]:
    """Write the PDFs, then the sidecars (the sidecar last, as practice software should)."""
    names = []
    for stem, sidecar, lines in sample_documents(now):
        (inbox / f"{stem}.pdf").write_bytes(make_pdf(lines))
        (inbox / f"{stem}.json").write_text(
            json.dumps(sidecar, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        names.append(stem)
    return names


def run_demo(parent: Path) -> int:
    """Set up, run and narrate the demo until Ctrl-C."""
    folder = parent / DEMO_DIR
    first_time = not (folder / CONFIG_NAME).exists()
    init_installation(folder, test_pki=True, overwrite=False)
    config_path = folder / CONFIG_NAME
    if first_time:
        # A free port, so the demo starts even where 8443 is taken; faster folder polling.
        text = config_path.read_text(encoding="utf-8")
        text = text.replace("port = 8443", f"port = {_free_port()}")
        text = text.replace("stability_seconds = 2.0", "stability_seconds = 0.5")
        config_path.write_text(text, encoding="utf-8")
    config = load_config(config_path)
    port = config.simulator.port
    if config.dmp.url.startswith("https://127.0.0.1:8443/") and port != 8443:
        text = config_path.read_text(encoding="utf-8").replace(
            "127.0.0.1:8443", f"127.0.0.1:{port}"
        )
        config_path.write_text(text, encoding="utf-8")
        config = load_config(config_path)
    configure_logging(config.log_path, config.logging.level, stderr=False)
    inbox = config.path(config.intake.folder)
    names: dict[int, str] = {}

    def on_intake(outcome: Outcome) -> None:
        if outcome.accepted and outcome.job is not None:
            names[outcome.job.id] = outcome.name
            extra = " (déjà reçu : pas de doublon)" if outcome.duplicate else ""
            print(
                f"  → {outcome.name} : pris en charge, n° {outcome.job.id}{extra}, "
                f"fichiers déplacés dans {inbox / 'done'}",
                flush=True,
            )
        else:
            print(
                f"  ✘ {outcome.name} : refusé ({outcome.code}). {outcome.message_fr}\n"
                f"    Motif écrit dans {inbox / 'error' / (outcome.name + '.reason.txt')}",
                flush=True,
            )

    def on_finished(finished: Finished) -> None:
        job = finished.job
        name = names.get(job.id, job.source_ref)
        mark = "✔" if job.state is JobState.DONE else "•"
        detail = "" if job.state is JobState.DONE else f" — {finished.decision.message_fr}"
        print(
            f"  {mark} {name} (n° {job.id}) : {STATE_LABELS[job.state]}{detail}",
            flush=True,
        )

    def on_ready(bridge: Bridge) -> None:
        print(f"dmp-bridge (démonstration) — dossier : {folder}")
        if bridge.simulator is not None:
            print(f"Simulateur du DMP : {bridge.simulator.base_url}")
        print(f"Dossier de dépôt surveillé : {inbox}")
        dropped = drop_samples(inbox, dt.datetime.now().astimezone())
        print(f"Trois documents d'exemple déposés : {', '.join(dropped)}", flush=True)
        print(f"Journaux (sans données de santé) : {config.log_path}")
        if config.dashboard.enabled:
            print(f"Tableau de bord : http://127.0.0.1:{config.dashboard.port}/ (jeton : "
                  f"fichier {config.api_token_path})")
        print(
            f"File d'attente : {config.store_path} — état : "
            f"dmp-bridge status --config {config_path}"
        )
        print(
            "Déposez vos propres PDF + fiches JSON dans le dossier de dépôt. "
            "Ctrl-C pour arrêter.\n",
            flush=True,
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_bridge(config, Hooks(on_intake, on_finished, on_ready)))
    print("\nDémonstration arrêtée.")
    return 0
