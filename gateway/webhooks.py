"""Store webhooks: receive (verify, record, enqueue: milliseconds) and apply (in a worker job).

Receiving never maps or fetches: it verifies the signature with the platform's scheme, records the
delivery under a unique (integration, delivery id) key so a redelivery is stored once, and enqueues
the apply job. Applying claims every pending delivery of the integration at once, coalesces bursts
for the same product to its newest version, and writes through the version-guarded path, where a
store version older than the stored one changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from gateway import metrics
from gateway.activity import ActivityLog
from gateway.adapter import ChangeKind, Connection, FetchMode, FetchRequest, MappingContext, PlatformAdapter
from gateway.conflicts import ConflictService
from gateway.constants import APPLY_JOB, apply_job_id
from gateway.deliveries import Delivery, DeliveryStore
from gateway.domain import ActivityKind, SyncMode, Trigger, utcnow
from gateway.errors import BadInput, StoreAuthError, StoreError
from gateway.events import EventPublisher, ProductChanged
from gateway.healthwatch import HealthWatch
from gateway.integration_store import Integration, IntegrationStore
from gateway.integrations import IntegrationService
from gateway.jobqueue import JobQueue
from gateway.lifecycle import LifecycleService
from gateway.mapping import map_one, prefetch
from gateway.model import Product
from gateway.plugins import PluginRegistry
from gateway.products import Outcome, ProductStore, product_id
from gateway.runs import Run
from gateway.settings import Settings

log = logging.getLogger(__name__)

#: Store-wide mapping facts (currency, locales) are reused by webhook batches this long instead of
#: asking the store on every delivery. Sync runs always ask afresh.
MAPPING_CONTEXT_TTL = 300.0


class WebhookService:
    def __init__(
        self,
        *,
        integrations: IntegrationService,
        lifecycle: LifecycleService,
        store: IntegrationStore,
        deliveries: DeliveryStore,
        products: ProductStore,
        conflicts: ConflictService,
        activity: ActivityLog,
        publisher: EventPublisher,
        health: HealthWatch,
        jobs: JobQueue,
        registry: PluginRegistry,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self.integrations = integrations
        self.lifecycle = lifecycle
        self.store = store
        self.deliveries = deliveries
        self.products = products
        self.conflicts = conflicts
        self.activity = activity
        self.publisher = publisher
        self.health = health
        self.jobs = jobs
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self._mapping_contexts: dict[str, tuple[float, MappingContext]] = {}

    async def receive(
        self, platform: str, integration_id: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, str]:
        """Verify, record, enqueue. Returns the HTTP status and a short message."""
        integration = await self.store.get_cached(integration_id)
        if integration is None or integration.platform != platform:
            metrics.WEBHOOKS.labels(platform=platform, outcome="unknown").inc()
            return 404, "unknown integration"
        adapter = self.registry.adapters.get(platform)
        if adapter is None:
            return 404, "platform not installed"
        secrets = self.integrations.credentials(integration)
        try:
            verified = adapter.verify_webhook(headers, body, secrets) and adapter.webhook_from_store(
                headers, body, integration.store_url
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
        age = (self.clock() - event.triggered_at).total_seconds() if event.triggered_at else 0.0
        if age > self.settings.webhook_max_age_seconds:
            return await self._reject(integration, platform, "is a replay of an old delivery")
        now = self.clock()
        manual = integration.settings.mode is SyncMode.MANUAL
        # Queued first, then logged for dedupe: a crash (or a MongoDB outage) between the two leaves a queued
        # change without its log entry, and the platform's retry queues it again (applying twice is harmless).
        # The other order would answer that retry "duplicate" and lose the change.
        try:
            queued = await self.deliveries.enqueue(integration.account_id, integration_id, event, now, held=manual)
        except BadInput:
            if event.product is None or "fetch_by_ids" not in adapter.info.capabilities:
                metrics.WEBHOOKS.labels(platform=platform, outcome="unstorable").inc()
                return 400, "the delivery carries a value that cannot be stored (such as an integer past 64 bits)"
            # The body cannot be kept: the product is read back from the store instead.
            event = replace(event, kind=ChangeKind.REFRESH, product=None)
            queued = await self.deliveries.enqueue(integration.account_id, integration_id, event, now, held=manual)
        if not await self.deliveries.record(integration.account_id, integration_id, event, now):
            await self.deliveries.unqueue(queued)
            metrics.WEBHOOKS.labels(platform=platform, outcome="duplicate").inc()
            return 200, "duplicate delivery"
        metrics.WEBHOOKS.labels(platform=platform, outcome="received").inc()
        if manual:
            await self.store.add_pending_change(integration_id, self.clock())
            await self.health.refresh(integration_id)
            return 200, "recorded for the next Sync Now"
        # Deliveries within one short window share a job: a burst is applied together.
        window = self.settings.webhook_coalesce_seconds
        bucket = int(time.time() / window) if window > 0 else uuid.uuid4().hex
        # Safe in MongoDB already: without Redis, the scheduler gives it a job later (no need to have it resent).
        await self.jobs.try_enqueue(
            APPLY_JOB, integration_id, job_id=apply_job_id(integration_id, bucket), defer_by=window or None
        )
        return 200, "ok"

    async def _reject(self, integration: Integration, platform: str, why: str) -> tuple[int, str]:
        metrics.WEBHOOKS.labels(platform=platform, outcome="rejected").inc()
        # Counted into one entry a minute: a flood of forgeries must not flood the merchant's log.
        await self.activity.record_repeated(
            integration.account_id,
            ActivityKind.WEBHOOK_REJECTED,
            f"A change notification claiming to come from your store {why} and was ignored",
            f"{{count}} change notifications claiming to come from your store {why} and were ignored",
            integration_id=integration.id,
            reason=why,
        )
        return 401, f"delivery {why}"

    async def apply_pending(self, integration_id: str, run_id: str | None = None) -> int:
        """Apply every pending delivery of the integration; returns how many products changed.

        The deliveries are claimed under a lease renewed while they are applied: if this worker dies or
        freezes, or the apply fails, they go back to the queue for another job (never lost, never held)."""
        integration = await self.store.get_any(integration_id)
        if integration is None:
            # Disconnected (a delivery accepted from another API's cached read just before): nothing waits
            # for an integration that is gone.
            await self.deliveries.delete_integration(integration_id)
            return 0
        if integration.paused:
            # Credentials rejected or app removed: no calls to the store. The full sync that follows a
            # reconnect catches up these changes.
            await self.deliveries.drop_unclaimed(integration_id)
            return 0
        token = uuid.uuid4().hex
        lease = timedelta(seconds=self.settings.run_lease_seconds)
        deliveries = await self.deliveries.claim(integration_id, token, self.clock(), lease)
        if not deliveries:
            return 0
        renewing = asyncio.get_running_loop().create_task(self._renew(integration_id, token, lease))
        try:
            changed = await self._apply_claimed(integration, deliveries, run_id)
        except BaseException:
            with contextlib.suppress(Exception):  # MongoDB may be what failed: then the lease runs out
                await self.deliveries.release(integration_id, token)
            raise
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        await self.deliveries.done(integration_id, token)
        now = time.time()
        for delivery in deliveries:
            started = delivery.triggered_at
            latency = now - (started.timestamp() if started is not None else delivery.received_mono)
            metrics.WEBHOOK_LATENCY.observe(max(0.0, latency))
        return changed

    async def _renew(self, integration_id: str, token: str, lease: timedelta) -> None:
        """Keep the claim's lease while its deliveries are applied (three renewals per lease)."""
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                await self.deliveries.renew(integration_id, token, self.clock(), lease)
            except Exception:  # noqa: BLE001 - MongoDB unreachable: the apply itself will say so
                log.warning("could not renew a webhook claim", exc_info=True)

    async def _apply_claimed(self, integration: Integration, deliveries: list[Delivery], run_id: str | None) -> int:
        integration_id = integration.id
        latest: dict[str, Delivery] = {}
        for delivery in deliveries:
            current = latest.get(delivery.external_id)
            if current is None or _newer_or_same(delivery, current):
                latest[delivery.external_id] = delivery
        webhooks = integration.webhooks
        last = webhooks.last_delivery_at
        if webhooks.silent or last is None or (self.clock() - last).total_seconds() > 60:
            # Deliveries are arriving: the light's "webhooks silent" reason no longer holds. Written at
            # most once a minute, so a burst of deliveries does not rewrite the integration each time.
            await self.store.mark_deliveries_arriving(integration_id, self.clock())
            if webhooks.silent:
                await self.health.refresh(integration_id)
        return await self._apply(integration, list(latest.values()), run_id)

    async def apply_held(self, run: Run) -> None:
        """The step a Sync Now run takes first: apply the changes that manual mode kept waiting."""
        if run.trigger is Trigger.MANUAL:
            await self.apply_pending(run.integration_id, run.id)

    async def _apply(self, integration: Integration, deliveries: list[Delivery], run_id: str | None) -> int:
        adapter = self.registry.adapter(integration.platform)
        account_id, integration_id = integration.account_id, integration.id
        counter = self.integrations.counter(integration_id)
        conn = self.integrations.connection(integration, counter)
        changed: list[str] = []
        try:
            context = await self._mapping_context(adapter, conn)
            refresh: list[str] = []
            for delivery in deliveries:
                if delivery.kind is ChangeKind.DELETE:
                    # The store had removed it when the delivery arrived: no body of before then revives it.
                    removed = await self.products.mark_removed(
                        integration_id, [delivery.external_id], run_id, version=delivery.received_at
                    )
                    if removed:
                        changed.append(product_id(integration_id, delivery.external_id))
                elif delivery.kind is ChangeKind.REFRESH or delivery.product is None:
                    refresh.append(delivery.external_id)
                else:
                    mapped = map_one(self.registry, adapter, delivery.product, context)
                    if isinstance(mapped, Product):
                        changed += await self._write(account_id, integration_id, mapped, run_id)
                    else:
                        log.warning("webhook product could not be mapped: %s", mapped.message)
            if refresh:
                request = FetchRequest(mode=FetchMode.IDS, ids=tuple(refresh))
                reading_since = utcnow()
                async for page in prefetch(adapter.fetch_products(conn, request), 1):
                    for native in page.items:
                        mapped = map_one(self.registry, adapter, native, context)
                        if isinstance(mapped, Product):
                            changed += await self._write(account_id, integration_id, mapped, run_id, reading_since)
                    if page.missing_ids:
                        await self.products.mark_removed(integration_id, page.missing_ids, run_id)
                        changed += [product_id(integration_id, e) for e in page.missing_ids]
        except StoreAuthError as exc:
            await self.lifecycle.credentials_rejected(integration, exc.message)
        except StoreError as exc:
            log.warning("could not fetch products for webhooks: %s", exc.message)
        finally:
            await conn.close()
            await counter.flush()
        for pid in changed:
            metrics.WEBHOOKS.labels(platform=integration.platform, outcome="applied").inc()
            await self.publisher.publish(
                ProductChanged(account_id=account_id, integration_id=integration_id, at=self.clock(), product_id=pid)
            )
        return len(changed)

    async def _mapping_context(self, adapter: PlatformAdapter, conn: Connection) -> MappingContext:
        cached = self._mapping_contexts.get(conn.integration_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        context = await adapter.mapping_context(conn)
        if len(self._mapping_contexts) > 1_000:
            self._mapping_contexts.clear()  # bounded
        self._mapping_contexts[conn.integration_id] = (time.monotonic() + MAPPING_CONTEXT_TTL, context)
        return context

    async def _write(
        self,
        account_id: str,
        integration_id: str,
        product: Product,
        run_id: str | None,
        observed_after: datetime | None = None,
    ) -> list[str]:
        """Write a product a delivery carried (`observed_after` None: judged by its store time) or one read
        back from the store after `observed_after`."""
        result = await self.products.write_one(
            account_id,
            integration_id,
            product,
            product.content_hash(),
            run_id,
            skip_older=True,
            observed_after=observed_after,
        )
        for found in result.conflicts:
            await self.conflicts.record(account_id, integration_id, result.product_id, found, run_id)
        if result.outcome in (Outcome.ADDED, Outcome.UPDATED):
            return [result.product_id]
        return []


def _newer_or_same(candidate: Delivery, current: Delivery) -> bool:
    a, b = candidate.store_updated_at, current.store_updated_at
    if a is None or b is None:
        return True  # fall back to arrival order
    return a >= b
