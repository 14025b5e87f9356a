"""Syncs whose speed the store's rate limit sets: how close to the limit's minimum do they finish?

The simulators run in this process here: their rate-limit bookkeeping (429s answered, cost spent) is
read directly, and the gateway spends most of these runs waiting on the budget, not computing.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import gateway, settings_for
from gateway.plugins import load_plugins
from gateway.runs import Run


async def _sync(
    mongodb_url: str, redis_url: str, platform: str, sim: Any, options: dict[str, Any]
) -> tuple[float, Run]:
    settings = settings_for(mongodb_url, redis_url)
    async with gateway(settings) as gw:
        integration = await gw.integrations.connect(
            "bench", platform, "bench", sim.store_url, sim.credentials(), options=options
        )
        run = (await gw.runs.latest(integration.id, 1))[0]
        started = time.perf_counter()
        done = await gw.engine.run(run.id)
        elapsed = time.perf_counter() - started
        assert done is not None
        return elapsed, done


async def bigcommerce_quota(mongodb_url: str, redis_url: str, products: int, quick: bool) -> dict[str, Any]:
    """A full sync under a quota low enough to bind, with other apps spending part of it."""
    cls = load_plugins(["bigcommerce"]).adapter("bigcommerce").simulator()
    assert cls is not None
    quota, window_ms, others = (30, 3_000, 0.2) if quick else (30, 30_000, 0.2)
    sim = cls(products=products, seed=5, quota=quota, window_ms=window_ms, other_apps_share=others)
    await sim.start()
    try:
        requests_before = sim.faults.api_requests
        elapsed, run = await _sync(mongodb_url, redis_url, "bigcommerce", sim, {"quota_share": 1 - others})
        requests = sim.faults.api_requests - requests_before
    finally:
        await sim.stop()
    # What the quota allows: the share other apps leave us each window, the first window at once.
    per_window = quota * (1 - others)
    windows = max(0.0, (requests - per_window) / per_window)
    minimum = windows * window_ms / 1000
    return {
        "products": run.counts.added,
        "status": run.status,
        "requests": requests,
        "quota": f"{quota} per {window_ms / 1000:g} s, other apps spending {others:.0%}",
        "responses_429": getattr(sim, "rate_limited", "n/a"),
        "seconds": round(elapsed, 1),
        "minimum_seconds": round(minimum, 1),
        "ratio_to_minimum": round(elapsed / minimum, 3) if minimum else None,
    }


async def shopify_paginated(mongodb_url: str, redis_url: str, products: int) -> dict[str, Any]:
    """A paginated (not bulk) sync with the bucket at Shopify's Standard-plan figures."""
    cls = load_plugins(["shopify"]).adapter("shopify").simulator()
    assert cls is not None
    sim = cls(products=products, seed=5)
    await sim.start()
    try:
        elapsed, run = await _sync(mongodb_url, redis_url, "shopify", sim, {"bulk_threshold": 10**9})
        stats = sim.cost_stats() if hasattr(sim, "cost_stats") else {}
    finally:
        await sim.stop()
    spent = float(stats.get("actual_cost_total", 0.0))
    bucket = float(stats.get("maximum_available", 2000.0))
    restore = float(stats.get("restore_rate", 100.0))
    minimum = max(0.0, (spent - bucket) / restore)
    return {
        "products": run.counts.added,
        "status": run.status,
        "failed": run.counts.failed,
        "throttled_errors": sum(1 for e in run.errors if "THROTTLED" in e.message),
        "throttled_responses": stats.get("throttled_responses", "n/a"),
        "cost_spent": spent,
        "bucket": f"{bucket:g} points, restoring {restore:g}/s",
        "seconds": round(elapsed, 1),
        "minimum_seconds": round(minimum, 1),
        "ratio_to_minimum": round(elapsed / minimum, 3) if minimum else None,
    }
