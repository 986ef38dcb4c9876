"""Rapport: the Ségur automatic documents, eligible vs fed per type and month (90 % target),
the same figures as `dmp-bridge report`, and their CSV export."""

from __future__ import annotations

from aiohttp import web

from bridge.segur import SEGUR_TARGET, report_csv, segur_report
from service.dashboard.context import DASHBOARD, render
from service.dashboard.documents import fed_documents
from service.dashboard.html import table, tag

CSV_NAME = "rapport-segur.csv"


async def report_page(request: web.Request) -> web.Response:
    ctx = request.app[DASHBOARD]
    lines = segur_report(await ctx.run(fed_documents, ctx.store, ctx.matrix))
    rows = [(line.month, f"{line.type_code} — {line.type_label}", line.eligible, line.fed,
             f"{line.ratio:.0%}",
             tag("span", "atteint" if line.meets_target else "non atteint",
                 class_="ok" if line.meets_target else "urgent"))
            for line in lines]
    body = (tag("p", f"Documents à alimentation automatique (Ségur) : éligibles reçus et "
                f"enregistrés dans le DMP, par type et par mois. Objectif : "
                f"{round(SEGUR_TARGET * 100)} %.", class_="aide")
            + table(("Mois", "Type", "Éligibles", "Alimentés", "Taux", "Objectif"), rows,
                    empty="Aucun document éligible à l'alimentation automatique pour l'instant.")
            + tag("p", tag("a", "Télécharger le rapport (CSV)", href="/rapport.csv",
                           download=CSV_NAME)))
    return render(request, "Rapport Ségur", body, current="/rapport")


async def report_csv_download(request: web.Request) -> web.Response:
    ctx = request.app[DASHBOARD]
    lines = segur_report(await ctx.run(fed_documents, ctx.store, ctx.matrix))
    # A byte order mark: French spreadsheets then read the accents as UTF-8.
    return web.Response(body=("\ufeff" + report_csv(lines)).encode("utf-8"),
                        content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{CSV_NAME}"'})
