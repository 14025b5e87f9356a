"""A simulated Shopify shop: the GraphQL Admin API on a real HTTP server, with Shopify's habits.

- `POST /admin/api/{version}/graphql.json` with `X-Shopify-Access-Token`; a real GraphQL endpoint
  (graphql-core) over the schema subset in sim_schema.py. Unknown fields get Shopify's validation
  error shape (no cost extension); connections without first/last the documented error.
- Calculated query cost (cost.py) and a leaky bucket: options `bucket_size` (2000), `restore_rate`
  (100/s), `bucket_start` (full), `max_query_cost` (1000), `throttle_status` (200, or 429). Executed
  queries carry `extensions.cost`; a query the bucket cannot pay gets the THROTTLED body.
- Bulk operations: `bulkOperationRunQuery`, one at a time per shop (`max_bulk_queries`), status via
  `node(id:)`, the JSONL result at `/_bulk/<n>.jsonl` on this server, streamed in chunks, with
  `__parentId` child lines (grouped under parents with `groupObjects: true`; otherwise children come
  after a batch of parents, i.e. after their parent but not directly).
- Test levers: `bulk_paused` (operations stay RUNNING until `resume_bulk()`), `fail_next_bulk`,
  `expire_bulk()`, `break_next_download`, `drain_bucket_before()`, `stats` (requests, throttled, root fields queried).
- Webhook subscriptions; catalog changes (create/update/delete) send HMAC-signed REST-shaped
  deliveries with all X-Shopify-* headers and a unique X-Shopify-Webhook-Id per delivery. A delivery
  that fails is retried on `webhook_retry_schedule` (Shopify's 8 retries over 4 hours by default); when
  the last retry fails too, the subscription is removed, as Shopify does.
- The app side (sim_install.py): the grant screen, the token endpoint with expiring, rotating tokens,
  uninstall and the compliance webhooks. The Admin API accepts the pasted custom-app token
  (`access_token`) and every live token the app was issued; anything else gets Shopify's 401.
- Catalog (catalog.py): deterministic; `big_variants` (default on from 100 products) adds a product
  with 150 variants; `updatedAt` strictly increases per change on a simulated clock.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from graphql import GraphQLError, execute_sync, parse

from alana_shopify.catalog import Catalog, SimProduct, to_rest
from alana_shopify.cost import MAX_QUERY_COST, actual_cost, requested_cost
from alana_shopify.sim_install import APP_EVENTS, ShopifyAppSide
from alana_shopify.sim_schema import (
    SimContext,
    build,
    gid,
    inspect,
    iso,
    parse_gid,
    root_value,
    validation_errors,
)
from alana_shopify.webhooks import TOPICS, sign
from gateway.simkit import Hook, ScreenError, Simulator

API_VERSIONS = ("2024-10", "2025-01", "2025-04", "2025-07", "2025-10", "2026-01", "2026-04", "unstable")
UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
BULK_CHUNK = 100
#: Without groupObjects, children follow a batch of this many parents.
UNGROUPED_BATCH = 10
DOWNLOAD_CHUNK = 16 * 1024
#: Shopify's retries of a failing delivery since 2024-09-10: 8 over 4 hours, backing off.
WEBHOOK_RETRIES = (60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 3840.0, 6780.0)


class LeakyBucket:
    """Shopify's cost bucket: holds up to `size` points and restores `rate` points a second."""

    def __init__(self, size: float, rate: float, start: float | None = None) -> None:
        self.size = float(size)
        self.rate = float(rate)
        self._available = self.size if start is None else float(start)
        self._stamp = time.monotonic()

    def available(self) -> float:
        now = time.monotonic()
        self._available = min(self.size, self._available + (now - self._stamp) * self.rate)
        self._stamp = now
        return self._available

    def take(self, cost: float) -> bool:
        if self.available() < cost:
            return False
        self._available -= cost
        return True

    def refund(self, amount: float) -> None:
        self._available = min(self.size, self.available() + max(0.0, amount))

    def status(self) -> dict[str, Any]:
        return {
            "maximumAvailable": self.size,
            "currentlyAvailable": int(self.available()),
            "restoreRate": self.rate,
        }


@dataclass
class BulkOp:
    number: int
    query: str
    group_objects: bool
    created_at: datetime
    status: str = "CREATED"
    error_code: str | None = None
    completed_at: datetime | None = None
    object_count: int = 0
    root_count: int = 0
    data: list[bytes] | None = None
    task: asyncio.Task[None] | None = None

    @property
    def gid(self) -> str:
        return gid("BulkOperation", self.number)


