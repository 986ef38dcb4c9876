"""Carte: the readers, the card, its holder and situations, and the PIN form.

The PIN is posted to this loopback listener only (CSRF token, Origin and Host checked), handed
to the card panel's `login` once and dropped: it is never logged, stored, echoed back in a page,
put in an address, or retried (a card blocks after a few wrong PINs). Every answer of this
dashboard says `Cache-Control: no-store`.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from service.dashboard.auth import session_of
from service.dashboard.context import DASHBOARD, redirect_with, render
from service.dashboard.html import Markup, hidden, join, tag
from service.dashboard.pages.home import reader_line
from service.dashboard.panels import ReaderView

log = structlog.get_logger("dmp_bridge.dashboard")

PIN_MAX_LENGTH = 16


def _situations(reader: ReaderView) -> Markup:
    if not reader.situations:
        return Markup("")
    items = [tag("li", s.label + (" (utilisée pour les envois)"
                                  if s.index == reader.chosen_situation else ""))
             for s in reader.situations]
    return tag("p", "Situations d'exercice de la carte :") + tag("ul", join(items))


def _tries(reader: ReaderView) -> Markup:
    if reader.pin_tries_left is None:
        return Markup("")
    if reader.pin_tries_left <= 1:
        return tag("p", "Attention : il ne reste qu'UN essai avant le blocage de la carte. "
                   "Vérifiez le code avant de le saisir.", class_="alerte erreur")
    return tag("p", f"Essais restants avant blocage : {reader.pin_tries_left}.", class_="aide")


def _situation_choice(reader: ReaderView) -> Markup:
    if len(reader.situations) <= 1:
        return Markup("")
    options = join(tag("option", s.label, value=str(s.index),
                       selected=s.index == reader.chosen_situation) for s in reader.situations)
    return (tag("label", "Situation d'exercice d'où partent les documents", for_="situation")
            + tag("select", options, name="situation", id="situation", required=True))


def _pin_form(reader: ReaderView, csrf: str) -> Markup:
    pin = Markup(f'<input type="password" name="pin" id="pin" required autocomplete="off" '
                 f'inputmode="numeric" maxlength="{PIN_MAX_LENGTH}">')
    fields = (hidden("csrf", csrf) + hidden("lecteur", reader.name) + _situation_choice(reader)
              + tag("label", "Code PIN de la carte", for_="pin") + pin
              + tag("button", "Valider le code", type="submit", class_="bouton"))
    return tag("form", fields, method="post", action="/carte/code", class_="code-pin",
               autocomplete="off")


def _reader(reader: ReaderView, csrf: str) -> Markup:
    parts = tag("p", reader_line(reader))
    if reader.warning:
        parts += tag("p", reader.warning, class_="alerte erreur")
    if reader.card_present:
        parts += _situations(reader)
        if reader.blocked:
            parts += tag("p", "La carte est bloquée : débloquez-la avec son code PUK (outil de "
                         "l'ANS ou de l'éditeur de la carte) avant de la réutiliser.",
                         class_="alerte erreur")
        elif not reader.logged_in:
            parts += _tries(reader) + _pin_form(reader, csrf)
    return tag("section", tag("h2", reader.name) + parts, class_="lecteur")


async def card_page(request: web.Request) -> web.Response:
    ctx = request.app[DASHBOARD]
    csrf = session_of(request).csrf
    if ctx.card is None:
        body = tag("p", "La passerelle n'utilise pas de carte CPS : elle envoie avec les "
                   "certificats de la structure (mode établissement, voir l'accueil).")
        return render(request, "Carte", body, current="/carte")
    readers = await ctx.run(ctx.card.readers)
    body = join(_reader(r, csrf) for r in readers) or tag(
        "p", "Aucun lecteur de carte détecté : branchez le lecteur, puis rechargez la page.")
    return render(request, "Carte", body, current="/carte")


async def submit_pin(request: web.Request) -> web.Response:
    ctx = request.app[DASHBOARD]
    form = await request.post()
    reader, situation_text = form.get("lecteur"), form.get("situation")
    if ctx.card is None or not isinstance(reader, str):
        raise redirect_with(request, "/carte", "Aucune carte à utiliser.", error=True)
    situation = int(situation_text) if isinstance(situation_text, str) and \
        situation_text.isdigit() else None
    pin = form.get("pin")
    if not isinstance(pin, str) or not pin or len(pin) > PIN_MAX_LENGTH:
        del pin
        raise redirect_with(request, "/carte", "Saisissez le code PIN de la carte.", error=True)
    try:
        error = await ctx.card.login(reader, pin, situation)
    finally:
        del pin  # dropped at once; the request's parsed form dies with the request
    log.info("dashboard_card_login", ok=error is None)
    if error is None:
        ctx.changed()  # documents waiting for the card may go now
        raise redirect_with(request, "/carte", "Carte connectée : les documents en attente de "
                            "la carte vont partir.")
    raise redirect_with(request, "/carte", error, error=True)
