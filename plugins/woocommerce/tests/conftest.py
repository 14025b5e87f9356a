"""Shared fixtures: the official examples, a simulator factory, connections and a webhook receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from alana_woocommerce.adapter import WooCommerceAdapter
from alana_woocommerce.simulator import WooCommerceSimulator
from multidict import CIMultiDict

from gateway.adapter import Connection
from gateway.simkit import free_port

#: Retries as fast as possible: tests about faults must not sit in backoff sleeps.
FAST_RETRIES = {"backoff_base": 0.001, "backoff_cap": 0.01}


@pytest.fixture
def adapter() -> WooCommerceAdapter:
    return WooCommerceAdapter()


SimFactory = Callable[..., Awaitable[WooCommerceSimulator]]


@pytest_asyncio.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    """Start simulators (stopped after the test): make_sim(products, **options)."""
    started: list[WooCommerceSimulator] = []

    async def start(products: int = 250, seed: int = 7, **options: Any) -> WooCommerceSimulator:
        sim = WooCommerceSimulator(products, seed=seed, **options)
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

    def connect(sim: WooCommerceSimulator, credentials: dict[str, str] | None = None, **options: Any) -> Connection:
        conn = Connection(
            "test-integration",
            sim.store_url,
            credentials if credentials is not None else sim.credentials(),
            options={**FAST_RETRIES, **options},
        )
        made.append(conn)
        return conn

    yield connect
    for conn in made:
        await conn.close()


@dataclass
class Delivery:
    headers: CIMultiDict[str]
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

    def topic(self, topic: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.headers.get("X-WC-Webhook-Topic") == topic]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        rec.deliveries.append(Delivery(CIMultiDict(request.headers), await request.read()))
        rec.arrived.set()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/webhooks/woocommerce/test-integration", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rec.url = f"http://127.0.0.1:{port}/webhooks/woocommerce/test-integration"
    yield rec
    await runner.cleanup()
