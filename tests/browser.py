"""A small headless Chromium driver for tests: the Chrome DevTools Protocol over a WebSocket,
with aiohttp's client (no Selenium, no Playwright, no new dependency).

    async with Browser.launch(tmp_path) as browser:
        await browser.goto("http://127.0.0.1:8790/")
        await browser.fill("#jeton", token)
        await browser.click_and_wait("button[type=submit]")
        assert "Accueil" in await browser.text()
        await browser.screenshot("accueil")

Screenshots go to `test-artefacts/screenshots/` at the repository's root.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artefacts" / "screenshots"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900", "--remote-debugging-port=0")
TIMEOUT = 30.0


class BrowserError(RuntimeError):
    """Chromium did not start, or a page did not do what the test expected."""


def chromium_path() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class Browser:
    """One page of a headless Chromium, driven over CDP."""

    def __init__(self, process: subprocess.Popen[bytes], session: aiohttp.ClientSession,
                 socket: aiohttp.ClientWebSocketResponse) -> None:
        self._process = process
        self._session = session
        self._socket = socket
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loads = 0
        self._loaded = asyncio.Condition()
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    # -- lifecycle ---------------------------------------------------------------------------
    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, profile: Path) -> AsyncIterator[Browser]:
        """Start Chromium with a fresh profile in `profile` (a temporary folder)."""
        executable = chromium_path()
        if executable is None:
            raise BrowserError("Chromium is not installed")
        profile.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(  # a list of arguments: no shell
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        session = aiohttp.ClientSession()
        browser = None
        try:
            port = await cls._port(profile / "DevToolsActivePort", process)
            page = await cls._page_target(session, port)
            socket = await session.ws_connect(page, max_msg_size=0)
            browser = cls(process, session, socket)
            await browser.send("Page.enable")
            await browser.send("Runtime.enable")
            yield browser
        finally:
            if browser is not None:
                await browser._close()
            await session.close()
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)

    @staticmethod
    async def _port(active_port: Path, process: subprocess.Popen[bytes]) -> int:
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while asyncio.get_running_loop().time() < deadline:
            if process.poll() is not None:
                raise BrowserError(f"Chromium exited with code {process.returncode}")
            with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
                return int(active_port.read_text().splitlines()[0])
            await asyncio.sleep(0.1)
        raise BrowserError("Chromium did not open its debugging port")

    @staticmethod
    async def _page_target(session: aiohttp.ClientSession, port: int) -> str:
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while asyncio.get_running_loop().time() < deadline:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            for target in targets:
                if target.get("type") == "page":
                    return str(target["webSocketDebuggerUrl"])
            await asyncio.sleep(0.1)
        raise BrowserError("Chromium has no page to drive")

    async def _close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._socket.close()

    # -- protocol ----------------------------------------------------------------------------
    async def _read(self) -> None:
        async for message in self._socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("method") == "Page.loadEventFired":
                async with self._loaded:
                    self._loads += 1
                    self._loaded.notify_all()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One CDP command; its result, or BrowserError with CDP's error."""
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        await self._socket.send_str(json.dumps({"id": command_id, "method": method,
                                                "params": params}))
        answer = await asyncio.wait_for(future, TIMEOUT)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    @contextlib.asynccontextmanager
    async def _navigation(self) -> AsyncIterator[None]:
        """Wait, after the body, for the next page load."""
        async with self._loaded:
            before = self._loads
        yield
        async with self._loaded:
            await asyncio.wait_for(self._loaded.wait_for(lambda: self._loads > before), TIMEOUT)

    # -- what a test does --------------------------------------------------------------------
    async def goto(self, url: str) -> None:
        async with self._navigation():
            result = await self.send("Page.navigate", url=url)
            if result.get("errorText"):
                raise BrowserError(f"navigation to {url} failed: {result['errorText']}")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serializable)."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    async def _element(self, selector: str, script: str) -> Any:
        found = json.dumps(selector)
        return await self.evaluate(
            f"(() => {{ const el = document.querySelector({found});"
            f" if (!el) throw new Error('no element ' + {found}); {script} }})()")

    async def fill(self, selector: str, value: str) -> None:
        """Type `value` into a field (as if pasted)."""
        await self._element(selector, f"el.value = {json.dumps(value)};"
                                      " el.dispatchEvent(new Event('input', {bubbles: true}));")

    async def select(self, selector: str, value: str) -> None:
        await self._element(selector, f"el.value = {json.dumps(value)};")

    async def click_and_wait(self, selector: str) -> None:
        """Click (a button of a form, a link) and wait for the page it leads to."""
        async with self._navigation():
            await self._element(selector, "el.click();")

    async def text(self) -> str:
        return str(await self.evaluate("document.body.innerText"))

    async def html(self) -> str:
        return str(await self.evaluate("document.documentElement.outerHTML"))

    async def url(self) -> str:
        return str(await self.evaluate("location.href"))

    async def screenshot(self, name: str) -> Path:
        """A PNG of the whole page in test-artefacts/screenshots/NAME.png."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        result = await self.send("Page.captureScreenshot", format="png",
                                 captureBeyondViewport=True)
        path = SCREENSHOTS / f"{name}.png"
        path.write_bytes(base64.b64decode(result["data"]))
        return path
