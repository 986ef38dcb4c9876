"""The simulator's admin API (same TLS server, client certificate required), JSON in French.

- `POST /_simulateur/admin/pannes` {"type": FaultKind, "fois": n=1, "secondes": s=0,
  "service": "iti41"|"iti18"|"iti57"|"td02" (optional)}; `DELETE` forgets pending faults.
- `POST /_simulateur/admin/patients` {"ins": "<matricule or CX>", "etat": PatientState}.
- `GET /_simulateur/admin/requetes`: every request recorded (time, service, action, TLS DN,
  outcome, codes — no health data).
- `POST /_simulateur/admin/reinitialiser`: forget documents, requests, patient states, faults.
- `GET /_simulateur/etat`: counters and the last 20 requests.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.simulator.dispatch import STATE
from service.simulator.faults import FaultKind, InjectedFault
from service.simulator.patients import PatientState

ADMIN = "/_simulateur/admin"
SERVICES = frozenset({"iti41", "iti18", "iti57", "td02"})


def _bad(message: str) -> web.Response:
    return web.json_response({"erreur": message}, status=400)


async def _json(request: web.Request) -> dict[str, Any] | None:
    try:
        data = await request.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def add_fault(request: web.Request) -> web.Response:
    data = await _json(request)
    if data is None:
        return _bad("Corps JSON (objet) attendu.")
    try:
        kind = FaultKind(str(data.get("type")))
    except ValueError:
        return _bad(f"type inconnu ; attendu : {', '.join(k.value for k in FaultKind)}.")
    times, seconds, service = data.get("fois", 1), data.get("secondes", 0), data.get("service")
    if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= 1000:
        return _bad("fois doit être un entier entre 1 et 1000.")
    if (not isinstance(seconds, int | float) or isinstance(seconds, bool)
            or not 0 <= seconds <= 3600):
        return _bad("secondes doit être un nombre entre 0 et 3600.")
    if service is not None and service not in SERVICES:
        return _bad(f"service inconnu ; attendu : {', '.join(sorted(SERVICES))}.")
    code = data.get("code")
    fault = InjectedFault(kind=kind, seconds=float(seconds), service=service)
    if isinstance(code, str) and code:
        fault = InjectedFault(code=code, kind=kind, seconds=float(seconds), service=service)
    faults = request.app[STATE].faults
    faults.fail_next(fault, times=times)
    return web.json_response({"pannes_en_attente": faults.pending()})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return web.json_response({"pannes_en_attente": 0})


async def set_patient(request: web.Request) -> web.Response:
    data = await _json(request)
    if data is None or not isinstance(data.get("ins"), str) or not data["ins"].strip():
        return _bad("Corps JSON {\"ins\": …, \"etat\": …} attendu.")
    try:
        state = PatientState(str(data.get("etat")))
    except ValueError:
        return _bad(f"etat inconnu ; attendu : {', '.join(s.value for s in PatientState)}.")
    request.app[STATE].judge.patients.set(data["ins"], state)
    return web.json_response({"ins": data["ins"], "etat": state.value})


def _requests(request: web.Request, limit: int | None = None) -> list[dict[str, Any]]:
    records = request.app[STATE].judge.store.requests()
    return [
        {"recue_le": r.received_at, "service": r.service, "action": r.action,
         "certificat_client": r.tls_dn, "resultat": r.outcome, "codes": list(r.codes)}
        for r in (records[-limit:] if limit else records)
    ]


async def list_requests(request: web.Request) -> web.Response:
    return web.json_response({"requetes": _requests(request)})


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.judge.store.reset()
    state.judge.patients.reset()
    state.faults.clear()
    return web.json_response({"reinitialise": True})


async def state_page(request: web.Request) -> web.Response:
    store = request.app[STATE].judge.store
    return web.json_response({"compteurs": store.counts(),
                              "dernieres_requetes": _requests(request, 20)})


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/_simulateur/etat", state_page)
    app.router.add_post(f"{ADMIN}/pannes", add_fault)
    app.router.add_delete(f"{ADMIN}/pannes", clear_faults)
    app.router.add_post(f"{ADMIN}/patients", set_patient)
    app.router.add_get(f"{ADMIN}/requetes", list_requests)
    app.router.add_post(f"{ADMIN}/reinitialiser", reset)
