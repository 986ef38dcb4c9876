"""Documents: the list with its filters, and the page of one document (reason, actions)."""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from bridge.jobs import JobState
from bridge.sidecar import DocumentRequest
from service.dashboard.context import DASHBOARD, render
from service.dashboard.documents import (
    CHANNEL_LABELS,
    DocumentSummary,
    Filters,
    list_documents,
)
from service.dashboard.html import PARIS, Markup, esc, join, table, tag, when
from service.labels import STATE_LABELS


def patient_name(request: DocumentRequest | None) -> str:
    if request is None:
        return "—"
    patient = request.patient
    used = f" (nom d'usage {patient.used_family_name})" if patient.used_family_name else ""
    return f"{patient.birth_family_name} {patient.first_given_name}{used}"


def state_badge(state: JobState) -> Markup:
    return tag("span", STATE_LABELS[state], class_=f"etat etat-{state.value}")


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


def parse_filters(query: web.Request) -> Filters:
    params = query.query
    state_text = params.get("etat") or None
    state = JobState(state_text) if state_text in {s.value for s in JobState} else None
    channel = params.get("canal") or None
    return Filters(
        state=state,
        channel=channel if channel in CHANNEL_LABELS else None,
        type_code=(params.get("type") or None),
        since=_date(params.get("du")),
        until=_date(params.get("au")),
    )


def _select(name: str, label: str, options: list[tuple[str, str]], chosen: str | None) -> Markup:
    items = [tag("option", "tous", value="")] + [
        tag("option", text, value=value, selected=value == chosen) for value, text in options]
    return tag("label", label, for_=name) + tag("select", join(items), name=name, id=name)


def _date_input(name: str, label: str, value: dt.date | None) -> Markup:
    field = Markup(f'<input type="date" name="{name}" id="{name}" '
                   f'value="{esc(value.isoformat() if value else "")}">')
    return tag("label", label, for_=name) + field


def _filter_form(filters: Filters, types: list[tuple[str, str]]) -> Markup:
    fields = (
        _date_input("du", "Reçu du", filters.since)
        + _date_input("au", "au", filters.until)
        + _select("etat", "État", [(s.value, STATE_LABELS[s]) for s in JobState],
                  filters.state.value if filters.state else None)
        + _select("type", "Type", types, filters.type_code)
        + _select("canal", "Canal", list(CHANNEL_LABELS.items()), filters.channel)
        + tag("button", "Filtrer", type="submit", class_="bouton")
        + tag("a", "Tout afficher", href="/documents")
    )
    return tag("form", fields, method="get", action="/documents", class_="filtres")


def _row(doc: DocumentSummary) -> tuple[object, ...]:
    job = doc.job
    return (tag("a", f"n° {job.id}", href=f"/documents/{job.id}"), when(job.received_at),
            state_badge(job.state), doc.type_label, patient_name(doc.request),
            CHANNEL_LABELS.get(job.channel, job.channel), job.last_error_fr or "")


async def document_list(request: web.Request) -> web.Response:
    ctx = request.app[DASHBOARD]
    filters = parse_filters(request)
    docs = await ctx.run(list_documents, ctx.store, ctx.matrix, filters, PARIS)
    types = sorted({r.type_code: r.label for r in ctx.matrix.rows}.items(), key=lambda t: t[1])
    listing = table(("N°", "Reçu le", "État", "Type", "Patient", "Canal", "Motif"),
                    [_row(doc) for doc in docs], empty="Aucun document ne correspond.",
                    class_="documents")
    return render(request, "Documents", _filter_form(filters, types) + listing,
                  current="/documents")
