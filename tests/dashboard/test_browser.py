"""The dashboard in a real headless Chromium: sign in with the token, see why a document is
held, send it in one click, log a card in; a page of another site cannot act for the user.
Screenshots: test-artefacts/screenshots/dashboard-*.png."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bridge.jobs import JobState
from connectors.sqlite_store import SqliteStore
from service.dashboard import DashboardServer
from service.dispatcher import Dispatcher
from service.simulator.server import RunningSimulator
from tests.browser import Browser, chromium_path
from tests.dashboard.conftest import TOKEN, queue, registered, to_confirm
from tests.dashboard.panels import CARD_PIN, EmulatedCard

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="Chromium is not installed")


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    async with Browser.launch(tmp_path / "chromium") as opened:
        yield opened


async def sign_in(browser: Browser, dashboard: DashboardServer) -> None:
    await browser.goto(dashboard.url)
    assert (await browser.url()).endswith("/connexion")
    await browser.fill("#jeton", TOKEN)
    await browser.click_and_wait("form.connexion button[type=submit]")
    assert await browser.url() == dashboard.url


async def test_a_nurse_signs_in_sees_why_a_document_waits_and_sends_it(
        browser: Browser, dashboard: DashboardServer, store: SqliteStore,
        dispatcher: Dispatcher, simulator: RunningSimulator) -> None:
    job = queue(store, "a-confirmer", to_confirm())
    await dispatcher.run_once()
    await sign_in(browser, dashboard)
    text = await browser.text()
    assert "File d'attente" in text and "Conservation vérifiée" in text
    await browser.screenshot("dashboard-accueil")

    await browser.click_and_wait('a[href="/documents?etat=held"]')
    await browser.click_and_wait(f'a[href="/documents/{job.id}"]')
    text = await browser.text()
    held = store.get(job.id)
    assert held is not None and held.state is JobState.HELD
    assert "Pourquoi ce document attend" in text and (held.last_error_fr or "?") in text
    await browser.screenshot("dashboard-document-en-attente")

    await browser.click_and_wait(f'form[action="/documents/{job.id}/confirmer"] button')
    text = await browser.text()
    assert "information confirmée avec le patient" in text
    assert "en attente d'envoi" in text  # queued, with its timeline line
    assert "RELEASED_BY_USER" in text
    await dispatcher.run_once()
    await browser.goto(f"{dashboard.url}documents/{job.id}")
    text = await browser.text()
    assert "enregistré dans le DMP" in text and "Métadonnées envoyées au DMP" in text
    assert registered(simulator) == 1
    await browser.screenshot("dashboard-document-envoye")


async def test_the_pin_typed_in_the_page_logs_the_card_in_and_stays_out_of_the_page(
        browser: Browser, dashboard: DashboardServer, card: EmulatedCard) -> None:
    await sign_in(browser, dashboard)
    await browser.goto(f"{dashboard.url}carte")
    await browser.screenshot("dashboard-carte-code")
    await browser.select("#situation", "1")
    await browser.fill("#pin", CARD_PIN)
    await browser.click_and_wait("form.code-pin button[type=submit]")
    text = await browser.text()
    assert "Carte connectée" in text and "code PIN validé" in text
    assert card.logged_in and card.chosen == 1 and card.logins == 1
    assert CARD_PIN not in await browser.html()
    await browser.screenshot("dashboard-carte-connectee")


@pytest.fixture
async def other_site() -> AsyncIterator[tuple[str, list[str]]]:
    """A page of another site on this computer (another port of 127.0.0.1) that posts a form to
    the dashboard as soon as it opens; its address, and where to put the form."""
    pages: list[str] = []

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(text=pages[-1], content_type="text/html")

    app = web.Application()
    app.router.add_get("/", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/", pages
    finally:
        await runner.cleanup()


async def test_a_page_of_another_site_cannot_cancel_a_document_in_the_user_s_name(
        browser: Browser, dashboard: DashboardServer, store: SqliteStore,
        dispatcher: Dispatcher, other_site: tuple[str, list[str]]) -> None:
    job = queue(store, "a-confirmer", to_confirm())
    await dispatcher.run_once()
    await sign_in(browser, dashboard)
    address, pages = other_site
    # 127.0.0.1 on another port is the same "site": the SameSite cookie goes along, so the
    # Origin check and the CSRF token are what stop this.
    pages.append(f'<form id="f" method="post" action="{dashboard.url}documents/{job.id}/annuler">'
                 '<input name="csrf" value="devine"></form>'
                 '<script>document.getElementById("f").submit()</script>')
    await browser.goto(address)
    await browser.evaluate("new Promise(r => setTimeout(r, 50))")
    for _ in range(100):
        if "Requête refusée" in await browser.text():
            break
        await browser.evaluate("new Promise(r => setTimeout(r, 50))")
    assert "ne vient pas d'une page du tableau de bord" in await browser.text()
    held = store.get(job.id)
    assert held is not None and held.state is JobState.HELD
