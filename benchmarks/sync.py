"""Full sync throughput against the raw bulk-upsert floor, unchanged re-sync, and worker peak RSS."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from pymongo import ReplaceOne

from benchmarks.common import gateway, settings_for, simulator, worker_process
from gateway.domain import RunKind, Trigger
from gateway.integration_store import Integration
from gateway.runs import Run


async def run_once(gw: Any, integration: Integration, kind: RunKind | None = None) -> tuple[float, Run]:
    if kind is not None:
        run, _ = await gw.syncs.queue(integration, Trigger.MANUAL, kind=kind)
    else:
        run = (await gw.runs.latest(integration.id, 1))[0]
    started = time.perf_counter()
    done = await gw.engine.run(run.id)
    elapsed = time.perf_counter() - started
    assert done is not None and done.status == "SUCCEEDED", done
    return elapsed, done


async def raw_floor(gw: Any, batch: int) -> tuple[float, int]:
    """Bulk-upsert the very documents the gateway wrote into a scratch collection: the floor."""
    docs = [d async for d in gw.db.products.find({})]
    scratch = gw.db.db[f"raw_floor_{batch}"]
    # The same indexes the products collection has, so the floor does the same index work.
    for name, spec in (await gw.db.products.index_information()).items():
        if name != "_id_":
            await scratch.create_index(spec["key"], unique=spec.get("unique", False))
    started = time.perf_counter()
    for i in range(0, len(docs), batch):
        chunk = docs[i : i + batch]
        await scratch.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in chunk], ordered=False)
    elapsed = time.perf_counter() - started
    await scratch.drop()
    return elapsed, len(docs)


async def full_sync(
    mongodb_url: str,
    redis_url: str,
    platform: str,
    products: int,
    sim_options: dict[str, Any],
    adapter_options: dict[str, Any],
) -> dict[str, Any]:
    settings = settings_for(mongodb_url, redis_url)
    async with simulator(platform, products, sim_options) as sim, gateway(settings) as gw:
        integration = await gw.integrations.connect(
            "bench", platform, "bench", sim.store_url, sim.credentials, options=adapter_options
        )
        full_s, run = await run_once(gw, integration)
        variants = 0
        async for doc in await gw.db.products.aggregate(
            [{"$project": {"n": {"$size": "$store.variants"}}}, {"$group": {"_id": None, "n": {"$sum": "$n"}}}]
        ):
            variants = int(doc["n"])
        integration = await gw.integrations.get("bench", integration.id)
        unchanged_s, unchanged = await run_once(gw, integration, RunKind.FULL)
        floors = {batch: await raw_floor(gw, batch) for batch in (100, 500)}
        best_floor_s = min(seconds for seconds, _ in floors.values())
        return {
            "platform": platform,
            "products": run.counts.added,
            "variants": variants,
            "full_seconds": round(full_s, 2),
            "products_per_second": round(run.counts.added / full_s, 1),
            "raw_floor_seconds": {str(b): round(s, 2) for b, (s, _) in floors.items()},
            "raw_floor_products_per_second": round(run.counts.added / best_floor_s, 1),
            "ratio_to_floor": round(best_floor_s / full_s, 3),
            "unchanged_seconds": round(unchanged_s, 2),
            "unchanged_fraction": round(unchanged_s / full_s, 3),
            "unchanged_counts": unchanged.counts.as_dict(),
        }


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


async def worker_memory(
    mongodb_url: str,
    redis_url: str,
    platform: str,
    products: int,
    sim_options: dict[str, Any],
    adapter_options: dict[str, Any],
) -> dict[str, Any]:
    """Peak RSS of a real `alana-gateway worker` process syncing a large catalog."""
    settings = settings_for(mongodb_url, redis_url)
    async with simulator(platform, products, sim_options) as sim, gateway(settings) as gw:
        async with worker_process(settings, GATEWAY_STORE_CONCURRENCY="8") as worker:
            started = time.perf_counter()
            integration = await gw.integrations.connect(
                "bench", platform, "bench", sim.store_url, sim.credentials, options=adapter_options
            )
            run_id = (await gw.runs.latest(integration.id, 1))[0].id
            while True:
                run = await gw.runs.get_any(run_id)
                assert run is not None
                if run.status in ("SUCCEEDED", "FAILED", "CANCELLED"):
                    break
                await asyncio.sleep(0.5)  # a benchmark poll, not a test wait
            elapsed = time.perf_counter() - started
            peak = _peak_rss_mb(worker.pid)
        return {
            "platform": platform,
            "products": run.counts.added,
            "status": run.status,
            "seconds": round(elapsed, 1),
            "worker_peak_rss_mb": round(peak, 1),
        }


async def queue_latency(mongodb_url: str, redis_url: str, runs: int) -> dict[str, Any]:
    """Time from Sync Now (queued) to the run starting on an idle `alana-gateway worker`."""
    settings = settings_for(mongodb_url, redis_url, GATEWAY_EXTRA_PLUGINS="gateway.testing.toy")
    async with simulator("toy", 20, {}) as sim, gateway(settings) as gw:
        delays: list[float] = []
        async with worker_process(settings, GATEWAY_EXTRA_PLUGINS="gateway.testing.toy"):
            integration = await gw.integrations.connect("bench", "toy", "q", sim.store_url, sim.credentials)
            for n in range(runs + 1):
                run: Run | None = (await gw.runs.latest(integration.id, 1))[0]
                run_id = run.id if run else ""
                while True:
                    run = await gw.runs.get_any(run_id)
                    assert run is not None
                    if run.status.finished:
                        break
                    await asyncio.sleep(0.05)  # a benchmark poll, not a test wait
                if n and run.started_at is not None:  # the first run waited for the worker to boot
                    delays.append((run.started_at - run.queued_at).total_seconds() * 1000)
                if n < runs:
                    await asyncio.sleep(0.3)  # the worker is idle again before the next Sync Now
                    await gw.syncs.sync_now("bench", integration.id, ["1"])
    from benchmarks.common import percentile

    return {
        "runs": len(delays),
        "queued_to_started_ms": {"p50": round(percentile(delays, 50), 1), "max": round(max(delays), 1)},
    }
