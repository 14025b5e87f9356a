"""Helpers for the browser tests (tests/browser/): finding Chromium, screenshots, signing in, a toy store
that holds a run half-way, an accessibility audit. Importable because pytest puts tests/ on sys.path."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.testing.toy import ToySimulator

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("GATEWAY_SCREENSHOTS") or REPO / ".screenshots")


def find_chromium() -> str | None:
    """GATEWAY_TEST_CHROMIUM when set (a path that is not there turns the browser tests off), else Debian's."""
    named = os.environ.get("GATEWAY_TEST_CHROMIUM")
    candidates = [named] if named else [shutil.which("chromium"), "/usr/bin/chromium"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if find_chromium() is None:
        named = os.environ.get("GATEWAY_TEST_CHROMIUM")
        if named:
            return f"GATEWAY_TEST_CHROMIUM={named} is not an executable"
        return "no Chromium found (apt-get install chromium, or set GATEWAY_TEST_CHROMIUM)"
    return None


class PageProblems:
    """Script errors and Content-Security-Policy violations pages reported (a test fails on any)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def attach(self, page: Any) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"script error: {exc}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.errors.append(f"CSP: {message.text}")


class Shots:
    """`await shots(page, "label")` saves <folder>/<nn>-<label>.png of the whole page."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_test(cls, name: str) -> Shots:
        return cls(SCREENSHOTS / re.sub(r"[^A-Za-z0-9_.-]+", "-", name))

    async def __call__(self, page: Any, label: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{label}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path


async def sign_in(page: Any, url: str, token: str) -> None:
    """Open the page and sign in as a person does: paste the token, press Enter; wait until live."""
    await page.goto(url)
    field = page.get_by_label("API token")
    await field.fill(token)
    await field.press("Enter")
    await page.locator("#live-status[data-state=live]").wait_for()


def card(page: Any, name: str, status: str | None = None) -> Any:
    """The card of the store called `name` (only while its light shows `status`, when given)."""
    selector = "article.card" if status is None else f"article.card[data-status={status}]"
    return page.locator(selector).filter(has=page.get_by_role("heading", name=name, exact=True))


async def axe_audit(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now ("id: target" lines)."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {', '.join(str(n['target']) for n in v['nodes'][:5])}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


class GatedToy(ToySimulator):
    """A toy store whose product pages from `hold_from_page` on wait while the gate is closed, so a test
    can look at a run in the middle (bar part-way, light yellow) without depending on time."""

    def __init__(self, products: int = 300, **options: Any) -> None:
        super().__init__(products, **options)
        self.gate = asyncio.Event()
        self.gate.set()
        self.hold_from_page = 2

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.middlewares.append(self._hold)
        return app

    @web.middleware
    async def _hold(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/api/products" and "page" in request.query:
            if int(request.query["page"]) >= self.hold_from_page:
                await self.gate.wait()
        response: web.StreamResponse = await handler(request)
        return response

    def close_gate(self, from_page: int = 2) -> None:
        self.hold_from_page = from_page
        self.gate.clear()

    def open_gate(self) -> None:
        self.gate.set()
