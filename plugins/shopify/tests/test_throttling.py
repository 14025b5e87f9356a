"""Shopify's cost limit end to end: THROTTLED never reaches the engine; the client waits instead."""

from __future__ import annotations

from typing import Any

import pytest
from alana_shopify.adapter import ShopifyAdapter
from alana_shopify.client import ShopifyBudget
from alana_shopify.simulator import ShopifySimulator


@pytest.mark.parametrize("throttle_status", [200, 429])
async def test_throttled_never_surfaces(
    adapter: ShopifyAdapter, connect: Any, fetch_all: Any, throttle_status: int
) -> None:
    async with ShopifySimulator(60, bucket_size=1000, restore_rate=20_000, throttle_status=throttle_status) as shop:
        conn = connect(shop)
        # Another worker of the same app empties the bucket right before the first product page: the
        # client's model (learnt from its previous answer) is too optimistic once.
        shop.drain_bucket_before("products")
        pages = await fetch_all(conn)
        assert sorted(n["legacyResourceId"] for p in pages for n in p.items) == shop.product_ids()
        budget = conn.state["http"].budget
        assert isinstance(budget, ShopifyBudget)
        assert shop.stats["throttled"] >= 1 and budget.throttled == shop.stats["throttled"]
        assert budget.throttled <= 2  # after learning the bucket, it waits rather than being refused
        assert conn.state["http"].retries == budget.throttled  # each THROTTLED became one retry
        assert (budget.maximum, budget.restore_rate) == (1000, 20_000)


async def test_a_busy_bucket_slows_the_client_down(adapter: ShopifyAdapter, connect: Any, fetch_all: Any) -> None:
    # Each product page requests ~1000 points of a 1000-point bucket and is charged ~130 of them: every
    # full page after the first must wait for the refund and restore, never hitting THROTTLED.
    # The restore rate is slow enough (130 points take ~0.26 s) that no machine is slow enough between two
    # pages for the bucket to refill on its own: the wait is the client's, not the test machine's pace.
    async with ShopifySimulator(100, bucket_size=1000, restore_rate=500) as shop:
        conn = connect(shop, bulk_threshold=0)
        pages = await fetch_all(conn)
        assert len([n for p in pages for n in p.items]) == 100
        assert shop.stats["throttled"] == 0
        assert conn.state["http"].budget.waited > 0
