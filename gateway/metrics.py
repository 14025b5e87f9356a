"""Prometheus metrics, served at /metrics (the worker's are visible when it shares the registry).

Label values come only from fixed sets: a label taken from a request (the platform segment of a webhook
URL) would let anyone add series without bound, so platforms not registered by a loaded plugin are
counted under "unknown".
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UNKNOWN_PLATFORM = "unknown"
#: Platform ids of the plugins loaded in this process (gateway.plugins registers them).
_PLATFORMS: set[str] = set()


def register_platform(platform: str) -> None:
    """Allow `platform` as a label value (called for each platform a plugin registers)."""
    _PLATFORMS.add(platform)


def platform_label(platform: str) -> str:
    """`platform` when a loaded plugin provides it, otherwise "unknown"."""
    return platform if platform in _PLATFORMS else UNKNOWN_PLATFORM


class _WebhookCounter:
    """The deliveries counter, with the platform label clamped to known platforms."""

    def __init__(self) -> None:
        self._counter = Counter(
            "gateway_webhook_deliveries_total",
            "Webhook deliveries by outcome (received, rejected, duplicate, applied, unknown, unparseable, unstorable)",
            ["platform", "outcome"],
        )

    def labels(self, *, platform: str, outcome: str) -> Counter:
        return self._counter.labels(platform=platform_label(platform), outcome=outcome)


WEBHOOKS = _WebhookCounter()
WEBHOOK_LATENCY = Histogram(
    "gateway_webhook_latency_seconds",
    "From the platform's trigger time (or receipt) to the product being stored",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
WEBHOOK_RESPONSE = Histogram(
    "gateway_webhook_response_seconds",
    "Time the webhook endpoint takes to answer",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1),
)
RUNS = Counter("gateway_sync_runs_total", "Finished sync runs by outcome", ["status"])
QUEUE_DEPTH = Gauge("gateway_queue_depth", "Jobs waiting in the arq queues, every lane together")
LANE_DEPTH = Gauge(
    "gateway_lane_queue_depth", "Jobs waiting in one lane's arq queue (runs, sync_now, webhooks)", ["lane"]
)
APPLY_BATCH = Histogram(
    "gateway_webhook_apply_batch",
    "Deliveries one apply pass claimed for one integration (coalesced per product before writing)",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
JOURNAL_WAITING = Gauge(
    "gateway_webhook_journal_waiting",
    "Deliveries this API answered from the journal that are not in MongoDB yet (gateway.journal)",
)
RECEIVE_BATCH = Histogram(
    "gateway_webhook_receive_batch",
    "Deliveries the webhook endpoint stored in one write (concurrent deliveries share it)",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
)
SCHEDULER_TICK = Histogram(
    "gateway_scheduler_tick_seconds",
    "One scheduler tick: the due runs claimed and queued",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SCHEDULER_MAINTENANCE = Histogram(
    "gateway_scheduler_maintenance_seconds",
    "One maintenance pass (once per scheduler interval): orphans recovered, connections maintained",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_REQUESTS = Counter("gateway_graphql_requests_total", "GraphQL HTTP requests", ["status"])
