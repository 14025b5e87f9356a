"""Fixtures for the gateway's own tests: a Gateway on the real servers, the API on a real port, an
in-process arq worker, a toy store, and a GraphQL client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from gwtest import Api, make_settings
from pagekit import SCREENSHOTS, find_chromium, skip_reason

from gateway.api.app import create_app
from gateway.jobs import Workers
from gateway.services import Gateway
from gateway.simkit import free_port
from gateway.testing import toy


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line on the browser tests (tests/browser/). It lives here, not in tests/browser/conftest.py,
    because under pytest-xdist the process that prints the summary never loads that conftest."""
    reason = skip_reason()
    if reason:
        terminalreporter.write_line(f"browser tests SKIPPED: {reason}", yellow=True, bold=True)
    else:
        terminalreporter.write_line(f"browser tests used {find_chromium()}; screenshots in {SCREENSHOTS}/")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest_asyncio.fixture
async def gw(mongodb_url: str, redis_url: str, settings_overrides: dict[str, Any]) -> AsyncIterator[Gateway]:
    port = free_port()
    settings = make_settings(
        mongodb_url, redis_url, GATEWAY_PUBLIC_URL=f"http://127.0.0.1:{port}", **settings_overrides
    )
    gateway = await Gateway.create(settings)
    gateway._test_port = port  # type: ignore[attr-defined]
    try:
        yield gateway
    finally:
        await gateway.db.client.drop_database(settings.mongodb_database)
        await gateway.close()


@pytest_asyncio.fixture
async def api(gw: Gateway) -> AsyncIterator[Api]:
    port: int = gw._test_port  # type: ignore[attr-defined]
    # lingering_time=0: a test that stops uploading after a 413 (a body over the limit) would otherwise hold
    # the server's clean-up for aiohttp's 10 s of reading what never comes.
    runner = web.AppRunner(create_app(gw), access_log=None, lingering_time=0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as session:
        yield Api(f"http://127.0.0.1:{port}", session)
    await runner.cleanup()


@pytest_asyncio.fixture
async def worker(gw: Gateway) -> AsyncIterator[Workers]:
    """Every lane of a worker, in this process, on the test's Gateway (scheduler included)."""
    instance = Workers(gw)
    instance.start()
    yield instance
    await instance.stop()


@pytest_asyncio.fixture
async def toy_store() -> AsyncIterator[toy.ToySimulator]:
    sim = toy.ToySimulator(products=30)
    await sim.start()
    yield sim
    await sim.stop()
