"""Journal d'audit: the integrity verdict first, then the records, newest first, 100 a page,
filtered by action and by document number; and the lines of one document, for its page.

The journal holds no patient name nor INS (`bridge.audit` refuses them): a patient appears as
the pseudonym stored. Reading means the whole journal (`AuditTrail.verify` and `.records`), so
it runs in a worker thread. A journal that cannot be read is said so, in French, with what to
do; the page itself never fails because of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from bridge.audit import AuditAction, AuditError, AuditRecord, VerificationResult
from bridge.jobs import Job
from bridge.store_port import Store
from service.audit_trail import DISPATCHER_ACTOR, AuditTrail
from service.dashboard.context import DASHBOARD, render
from service.dashboard.html import Markup, esc, join, table, tag, when

PATH = "/audit"
PAGE_SIZE = 100
OPERATOR_PREFIX = "operateur:"
TORN_TAIL = "AUDIT_TORN_TAIL"

ACTION_LABELS: dict[AuditAction, str] = {
    AuditAction.ENVOI: "envoi au DMP",
    AuditAction.RESULTAT: "résultat de l'envoi",
    AuditAction.LIBERATION: "libération par une personne",
    AuditAction.ANNULATION: "annulation par une personne",
    AuditAction.RENVOI: "renvoi par une personne",
    AuditAction.PURGE: "purge (durée de conservation)",
}
ACTOR_LABELS: dict[str, str] = {
    DISPATCHER_ACTOR: "service d'envoi",
    "tableau-de-bord": "tableau de bord",  # service.dashboard.pages.document.DASHBOARD_ACTOR
    "retention": "conservation automatique",  # AuditTrail.purge_before
}
# What was found, beside the verifier's own sentence (which names the line).
FINDINGS: dict[str, str] = {
    "AUDIT_EDITED": "Constat : un enregistrement a été MODIFIÉ.",
    "AUDIT_SEQUENCE": "Constat : un enregistrement a été SUPPRIMÉ ou DÉPLACÉ.",
    "AUDIT_BROKEN_LINK": "Constat : chaînage rompu (enregistrement modifié, supprimé ou inséré).",
    "AUDIT_TRUNCATED": "Constat : des enregistrements ont été SUPPRIMÉS à la fin du journal.",
    "AUDIT_MISPLACED_CHECKPOINT": "Constat : un point de purge a été déplacé.",
}
HEADERS = ("Ligne", "Date (heure de Paris)", "Acteur", "Action", "Document",
           "Patient (pseudonyme)", "Résultat", "Détail")


@dataclass(frozen=True)
class Line:
    """A record and its position in the journal file (1-based, as the verdict counts)."""

    position: int
    record: AuditRecord


@dataclass(frozen=True)
class AuditFilters:
    """What the user narrowed the journal to (None: everything)."""

    action: AuditAction | None = None
    job_id: int | None = None
    page: int = 1
    problem_fr: str | None = None  # what the user typed could not be read

    def query(self, page: int) -> str:
        """The address of `page` with the same filters."""
        params: dict[str, str] = {}
        if self.action is not None:
            params["action"] = self.action.value
        if self.job_id is not None:
            params["document"] = str(self.job_id)
        if page > 1:
            params["page"] = str(page)
        return f"{PATH}?{urlencode(params)}" if params else PATH


@dataclass(frozen=True)
class JournalView:
    """The verdict, the lines kept by the filters (newest first), or why they cannot be read."""

    verdict: VerificationResult | None
    lines: list[Line]
    problem_fr: str | None = None


def parse_filters(request: web.Request) -> AuditFilters:
    params = request.query
    action_text = params.get("action") or None
    action = (AuditAction(action_text) if action_text in {a.value for a in AuditAction}
              else None)
    document_text = (params.get("document") or "").strip().removeprefix("n°").strip()
    job_id, problem = None, None
    if document_text:
        if document_text.isascii() and document_text.isdigit() and len(document_text) <= 18:
            job_id = int(document_text)
        else:
            problem = (f"Numéro de document « {document_text[:30]} » illisible : indiquez le "
                       "numéro seul, par exemple 12. Tout le journal est affiché.")
    page_text = params.get("page", "1")
    page = int(page_text) if page_text.isascii() and page_text.isdigit() else 1
    return AuditFilters(action=action, job_id=job_id, page=max(page, 1), problem_fr=problem)


def document_keys(job: Job | None) -> frozenset[str]:
    """The ids by which records name a document: its uniqueId (outcomes, people's actions) and
    its submission set's (the attempt that sent it, shared by the documents of a lot)."""
    if job is None:
        return frozenset()
    return frozenset(key for key in (job.document_unique_id, job.submission_unique_id) if key)


def concerns(record: AuditRecord, job_id: int, keys: frozenset[str]) -> bool:
    return record.job_id == job_id or (record.document_unique_id is not None
                                       and record.document_unique_id in keys)


def _read_lines(trail: AuditTrail) -> tuple[list[Line], str | None]:
    try:
        records = trail.records()
    except AuditError as exc:
        return [], (f"Les enregistrements ne peuvent pas être affichés : {exc.message_fr} "
                    "Lancez « dmp-bridge audit verify » pour le détail.")
    except OSError:
        return [], (f"Le journal d'audit ({trail.journal_path}) ne peut pas être lu : vérifiez "
                    "le dossier des données, puis lancez « dmp-bridge doctor ».")
    return [Line(position, record) for position, record in enumerate(records, start=1)], None


def read_journal(trail: AuditTrail, store: Store, filters: AuditFilters) -> JournalView:
    """Verify, then read and filter (blocking: call from a worker thread)."""
    try:
        verdict: VerificationResult | None = trail.verify()
    except OSError:
        verdict = None
    lines, problem = _read_lines(trail)
    if problem is not None and verdict is not None and verdict.ok:
        verdict = None  # it verified an absent file (the folder is unreachable): not a ✔
    if filters.action is not None:
        lines = [line for line in lines if line.record.action is filters.action]
    if filters.job_id is not None:
        keys = document_keys(store.get(filters.job_id))
        lines = [line for line in lines if concerns(line.record, filters.job_id, keys)]
    return JournalView(verdict, lines[::-1], problem)


def document_lines(trail: AuditTrail, job: Job) -> tuple[list[Line], str | None]:
    """The lines about `job`, oldest first (like its history), or why they cannot be read."""
    lines, problem = _read_lines(trail)
    keys = document_keys(job)
    return [line for line in lines if concerns(line.record, job.id, keys)], problem


# -- rendering ---------------------------------------------------------------------------------


def verdict_markup(result: VerificationResult | None, trail: AuditTrail) -> Markup:
    """✔ chain intact with the number of records, or ✘ with the line and what was found."""
    if result is None:
        return tag("p", f"✘ Le journal d'audit ({trail.journal_path}) ne peut pas être lu : "
                   "vérifiez le dossier des données, puis lancez « dmp-bridge doctor ».",
                   class_="alerte erreur", role="status")
    if result.ok and result.count == 0:
        return tag("p", "✔ Journal d'audit vide : rien n'y a encore été inscrit.", class_="ok")
    if result.ok:
        return tag("p", f"✔ Chaînage intact : {result.count} enregistrement(s) vérifié(s), "
                   "aucun n'a été modifié, supprimé ni déplacé.", class_="ok")
    if result.code == TORN_TAIL:  # a crash in the middle of a write, not tampering
        return tag("p", f"⚠ {result.message_fr}", class_="alerte info", role="status")
    parts = [tag("strong", f"✘ Journal d'audit ALTÉRÉ (ligne {result.position}).")]
    parts.append(esc(f" {result.message_fr}"))
    finding = FINDINGS.get(result.code)
    if finding:
        parts.append(esc(f" {finding}"))
    parts.append(esc(f" Code : {result.code}."))
    advice = (f"Que faire : gardez une copie du fichier {trail.journal_path} tel quel, ne le "
              "modifiez pas, et prévenez le responsable de la sécurité ; « dmp-bridge audit "
              "verify » donne le même constat.")
    return (tag("p", join(parts), class_="alerte erreur", role="status")
            + tag("p", advice, class_="aide"))


def actor_label(actor: str) -> str:
    if actor.startswith(OPERATOR_PREFIX):
        return f"opérateur « {actor.removeprefix(OPERATOR_PREFIX)} »"
    return ACTOR_LABELS.get(actor, actor)


def _document(record: AuditRecord) -> Markup:
    parts: list[Markup] = []
    if record.job_id is not None:
        parts.append(tag("a", f"n° {record.job_id}", href=f"/documents/{record.job_id}"))
    if record.document_unique_id:
        parts.append(tag("span", record.document_unique_id, class_="aide"))
    return join(parts, " ") if parts else esc("—")


def _result(record: AuditRecord) -> Markup:
    if record.outcome == "ok":
        return tag("span", "réussi", class_="ok")
    return tag("span", record.outcome, class_="urgent")


def _row(line: Line, broken_at: int | None) -> tuple[object, ...]:
    record = line.record
    position: object = line.position
    if line.position == broken_at:
        position = tag("span", f"{line.position} ✘", class_="urgent")
    return (position, when(record.at, seconds=True), actor_label(record.actor),
            ACTION_LABELS.get(record.action, record.action.value), _document(record),
            record.patient_pseudonym or "—", _result(record), record.detail)


def lines_table(lines: Sequence[Line], *, broken_at: int | None = None,
                empty: str = "Aucun enregistrement.") -> Markup:
    return table(HEADERS, [_row(line, broken_at) for line in lines], empty=empty,
                 class_="audit")


def document_audit_section(lines: list[Line], problem_fr: str | None) -> Markup:
    """The section of a document's page: its own lines of the audit journal."""
    body = tag("p", "Ce que le journal d'audit scellé a retenu de ce document : envois, "
               "résultats et actions des personnes.", class_="aide")
    if problem_fr is not None:
        body += tag("p", problem_fr, class_="alerte erreur")
    else:
        body += lines_table(lines, empty="Aucune ligne du journal d'audit pour ce document.")
    body += tag("p", tag("a", "Tout le journal d'audit", href=PATH))
    return tag("section", tag("h2", "Journal d'audit") + body)


def _filter_form(filters: AuditFilters) -> Markup:
    options = [tag("option", "toutes", value="")] + [
        tag("option", label, value=action.value, selected=action is filters.action)
        for action, label in ACTION_LABELS.items()]
    document = "" if filters.job_id is None else str(filters.job_id)
    fields = (tag("label", "Action", for_="action")
              + tag("select", join(options), name="action", id="action")
              + tag("label", "Document n°", for_="document")
              + Markup(f'<input type="text" inputmode="numeric" name="document" id="document" '
                       f'size="8" value="{esc(document)}">')
              + tag("button", "Filtrer", type="submit", class_="bouton")
              + tag("a", "Tout afficher", href=PATH))
    return tag("form", fields, method="get", action=PATH, class_="filtres")


def _pages(filters: AuditFilters, total: int) -> tuple[int, Markup]:
    """The page shown (clamped), and the line that says where we are with its links."""
    count = max(1, math.ceil(total / PAGE_SIZE))
    current = min(filters.page, count)
    if total == 0:
        return current, Markup("")
    first = (current - 1) * PAGE_SIZE + 1
    last = min(current * PAGE_SIZE, total)
    parts = [esc(f"Enregistrements {first} à {last} sur {total} (page {current} sur {count}).")]
    if current > 1:
        parts.append(tag("a", "← plus récents", href=filters.query(current - 1)))
    if current < count:
        parts.append(tag("a", "plus anciens →", href=filters.query(current + 1)))
    return current, tag("p", join(parts, " "), class_="pages")


async def audit_page(request: web.Request) -> web.Response:
    ctx = request.app[DASHBOARD]
    intro = tag("p", "Chaque envoi au DMP, chaque résultat et chaque action d'une personne est "
                "scellé dans ce journal (chaînage d'empreintes) : toute modification, "
                "suppression ou déplacement d'une ligne se voit. Les patients n'y figurent que "
                "sous un pseudonyme.", class_="aide")
    if ctx.audit is None:
        body = intro + tag("p", "Le journal d'audit n'est pas ouvert par ce tableau de bord.",
                           class_="alerte erreur")
        return render(request, "Journal d'audit", body, current=PATH)
    filters = parse_filters(request)
    view = await ctx.run(read_journal, ctx.audit, ctx.store, filters)
    body = intro + tag("h2", "Intégrité") + verdict_markup(view.verdict, ctx.audit)
    body += tag("h2", "Enregistrements") + _filter_form(filters)
    if filters.problem_fr is not None:
        body += tag("p", filters.problem_fr, class_="alerte erreur")
    if view.problem_fr is not None and view.verdict is not None:  # else the verdict says it
        body += tag("p", view.problem_fr, class_="alerte erreur")
    current, pager = _pages(filters, len(view.lines))
    shown = view.lines[(current - 1) * PAGE_SIZE: current * PAGE_SIZE]
    broken_at = None if view.verdict is None or view.verdict.ok else view.verdict.position
    body += pager + lines_table(shown, broken_at=broken_at,
                                empty="Aucun enregistrement ne correspond.") + pager
    return render(request, "Journal d'audit", body, current=PATH)
