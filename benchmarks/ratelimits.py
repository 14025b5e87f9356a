"""Syncs whose speed the store's rate limit sets: how close to the limit's minimum do they finish?

The simulators run in this process here: their rate-limit bookkeeping (429s answered, cost spent) is
read directly, and the gateway spends most of these runs waiting on the budget, not computing. The
shared-bucket run has two worker processes and a webhook stream spending one shop's bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web

from benchmarks.common import gateway, settings_for, worker_process
from gateway.api.app import create_app
from gateway.constants import run_channel
from gateway.domain import RunStatus
from gateway.plugins import load_plugins
from gateway.runs import Run
from gateway.services import Gateway
from gateway.simkit import free_port


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


async def shopify_shared_bucket(
    mongodb_url: str, redis_url: str, products: int, webhooks_per_second: float
) -> dict[str, Any]:
    """A paginated full sync and a steady stream of product webhooks on one shop, worked by two worker
    processes that spend one bucket (gateway/ratebudget.py): no THROTTLED, and the run takes no longer
    than the bucket allows for the points both spent while it ran."""
    cls = load_plugins(["shopify"]).adapter("shopify").simulator()
    assert cls is not None
    port = free_port()
    settings = settings_for(
        mongodb_url, redis_url, GATEWAY_PUBLIC_URL=f"http://127.0.0.1:{port}", GATEWAY_WEBHOOK_COALESCE=0.5
    )
    sim: Any = cls(products=products, seed=5)  # Shopify's Standard-plan bucket: 2000 points, restoring 100/s
    await sim.start()
    updates = 0
    try:
        async with gateway(settings) as gw:
            runner = web.AppRunner(create_app(gw), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            env = {
                "GATEWAY_PUBLIC_URL": settings.public_url,
                "GATEWAY_WEBHOOK_COALESCE": "0.5",
                "GATEWAY_ALLOW_PRIVATE_URLS": "true",
                "GATEWAY_STORE_CONCURRENCY": str(settings.store_concurrency),
            }
            async with worker_process(settings, **env), worker_process(settings, **env):
                integration = await gw.integrations.connect(
                    "bench", "shopify", "bench", sim.store_url, sim.credentials(), options={"bulk_threshold": 0}
                )
                run_id = (await gw.runs.latest(integration.id, 1))[0].id
                ids = sim.product_ids()
                async with gw.hub.listen(run_channel(run_id)) as progress:
                    while await _status(gw, run_id) == RunStatus.QUEUED:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(progress.get(), 1.0)
                started = time.perf_counter()
                spent_before, bucket_at_start = sim.cost_spent, sim.bucket.available()
                # The webhook stream, for as long as the run runs.
                while await _status(gw, run_id) == RunStatus.RUNNING:
                    sim.update_product(ids[(updates * 7) % len(ids)])
                    updates += 1
                    await asyncio.sleep(1 / webhooks_per_second)
                run = await gw.runs.get_any(run_id)
                assert run is not None and run.started_at is not None and run.finished_at is not None
                elapsed = (run.finished_at - run.started_at).total_seconds()
                waited = time.perf_counter() - started
                spent = sim.cost_spent - spent_before
                await sim.drain_deliveries()
            await runner.cleanup()
    finally:
        await sim.stop()
    stats = sim.cost_stats()
    restore = float(stats["restore_rate"])
    minimum = max(0.0, (spent - bucket_at_start) / restore)
    return {
        "products": products,
        "status": run.status.value,
        "failure": run.failure,
        "failed": run.counts.failed,
        "workers": 2,
        "webhooks_during_run": updates,
        "webhooks_per_second": webhooks_per_second,
        "throttled_responses": int(stats["throttled_responses"]),
        "cost_spent_during_run": spent,
        "bucket": f"{stats['maximum_available']:g} points, restoring {restore:g}/s",
        "seconds": round(elapsed, 1),
        "seconds_seen_by_bench": round(waited, 1),
        "minimum_seconds": round(minimum, 1),
        "ratio_to_minimum": round(elapsed / minimum, 3) if minimum else None,
    }


async def _status(gw: Gateway, run_id: str) -> RunStatus | None:
    run = await gw.runs.get_any(run_id)
    return None if run is None else run.status
