"""The page of one document: why it waits, what was (or will be) sent, its timeline, its lines
of the audit journal, and the buttons that fix it (POST forms: release, confirm with the
patient, replay, retry, cancel)."""

from __future__ import annotations

import datetime as dt

import structlog
from aiohttp import web

from bridge.classify import resolve
from bridge.errors import BridgeError
from bridge.jobs import JobEvent, JobState
from service.dashboard.auth import session_of
from service.dashboard.context import DASHBOARD, Dashboard, redirect_with, render
from service.dashboard.documents import CHANNEL_LABELS, DocumentSummary, summarize
from service.dashboard.html import Markup, join, post_form, table, tag, when
from service.dashboard.pages.audit import document_audit_section, document_lines
from service.dashboard.pages.documents import patient_name, state_badge
from service.labels import STATE_LABELS
from service.operations import (
    CONFIRM_WITH_PATIENT,
    NOT_RELEASABLE,
    Action,
    apply_action,
    available_actions,
)

log = structlog.get_logger("dmp_bridge.dashboard")

DASHBOARD_ACTOR = "tableau-de-bord"  # who acted, in the audit journal (the token has no name)

BUTTONS: dict[Action, tuple[str, str, str | None]] = {
    Action.CONFIRM: ("Confirmé avec le patient : envoyer", "bouton", None),
    Action.RELEASE: ("Libérer : envoyer maintenant", "bouton", None),
    Action.REPLAY: ("Renvoyer au DMP", "bouton", None),
    Action.RETRY_NOW: ("Réessayer maintenant", "bouton", None),
    Action.CANCEL: ("Annuler l'envoi", "bouton danger",
                    "Le document ne partira pas ; il reste dans l'historique et pourra être "
                    "renvoyé plus tard."),
}
HINTS: dict[str, str] = {
    CONFIRM_WITH_PATIENT: (
        "Ce document contient une information à annoncer au patient avant qu'il ne la découvre "
        "dans son DMP. Quand c'est fait, cliquez « Confirmé avec le patient : envoyer »."),
}
NOT_RELEASABLE_HINT = (
    "Libérer ce document ne changerait rien : corrigez l'identité dans le logiciel et "
    "réexportez-le, puis annulez celui-ci.")
WAITING_STATES = (JobState.HELD, JobState.DEAD, JobState.DEFERRED, JobState.AMBIGUOUS,
                  JobState.CORRUPT)


def _facts(pairs: list[tuple[str, object]]) -> Markup:
    return tag("dl", join(tag("dt", k) + tag("dd", v) for k, v in pairs if v not in (None, "")))


def _reason(doc: DocumentSummary) -> Markup:
    job = doc.job
    if job.state not in WAITING_STATES or not job.last_error_fr:
        return Markup("")
    parts = tag("p", job.last_error_fr, class_="motif")
    if job.state is JobState.HELD:
        hint = HINTS.get(job.last_error_code or "")
        if job.last_error_code in NOT_RELEASABLE:
            hint = NOT_RELEASABLE_HINT
        if hint:
            parts += tag("p", hint, class_="aide")
    if job.state is JobState.DEFERRED and job.next_attempt_at is not None:
        parts += tag("p", f"Prochain essai automatique : {when(job.next_attempt_at)}.",
                     class_="aide")
    title = "Pourquoi ce document attend" if job.state is not JobState.DEAD else "Motif du refus"
    return tag("section", tag("h2", title) + parts, class_="cadre-motif")


def _actions(doc: DocumentSummary, csrf: str) -> Markup:
    forms = []
    for action in available_actions(doc.job):
        label, style, warning = BUTTONS[action]
        forms.append(post_form(f"/documents/{doc.job.id}/{action.value}", csrf, label,
                               button_class=style, confirm=warning))
    if not forms:
        return Markup("")
    return tag("section", tag("h2", "Que faire ?") + join(forms), class_="actions")


def _codes(ctx: Dashboard, doc: DocumentSummary) -> list[tuple[str, object]]:
    request = doc.request
    if request is None:
        return []
    try:
        resolution = resolve(ctx.matrix, request.author, kind=request.kind,
                             source_confirm=request.confirm_with_patient,
                             source_visibility=request.visibility,
                             text_body=request.body_format == "text")
    except BridgeError as exc:
        return [("Matrice", exc.message_fr)]
    codes = resolution.codes
    flags = "".join(f", {flag.code}" for flag in codes.visibility)
    return [
        ("Type (typeCode)", f"{codes.type_code.code} — {codes.type_code.display}"),
        ("Classe (classCode)", f"{codes.class_code.code} — {codes.class_code.display}"),
        ("Format (formatCode)", codes.format_code.code),
        ("Cadre d'exercice", f"{codes.practice_setting.code} — {codes.practice_setting.display}"),
        ("Type de structure", f"{codes.facility_type.code} — {codes.facility_type.display}"),
        ("Confidentialité", f"{codes.confidentiality.code}{flags}"),
        ("Classeur du DMP", resolution.classeur),
    ]


