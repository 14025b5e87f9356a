"""Render docs/benchmarks.md from the results."""

from __future__ import annotations

import json
from typing import Any


def _get(results: dict[str, Any], *path: str) -> Any:
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return "n/a"
        value = value[key]
    return value


def render_report(r: dict[str, Any]) -> str:
    m = r.get("machine", {})
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m benchmarks`); raw numbers in `docs/benchmarks.json`.",
        "Targets come from the issues; they are measured here, never asserted in the test suite.",
        "",
        "## Machine",
        "",
        f"- CPU: {m.get('cpu')} ({m.get('cores')} cores), memory {m.get('memory')}",
        f"- Python {m.get('python')} on {m.get('os')}",
        "- MongoDB protocol: embedded SecantusDB (WiredTiger) unless MONGODB_URL was set; Redis: embedded Valkey",
        f"- Run at {m.get('date')}",
        "",
        "## Summary",
        "",
        "| what | result | target |",
        "| --- | --- | --- |",
        f"| WooCommerce full sync, {_get(r, 'sync', 'products')} products / {_get(r, 'sync', 'variants')} variations"
        f" | {_get(r, 'sync', 'products_per_second')} products/s ({_get(r, 'sync', 'full_seconds')} s) | |",
        f"| ... as a fraction of a raw bulk upsert of the same documents | {_get(r, 'sync', 'ratio_to_floor')}"
        f" (floor {_get(r, 'sync', 'raw_floor_products_per_second')} products/s) | >= 0.70 |",
        f"| unchanged re-sync time / full sync time | {_get(r, 'sync', 'unchanged_fraction')}"
        f" ({_get(r, 'sync', 'unchanged_seconds')} s) | |",
        f"| Sync Now -> run started on an idle worker, p50 / max ({_get(r, 'queue', 'runs')} runs) | "
        f"{_get(r, 'queue', 'queued_to_started_ms', 'p50')} ms / {_get(r, 'queue', 'queued_to_started_ms', 'max')} ms"
        f" | ~100 ms |",
        f"| worker peak RSS, {_get(r, 'memory', 'products')}-product sync | "
        f"{_get(r, 'memory', 'worker_peak_rss_mb')} MB"
        f" ({_get(r, 'memory', 'seconds')} s) | < 300 MB |",
        f"| webhook -> stored -> subscriber, p50 / p99 ({_get(r, 'webhooks', 'measured')} deliveries measured at "
        f"{_get(r, 'webhooks', 'rate_per_second')}/s) | {_get(r, 'webhooks', 'end_to_end_ms', 'p50')} ms / "
        f"{_get(r, 'webhooks', 'end_to_end_ms', 'p99')} ms | p99 < 250 ms |",
        f"| webhook endpoint response p99 | {_get(r, 'webhooks', 'endpoint_response_ms', 'p99')} ms | < 20 ms |",
        f"| Shopify {_get(r, 'shopify', 'products')}-product paginated sync, Standard bucket: duration / "
        f"bucket minimum | {_get(r, 'shopify', 'ratio_to_minimum')} ({_get(r, 'shopify', 'seconds')} s vs "
        f"{_get(r, 'shopify', 'minimum_seconds')} s; THROTTLED seen by engine: "
        f"{_get(r, 'shopify', 'throttled_errors')}) | <= 1.15 |",
        f"| Shopify {_get(r, 'shopify_paths', 'products')}-product, {_get(r, 'shopify_paths', 'variants_per_product')}"
        f"-variant full sync, Standard bucket: paginated / bulk / chosen, min s | "
        f"{_get(r, 'shopify_paths', 'paginated', 'min_seconds')} / {_get(r, 'shopify_paths', 'bulk', 'min_seconds')}"
        f" / {_get(r, 'shopify_paths', 'chosen', 'min_seconds')} (chosen read through "
        f"{_get(r, 'shopify_paths', 'chosen', 'read_through')}) | |",
        f"| ... chosen path / faster path's minimum: best run, median run | "
        f"{_get(r, 'shopify_paths', 'ratio_min_to_faster_min')}, "
        f"{_get(r, 'shopify_paths', 'ratio_median_to_faster_min')} | <= 1.15 |",
        f"| BigCommerce {_get(r, 'bigcommerce', 'products')}-product full sync under a binding quota: duration / "
        f"quota minimum | {_get(r, 'bigcommerce', 'ratio_to_minimum')} ({_get(r, 'bigcommerce', 'seconds')} s vs "
        f"{_get(r, 'bigcommerce', 'minimum_seconds')} s; 429s: {_get(r, 'bigcommerce', 'responses_429')}) | <= 1.15 |",
        "",
        "## Raw results",
        "",
        "```json",
        json.dumps({k: v for k, v in r.items() if k != "machine"}, indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
