"""Shared fixtures: the spec examples, a simulator factory, connections and a webhook receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from alana_bigcommerce.adapter import BigCommerceAdapter
from alana_bigcommerce.simulator import BigCommerceSimulator

from gateway.adapter import Connection
from gateway.simkit import free_port

#: /work/main/plugins/bigcommerce/tests -> the repository root's parent holds shared/.
FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "platforms" / "fixtures" / "bigcommerce"

#: Fast limits for tests that are not about the rate limit (the default 150 / 30 s paces at 4 req/s).
FAST = {"quota": 2000, "window_ms": 1000}


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def spec_product() -> dict[str, Any]:
    """spec_example_get_product_response.json, unwrapped from its envelope."""
    data: dict[str, Any] = load_fixture("spec_example_get_product_response.json")["data"]
    return data


@pytest.fixture
def spec_variants() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = load_fixture("spec_example_product_variants_response.json")["data"]
    return data


@pytest.fixture
def adapter() -> BigCommerceAdapter:
    return BigCommerceAdapter()


SimFactory = Callable[..., Awaitable[BigCommerceSimulator]]


@pytest_asyncio.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    """Start simulators (stopped after the test): make_sim(products, **options)."""
    started: list[BigCommerceSimulator] = []

    async def start(products: int = 300, seed: int = 7, **options: Any) -> BigCommerceSimulator:
        sim = BigCommerceSimulator(products, seed=seed, **{**FAST, **options})
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.stop()


ConnFactory = Callable[..., Connection]


@pytest_asyncio.fixture
async def make_conn() -> AsyncIterator[ConnFactory]:
    """Connections to a simulator (closed after the test): make_conn(sim, credentials=None, **options)."""
    made: list[Connection] = []

    def connect(sim: BigCommerceSimulator, credentials: dict[str, str] | None = None,
                store_url: str | None = None, **options: Any) -> Connection:
        conn = Connection("test-integration", store_url or sim.store_url,
                          credentials if credentials is not None else sim.credentials(), options=options)
        made.append(conn)
        return conn

    yield connect
    for conn in made:
        await conn.close()


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook endpoint on 127.0.0.1 that records what it receives."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self) -> list[Delivery]:
        taken, self.deliveries = self.deliveries, []
        self.arrived.clear()
        return taken


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        rec.deliveries.append(Delivery(dict(request.headers), await request.read()))
        rec.arrived.set()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/webhooks/bigcommerce/test-integration", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rec.url = f"http://127.0.0.1:{port}/webhooks/bigcommerce/test-integration"
    yield rec
    await runner.cleanup()


def _api_calls(sim: BigCommerceSimulator, fragment: str) -> int:
    return sum(1 for path in sim.faults.paths if fragment in path.split("?")[0])


@pytest.fixture
def api_calls() -> Callable[[BigCommerceSimulator, str], int]:
    """api_calls(sim, fragment): how many API requests so far had `fragment` in their path."""
    return _api_calls


@pytest.fixture
def fixture_json() -> Callable[[str], Any]:
    """fixture_json(name): a file from shared/platforms/fixtures/bigcommerce, parsed."""
    return load_fixture
