"""`make bench`: run the benchmarks and write docs/benchmarks.md (and the raw docs/benchmarks.json).

python -m benchmarks                 # everything, at the sizes the issues ask for
python -m benchmarks --only sync     # one group: sync, queue, memory, webhooks, shopify, shopify_paths,
                                     # bigcommerce, shopify_shared, hostile, reads, burst, soak, fair,
                                     # bucket (the last four on the multi-process rig)
python -m benchmarks --quick         # small sizes, to check the harness
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.common import ROOT, machine
from gateway.embedded import EmbeddedServers

RESULTS = ROOT / "docs" / "benchmarks.json"
REPORT = ROOT / "docs" / "benchmarks.md"


def groups(quick: bool) -> dict[str, Callable[[str, str], Awaitable[dict[str, Any]]]]:
    from benchmarks import faults, hostile, ratelimits, reads, scale, shopify_paths, sync, webhooks

    n = 300 if quick else 10_000
    big = 1_000 if quick else 50_000
    woo = {"variable_share": 0.46}  # ~3 variations per product on average, as the issue asks
    return {
        "sync": lambda m, r: sync.full_sync(m, r, "woocommerce", n, woo, {}),
        "queue": lambda m, r: sync.queue_latency(m, r, 5 if quick else 20),
        "memory": lambda m, r: sync.worker_memory(m, r, "woocommerce", big, {}, {}),
        "webhooks": lambda m, r: webhooks.webhook_latency(
            m, r, "woocommerce", 50 if quick else 1000, 20.0 if quick else 25.0
        ),
        "shopify": lambda m, r: ratelimits.shopify_paginated(m, r, 200 if quick else 5_000),
        "shopify_paths": lambda m, r: shopify_paths.compare(
            m, r, 120 if quick else 400, 30, {"paginated": 1, "bulk": 1 if quick else 3, "chosen": 1 if quick else 3}
        ),
        "bigcommerce": lambda m, r: ratelimits.bigcommerce_quota(m, r, 1_000 if quick else 20_000, quick),
        "shopify_shared": lambda m, r: ratelimits.shopify_shared_bucket(m, r, 150 if quick else 600, 2.0),
        "hostile": lambda m, r: hostile.hostile_api(m, r, quick),
        "reads": lambda m, r: reads.read_latency(
            m, r, 2_000 if quick else 50_000, 3 if quick else 60, 500 if quick else 10_000
        ),
        # On the rig (gateway.testing.rig), which brings servers of its own.
        "burst": lambda m, r: scale.webhook_burst(quick),
        "soak": lambda m, r: scale.soak(quick),
        "fair": lambda m, r: scale.fair_work(quick),
        "bucket": lambda m, r: scale.shared_bucket(quick),
        # tests/test_faults.py in a pytest process of its own (its rig brings its own servers too).
        "faults": lambda m, r: faults.fault_matrix(quick),
    }


async def main(only: list[str], quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    with EmbeddedServers.from_env() as servers:
        for name, bench in groups(quick).items():
            if only and name not in only:
                continue
            print(f"running {name} ...", flush=True)
            try:
                results[name] = await bench(servers.mongodb_url, servers.redis_url)
            except Exception as exc:  # noqa: BLE001 - report it and go on with the others
                logging.exception("benchmark %s failed", name)
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            results[name]["quick"] = quick
            print(json.dumps(results[name], indent=2), flush=True)
    results["machine"] = machine()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    REPORT.write_text(render(results))
    return results


def render(results: dict[str, Any]) -> str:
    from benchmarks.report import render_report

    return render_report(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(args.only, args.quick))
