"""Patients: oppositions to feeding and consultation consents (valid 12 months), per INS.

The registry holds INS only; names come from the documents still in the queue.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from bridge.identity_gate import PatientRecord
from service.dashboard.context import DASHBOARD, Dashboard, render
from service.dashboard.documents import SCAN_LIMIT, read_request
from service.dashboard.html import PARIS, Markup, table, tag, when
from service.dashboard.pages.documents import patient_name

CONSENT_SOON = dt.timedelta(days=30)


def _names(ctx: Dashboard) -> dict[str, str]:
    names: dict[str, str] = {}
    for job in ctx.store.list_jobs(None, SCAN_LIMIT):
        request = read_request(ctx.store, job)
        if request is not None:
            names.setdefault(request.patient.ins.matricule, patient_name(request))
    return names


def consent_status(record: PatientRecord, today: dt.date) -> tuple[str, bool]:
    """French words for the consent, and whether it needs attention."""
    expires = record.consent_expires_on()
    if expires is None:
        return "aucun consentement enregistré", False
    shown = expires.strftime("%d/%m/%Y")
    if not record.consent_valid_on(today):
        return f"expiré le {shown} : redemandez-le au patient", True
    if expires - today <= CONSENT_SOON:
        return f"expire le {shown} (bientôt) : pensez à le renouveler", True
    return f"valide jusqu'au {shown}", False


def _load(ctx: Dashboard) -> tuple[list[PatientRecord], dict[str, str]]:
    if ctx.registry is None:
        return [], {}
    return ctx.registry.all(), _names(ctx)


async def patients_page(request: web.Request) -> web.Response:
    ctx = request.app[DASHBOARD]
    records, names = await ctx.run(_load, ctx)
    today = dt.datetime.now(PARIS).date()
    rows = []
    for record in records:
        consent, attention = consent_status(record, today)
        opposition = (f"OUI, depuis le {when(record.opposition_at)} : rien n'est envoyé"
                      if record.feeding_opposition else "non")
        given = (record.consultation_consent_at.strftime("%d/%m/%Y")
                 if record.consultation_consent_at else "—")
        rows.append((names.get(record.ins, "—"), record.ins,
                     tag("span", opposition,
                         class_="urgent" if record.feeding_opposition else None),
                     given, tag("span", consent, class_="urgent" if attention else None)))
    intro = tag("p", "Ce que le logiciel a transmis des choix de chaque patient sur son DMP. "
                "Une opposition bloque l'envoi de ses documents ; le consentement à la "
                "consultation vaut 12 mois.", class_="aide")
    body: Markup = intro + table(
        ("Patient", "INS", "Opposition à l'alimentation", "Consentement à la consultation",
         "Validité du consentement"), rows, empty="Aucun patient enregistré.")
    return render(request, "Patients", body, current="/patients")
