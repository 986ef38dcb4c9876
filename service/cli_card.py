"""`dmp-bridge card …`: the CPS card of the running bridge (readers, PIN, situation d'exercice).

The card lives in the running service (its PKCS#11 session is the service's): these commands
talk to it over the loopback listener with the local token. `card login` asks for the PIN with
no echo (or reads one line from standard input with --pin-stdin, for a practice's own
launcher); the PIN is sent once, in a POST body, and is not kept, logged or retried.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from service.cli_commands import Handler

API = "/api/v1/carte"


def register(sub: Any, config_arg: Callable[[argparse.ArgumentParser], None]) -> dict[str, Handler]:
    """Adds `card status` and `card login` to `sub` (argparse subparsers)."""
    card = sub.add_parser(
        "card", help="carte CPS : état des lecteurs, saisie du code PIN",
        description="La carte CPS de la passerelle en marche (mode carte).")
    card_sub = card.add_subparsers(dest="card_command", required=True, metavar="ACTION")
    status = card_sub.add_parser("status", help="lecteurs, carte, titulaire, situation")
    config_arg(status)
    login = card_sub.add_parser(
        "login", help="saisir le code PIN de la carte",
        description="Demande le code PIN (sans l'afficher) et le transmet une seule fois à "
        "la carte. Un code faux n'est jamais ressaisi automatiquement.")
    config_arg(login)
    login.add_argument("--lecteur", help="nom du lecteur (s'il y a plusieurs cartes)")
    login.add_argument("--situation", type=int, metavar="N",
                       help="numéro de la situation d'exercice (si la carte en porte plusieurs)")
    login.add_argument("--pin-stdin", action="store_true",
                       help="lire le code PIN sur l'entrée standard (une ligne)")
    return {"card": _cmd_card}


def _call(args: argparse.Namespace, method: str, path: str,
          body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    # Imported here: `dmp-bridge run` loads this module for its parser, not for urllib/http.client.
    import urllib.error
    import urllib.request

    from service.api_token import load_token
    from service.cli_commands import _load

    config = _load(args.config)
    token = load_token(config.api_token_path)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{config.dashboard.port}{API}{path}", data=data, method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, _json(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read())
    except (urllib.error.URLError, OSError):
        return 0, {"message": "La passerelle ne répond pas sur 127.0.0.1:"
                              f"{config.dashboard.port} : démarrez-la (dmp-bridge run) en mode "
                              "carte, puis recommencez."}


def _json(body: bytes) -> dict[str, Any]:
    """The answer's JSON; another listener's page (not the card API) as its text."""
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    text = body.decode("utf-8", "replace").strip()[:300]
    return {"message": "Réponse inattendue de la passerelle (le mode carte est-il activé ?) : "
                       + (text or "vide")}


def _cmd_card(args: argparse.Namespace) -> int:
    if args.card_command == "status":
        return _status(args)
    return _login(args)


def _status(args: argparse.Namespace) -> int:
    code, answer = _call(args, "GET", "/etat")
    if code != 200:
        print(f"dmp-bridge : {answer.get('message', code)}", file=sys.stderr)
        return 1
    readers = answer.get("lecteurs", [])
    if not readers:
        print("Aucun lecteur de carte détecté.")
    for view in readers:
        print(f"Lecteur « {view['name']} » : ", end="")
        if not view["card_present"]:
            print(view["warning"] or "pas de carte.")
            continue
        state = "connectée" if view["logged_in"] else "code PIN attendu"
        if view["blocked"]:
            state = "BLOQUÉE"
        print(f"carte {view['kind']} de {view['holder']} — {state}")
        for situation in view["situations"]:
            mark = "→" if situation["index"] == view["chosen_situation"] else " "
            print(f"   {mark} situation {situation['label']}")
        if view["warning"]:
            print(f"   {view['warning']}")
    return 0


def _login(args: argparse.Namespace) -> int:
    if args.pin_stdin:
        pin = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass

        pin = getpass.getpass("Code PIN de la carte CPS : ")
    body: dict[str, Any] = {"pin": pin, "lecteur": args.lecteur, "situation": args.situation}
    del pin
    code, answer = _call(args, "POST", "/connexion", body)
    body.clear()
    print(answer.get("message", f"Réponse inattendue ({code})."),
          file=sys.stdout if code == 200 else sys.stderr)
    return 0 if code == 200 else 1
