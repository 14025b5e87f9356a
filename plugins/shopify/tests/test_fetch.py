"""Reading products from the running simulator: credentials, paginated, incremental, by id, faults."""

from __future__ import annotations

from typing import Any

import pytest
from alana_shopify.adapter import ShopifyAdapter, since_query
from alana_shopify.simulator import ShopifySimulator

from gateway.adapter import FetchMode, FetchRequest
from gateway.errors import MappingError, StoreAuthError, StorePayloadError


def variant_count(native: dict[str, Any]) -> int:
    return len(native["variants"]["nodes"])


async def test_credentials_good_and_bad(adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any) -> None:
    await adapter.check_credentials(connect(sim))
    wrong = connect(sim, {"access_token": "shpat_wrong", "client_secret": sim.client_secret})
    with pytest.raises(StoreAuthError):
        await adapter.check_credentials(wrong)
    with pytest.raises(StoreAuthError):
        await adapter.check_credentials(connect(sim, {"client_secret": "x"}))


async def test_mapping_context_reads_currency_and_published_locales(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any
) -> None:
    context = await adapter.mapping_context(connect(sim))
    assert context.currency == "USD" and context.default_locale == "en"
    assert context.extra["locales"] == ["fr", "de"]  # "es" exists but is not published


async def test_paginated_full_fetch_is_complete(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any, fetch_all: Any
) -> None:
    conn = connect(sim, bulk_threshold=0)
    assert await adapter.count_products(conn, FetchRequest()) == 120
    pages = await fetch_all(conn)
    natives = [n for p in pages for n in p.items]
    assert [n["legacyResourceId"] for n in natives] == sim.product_ids()
    catalog = sim.catalog.products
    assert all(variant_count(n) == len(catalog[int(n["legacyResourceId"])].variants) for n in natives)
    assert all(p.total == 120 for p in pages)
    assert [p.cursor is None for p in pages] == [False] * (len(pages) - 1) + [True]
    assert all(80 <= len(p.items) <= 120 for p in pages[:-1])  # several GraphQL pages per engine Page
    context = await adapter.mapping_context(conn)
    products = [adapter.map_product(n, context) for n in natives]
    assert sum(len(p.variants) for p in products) == sum(len(p.variants) for p in catalog.values())
    assert sim.stats["bulk_started"] == 0 and sim.stats["throttled"] == 0


async def test_a_paginated_fetch_resumes_after_a_page(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any, fetch_all: Any
) -> None:
    conn = connect(sim, page_target=30)
    first = await fetch_all(conn)
    resumed = await fetch_all(conn, FetchRequest(cursor=first[0].cursor))
    seen = [n["legacyResourceId"] for n in first[0].items] + [n["legacyResourceId"] for p in resumed for n in p.items]
    assert seen == sim.product_ids()


async def test_product_with_150_variants_arrives_whole(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any, fetch_all: Any
) -> None:
    big = next(p for p in sim.catalog.products.values() if len(p.variants) == 150)
    conn = connect(sim)
    pages = await fetch_all(conn, FetchRequest(mode=FetchMode.IDS, ids=(str(big.id),)))
    [native] = pages[0].items
    assert variant_count(native) == 150 and len(native["media"]["nodes"]) == 15
    product = adapter.map_product(native, await adapter.mapping_context(conn))
    assert sorted(v.external_id for v in product.variants) == sorted(str(v.id) for v in big.variants)
    assert [o.value for o in product.variants[-1].options] == ["6XL", "Ivory"]
    assert sim.stats["field:product"] >= 2  # follow-up queries for the variants, then the media


async def test_incremental_after_ten_edits_returns_those_ten(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any, fetch_all: Any
) -> None:
    since = sim.catalog.now
    edited = sim.product_ids()[5:105:10]
    for external_id in edited:
        sim.update_product(external_id)
    request = FetchRequest(mode=FetchMode.SINCE, since=since)
    conn = connect(sim)
    assert await adapter.count_products(conn, request) == 10
    pages = await fetch_all(conn, request)
    returned = [n["legacyResourceId"] for p in pages for n in p.items]
    assert returned == edited  # oldest change first (sortKey UPDATED_AT)
    assert since_query(since) == "updated_at:>='2025-06-01T00:20:10Z'"


async def test_ids_with_a_deleted_and_a_malformed_id(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any, fetch_all: Any
) -> None:
    keep = sim.product_ids()[:3]
    gone = sim.product_ids()[3]
    sim.delete_product(gone)
    request = FetchRequest(mode=FetchMode.IDS, ids=(*keep, gone, "not-an-id"))
    pages = await fetch_all(connect(sim), request)
    assert [n["legacyResourceId"] for p in pages for n in p.items] == keep
    assert sorted(i for p in pages for i in p.missing_ids) == sorted([gone, "not-an-id"])


async def test_faults_are_retried_and_malformed_products_isolated(
    adapter: ShopifyAdapter, connect: Any, fetch_all: Any, fast: dict[str, Any]
) -> None:
    async with ShopifySimulator(40, **fast) as shop:
        broken = shop.product_ids()[7]
        shop.faults.set(every_nth_429=4, burst_500=2, truncate_next=2, malformed_ids=[broken])
        conn = connect(shop)
        conn.state["http"] = adapter.http(conn)
        conn.state["http"].backoff_base = 0.001  # keep the retries' backoff short
        pages = await fetch_all(conn)
        natives = [n for p in pages for n in p.items]
        assert len(natives) == 40
        assert shop.faults.injected_429 > 0 and shop.faults.injected_500 == 2
        context = await adapter.mapping_context(conn)
        failed = []
        for native in natives:
            try:
                adapter.map_product(native, context)
            except MappingError as exc:
                failed.append(exc.external_id)
        assert failed == [broken]


async def test_query_errors_surface_with_shopifys_message(
    adapter: ShopifyAdapter, sim: ShopifySimulator, connect: Any
) -> None:
    gql = adapter.graphql(connect(sim))
    with pytest.raises(StorePayloadError, match="Field 'bogus' doesn't exist on type 'Product'"):
        await gql.execute("{ products(first: 1) { nodes { id bogus } } }")
    with pytest.raises(StorePayloadError, match="you must provide one of first or last"):
        await gql.execute("{ products { nodes { id } } }")
