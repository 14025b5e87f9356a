"""Shared fixtures: the shared Shopify fixtures folder, simulators, connections that get closed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from alana_shopify.adapter import ShopifyAdapter
from alana_shopify.simulator import ShopifySimulator

from gateway.adapter import Connection, FetchRequest, Page
from gateway.testing.kit import local_http

#: Real Shopify payloads, copied into the package with their sources (fixtures/SOURCES.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: Bucket options for tests that are not about throttling: the cost model runs, but never waits long.
FAST = {"restore_rate": 1_000_000, "bucket_size": 2000}


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def load_fixture() -> Callable[[str], Any]:
    return lambda name: json.loads((FIXTURES / name).read_text())


@pytest.fixture
def fast() -> dict[str, Any]:
    return dict(FAST)


@pytest.fixture
def adapter() -> ShopifyAdapter:
    return ShopifyAdapter()


ConnFactory = Callable[..., Connection]


@pytest_asyncio.fixture
async def connect() -> AsyncIterator[ConnFactory]:
    """Build connections to a simulator; every one is closed after the test."""
    made: list[Connection] = []

    def make(sim: ShopifySimulator, credentials: dict[str, str] | None = None, **options: Any) -> Connection:
        settings = {"bulk_poll_interval": 0.01, "bulk_threshold": 0, **options}
        conn = Connection(
            "it-shopify", sim.store_url, credentials or sim.credentials(), options=settings, http_factory=local_http
        )
        made.append(conn)
        return conn

    yield make
    for conn in made:
        await conn.close()


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[ShopifySimulator]:
    """A 120-product shop (so the 150-variant product is there) that never throttles."""
    simulator = ShopifySimulator(120, **FAST)
    await simulator.start()
    yield simulator
    await simulator.stop()


Fetch = Callable[..., Awaitable[list[Page]]]


@pytest.fixture
def fetch_all(adapter: ShopifyAdapter) -> Fetch:
    """Every page of one fetch."""

    async def run(conn: Connection, request: FetchRequest | None = None) -> list[Page]:
        return [page async for page in adapter.fetch_products(conn, request or FetchRequest())]

    return run
