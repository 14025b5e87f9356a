"""Shopify full sync of a many-variant store: paginated queries, a bulk operation, and the adapter's choice.

Each run syncs a fresh simulated shop (so each starts with a full bucket) of `products` products with
`variants` variants each, through the whole engine, on the simulator's calculated costs with the
Standard plan's bucket (2000 points restoring 100/s) and the adapter's default bulk polling (2 s):
- "paginated": forced with bulk_threshold=0;
- "bulk": forced with bulk_threshold=1;
- "chosen": the default, where the adapter measures a first page and chooses (cost.choose_read).
The target (issue 15): the chosen path within 1.15 x the faster path's minimum.
"""

from __future__ import annotations

import statistics
from typing import Any

from alana_shopify.simulator import ShopifySimulator

from benchmarks.ratelimits import _sync

PATHS: dict[str, dict[str, Any]] = {
    "paginated": {"bulk_threshold": 0},
    "bulk": {"bulk_threshold": 1},
    "chosen": {},
}


async def _run(mongodb_url: str, redis_url: str, products: int, variants: int, options: dict[str, Any]) -> Any:
    sim = ShopifySimulator(products=0, seed=5)  # the Standard bucket: 2000 points, restoring 100/s
    for n in range(products):
        sim.create_product(title=f"Sweater {n + 1}", variants=variants, sku=f"SW-{n + 1}", price="49.90")
    await sim.start()
    try:
        elapsed, run = await _sync(mongodb_url, redis_url, "shopify", sim, options)
        stats = sim.cost_stats()
        used_bulk = sim.stats["bulk_started"] > 0
    finally:
        await sim.stop()
    assert run.status == "SUCCEEDED" and run.counts.added == products, run
    return elapsed, used_bulk, stats["actual_cost_total"], stats["throttled_responses"]


async def compare(
    mongodb_url: str, redis_url: str, products: int, variants: int, runs: dict[str, int]
) -> dict[str, Any]:
    result: dict[str, Any] = {"products": products, "variants_per_product": variants, "bucket": "2000 points, 100/s"}
    minimum: dict[str, float] = {}
    for path, options in PATHS.items():
        seconds: list[float] = []
        chose: set[str] = set()
        cost = throttled = 0.0
        for _ in range(runs[path]):
            elapsed, used_bulk, cost, throttled = await _run(mongodb_url, redis_url, products, variants, options)
            seconds.append(elapsed)
            chose.add("bulk" if used_bulk else "paginated")
        minimum[path] = min(seconds)
        result[path] = {
            "runs": [round(s, 2) for s in seconds],
            "min_seconds": round(min(seconds), 2),
            "median_seconds": round(statistics.median(seconds), 2),
            "read_through": sorted(chose),
            "cost_spent": cost,
            "throttled_responses": throttled,
        }
    faster = min(minimum["paginated"], minimum["bulk"])
    result["faster_path"] = "bulk" if minimum["bulk"] <= minimum["paginated"] else "paginated"
    result["ratio_min_to_faster_min"] = round(minimum["chosen"] / faster, 3)
    result["ratio_median_to_faster_min"] = round(result["chosen"]["median_seconds"] / faster, 3)
    return result