def _connection_items(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("edges"), list):
        return [e["node"] for e in value["edges"] if isinstance(e, dict) and isinstance(e.get("node"), dict)]
    if isinstance(value.get("nodes"), list):
        return [n for n in value["nodes"] if isinstance(n, dict)]
    return None


def split_node(node: dict[str, Any], parent: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A bulk result node as its own JSONL object plus its descendants' objects (with `__parentId`)."""
    own: dict[str, Any] = {}
    children: list[dict[str, Any]] = []
    for key, value in node.items():
        items = _connection_items(value)
        if items is None:
            own[key] = value
            continue
        for child in items:
            line, grandchildren = split_node(child, str(node.get("id")))
            children.append(line)
            children.extend(grandchildren)
    if parent is not None:
        own["__parentId"] = parent
    return own, children


def bulk_lines(data: dict[str, Any], group_objects: bool) -> tuple[list[bytes], int]:
    """JSONL lines for an executed bulk query's data, and how many root objects they hold."""
    lines: list[bytes] = []
    roots = 0
    for value in data.values():
        items = _connection_items(value)
        if items is None:
            continue
        for start in range(0, len(items), 1 if group_objects else UNGROUPED_BATCH):
            batch = [split_node(n) for n in items[start : start + (1 if group_objects else UNGROUPED_BATCH)]]
            roots += len(batch)
            ordered = [own for own, _ in batch] + [child for _, children in batch for child in children]
            lines.extend(json.dumps(obj, separators=(",", ":")).encode() + b"\n" for obj in ordered)
    return lines, roots


class ShopifySimulator(Simulator):
    platform = "shopify"
    #: create_product keywords of the simulator contract this simulator honours (gateway.testing).
    conformance_fields = frozenset({"title", "price", "sku", "barcode", "variants", "bare", "private_text"})
    app_events = APP_EVENTS
    #: How the install-flow checks drive it: retries without waiting, so a failing subscription goes at once.
    install_conformance_options: ClassVar[dict[str, Any]] = {"webhook_retry_schedule": [0.0] * 3}

    def __init__(self, products: int = 100, *, seed: int = 1, **options: Any) -> None:
        super().__init__(products, seed=seed, **options)
        self.access_token = str(options.get("access_token") or _token("shpat_", seed))
        self.client_secret = str(options.get("client_secret") or _token("shpss_", seed + 1))
        self.shop_domain = str(options.get("shop_domain", "alana-sim.myshopify.com"))
        self.shop_name = str(options.get("shop_name", "Alana Simulated Shop"))
        self.currency = str(options.get("currency", "USD"))
        self.locales: tuple[str, ...] = tuple(options.get("locales", ("fr", "de")))
        self.max_query_cost = int(options.get("max_query_cost", MAX_QUERY_COST))
        self.throttle_status = int(options.get("throttle_status", 200))
        self.max_bulk_queries = int(options.get("max_bulk_queries", 1))
        self.bucket = LeakyBucket(
            options.get("bucket_size", 2000), options.get("restore_rate", 100), options.get("bucket_start")
        )
        self.catalog = Catalog(
            products,
            seed=seed,
            big_variants=bool(options.get("big_variants", products >= 100)),
            locales=self.locales,
        )
        self.schema = build()
        self.root = root_value()
        self.stats: Counter[str] = Counter()
        #: Points actually charged, for benchmarks (the bucket's minimum time follows from it).
        self.cost_spent = 0.0
        self.bulk_ops: dict[int, BulkOp] = {}
        self.bulk_paused = bool(options.get("bulk_paused", False))
        self.fail_next_bulk = False
        #: Cut the next result download off halfway through.
        self.break_next_download = False
        self._bulk_resumed = asyncio.Event()
        self._next_bulk = 5_000_000
        self._next_hook = 1_000_000
        self._drain_on: str | None = None
        self.webhook_retry_schedule: tuple[float, ...] = tuple(options.get("webhook_retry_schedule", WEBHOOK_RETRIES))
        #: Subscriptions Shopify removed because their deliveries kept failing.
        self.removed_hooks: list[str] = []
        self.app = ShopifyAppSide(self, options)

    def cost_stats(self) -> dict[str, float]:
        """What the bucket charged: benchmarks compute the shortest time the bucket allows from it."""
        return {
            "actual_cost_total": self.cost_spent,
            "maximum_available": float(self.bucket.status()["maximumAvailable"]),
            "restore_rate": float(self.bucket.status()["restoreRate"]),
            "throttled_responses": float(self.stats["throttled"]),
        }

    # ---- Simulator contract -------------------------------------------------------------------------
    def build_routes(self, app: web.Application) -> None:
        app.router.add_post("/admin/api/{version}/graphql.json", self._graphql)
        app.router.add_get("/_bulk/{number}.jsonl", self._download)
        self.app.routes(app)

    def credentials(self) -> dict[str, str]:
        return {"access_token": self.access_token, "client_secret": self.client_secret}

    # ---- install flow (sim_install.py) ---------------------------------------------------------------
    def app_credentials(self) -> dict[str, str]:
        return {"client_id": self.app.client_id, "client_secret": self.client_secret}

    @property
    def install_store(self) -> str:
        return self.shop_domain

    async def connect_decision(self, authorize_url: str, approve: bool) -> str | None:
        parts = urlsplit(authorize_url)
        if parts.path != "/admin/oauth/authorize":
            raise ScreenError(f"not a Shopify authorize URL: {parts.path}", status=404)
        return self.app.decide(dict(parse_qsl(parts.query)), approve)

    async def app_event(self, event: str, **params: Any) -> str | None:
        return self.app.event(event, **params)

    def revoke_credentials(self) -> None:
        self.app.revoke()

    def expire_tokens(self) -> None:
        """Every access token the app was issued expires now (its refresh tokens keep working)."""
        self.app.tokens.expire_access()

    def product_ids(self) -> list[str]:
        return [str(i) for i in sorted(self.catalog.products)]

    def create_product(self, **fields: Any) -> str:
        product = self.catalog.create(**fields)
        self._fire("PRODUCTS_CREATE", product)
        return str(product.id)

    def update_product(self, external_id: str, **changes: Any) -> None:
        product = self.catalog.update(int(external_id), **changes)
        self._fire("PRODUCTS_UPDATE", product)

    def delete_product(self, external_id: str) -> None:
        product = self.catalog.delete(int(external_id))
        self._fire("PRODUCTS_DELETE", product)

    async def stop(self) -> None:
        tasks = [op.task for op in self.bulk_ops.values() if op.task is not None and not op.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await super().stop()

    # ---- HTTP -----------------------------------------------------------------------------------------
    async def _graphql(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        headers = {
            "X-Shopify-API-Version": version if version in API_VERSIONS else API_VERSIONS[0],
            "X-Request-Id": str(uuid.uuid4()),
        }
        if not self.app.accepts(request.headers.get("X-Shopify-Access-Token")):
            return web.json_response({"errors": UNAUTHORIZED}, status=401, headers=headers)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return web.json_response(
                {"errors": {"query": "Required parameter missing or invalid"}}, status=400, headers=headers
            )
        status, payload = self.run_graphql(body.get("query"), body.get("variables"), body.get("operationName"))
        return web.json_response(payload, status=status, headers=headers)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        op = self.bulk_ops.get(int(request.match_info["number"]))
        if op is None or op.data is None or op.status != "COMPLETED":
            return web.Response(
                status=404, text="<Error><Code>NoSuchKey</Code></Error>", content_type="application/xml"
            )
        response = web.StreamResponse(headers={"Content-Type": "application/jsonl"})
        await response.prepare(request)
        self.stats["downloads"] += 1
        cut_after = len(op.data) // 2 if self.break_next_download else None
        self.break_next_download = False
        pending = bytearray()
        for number, line in enumerate(op.data):
            if number == cut_after:
                # The connection drops mid-file (storage hosts do): the client must resume, not restart.
                await response.write(bytes(pending) + line[: len(line) // 2])
                assert request.transport is not None
                request.transport.close()
                return response
            pending += line
            if len(pending) >= DOWNLOAD_CHUNK:
                await response.write(bytes(pending))
                pending.clear()
        if pending:
            await response.write(bytes(pending))
        await response.write_eof()
        return response

    # ---- GraphQL --------------------------------------------------------------------------------------
    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": self.bucket.status(),
        }

    def run_graphql(self, query: Any, variables: Any, operation_name: Any) -> tuple[int, dict[str, Any]]:
        """Answer one GraphQL request: (HTTP status, body)."""
        self.stats["requests"] += 1
        if not isinstance(query, str) or not query.strip():
            return 200, {"errors": [{"message": "No query string was present"}]}
        try:
            document = parse(query)
        except GraphQLError as exc:
            locations = [{"line": loc.line, "column": loc.column} for loc in exc.locations or ()]
            return 200, {"errors": [{"message": exc.message, "locations": locations}]}
        inspection = inspect(self.schema, document)
        errors = validation_errors(self.schema, document, inspection)
        if errors:
            self.stats["invalid"] += 1
            return 200, {"errors": errors}
        variables = variables if isinstance(variables, dict) else {}
        name = operation_name if isinstance(operation_name, str) else None
        requested = requested_cost(document, variables, name)
        if inspection.unpaged:
            self.bucket.take(min(requested, self.bucket.available()))
            return 200, {
                "data": None,
                "errors": inspection.unpaged,
                "extensions": {"cost": self._cost(requested, requested)},
            }
        if requested > self.max_query_cost:
            return 200, {
                "errors": [
                    {
                        "message": f"Query cost is {requested}, which exceeds the single query max cost "
                        "limit "
                        f"({self.max_query_cost}).",
                        "extensions": {
                            "code": "MAX_COST_EXCEEDED",
                            "cost": requested,
                            "maxCost": self.max_query_cost,
                            "documentation": "https://shopify.dev/api/usage/rate-limits",
                        },
                    }
                ],
                "extensions": {"cost": self._cost(requested, None)},
            }
        if self._drain_on is not None and self._drain_on in _root_fields(document, name):
            self._drain_on = None
            self.bucket.take(self.bucket.available())
        if not self.bucket.take(requested):
            self.stats["throttled"] += 1
            return self.throttle_status, {
                "errors": [
                    {
                        "message": "Throttled",
                        "extensions": {
                            "code": "THROTTLED",
                            "documentation": "https://shopify.dev/api/usage/rate-limits",
                        },
                    }
                ],
                "extensions": {"cost": self._cost(requested, None)},
            }
        context = SimContext(self, malformed=frozenset(str(i) for i in self.faults.plan.malformed_ids))
        result = execute_sync(
            self.schema,
            document,
            root_value=self.root,
            context_value=context,
            variable_values=variables,
            operation_name=name,
        )
        for selection in _root_fields(document, name):
            self.stats[f"field:{selection}"] += 1
        actual = min(requested, actual_cost(document, result.data, variables, name))
        self.bucket.refund(requested - actual)
        self.cost_spent += actual
        payload: dict[str, Any] = {}
        if result.errors:
            payload["errors"] = [e.formatted for e in result.errors]
        payload["data"] = result.data
        extensions: dict[str, Any] = {"cost": self._cost(requested, actual)}
        if context.search:
            extensions["search"] = context.search
        payload["extensions"] = extensions
        return 200, payload

    def drain_bucket_before(self, root_field: str) -> None:
        """Empty the cost bucket just before the next query on `root_field` runs, as another worker of
        the same app would: the client's model is then too optimistic once, and it gets THROTTLED."""
        self._drain_on = root_field

    # ---- shop ---------------------------------------------------------------------------------------
    def shop_view(self) -> dict[str, Any]:
        return {
            "id": "gid://shopify/Shop/1",
            "name": self.shop_name,
            "email": "owner@example.com",
            "currencyCode": self.currency,
            "myshopifyDomain": self.shop_domain,
            "ianaTimezone": "America/New_York",
        }

    def shop_locales(self) -> list[dict[str, Any]]:
        names = {"en": "English", "fr": "French", "de": "German", "es": "Spanish"}
        rows = [{"locale": "en", "name": "English", "primary": True, "published": True}]
        rows += [
            {"locale": loc, "name": names.get(loc, loc), "primary": False, "published": True} for loc in self.locales
        ]
        # A locale being prepared but not yet published: not part of the storefront, not synced.
        rows.append({"locale": "es", "name": "Spanish", "primary": False, "published": False})
        return rows

    # ---- bulk operations ------------------------------------------------------------------------------
    def bulk_view(self, number: int) -> dict[str, Any] | None:
        op = self.bulk_ops.get(number)
        if op is None:
            return None
        size = sum(len(line) for line in op.data) if op.data is not None else None
        return {
            "__typename": "BulkOperation",
            "id": op.gid,
            "status": op.status,
            "errorCode": op.error_code,
            "createdAt": iso(op.created_at),
            "completedAt": iso(op.completed_at),
            "objectCount": str(op.object_count),
            "rootObjectCount": str(op.root_count),
            "fileSize": str(size) if size is not None else None,
            "url": f"{self.base_url}/_bulk/{op.number}.jsonl" if op.status == "COMPLETED" and op.data else None,
            "partialDataUrl": None,
            "query": op.query,
            "type": "QUERY",
        }

    def current_bulk_view(self) -> dict[str, Any] | None:
        return self.bulk_view(max(self.bulk_ops)) if self.bulk_ops else None

    def run_bulk_query(self, query: str, group_objects: bool) -> dict[str, Any]:
        running = [op for op in self.bulk_ops.values() if op.status in ("CREATED", "RUNNING")]
        if len(running) >= self.max_bulk_queries:
            self.stats["bulk_refused"] += 1
            return {
                "bulkOperation": None,
                "userErrors": [
                    {
                        "field": None,
                        "code": "OPERATION_IN_PROGRESS",
                        "message": "A bulk query operation for this app and shop is already in progress: "
                        f"{running[0].gid}.",
                    }
                ],
            }
        problem = self._bulk_query_problem(query)
        if problem:
            return {
                "bulkOperation": None,
                "userErrors": [{"field": ["query"], "message": problem, "code": "INVALID"}],
            }
        self._next_bulk += 1
        op = BulkOp(self._next_bulk, query, bool(group_objects), datetime.now(UTC))
        self.bulk_ops[op.number] = op
        self.stats["bulk_started"] += 1
        op.task = asyncio.get_running_loop().create_task(self._run_bulk(op))
        return {"bulkOperation": self.bulk_view(op.number), "userErrors": []}

    def _bulk_query_problem(self, query: str) -> str | None:
        try:
            document = parse(query)
        except GraphQLError as exc:
            return f"Invalid bulk query: {exc.message}"
        inspection = inspect(self.schema, document)
        errors = validation_errors(self.schema, document, inspection)
        if errors:
            return "Invalid bulk query: " + "; ".join(e["message"] for e in errors)
        if inspection.connections == 0:
            return "Bulk queries must contain at least one connection."
        if inspection.connections > 5:
            return "Bulk queries cannot contain more than 5 connections."
        if inspection.max_connection_depth > 2:
            return "Bulk queries cannot contain connections with a nesting depth greater than 2."
        return None

    async def _run_bulk(self, op: BulkOp) -> None:
        op.status = "RUNNING"
        while self.bulk_paused:
            self._bulk_resumed.clear()
            await self._bulk_resumed.wait()
        if self.fail_next_bulk:
            self.fail_next_bulk = False
            op.status, op.error_code, op.completed_at = "FAILED", "INTERNAL_SERVER_ERROR", datetime.now(UTC)
            return
        document = parse(op.query)
        ids = sorted(self.catalog.products)
        lines: list[bytes] = []
        for start in range(0, max(len(ids), 1), BULK_CHUNK):
            context = SimContext(
                self,
                bulk=True,
                bulk_ids=ids[start : start + BULK_CHUNK],
                malformed=frozenset(str(i) for i in self.faults.plan.malformed_ids),
            )
            result = execute_sync(self.schema, document, root_value=self.root, context_value=context)
            if result.errors or result.data is None:
                op.status, op.error_code, op.completed_at = (
                    "FAILED",
                    "INTERNAL_SERVER_ERROR",
                    datetime.now(UTC),
                )
                return
            chunk, roots = bulk_lines(result.data, op.group_objects)
            lines.extend(chunk)
            op.root_count += roots
            op.object_count += len(chunk)
            await asyncio.sleep(0)  # a big export must not stall the shop's API
        op.data = lines
        op.status, op.completed_at = "COMPLETED", datetime.now(UTC)

    def resume_bulk(self) -> None:
        """Let paused bulk operations run."""
        self.bulk_paused = False
        self._bulk_resumed.set()

    def expire_bulk(self, operation_gid: str) -> None:
        """Make a finished operation's result unavailable, as after Shopify's 7 days."""
        op = self.bulk_ops[parse_gid(operation_gid)[1]]
        op.status, op.data = "EXPIRED", None

    def cancel_bulk(self, operation_gid: str) -> dict[str, Any]:
        op = self.bulk_ops.get(parse_gid(operation_gid)[1])
        if op is None:
            return {
                "bulkOperation": None,
                "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}],
            }
        if op.task is not None and not op.task.done():
            op.task.cancel()
        if op.status in ("CREATED", "RUNNING"):
            op.status, op.completed_at = "CANCELED", datetime.now(UTC)
        return {"bulkOperation": self.bulk_view(op.number), "userErrors": []}

    # ---- webhooks -------------------------------------------------------------------------------------
    def subscription_view(self, subscription_gid: str) -> dict[str, Any] | None:
        hook = self.hooks.get(subscription_gid)
        if hook is None:
            return None
        return {
            "__typename": "WebhookSubscription",
            "id": hook.id,
            "topic": hook.topic,
            "callbackUrl": hook.destination,
            "uri": hook.destination,
            "format": "JSON",
            "includeFields": [],
            "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": hook.destination},
            "createdAt": iso(self.catalog.now),
            "updatedAt": iso(self.catalog.now),
        }

    def subscription_rows(self, topics: list[str] | None, url: str | None) -> list[dict[str, Any]]:
        rows = []
        for hook in self.hooks.values():
            if (topics and hook.topic not in topics) or (url and hook.destination != url):
                continue
            view = self.subscription_view(hook.id)
            if view is not None:
                rows.append(view)
        return rows

    def create_subscription(self, topic: str, subscription: dict[str, Any]) -> dict[str, Any]:
        url = subscription.get("callbackUrl") or subscription.get("uri")
        if not url:
            return {
                "webhookSubscription": None,
                "userErrors": [{"field": ["webhookSubscription", "callbackUrl"], "message": "Address can't be blank"}],
            }
        if any(h.topic == topic and h.destination == url for h in self.hooks.values()):
            return {
                "webhookSubscription": None,
                "userErrors": [
                    {
                        "field": ["webhookSubscription", "callbackUrl"],
                        "message": "Address for this topic has already been taken",
                    }
                ],
            }
        self._next_hook += 1
        hook = Hook(
            id=gid("WebhookSubscription", self._next_hook),
            topic=topic,
            destination=str(url),
            secret=self.client_secret,
        )
        self.hooks[hook.id] = hook
        return {"webhookSubscription": self.subscription_view(hook.id), "userErrors": []}

    def delete_subscription(self, subscription_gid: str) -> dict[str, Any]:
        if self.hooks.pop(subscription_gid, None) is None:
            return {
                "deletedWebhookSubscriptionId": None,
                "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}],
            }
        return {"deletedWebhookSubscriptionId": subscription_gid, "userErrors": []}

    def _fire(self, topic: str, product: SimProduct) -> None:
        hooks = [h for h in self.hooks.values() if h.topic == topic]
        if not hooks:
            return
        if topic == "PRODUCTS_DELETE":
            body: dict[str, Any] = {"id": product.id}
        else:
            body = to_rest(product, broken=str(product.id) in {str(i) for i in self.faults.plan.malformed_ids})
        raw = json.dumps(body).encode()
        event_id = str(uuid.uuid4())
        # Triggered-At is the wall clock (the catalog's clock only orders edits): the gateway measures
        # latency from it and refuses deliveries too old to be anything but replays.
        now = datetime.now(UTC)
        # Shopify prints nanoseconds; the gateway must cope with more digits than Python keeps.
        triggered = f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond:06d}123Z"
        for hook in hooks:
            headers = {
                "Content-Type": "application/json",
                "X-Shopify-Topic": TOPICS[topic],
                "X-Shopify-Hmac-Sha256": sign(hook.secret, raw),
                "X-Shopify-Shop-Domain": self.shop_domain,
                "X-Shopify-API-Version": "2026-01",
                "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                "X-Shopify-Event-Id": event_id,
                "X-Shopify-Triggered-At": triggered,
                "X-Shopify-Name": "alana-gateway",
            }
            self.deliver_with_retries(
                hook.destination,
                raw,
                headers,
                schedule=self.webhook_retry_schedule,
                on_give_up=functools.partial(self._remove_failing, hook.id),
            )

    def _remove_failing(self, subscription_gid: str) -> None:
        """Shopify deletes a subscription whose deliveries failed through every retry."""
        if self.hooks.pop(subscription_gid, None) is not None:
            self.removed_hooks.append(subscription_gid)


def _token(prefix: str, seed: int) -> str:
    return prefix + hashlib.sha256(f"alana-sim-{seed}".encode()).hexdigest()[:32]


def _root_fields(document: Any, operation_name: str | None) -> list[str]:
    from graphql import FieldNode, OperationDefinitionNode

    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    operation = next(
        (o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)), None
    )
    if operation is None:
        return []
    return [s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode)]
