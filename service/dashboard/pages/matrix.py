"""Matrice: the feeding matrix the bridge runs with, and the preview of an uploaded file.

The preview is `dmp-bridge preview` (`service.preview`): the files are written to a temporary
folder (owner-only, deleted at once), judged, and nothing is sent.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aiohttp import web

from bridge.identity_gate import Target
from mappings.matrix import Matrix
from service.dashboard.auth import session_of
from service.dashboard.context import DASHBOARD, render
from service.dashboard.html import Markup, hidden, join, table, tag
from service.preview import Preview, preview

# The kinds of input the preview knows, by file extension (a pair PDF + JSON, or one file).
ACCEPTED = (".pdf", ".json", ".xml", ".hl7", ".er7")
STEM = "apercu"  # the pair must share one name: the user's file names do not matter


def _matrix(matrix: Matrix) -> Markup:
    head = tag("p", f"{matrix.name} version {matrix.version} du {matrix.date} — couches : "
               f"{', '.join(matrix.layers)} ; {len(matrix.rows)} lignes.")
    sections = []
    for key in sorted(matrix.categories):
        category = matrix.categories[key]
        rows = []
        for row in matrix.rows_for(key):
            flags = [name for name, on in (
                ("à confirmer avec le patient", row.confirm_with_patient),
                ("Ségur (automatique)", row.auto_feed),
                ("structuré exigé", row.structured_required)) if on]
            rows.append((row.id, row.label, row.type_code, row.classeur,
                         "+".join(row.visibility), ", ".join(flags), row.origin))
        sections.append(tag("details", tag("summary", f"{category.label_fr} ({key})")
                            + table(("Ligne", "Document", "typeCode", "Classeur", "Visibilité",
                                     "Particularités", "Origine"), rows)))
    return head + join(sections)


def _upload_form(csrf: str) -> Markup:
    files = Markup('<input type="file" name="fichiers" id="fichiers" multiple required '
                   'accept=".pdf,.json,.xml,.hl7,.er7">')
    fields = (hidden("csrf", csrf) + tag("label", "Fichiers à vérifier", for_="fichiers") + files
              + tag("p", "Un PDF et sa fiche JSON ensemble, ou un document CDA (.xml), ou un "
                    "message HL7 (.hl7). Rien n'est envoyé au DMP.", class_="aide")
              + tag("button", "Voir ce qui serait envoyé", type="submit", class_="bouton"))
    return tag("form", fields, method="post", action="/matrice/apercu",
               enctype="multipart/form-data", class_="apercu")


async def matrix_page(request: web.Request) -> web.Response:
    ctx = request.app[DASHBOARD]
    body = (tag("h2", "Aperçu d'un document") + _upload_form(session_of(request).csrf)
            + tag("h2", "Matrice d'alimentation active") + _matrix(ctx.matrix))
    return render(request, "Matrice", body, current="/matrice")


def _preview_files(files: dict[str, bytes], matrix: Matrix, target: Target) -> Preview | str:
    """The verdict on the uploaded files, or a French message saying what is missing."""
    if not files:
        return "Choisissez un fichier (un PDF et sa fiche JSON, un CDA .xml ou un message HL7)."
    with tempfile.TemporaryDirectory(prefix="dmp-bridge-apercu-") as folder:
        for suffix, data in files.items():
            (Path(folder) / f"{STEM}{suffix}").write_bytes(data)
        for suffix in (".xml", ".hl7", ".er7"):
            if suffix in files:
                return preview(Path(folder) / f"{STEM}{suffix}", matrix, target)
        if ".pdf" not in files or ".json" not in files:
            return "Pour un PDF, envoyez aussi sa fiche JSON (les deux fichiers ensemble)."
        return preview(Path(folder) / f"{STEM}.pdf", matrix, target)


async def preview_upload(request: web.Request) -> web.Response:
    ctx = request.app[DASHBOARD]
    form = await request.post()
    files: dict[str, bytes] = {}
    for field in form.getall("fichiers", []):
        if isinstance(field, web.FileField):
            suffix = Path(field.filename or "").suffix.lower()
            if suffix in ACCEPTED:
                files[suffix] = field.file.read()
    result = await ctx.run(_preview_files, files, ctx.matrix, ctx.target)
    if isinstance(result, str):
        body = tag("p", result, class_="alerte erreur")
    else:
        body = tag("p", f"Verdict : {result.verdict}.", class_="verdict") + tag("pre", result.text)
    body += tag("p", tag("a", "Vérifier un autre fichier", href="/matrice"))
    return render(request, "Aperçu d'un document", body, current="/matrice")
