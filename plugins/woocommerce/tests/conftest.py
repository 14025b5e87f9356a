"""Shared fixtures: the official examples, a simulator factory, connections and a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from alana_woocommerce.adapter import WooCommerceAdapter
from alana_woocommerce.simulator import WooCommerceSimulator

from gateway.adapter import Connection
from gateway.testing.kit import Receiver, local_http

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
            http_factory=local_http,
        )
        made.append(conn)
        return conn

    yield connect
    for conn in made:
        await conn.close()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """The gateway kit's webhook endpoint on 127.0.0.1, recording what the simulator delivers."""
    rec = Receiver("/webhooks/woocommerce/test-integration")
    await rec.start()
    yield rec
    await rec.close()
