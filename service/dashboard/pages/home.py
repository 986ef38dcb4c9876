"""Accueil: the queue at a glance, the conservation invariant, the card, the alerts."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from bridge.jobs import JobState, conservation
from service.alerts import OpenAlert
from service.dashboard.certificates import CertificateView, certificate_views
from service.dashboard.context import DASHBOARD, Dashboard, render
from service.dashboard.html import Markup, esc, join, table, tag, when
from service.dashboard.panels import ReaderView
from service.labels import STATE_LABELS

# The order a person reads them in: what needs them first.
STATE_ORDER = (JobState.HELD, JobState.DEAD, JobState.CORRUPT, JobState.AMBIGUOUS,
               JobState.DEFERRED, JobState.QUEUED, JobState.ACTIVE, JobState.DONE)
NEEDS_A_PERSON = (JobState.HELD, JobState.DEAD, JobState.CORRUPT)


def _queue(counts: dict[JobState, int], received: int) -> Markup:
    rows = []
    for state in STATE_ORDER:
        count = counts.get(state, 0)
        link = tag("a", STATE_LABELS[state], href=f"/documents?etat={state.value}")
        mark = "à traiter" if state in NEEDS_A_PERSON and count else ""
        rows.append((link, tag("span", count, class_="nombre"), tag("span", mark, class_="urgent")))
    balanced = conservation(counts, received)
    verdict = (tag("p", f"Conservation vérifiée : {received} document(s) reçu(s), chacun est "
                   "dans un des états ci-dessus (aucun document perdu).", class_="ok")
               if balanced else
               tag("p", f"ÉCART DÉTECTÉ : {received} document(s) reçu(s) mais "
                   f"{sum(counts.values())} compté(s) dans les états. Contactez le support "
                   "sans rien supprimer.", class_="alerte erreur"))
    return (tag("h2", "File d'attente")
            + table(("État", "Documents", ""), rows, class_="etats") + verdict)


def _last_success(ctx: Dashboard) -> Markup:
    done = ctx.store.list_jobs(JobState.DONE, 1)
    if not done:
        return tag("p", "Aucun document n'a encore été enregistré dans le DMP.")
    job = done[0]
    return tag("p", Markup("Dernier document enregistré dans le DMP : le ")
               + esc(when(job.updated_at)) + Markup(" (")
               + tag("a", f"n° {job.id}", href=f"/documents/{job.id}") + Markup(")."))


def reader_line(reader: ReaderView) -> str:
    if not reader.card_present:
        return f"{reader.name} : aucune carte."
    who = reader.holder or "titulaire inconnu"
    kind = f" ({reader.kind})" if reader.kind else ""
    if reader.blocked:
        state = "carte BLOQUÉE (trop de codes faux) : débloquez-la avec son code PUK"
    elif reader.logged_in:
        state = "code PIN validé, la carte est utilisée pour les envois"
    else:
        state = "code PIN à saisir (page Carte)"
    return f"{reader.name} : {who}{kind} — {state}."


def _certificates(views: list[CertificateView]) -> Markup:
    if not views:
        return Markup("")
    rows = [(v.role, v.subject, when(v.not_after),
             tag("span", v.verdict, class_="ok" if v.ok else "urgent")) for v in views]
    return (tag("h2", "Certificats de la structure")
            + table(("Rôle", "Titulaire", "Valide jusqu'au", "État"), rows))


def _card(readers: list[ReaderView] | None) -> Markup:
    if readers is None:
        return Markup("")
    lines = [tag("li", reader_line(r)) for r in readers] or [tag("li", "Aucun lecteur de carte.")]
    return tag("h2", "Carte CPS") + tag("ul", join(lines)) + tag(
        "p", tag("a", "Gérer la carte et saisir le code PIN", href="/carte"))


def _alerts(alerts: list[OpenAlert] | None) -> Markup:
    if alerts is None:
        return Markup("")
    if not alerts:
        return tag("h2", "Alertes") + tag("p", "Aucune alerte en cours.", class_="ok")
    rows = [(tag("span", str(a.severity), class_=f"gravite {a.severity}"), a.text_fr, when(a.since))
            for a in sorted(alerts, key=lambda a: a.since)]
    return tag("h2", "Alertes en cours") + table(("Gravité", "Alerte", "Depuis le"), rows)


def _summary(ctx: Dashboard) -> Markup:
    counts, received = ctx.store.tally()
    return _queue(counts, received) + _last_success(ctx)


async def home(request: web.Request) -> web.Response:
    ctx = request.app[DASHBOARD]
    summary = await ctx.run(_summary, ctx)
    certificates = await ctx.run(certificate_views, ctx.config, dt.datetime.now(dt.UTC))
    readers = None if ctx.card is None else await ctx.run(ctx.card.readers)
    alerts = None if ctx.alerts is None else await ctx.run(ctx.alerts.open_alerts)
    body = _alerts(alerts) + summary + _card(readers) + _certificates(certificates)
    return render(request, "Accueil", body, current="/")
