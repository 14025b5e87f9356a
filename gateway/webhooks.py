"""Store webhooks: receive (verify, record, enqueue: milliseconds) and apply (in a worker job).

Receiving never maps or fetches: it verifies the signature with the platform's scheme, records the
delivery under a unique (integration, delivery id) key so a redelivery is stored once, and enqueues
the apply job. Applying claims every pending delivery of the integration at once, coalesces bursts
for the same product to its newest version, and writes through the version-guarded path, where a
store version older than the stored one changes nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pymongo.errors import DuplicateKeyError

from gateway import metrics
from gateway.adapter import ChangeKind, Connection, FetchMode, FetchRequest, MappingContext, PlatformAdapter
from gateway.conflicts import ConflictService
from gateway.domain import ActivityKind, EventKind, SyncMode
from gateway.engine import map_one, prefetch
from gateway.errors import StoreAuthError, StoreError
from gateway.integrations import CallCounter, IntegrationService
from gateway.model import Product
from gateway.products import Outcome, product_id
from gateway.storage.mongo import Doc

if TYPE_CHECKING:
    from gateway.services import Gateway

log = logging.getLogger(__name__)

APPLY_JOB = "apply_webhooks"
MAPPING_CONTEXT_TTL = 300.0
INTEGRATION_CACHE_TTL = 2.0


class WebhookService:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.integrations = IntegrationService(gw)

    async def receive(
        self, platform: str, integration_id: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, str]:
        """Verify, record, enqueue. Returns the HTTP status and a short message."""
        integration = await self._integration(integration_id)
        if integration is None or integration.get("platform") != platform:
            metrics.WEBHOOKS.labels(platform=platform, outcome="unknown").inc()
            return 404, "unknown integration"
        adapter = self.gw.registry.adapters.get(platform)
        if adapter is None:
            return 404, "platform not installed"
        secrets = self.integrations.credentials(integration)
        try:
            verified = adapter.verify_webhook(headers, body, secrets) and adapter.webhook_from_store(
                headers, body, integration["store_url"]
            )
        except Exception:  # noqa: BLE001 - a plugin bug must read as "not verified", not a 500
            log.warning("verify_webhook raised", exc_info=True)
            verified = False
        if not verified:
            return await self._reject(integration, platform, "failed signature verification")
        try:
            event = adapter.parse_webhook(headers, body)
        except Exception:  # noqa: BLE001 - verified but unreadable: acknowledge, log, the next sync catches up
            log.warning("parse_webhook failed", exc_info=True, extra={"integration_id": integration_id})
            metrics.WEBHOOKS.labels(platform=platform, outcome="unparseable").inc()
            return 200, "unreadable delivery ignored"
        if event is None:
            return 200, "ok"
        age = (self.gw.now() - event.triggered_at).total_seconds() if event.triggered_at else 0.0
        if age > self.gw.settings.webhook_max_age_seconds:
            return await self._reject(integration, platform, "is a replay of an old delivery")
        now = self.gw.now()
        try:
            # The dedupe log: one small document per delivery id, kept a week.
            await self.gw.db.deliveries.insert_one(
                {
                    "account_id": integration["account_id"],
                    "integration_id": integration_id,
                    "delivery_id": event.delivery_id,
                    "topic": event.topic,
                    "external_id": event.external_id,
                    "received_at": now,
                }
            )
        except DuplicateKeyError:
            metrics.WEBHOOKS.labels(platform=platform, outcome="duplicate").inc()
            return 200, "duplicate delivery"
        # The work queue: removed once applied, so claiming stays cheap however many deliveries came before.
        # (A crash between these two writes loses the change until the next scheduled sync, which exists to
        # catch exactly what webhooks miss.)
        await self.gw.db.queue.insert_one(
            {
                "account_id": integration["account_id"],
                "integration_id": integration_id,
                "delivery_id": event.delivery_id,
                "kind": event.kind.value,
                "external_id": event.external_id,
                "product": dict(event.product) if event.product is not None else None,
                "store_updated_at": event.store_updated_at,
                "triggered_at": event.triggered_at,
                "received_at": now,
                "received_mono": time.time(),
                "claim": None,
            }
        )
        metrics.WEBHOOKS.labels(platform=platform, outcome="received").inc()
        if integration.get("settings", {}).get("mode") == SyncMode.MANUAL.value:
            updated = await self.gw.db.integrations.find_one_and_update(
                {"_id": integration_id},
                {"$inc": {"pending_changes": 1}, "$set": self._delivery_seen()},
                return_document=True,
            )
            if updated is not None:
                await self.integrations.publish_health(updated)
            return 200, "recorded for the next Sync Now"
        # Deliveries within one short window share a job: a burst is applied together.
        window = self.gw.settings.webhook_coalesce_seconds
        bucket = int(time.time() / window) if window > 0 else uuid.uuid4().hex
        await self.gw.enqueue(
            APPLY_JOB, integration_id, job_id=f"wh:{integration_id}:{bucket}", defer_by=window or None
        )
        return 200, "ok"

    async def _integration(self, integration_id: str) -> Doc | None:
        cached = self.gw.webhook_integrations.get(integration_id)
        if cached is not None and cached[0] > time.monotonic():
            doc: Doc | None = cached[1]
            return doc
        doc = await self.integrations.get_any(integration_id)
        if doc is None:
            return None  # never cached: a store pings its hook while the integration is still being saved
        if len(self.gw.webhook_integrations) > 1_000:
            self.gw.webhook_integrations.clear()  # bounded
        self.gw.webhook_integrations[integration_id] = (time.monotonic() + INTEGRATION_CACHE_TTL, doc)
        return doc

    def _delivery_seen(self) -> Doc:
        return {"webhooks.last_delivery_at": self.gw.now(), "webhooks.silent": False}

    async def _reject(self, integration: Doc, platform: str, why: str) -> tuple[int, str]:
        metrics.WEBHOOKS.labels(platform=platform, outcome="rejected").inc()
        await self.gw.activity.record(
            integration["account_id"],
            ActivityKind.WEBHOOK_REJECTED,
            f"A change notification claiming to come from your store {why} and was ignored",
            integration_id=integration["_id"],
        )
        return 401, f"delivery {why}"

    async def apply_pending(self, integration_id: str, run_id: str | None = None) -> int:
        """Apply every pending delivery of the integration; returns how many products changed."""
        gw = self.gw
        integration = await self.integrations.get_any(integration_id)
        if integration is None:
            return 0
        from gateway.lifecycle import paused

        if paused(integration):
            # Credentials rejected or app removed: no calls to the store. The full sync that follows a
            # reconnect catches up these changes.
            await gw.db.queue.delete_many({"integration_id": integration_id, "claim": None})
            return 0
        token = uuid.uuid4().hex
        await gw.db.queue.update_many(
            {"integration_id": integration_id, "claim": None}, {"$set": {"claim": token, "claimed_at": gw.now()}}
        )
        claimed = {"integration_id": integration_id, "claim": token}
        deliveries = [d async for d in gw.db.queue.find(claimed).sort("received_at", 1)]
        if not deliveries:
            return 0
        latest: dict[str, Doc] = {}
        for delivery in deliveries:
            current = latest.get(delivery["external_id"])
            if current is None or _newer_or_same(delivery, current):
                latest[delivery["external_id"]] = delivery
        webhooks = integration.get("webhooks", {})
        last = webhooks.get("last_delivery_at")
        if webhooks.get("silent") or last is None or (gw.now() - last).total_seconds() > 60:
            # Deliveries are arriving: the light's "webhooks silent" reason no longer holds. Written at
            # most once a minute, so a burst of deliveries does not rewrite the integration each time.
            await gw.db.integrations.update_one({"_id": integration_id}, {"$set": self._delivery_seen()})
            if webhooks.get("silent"):
                refreshed = await self.integrations.get_any(integration_id)
                if refreshed is not None:
                    await self.integrations.publish_health(refreshed)
        changed = await self._apply(integration, list(latest.values()), run_id)
        await gw.db.queue.delete_many(claimed)
        now = time.time()
        for delivery in deliveries:
            started = delivery.get("triggered_at")
            latency = now - started.timestamp() if isinstance(started, datetime) else now - delivery["received_mono"]
            metrics.WEBHOOK_LATENCY.observe(max(0.0, latency))
        return changed

    async def release_stale_claims(self, older_than: float = 120.0) -> list[str]:
        """Deliveries claimed by a worker that died go back to the queue; returns their integrations."""
        cutoff = self.gw.now() - timedelta(seconds=older_than)
        stale = {"claim": {"$ne": None}, "claimed_at": {"$lt": cutoff}}
        integrations = sorted({d["integration_id"] async for d in self.gw.db.queue.find(stale, {"integration_id": 1})})
        if integrations:
            await self.gw.db.queue.update_many(stale, {"$set": {"claim": None}})
        return integrations

    async def _apply(self, integration: Doc, deliveries: list[Doc], run_id: str | None) -> int:
        gw = self.gw
        adapter = gw.registry.adapter(integration["platform"])
        account_id, integration_id = integration["account_id"], integration["_id"]
        counter = CallCounter(integration_id)
        conn = self.integrations.connection(integration, counter)
        conflicts = ConflictService(gw)
        changed: list[str] = []
        try:
            context = await self._mapping_context(adapter, conn)
            refresh: list[str] = []
            for delivery in deliveries:
                kind = ChangeKind(delivery["kind"])
                if kind is ChangeKind.DELETE:
                    if await gw.products.mark_removed(integration_id, [delivery["external_id"]], run_id):
                        changed.append(product_id(integration_id, delivery["external_id"]))
                elif kind is ChangeKind.REFRESH or delivery.get("product") is None:
                    refresh.append(delivery["external_id"])
                else:
                    mapped = map_one(gw, adapter, delivery["product"], context)
                    if isinstance(mapped, Product):
                        changed += await self._write(conflicts, account_id, integration_id, mapped, run_id)
                    else:
                        log.warning("webhook product could not be mapped: %s", mapped.get("message"))
            if refresh:
                request = FetchRequest(mode=FetchMode.IDS, ids=tuple(refresh))
                async for page in prefetch(adapter.fetch_products(conn, request), 1):
                    for native in page.items:
                        mapped = map_one(gw, adapter, native, context)
                        if isinstance(mapped, Product):
                            changed += await self._write(conflicts, account_id, integration_id, mapped, run_id)
                    if page.missing_ids:
                        await gw.products.mark_removed(integration_id, page.missing_ids, run_id)
                        changed += [product_id(integration_id, e) for e in page.missing_ids]
        except StoreAuthError as exc:
            from gateway.lifecycle import LifecycleService

            await LifecycleService(gw).credentials_rejected(integration, exc.message)
        except StoreError as exc:
            log.warning("could not fetch products for webhooks: %s", exc.message)
        finally:
            await conn.close()
            await counter.flush(gw)
        for pid in changed:
            metrics.WEBHOOKS.labels(platform=integration["platform"], outcome="applied").inc()
            await gw.publisher.account_event(
                account_id,
                {
                    "kind": EventKind.PRODUCT_CHANGED.value,
                    "integration_id": integration_id,
                    "at": gw.now(),
                    "product_id": pid,
                },
            )
        return len(changed)

    async def _mapping_context(self, adapter: PlatformAdapter, conn: Connection) -> MappingContext:
        cached = self.gw.mapping_contexts.get(conn.integration_id)
        if cached is not None and cached[0] > time.monotonic():
            context: MappingContext = cached[1]
            return context
        context = await adapter.mapping_context(conn)
        self.gw.mapping_contexts[conn.integration_id] = (time.monotonic() + MAPPING_CONTEXT_TTL, context)
        return context

    async def _write(
        self,
        conflicts: ConflictService,
        account_id: str,
        integration_id: str,
        product: Product,
        run_id: str | None,
    ) -> list[str]:
        result = await self.gw.products.write_one(
            account_id, integration_id, product, product.content_hash(), run_id, skip_older=True
        )
        for found in result.conflicts:
            await conflicts.record(account_id, integration_id, result.product_id, found, run_id)
        if result.outcome in (Outcome.ADDED, Outcome.UPDATED):
            return [result.product_id]
        return []


def _newer_or_same(candidate: Doc, current: Doc) -> bool:
    a: Any = candidate.get("store_updated_at")
    b: Any = current.get("store_updated_at")
    if a is None or b is None:
        return True  # fall back to arrival order
    return bool(a >= b)
