"""HTML building blocks: every value is escaped unless it is already `Markup` (built here).

Pages are plain HTML that works without JavaScript; forms POST to this listener only, each with
the session's CSRF token. Nothing is loaded from elsewhere (no CDN, no web font).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

NAV: tuple[tuple[str, str], ...] = (
    ("/", "Accueil"),
    ("/documents", "Documents"),
    ("/carte", "Carte"),
    ("/matrice", "Matrice"),
    ("/patients", "Patients"),
    ("/rapport", "Rapport"),
    ("/audit", "Journal d'audit"),
)


class Markup(str):
    """HTML that is safe to insert as it is (built from escaped parts)."""

    __slots__ = ()

    def __add__(self, other: str) -> Markup:
        """Markup stays Markup; plain text added to it is escaped."""
        return Markup(str.__add__(self, esc(other)))

    def __radd__(self, other: str) -> Markup:
        return Markup(str.__add__(esc(other), self))


def esc(value: object) -> Markup:
    """`value` as HTML text (Markup is kept as it is)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[object], sep: str = "") -> Markup:
    return Markup(sep.join(esc(part) for part in parts))


def tag(element: str, content: object = "", /, **attributes: object) -> Markup:
    """`<element attr="…">content</element>`; `class_` gives `class`; False/None attributes are left
    out, True ones are written bare."""
    attrs = []
    for key, value in attributes.items():
        if value is None or value is False:
            continue
        attr = key.rstrip("_").replace("_", "-")
        attrs.append(f" {attr}" if value is True else f' {attr}="{esc(value)}"')
    return Markup(f"<{element}{''.join(attrs)}>{esc(content)}</{element}>")


def when(value: dt.datetime | None, *, seconds: bool = False) -> str:
    """A date as a French user reads it, in Paris time."""
    if value is None:
        return "—"
    shown = value.astimezone(PARIS)
    return shown.strftime("%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M")


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], *,
          empty: str = "Aucune ligne.", class_: str | None = None) -> Markup:
    body = [tag("tr", join(tag("td", cell) for cell in row)) for row in rows]
    if not body:
        return tag("p", empty, class_="vide")
    head = tag("thead", tag("tr", join(tag("th", h, scope="col") for h in headers)))
    return tag("table", head + tag("tbody", join(body)), class_=class_)


def hidden(name: str, value: object) -> Markup:
    return Markup(f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">')


def post_form(action: str, csrf: str, button: str, *, fields: Iterable[Markup] = (),
              button_class: str = "bouton", confirm: str | None = None) -> Markup:
    """A one-button form (works without JavaScript)."""
    inner = hidden("csrf", csrf) + join(fields)
    inner += tag("button", button, type="submit", class_=button_class)
    if confirm:
        inner += tag("p", confirm, class_="aide")
    return tag("form", inner, method="post", action=action, class_="action")


def flash(message: str | None, *, error: bool = False) -> Markup:
    if not message:
        return Markup("")
    return tag("p", message, class_="alerte erreur" if error else "alerte info", role="status")


def page(title: str, body: Markup, *, current: str | None = None, csrf: str | None = None,
         notice: str | None = None, notice_error: bool = False) -> Markup:
    """The whole document; the menu and the logout button only for a signed-in user."""
    nav = Markup("")
    if csrf is not None:
        links = join(tag("a", label, href=href, aria_current="page" if href == current else None)
                     for href, label in NAV)
        logout = post_form("/deconnexion", csrf, "Se déconnecter", button_class="lien")
        nav = tag("nav", links + logout, aria_label="Menu principal")
    header = tag("header", tag("p", "dmp-bridge — tableau de bord", class_="marque") + nav)
    main = tag("main", tag("h1", title) + flash(notice, error=notice_error) + body)
    head = (Markup('<meta charset="utf-8">')
            + Markup('<meta name="viewport" content="width=device-width, initial-scale=1">')
            + Markup('<meta name="referrer" content="same-origin">')
            + tag("title", f"{title} — dmp-bridge")
            + Markup('<link rel="stylesheet" href="/static/dashboard.css">'))
    return (Markup("<!DOCTYPE html>\n")
            + tag("html", tag("head", head) + tag("body", header + main), lang="fr"))
