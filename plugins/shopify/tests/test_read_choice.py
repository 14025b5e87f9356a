"""Bulk operation or paginated queries, chosen by estimated time (cost.choose_read), not by product count."""

from __future__ import annotations

from typing import Any

import pytest
from alana_shopify.adapter import ShopifyAdapter
from alana_shopify.bulk import BulkReader
from alana_shopify.cost import BucketState, BulkOverhead, ReadPlan, ReadSample, choose_read, paginated_seconds
from alana_shopify.queries import ProductQueries
from alana_shopify.simulator import ShopifySimulator

#: Shopify's Standard plan: a 2000-point bucket restoring 100 points a second (docs/reference/PLATFORMS.md).
STANDARD = BucketState(available=2000, maximum=2000, restore_rate=100)
#: 10 products with 30 variants each, read in 11 requests of 50 ms, charged 38 points a product.
MANY_VARIANTS = ReadSample(products=10, cost=380, requests=11, seconds=0.55)
#: 10 plain products, one request.
PLAIN = ReadSample(products=10, cost=80, requests=1, seconds=0.05)
OVERHEAD = BulkOverhead(latency=0.05, poll_interval=2.0, start=3.0)


# ---- the decision (pure) ------------------------------------------------------------------------------
def test_a_400_product_many_variant_store_goes_bulk() -> None:
    plan = choose_read(390, MANY_VARIANTS, STANDARD, OVERHEAD)
    # 390 x 38 points, 2000 of them in the bucket, the rest at 100/s: about two minutes.
    assert plan.paginated_seconds == pytest.approx((390 * 38 - 2000) / 100)
    assert plan.bulk_seconds == pytest.approx(3.0 + 2.0 + 3 * 0.05)
    assert plan.bulk and plan.remaining == 390
    assert "bulk operation" in plan.describe() and "128.2 s" in plan.describe()


def test_a_catalog_the_bucket_pays_at_once_stays_paginated() -> None:
    # 40 more products of 38 points fit in the bucket: only the round trips count, 44 of 50 ms.
    plan = choose_read(40, MANY_VARIANTS, STANDARD, OVERHEAD)
    assert plan.paginated_seconds == pytest.approx(40 * 1.1 * 0.05)
    assert not plan.bulk


def test_product_count_alone_does_not_decide() -> None:
    # 5000 plain products: cheap per product, but the bucket still sets the pace.
    assert choose_read(5000, PLAIN, STANDARD, OVERHEAD).bulk
    # The same catalog on a plan that restores 2000 points a second: the round trips set the pace.
    fast = BucketState(available=40_000, maximum=40_000, restore_rate=2000)
    assert paginated_seconds(5000, PLAIN, fast) == pytest.approx(500 * 0.05)
    assert choose_read(5000, PLAIN, fast, OVERHEAD).bulk
    assert not choose_read(800, PLAIN, fast, OVERHEAD).bulk  # 80 requests, 4 s


def test_the_bucket_state_counts() -> None:
    full = choose_read(60, MANY_VARIANTS, STANDARD, OVERHEAD)
    drained = choose_read(60, MANY_VARIANTS, BucketState(available=0, maximum=2000, restore_rate=100), OVERHEAD)
    assert not full.bulk and drained.bulk  # another app emptied the bucket: 22.8 s of waiting, not 3.3 s
    assert drained.paginated_seconds == pytest.approx(60 * 38 / 100)


def test_a_slower_bulk_start_takes_more_to_be_worth_it() -> None:
    sample = ReadSample(products=10, cost=380, requests=11, seconds=0.55)
    slow_start = BulkOverhead(latency=0.05, start=60.0)
    assert not choose_read(200, sample, STANDARD, slow_start).bulk  # 56 s of waiting against 62 s
    assert choose_read(400, sample, STANDARD, slow_start).bulk


def test_nothing_left_to_read_is_never_bulk() -> None:
    assert choose_read(0, MANY_VARIANTS, STANDARD, OVERHEAD) == ReadPlan(False, 0, 0.0, OVERHEAD.seconds)
    assert not choose_read(100, ReadSample(0, 0, 0, 0), STANDARD, OVERHEAD).bulk


# ---- on the simulator ---------------------------------------------------------------------------------
async def many_variant_shop(products: int, variants: int, **options: Any) -> ShopifySimulator:
    shop = ShopifySimulator(0, **options)
    for n in range(products):
        shop.create_product(title=f"Sweater {n}", variants=variants, sku=f"SW-{n}")
    await shop.start()
    return shop


async def test_a_small_many_variant_store_goes_bulk_when_the_estimate_says_so(
    adapter: ShopifyAdapter, connect: Any, fetch_all: Any
) -> None:
    # 30 products of 80 variants on a bucket restoring 10 points a second: paginated queries would wait
    # about a minute for the bucket, a bulk operation takes seconds.
    shop = await many_variant_shop(30, 80, restore_rate=10)
    try:
        conn = connect(shop, bulk_threshold=None)
        pages = await fetch_all(conn)
        plan = conn.state["shopify_read_plan"]
        assert plan.bulk and plan.paginated_seconds > plan.bulk_seconds
        assert shop.stats["bulk_started"] == 1
        assert shop.stats["field:products"] == 1  # the first page the estimate was measured on, no more
        natives = {n["legacyResourceId"]: n for p in pages for n in p.items}
        assert sorted(natives) == shop.product_ids() and sum(len(p.items) for p in pages) == 30
        assert all(len(n["variants"]["nodes"]) == 80 for n in natives.values())
    finally:
        await shop.stop()


async def test_the_same_store_on_a_bucket_that_pays_stays_paginated(
    adapter: ShopifyAdapter, connect: Any, fetch_all: Any
) -> None:
    shop = await many_variant_shop(30, 80, restore_rate=1_000_000)
    try:
        conn = connect(shop, bulk_threshold=None)
        pages = await fetch_all(conn)
        assert not conn.state["shopify_read_plan"].bulk and shop.stats["bulk_started"] == 0
        ids = [n["legacyResourceId"] for p in pages for n in p.items]
        assert ids == shop.product_ids()  # the first page is kept, and read once
    finally:
        await shop.stop()


async def test_bulk_chosen_but_unavailable_goes_on_after_the_first_page(
    adapter: ShopifyAdapter, connect: Any, fetch_all: Any
) -> None:
    shop = await many_variant_shop(30, 80, restore_rate=1_000_000, bulk_paused=True)
    try:
        # A bulk operation that Shopify starts at once is worth even the round trips of a paying bucket.
        conn = connect(shop, bulk_threshold=None, bulk_start_seconds=0.0)
        # Someone else's export holds the shop's one bulk slot.
        await BulkReader(adapter.graphql(connect(shop)), shop.store_url).start(ProductQueries().bulk())
        pages = await fetch_all(conn)
        assert conn.state["shopify_read_plan"].bulk and shop.stats["bulk_refused"] == 1
        ids = [n["legacyResourceId"] for p in pages for n in p.items]
        assert ids == shop.product_ids()  # the first page once, then the rest paginated
    finally:
        shop.resume_bulk()
        await shop.stop()
