"""Browser tests: the Integrations page, GraphiQL and cross-origin access in a real Chromium.

Playwright for Python drives Debian's `chromium` (Playwright's own browser download cannot work on
these machines): GATEWAY_TEST_CHROMIUM, else `chromium` on PATH, else /usr/bin/chromium. Without a
Chromium (or without the playwright package) every test here is skipped and the run's summary says so
in one line; `.ci/run` installs Debian's chromium first, so CI always runs them.

The gateway under test is the real one (tests/conftest.py: `gw`, `api`, `worker`). Screenshots of
each state go to `.screenshots/<test>/` in the repository (GATEWAY_SCREENSHOTS moves them); the run's
summary prints the path. The tests wait on page events and selectors, never on time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pagekit import CHROMIUM_ARGS, GatedToy, PageProblems, Shots, find_chromium, skip_reason

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = skip_reason()
    if reason:
        for item in items:
            if HERE in Path(str(item.path)).parents:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


@pytest.fixture
def problems() -> Iterator[PageProblems]:
    found = PageProblems()
    yield found
    assert found.errors == [], found.errors


@pytest_asyncio.fixture
async def context(browser: Any) -> AsyncIterator[Any]:
    ctx = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    ctx.set_default_timeout(30_000)
    yield ctx
    await ctx.close()


@pytest_asyncio.fixture
async def page(context: Any, problems: PageProblems) -> Any:
    tab = await context.new_page()
    problems.attach(tab)
    return tab


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots.for_test(request.node.name)


@pytest_asyncio.fixture
async def gated_store() -> AsyncIterator[GatedToy]:
    sim = GatedToy(products=300)
    await sim.start()
    yield sim
    sim.open_gate()
    await sim.stop()
