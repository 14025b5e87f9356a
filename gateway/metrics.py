"""Prometheus metrics, served at /metrics (the worker's are visible when it shares the registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS = Counter(
    "gateway_webhook_deliveries_total",
    "Webhook deliveries by outcome (received, rejected, duplicate, applied, unknown, unparseable)",
    ["platform", "outcome"],
)
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
QUEUE_DEPTH = Gauge("gateway_queue_depth", "Jobs waiting in the arq queue")
HTTP_REQUESTS = Counter("gateway_graphql_requests_total", "GraphQL HTTP requests", ["status"])
