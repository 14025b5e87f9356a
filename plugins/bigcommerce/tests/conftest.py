"""Shared fixtures: the spec examples, a simulator factory, connections and a webhook receiver."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from alana_bigcommerce.adapter import BigCommerceAdapter
from alana_bigcommerce.simulator import BigCommerceSimulator

from gateway.adapter import Connection
from gateway.testing.kit import Receiver, local_http

#: BigCommerce's spec examples, copied into the package with their sources (fixtures/SOURCES.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures"

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

    def connect(
        sim: BigCommerceSimulator,
        credentials: dict[str, str] | None = None,
        store_url: str | None = None,
        **options: Any,
    ) -> Connection:
        conn = Connection(
            "test-integration",
            store_url or sim.store_url,
            credentials if credentials is not None else sim.credentials(),
            options=options,
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
    rec = Receiver("/webhooks/bigcommerce/test-integration")
    await rec.start()
    yield rec
    await rec.close()


def _api_calls(sim: BigCommerceSimulator, fragment: str) -> int:
    return sum(1 for path in sim.faults.paths if fragment in path.split("?")[0])


@pytest.fixture
def api_calls() -> Callable[[BigCommerceSimulator, str], int]:
    """api_calls(sim, fragment): how many API requests so far had `fragment` in their path."""
    return _api_calls


@pytest.fixture
def fixture_json() -> Callable[[str], Any]:
    """fixture_json(name): a file from tests/fixtures, parsed."""
    return load_fixture
