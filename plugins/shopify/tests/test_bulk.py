"""Bulk operations: stitching JSONL children onto parents, and full reads through the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from alana_shopify.adapter import ShopifyAdapter
from alana_shopify.bulk import (
    BulkReader,
    BulkUnavailable,
    Stitcher,
    download_allowed,
    parse_cursor,
    released_batches,
)
from alana_shopify.client import ShopifyGraphQL
from alana_shopify.queries import ProductQueries
from alana_shopify.simulator import ShopifySimulator

from gateway.adapter import FetchRequest
from gateway.errors import StoreRequestRefused
from gateway.httpclient import HttpClient
from gateway.simkit import free_port


def product(n: int) -> dict[str, Any]:
    return {"id": f"gid://shopify/Product/{n}", "title": f"P{n}"}


def child(kind: str, n: int, parent: int) -> dict[str, Any]:
    return {"id": f"gid://shopify/{kind}/{n}", "__parentId": f"gid://shopify/Product/{parent}"}


# ---- stitching (pure) ---------------------------------------------------------------------------------
def test_children_after_their_parent_but_not_directly() -> None:
    lines = [
        product(1),
        product(2),
        child("ProductVariant", 10, 1),
        product(3),
        child("MediaImage", 20, 2),
        child("ProductVariant", 11, 1),
        child("ProductVariant", 30, 3),
    ]
    stitcher = Stitcher(lookback=3)
    released = [p for batch in released_batches(lines, stitcher) for p in batch]
    assert [p["id"].rsplit("/", 1)[-1] for p in released] == ["1", "2", "3"]  # order kept
    assert [v["id"] for v in released[0]["variants"]["nodes"]] == [
        "gid://shopify/ProductVariant/10",
        "gid://shopify/ProductVariant/11",
    ]
    assert released[1]["media"]["nodes"][0]["id"] == "gid://shopify/MediaImage/20"
    assert released[1]["variants"] == {"nodes": []}
    assert all("__parentId" not in v for p in released for v in p["variants"]["nodes"])
    assert stitcher.late_parents == set()


def test_parents_are_released_as_the_stream_goes() -> None:
    stitcher = Stitcher(lookback=2)
    assert stitcher.add(product(1)) == [] and stitcher.add(product(2)) == []
    assert [p["title"] for p in stitcher.add(product(3))] == ["P1"]  # memory stays bounded


def test_a_child_later_than_the_window_is_remembered() -> None:
    stitcher = Stitcher(lookback=1)
    lines = [product(1), product(2), child("ProductVariant", 10, 1)]
    released = [p for batch in released_batches(lines, stitcher) for p in batch]
    assert len(released) == 2
    assert stitcher.late_parents == {"gid://shopify/Product/1"}  # re-read by id after the download


def test_cursor_and_url_rules() -> None:
    assert parse_cursor("bulk:gid://shopify/BulkOperation/5:250") == ("gid://shopify/BulkOperation/5", 250)
    assert parse_cursor("gql:abc") is None and parse_cursor("bulk:nope") is None
    assert download_allowed("https://storage.googleapis.com/x.jsonl", "https://shop.myshopify.com")
    assert download_allowed("http://127.0.0.1:9/_bulk/1.jsonl", "http://127.0.0.1:9")
    assert not download_allowed("http://169.254.169.254/latest", "http://127.0.0.1:9")
    # Any other HTTPS host is refused too (it used to be accepted), and plain HTTP to Shopify's storage.
    assert not download_allowed("https://evil.example/x.jsonl", "https://shop.myshopify.com")
    assert not download_allowed("http://storage.googleapis.com/x.jsonl", "https://shop.myshopify.com")
    assert download_allowed("https://cdn.example/x.jsonl", "https://shop.myshopify.com", ["https://cdn.example"])


# ---- a malicious store's result URL (issue 11, finding 3) ---------------------------------------------
@pytest_asyncio.fixture
async def metadata() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback "metadata service" that records what reached it."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text='{"id": "gid://shopify/Product/1", "secret": "instance-credentials"}\n')

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", hits
    await runner.cleanup()


@pytest_asyncio.fixture
async def evil_store(metadata: tuple[str, list[str]]) -> AsyncIterator[str]:
    """A store whose bulk result URL redirects to the metadata service."""
    target = f"{metadata[0]}/latest/meta-data/iam/security-credentials"

    async def result(request: web.Request) -> web.Response:
        raise web.HTTPFound(target)

    app = web.Application()
    app.router.add_get("/_bulk/1.jsonl", result)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_result_url_redirecting_elsewhere_is_refused(evil_store: str, metadata: tuple[str, list[str]]) -> None:
    # Private addresses allowed (as in tests and the demo): the redirect alone must be refused.
    async with HttpClient(evil_store, allow_private=True, backoff_base=0.001) as http:
        reader = BulkReader(ShopifyGraphQL(http), evil_store)
        with pytest.raises(StoreRequestRefused, match="not a host this platform downloads from"):
            _ = [line async for line in reader.lines(f"{evil_store}/_bulk/1.jsonl")]
        with pytest.raises(StoreRequestRefused, match="neither on Shopify's storage nor the store"):
            _ = [line async for line in reader.lines(f"{metadata[0]}/latest/meta-data")]
    # With the guard on (production), even the store's own loopback URL is refused.
    async with HttpClient(evil_store, allow_private=False) as http:
        reader = BulkReader(ShopifyGraphQL(http), evil_store)
        with pytest.raises(StoreRequestRefused, match="127.0.0.1"):
            _ = [line async for line in reader.lines(f"{evil_store}/_bulk/1.jsonl")]
    assert metadata[1] == []


# ---- through the simulator ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("group_objects", "lookback"),
    [(True, 20), (False, 20), (False, 3)],  # the last: children arrive after their parent was released
)
async def test_bulk_full_fetch_is_complete(
    adapter: ShopifyAdapter,
    sim: ShopifySimulator,
    connect: Any,
    fetch_all: Any,
    group_objects: bool,
    lookback: int,
) -> None:
    conn = connect(sim, bulk_threshold=100, bulk_page_size=50, bulk_group_objects=group_objects, bulk_lookback=lookback)
    pages = await fetch_all(conn)
    assert sim.stats["bulk_started"] == 1 and sim.stats["field:products"] == 0  # no paginated reads
    # A product re-read because of late children comes again later: the engine keeps the last one.
    latest = {n["legacyResourceId"]: n for p in pages for n in p.items}
    assert sorted(latest) == sim.product_ids()
    assert (sim.stats["field:nodes"] > 0) is (lookback < 10)
    catalog = sim.catalog.products
    for external_id, native in latest.items():
        expected = catalog[int(external_id)]
        assert [v["legacyResourceId"] for v in native["variants"]["nodes"]] == [str(v.id) for v in expected.variants]
        assert len(native["media"]["nodes"]) == len(expected.media)
    assert len(pages) >= 3 and all(p.total == 120 for p in pages)
    assert all(p.cursor is not None and p.cursor.startswith("bulk:") for p in pages[:-1])
    assert pages[-1].cursor is None
    context = await adapter.mapping_context(conn)
    mapped = [adapter.map_product(n, context) for n in latest.values()]
    assert sum(len(p.variants) for p in mapped) == sum(len(p.variants) for p in catalog.values())
    assert any(p.translations for p in mapped)


async def test_a_download_cut_off_midway_resumes_without_duplicates(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any, fetch_all: Any
) -> None:
    sim.break_next_download = True
    pages = await fetch_all(connect(sim, bulk_threshold=100, bulk_page_size=50, bulk_lookback=20))
    ids = [n["legacyResourceId"] for p in pages for n in p.items]
    assert sorted(ids) == sim.product_ids() and len(ids) == len(set(ids))
    assert sim.stats["downloads"] == 2


async def test_bulk_resumes_from_a_page_cursor(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any, fetch_all: Any
) -> None:
    conn = connect(sim, bulk_threshold=100, bulk_page_size=50, bulk_lookback=20)
    first = await fetch_all(conn)
    resumed = await fetch_all(conn, FetchRequest(cursor=first[0].cursor))
    ids = [n["legacyResourceId"] for n in first[0].items] + [n["legacyResourceId"] for p in resumed for n in p.items]
    assert sorted(ids) == sim.product_ids() and len(ids) == len(set(ids))
    assert sim.stats["bulk_started"] == 1  # the same operation's result was read again


async def test_bulk_resume_after_the_result_expired_reads_paginated(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any, fetch_all: Any
) -> None:
    conn = connect(sim, bulk_threshold=100, bulk_page_size=50, bulk_lookback=20)
    first = await fetch_all(conn)
    resume = parse_cursor(first[0].cursor or "")
    assert resume is not None
    gid, _ = resume
    sim.expire_bulk(gid)
    pages = await fetch_all(conn, FetchRequest(cursor=first[0].cursor))
    assert sorted(n["legacyResourceId"] for p in pages for n in p.items) == sim.product_ids()
    assert sim.stats["field:products"] > 0


async def test_bulk_already_running_falls_back_to_paginated(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any, fetch_all: Any
) -> None:
    conn = connect(sim, bulk_threshold=100)
    sim.bulk_paused = True
    other = BulkReader(adapter.graphql(conn), sim.store_url)
    await other.start(ProductQueries().bulk())  # someone else's export holds the shop's one slot
    pages = await fetch_all(conn)
    assert sorted(n["legacyResourceId"] for p in pages for n in p.items) == sim.product_ids()
    assert sim.stats["bulk_refused"] == 1 and sim.stats["field:products"] > 0
    sim.resume_bulk()


async def test_failed_bulk_operation_falls_back_to_paginated(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any, fetch_all: Any
) -> None:
    sim.fail_next_bulk = True
    pages = await fetch_all(connect(sim, bulk_threshold=100))
    assert sorted(n["legacyResourceId"] for p in pages for n in p.items) == sim.product_ids()
    assert sim.stats["bulk_started"] == 1 and sim.stats["field:products"] > 0


async def test_small_catalogs_and_incremental_runs_do_not_use_bulk(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any, fetch_all: Any
) -> None:
    await fetch_all(connect(sim, bulk_threshold=500))
    assert sim.stats["bulk_started"] == 0


async def test_simulator_refuses_invalid_bulk_queries(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any
) -> None:
    reader = BulkReader(adapter.graphql(connect(sim)), sim.store_url)
    with pytest.raises(BulkUnavailable, match="at least one connection"):
        await reader.start("{ shop { name } }")
    with pytest.raises(BulkUnavailable, match="doesn't exist"):
        await reader.start("{ products { edges { node { id nope } } } }")