def _metadata(ctx: Dashboard, doc: DocumentSummary) -> Markup:
    job, request = doc.job, doc.request
    ids: list[tuple[str, object]] = [
        ("Identifiant du document", job.document_unique_id),
        ("Identifiant du lot (submission set)", job.submission_unique_id),
    ]
    if request is None:
        note = ("Le contenu de ce document a été effacé à la fin de sa durée de conservation "
                "(son historique est gardé)." if job.purged_at else
                "Les métadonnées de ce document ne sont pas lisibles.")
        return tag("section", tag("h2", "Métadonnées") + tag("p", note) + _facts(ids))
    patient, author = request.patient, request.author
    pairs: list[tuple[str, object]] = [
        ("Titre", request.title),
        ("Date du document", when(request.date)),
        ("Type indiqué par le logiciel", request.kind),
        ("Patient", patient_name(request)),
        ("INS", f"{patient.ins.matricule} ({patient.ins.oid.name})"),
        ("Né(e) le", patient.birth_date.strftime("%d/%m/%Y")),
        ("Statut de l'identité", patient.identity_status.value),
        ("Auteur", f"{author.given_name} {author.family_name} (RPPS {author.rpps})"),
        ("Structure", f"{author.structure_name} ({author.structure_id}, {author.sector_code})"),
        ("À confirmer avec le patient", "oui" if request.confirm_with_patient else "non"),
        ("Visibilité demandée", ", ".join(request.visibility)),
        *_codes(ctx, doc),
        *ids,
    ]
    title = ("Métadonnées envoyées au DMP" if job.state is JobState.DONE
             else "Métadonnées qui seront envoyées")
    return tag("section", tag("h2", title) + _facts(pairs))


def _timeline(events: list[JobEvent]) -> Markup:
    rows = [(when(e.at, seconds=True),
             "—" if e.from_state is None else STATE_LABELS[e.from_state],
             STATE_LABELS[e.to_state], e.code, e.message_fr) for e in events]
    return tag("section", tag("h2", "Historique")
               + table(("Date", "De", "Vers", "Code", "Détail"), rows, class_="historique"))


def _load(ctx: Dashboard, job_id: int) -> tuple[DocumentSummary, list[JobEvent]] | None:
    job = ctx.store.get(job_id)
    if job is None:
        return None
    return summarize(ctx.store, ctx.matrix, job), ctx.store.events(job_id)


async def document_page(request: web.Request) -> web.Response:
    ctx = request.app[DASHBOARD]
    job_id = int(request.match_info["job_id"])
    found = await ctx.run(_load, ctx, job_id)
    if found is None:
        body = tag("p", f"Aucun document n° {job_id} dans la file d'attente.")
        return render(request, "Document introuvable", body, status=404)
    doc, events = found
    job = doc.job
    csrf = session_of(request).csrf
    head = tag("p", Markup("État : ") + state_badge(job.state)
               + f" — reçu le {when(job.received_at)} par "
               f"{CHANNEL_LABELS.get(job.channel, job.channel)} ({job.source_ref}), "
               f"{job.attempts} tentative(s).")
    body = head + _reason(doc) + _actions(doc, csrf) + _metadata(ctx, doc) + _timeline(events)
    if ctx.audit is not None:
        body += document_audit_section(*await ctx.run(document_lines, ctx.audit, job))
    return render(request, f"Document n° {job.id}", body, current="/documents")


async def document_action(request: web.Request) -> web.Response:
    ctx = request.app[DASHBOARD]
    job_id = int(request.match_info["job_id"])
    try:
        action = Action(request.match_info["action"])
    except ValueError:
        raise web.HTTPNotFound() from None
    outcome = await ctx.run(apply_action, ctx.store, job_id, action, now=dt.datetime.now(dt.UTC),
                            actor=DASHBOARD_ACTOR, audit=ctx.audit)
    log.info("dashboard_action", job_id=job_id, action=action.value, result=outcome.result,
             audited=outcome.audited)
    if outcome.done and outcome.job is not None and outcome.job.state is JobState.QUEUED:
        ctx.changed()
    message = outcome.message_fr
    if outcome.audit_problem_fr is not None:
        message = f"{message} {outcome.audit_problem_fr}"
    raise redirect_with(request, f"/documents/{job_id}", message,
                        error=not (outcome.done and outcome.audited))
