"""Store webhooks: receive (verify, journal, answer: milliseconds) and apply (in a worker job).

Receiving never maps or fetches: it verifies the signature with the platform's scheme and appends the
delivery to the journal in Redis (gateway/journal.py), which answers a quick redelivery "duplicate";
right behind the answer the process records it in MongoDB under a unique (integration, delivery id)
key, so a redelivery is stored once, and enqueues the apply job. Without Redis (and for manual mode's
held deliveries) it records before answering. Concurrent deliveries share their writes (`WriteBatcher`:
one append, then one insert into the queue and one into the dedupe log for all of them), and each
integration's apply job is queued once per coalescing window, so a bulk edit's burst costs MongoDB a
few writes per batch, not several per delivery.

Applying is one job per integration at a time (`apply_queued`, under a Redis lock): each pass claims
every pending delivery under a lease renewed while it applies them (a worker that dies or freezes, or
an apply that fails, gives them back), coalesces them to the newest version of each product, and
writes them together through the version-guarded path (`ProductStore.write_changes`), where a store
version older than the stored one changes nothing; then it looks again, until nothing waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway import metrics
from gateway.activity import ActivityLog
from gateway.adapter import ChangeKind, Connection, FetchMode, FetchRequest, MappingContext, PlatformAdapter
from gateway.batching import WriteBatcher
from gateway.conflicts import ConflictService
from gateway.constants import apply_lock_key, journal_key
from gateway.deliveries import Arrival, Delivery, DeliveryStore, storable
from gateway.domain import ActivityKind, ChangeOutcome, RunKind, SyncMode, Trigger, utcnow
from gateway.errors import StoreAuthError, StoreError
from gateway.events import EventPublisher, ProductChanged
from gateway.healthwatch import HealthWatch
from gateway.integration_store import Integration, IntegrationStore
from gateway.integrations import IntegrationService
from gateway.jobqueue import JobQueue
from gateway.journal import BACKLOG_LIMIT, ORPHAN_SECONDS, Entry, Journal, Mover
from gateway.lifecycle import LifecycleService
from gateway.locks import RedisLock
from gateway.mapping import map_one, prefetch
from gateway.model import Product
from gateway.plugins import PluginRegistry
from gateway.products import Outcome, ProductStore, WriteResult, product_id
from gateway.runs import (
    Applied,
    AppliedChange,
    Run,
    RunCounts,
    RunStore,
    SyncError,
    digest_id,
    digest_message,
    held_mark,
)
from gateway.settings import Settings

log = logging.getLogger(__name__)

#: Store-wide mapping facts (currency, locales) are reused by webhook batches this long instead of
#: asking the store on every delivery. Sync runs always ask afresh.
MAPPING_CONTEXT_TTL = 300.0
#: How long an apply job may hold an integration's lock (one pass); a worker that dies holding it
#: delays that integration's deliveries at most this long (then the scheduler gives them a job).
APPLY_LOCK_SECONDS = 30.0
#: Integrations whose apply job this process remembers having queued for the current window.
SCHEDULED_LIMIT = 10_000
#: The most deliveries one intake write carries.
INTAKE_BATCH = 500


class WebhookService:
    def __init__(
        self,
        *,
        integrations: IntegrationService,
        lifecycle: LifecycleService,
        store: IntegrationStore,
        deliveries: DeliveryStore,
        products: ProductStore,
        runs: RunStore,
        conflicts: ConflictService,
        activity: ActivityLog,
        publisher: EventPublisher,
        health: HealthWatch,
        jobs: JobQueue,
        redis: Redis,
        registry: PluginRegistry,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self.integrations = integrations
        self.lifecycle = lifecycle
        self.store = store
        self.deliveries = deliveries
        self.products = products
        self.runs = runs
        self.conflicts = conflicts
        self.activity = activity
        self.publisher = publisher
        self.health = health
        self.jobs = jobs
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self.redis = redis
        self._mapping_contexts: dict[str, tuple[float, MappingContext]] = {}
        #: Concurrent deliveries (any integration) share one write to the queue and the log.
        self._intake: WriteBatcher[Arrival, bool] = WriteBatcher(self._intake_batch, max_items=INTAKE_BATCH)
        #: ... and, journaled (the default), one append to the journal; the mover then stores them.
        self.journal = Journal(redis, journal_key(settings.queue_name))
        self._mover = Mover(self.journal, self._store_batch)
        self._journaling: WriteBatcher[Arrival, Entry | None] = WriteBatcher(
            self._journal_batch, max_items=INTAKE_BATCH
        )
        #: integration id -> the coalescing window whose apply job this process queued last.
        self._scheduled: dict[str, int] = {}

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
        if not storable(event):
            if event.product is None or "fetch_by_ids" not in adapter.info.capabilities:
                metrics.WEBHOOKS.labels(platform=platform, outcome="unstorable").inc()
                return 400, "the delivery carries a value that cannot be stored (such as an integer past 64 bits)"
            # The body cannot be kept: the product is read back from the store instead.
            event = replace(event, kind=ChangeKind.REFRESH, product=None)
        manual = integration.settings.mode is SyncMode.MANUAL
        arrival = Arrival(integration.account_id, integration_id, event, self.clock(), held=manual)
        if not await self._take(arrival):
            metrics.WEBHOOKS.labels(platform=platform, outcome="duplicate").inc()
            return 200, "duplicate delivery"
        metrics.WEBHOOKS.labels(platform=platform, outcome="received").inc()
        if manual:
            return 200, "recorded for the next Sync Now"
        return 200, "ok"

    async def _take(self, arrival: Arrival) -> bool:
        """Keep a delivery before it is answered; False for a redelivery. A delivery answered 200 is in the
        journal (and this process's memory) or in MongoDB. Held deliveries go to MongoDB first: the card
        counts them, and Sync Now must find them."""
        if not arrival.held and self.settings.webhook_journal and self._mover.backlog < BACKLOG_LIMIT:
            try:
                return await self._journaling.submit(arrival) is not None
            except (RedisError, OSError):
                log.warning("could not journal a delivery; storing it in MongoDB first", exc_info=True)
        # Stored (queued and logged, with whatever else arrived meanwhile) before the answer.
        return await self._intake.submit(arrival)

    async def _intake_batch(self, arrivals: list[Arrival]) -> list[bool]:
        """The unjournaled intake's write (Redis away, or held deliveries): stored before the answer."""
        metrics.RECEIVE_BATCH.observe(len(arrivals))
        return await self._store_batch(arrivals)

    async def _journal_batch(self, arrivals: list[Arrival]) -> list[Entry | None]:
        """The journaled intake's write: one append for the batch, then the mover takes them to MongoDB."""
        entries = await self.journal.append(arrivals)
        metrics.RECEIVE_BATCH.observe(len(arrivals))
        self._mover.add([entry for entry in entries if entry is not None])
        return entries

    async def journal_settled(self) -> None:
        """Returns once every delivery this process journaled is in MongoDB (tests, shutdown)."""
        await self._mover.settled()

    async def close(self, grace: float = 5.0) -> None:
        """Stop moving (after up to `grace` seconds); what is left waits in the journal for a worker."""
        await self._mover.close(grace)

    async def recover_journal(self, older_than: float = ORPHAN_SECONDS) -> int:
        """Move journal entries no process moved (the API that answered them died): the maintenance pass.
        Returns how many were moved."""
        moved = 0
        while True:
            entries = await self.journal.older_than(older_than)
            if not entries:
                return moved
            await self._store_batch([entry.arrival for entry in entries])
            await self.journal.forget([entry.stream_id for entry in entries])
            moved += len(entries)
            log.info("moved %d journaled deliveries that no API had stored", len(entries))

    async def _store_batch(self, arrivals: list[Arrival]) -> list[bool]:
        """The intake's write: every delivery of the batch queued and logged together, then what the
        new ones ask for done once per integration (manual mode: the waiting count and the light;
        automatic: an apply job)."""
        fresh = await self.deliveries.record_batch(arrivals)
        held: dict[str, int] = {}
        applied: dict[str, None] = {}  # ordered: integrations in arrival order
        for arrival, new in zip(arrivals, fresh, strict=True):
            if not new:
                continue
            if arrival.held:
                held[arrival.integration_id] = held.get(arrival.integration_id, 0) + 1
            else:
                applied[arrival.integration_id] = None
        for integration_id, count in held.items():
            await self.store.add_pending_change(integration_id, self.clock(), count)
            await self.health.refresh(integration_id)
        for integration_id in applied:
            await self._schedule_apply(integration_id)
        return fresh

    async def _schedule_apply(self, integration_id: str) -> None:
        """Deliveries within one short window share a job: a burst is applied together. This process
        asks Redis once per integration and window (arq would refuse the same job id anyway)."""
        window = self.settings.webhook_coalesce_seconds
        # Best effort: the deliveries are safe in MongoDB already; without Redis, the scheduler gives
        # them a job later (no need to have them resent).
        if window <= 0:
            await self.jobs.enqueue_apply(integration_id, uuid.uuid4().hex, best_effort=True)
            return
        # Read after the deliveries were stored: the window's job runs after the window ends, so it
        # finds them.
        bucket = int(time.time() / window)
        if self._scheduled.get(integration_id) == bucket:
            return
        if len(self._scheduled) > SCHEDULED_LIMIT:
            self._scheduled.clear()
        self._scheduled[integration_id] = bucket
        try:
            await self.jobs.enqueue_apply(integration_id, bucket, defer_by=window, best_effort=True)
        except BaseException:
            self._scheduled.pop(integration_id, None)
            raise

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

    async def apply_queued(self, integration_id: str) -> int:
        """The apply job: applies what waits for the integration, pass after pass until nothing does,
        as the integration's only applier (a Redis lock, held for one pass at a time), so one store's
        burst holds one webhook slot and each pass takes everything that arrived during the previous
        one. Returns how many products changed."""
        changed = 0
        while True:
            key = apply_lock_key(integration_id)
            lock = await RedisLock.acquire(self.redis, key, APPLY_LOCK_SECONDS)
            if lock is None:
                # The holder applies these deliveries too: it looks again after letting go. Should it die
                # first, the scheduler gives what still waits a job (gateway.scheduler.recover_webhooks).
                return changed
            try:
                changed += await self.apply_pending(integration_id)
            finally:
                await lock.release()
            # What arrived during the pass (its apply jobs found the lock held and left it to us), or
            # between the pass and the release: another pass.
            if not await self.deliveries.any_waiting(integration_id):
                return changed

    async def apply_pending(self, integration_id: str) -> int:
        """The apply job: apply every pending delivery of the integration and add them to the hour's WEBHOOK
        digest run (history and activity log); returns how many products changed.

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
            dropped = await self.deliveries.drop_unclaimed(integration_id)
            await self.store.settle_pending_changes(integration_id, dropped)
            return 0
        now = self.clock()
        run_id = digest_id(integration_id, now)

        async def record(applied: Applied) -> None:
            await self._digest(integration, run_id, now, applied)

        applied = await self._claim_and_apply(integration, run_id, record=record)
        if applied.deliveries == 0:
            return 0
        # Only what manual mode had counted (kept before a switch to automatic): nearly always none, and
        # then the integration is not written at all.
        await self.store.settle_pending_changes(integration_id, applied.held)
        await self._announce(integration, applied, None)
        return len(applied.changed_ids)

    async def apply_held(self, run: Run) -> Applied | None:
        """The step a Sync Now run takes first: apply the changes manual mode kept waiting (for a run of
        chosen products, only theirs: the others keep waiting). The run counts what this returns."""
        if run.trigger is not Trigger.MANUAL:
            return None
        integration = await self.store.get_any(run.integration_id)
        if integration is None or integration.paused:
            return None  # the run fails at the store; what waits is applied after a reconnect
        only = run.product_ids if run.kind is RunKind.PRODUCTS else None
        applied = await self._claim_and_apply(integration, run.id, held=held_mark(run), only=only)
        if applied.deliveries:
            # Deliveries queued before a switch to manual mode were never counted: only the held ones are.
            await self.store.settle_pending_changes(integration.id, applied.held)
            await self.health.refresh(integration.id)
        await self._announce(integration, applied, run.id)
        return applied

    async def _claim_and_apply(
        self,
        integration: Integration,
        run_id: str,
        *,
        held: str | None = None,
        only: Sequence[str] | None = None,
        record: Callable[[Applied], Awaitable[None]] | None = None,
    ) -> Applied:
        """Claim the integration's pending deliveries (of the products in `only`, when given), apply the
        newest change of each product under `run_id`, `record` what was applied, and forget them.

        Recorded before the deliveries are forgotten: if recording fails (MongoDB went away between the
        products' writes and the digest's), the deliveries go back to the queue and their retry records
        them. Forgotten first, the hour's digest would have missed the batch for good."""
        integration_id = integration.id
        token = uuid.uuid4().hex
        lease = timedelta(seconds=self.settings.run_lease_seconds)
        deliveries = await self.deliveries.claim(integration_id, token, self.clock(), lease, only)
        if not deliveries:
            return Applied()
        metrics.APPLY_BATCH.observe(len(deliveries))
        renewing = asyncio.get_running_loop().create_task(self._renew(integration_id, token, lease))
        try:
            applied = replace(
                await self._apply_claimed(integration, deliveries, run_id, held),
                deliveries=len(deliveries),
                held=sum(1 for d in deliveries if d.held),
            )
            if record is not None:
                await record(applied)
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
        return applied

    async def _renew(self, integration_id: str, token: str, lease: timedelta) -> None:
        """Keep the claim's lease while its deliveries are applied (three renewals per lease)."""
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                await self.deliveries.renew(integration_id, token, self.clock(), lease)
            except Exception:  # noqa: BLE001 - MongoDB unreachable: the apply itself will say so
                log.warning("could not renew a webhook claim", exc_info=True)

    async def _apply_claimed(
        self, integration: Integration, deliveries: list[Delivery], run_id: str, held: str | None
    ) -> Applied:
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
        return await self._apply(integration, list(latest.values()), run_id, held=held)

    async def _digest(self, integration: Integration, run_id: str, at: datetime, applied: Applied) -> None:
        """Add a batch to the hour's WEBHOOK digest: its run in the history, one activity entry that follows it."""
        run = await self.runs.add_to_digest(integration.account_id, integration.id, run_id, at, applied)
        await self.activity.record_digest(
            integration.account_id,
            integration.id,
            run.id,
            at,
            digest_summary(run),
            seq=run.progress.seq,
        )

    async def _apply(
        self, integration: Integration, deliveries: list[Delivery], run_id: str, *, held: str | None = None
    ) -> Applied:
        adapter = self.registry.adapter(integration.platform)
        account_id, integration_id = integration.account_id, integration.id
        counter = self.integrations.counter(integration_id)
        conn = self.integrations.connection(integration, counter)
        tally = _Tally(integration_id)
        try:
            context = await self._mapping_context(adapter, conn)
            refresh: list[str] = []
            carried: dict[str, Product] = {}
            for delivery in deliveries:
                if delivery.kind is ChangeKind.DELETE:
                    # The store had removed it when the delivery arrived: no body of before then revives it.
                    await self._remove(
                        tally, integration_id, [delivery.external_id], run_id, held, delivery.received_at
                    )
                elif delivery.kind is ChangeKind.REFRESH or delivery.product is None:
                    refresh.append(delivery.external_id)
                else:
                    mapped = map_one(self.registry, adapter, delivery.product, context)
                    if not isinstance(mapped, Product):
                        log.warning("webhook product could not be mapped: %s", mapped.message)
                        tally.failed(delivery.external_id, mapped)
                    elif held is None:
                        carried[mapped.external_id] = mapped  # written together below
                    else:
                        tally.wrote(await self._write(account_id, integration_id, mapped, run_id, held))
            await self._write_carried(tally, account_id, integration_id, carried, run_id)
            if refresh:
                request = FetchRequest(mode=FetchMode.IDS, ids=tuple(refresh))
                reading_since = utcnow()
                async for page in prefetch(adapter.fetch_products(conn, request), 1):
                    for native in page.items:
                        mapped = map_one(self.registry, adapter, native, context)
                        if isinstance(mapped, Product):
                            tally.wrote(
                                await self._write(account_id, integration_id, mapped, run_id, held, reading_since)
                            )
                        elif mapped.external_id:
                            tally.failed(mapped.external_id, mapped)
                    await self._remove(tally, integration_id, page.missing_ids, run_id, held)
        except StoreAuthError as exc:
            await self.lifecycle.credentials_rejected(integration, exc.message)
        except StoreError as exc:
            log.warning("could not fetch products for webhooks: %s", exc.message)
        finally:
            await conn.close()
            await counter.flush()
        return tally.result()

    async def _announce(self, integration: Integration, applied: Applied, run_id: str | None) -> None:
        """PRODUCT_CHANGED for each product a batch changed, once what it did is recorded (a subscriber that
        reads the history then finds it there)."""
        for pid in applied.changed_ids:
            metrics.WEBHOOKS.labels(platform=integration.platform, outcome="applied").inc()
            await self.publisher.publish(
                ProductChanged(
                    account_id=integration.account_id,
                    integration_id=integration.id,
                    at=self.clock(),
                    product_id=pid,
                    run_id=run_id,
                )
            )

    async def _remove(
        self,
        tally: _Tally,
        integration_id: str,
        external_ids: Sequence[str],
        run_id: str,
        held: str | None,
        version: datetime | None = None,
    ) -> None:
        for external_id in external_ids:
            if await self.products.mark_removed(integration_id, [external_id], run_id, version=version, held=held):
                tally.removed(external_id)

    async def _mapping_context(self, adapter: PlatformAdapter, conn: Connection) -> MappingContext:
        cached = self._mapping_contexts.get(conn.integration_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        context = await adapter.mapping_context(conn)
        if len(self._mapping_contexts) > 1_000:
            self._mapping_contexts.clear()  # bounded
        self._mapping_contexts[conn.integration_id] = (time.monotonic() + MAPPING_CONTEXT_TTL, context)
        return context

    async def _write_carried(
        self, tally: _Tally, account_id: str, integration_id: str, carried: Mapping[str, Product], run_id: str
    ) -> None:
        """Write the products deliveries carried, all together (one read, one bulk write)."""
        if not carried:
            return
        written = await self.products.write_changes(account_id, integration_id, carried, run_id)
        for external_id, result in written.items():
            for found in result.conflicts:
                await self.conflicts.record(account_id, integration_id, result.product_id, found, run_id)
            tally.wrote((external_id, result))

    async def _write(
        self,
        account_id: str,
        integration_id: str,
        product: Product,
        run_id: str,
        held: str | None,
        observed_after: datetime | None = None,
    ) -> tuple[str, WriteResult]:
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
            held=held,
        )
        for found in result.conflicts:
            await self.conflicts.record(account_id, integration_id, result.product_id, found, run_id)
        return product.external_id, result


class _Tally:
    """The outcome of each product one batch of deliveries touched (each product is in a batch once)."""

    def __init__(self, integration_id: str) -> None:
        self.integration_id = integration_id
        self.outcomes: dict[str, ChangeOutcome] = {}
        self.errors: list[SyncError] = []
        self.conflicts = 0

    def wrote(self, written: tuple[str, WriteResult]) -> None:
        external_id, result = written
        self.outcomes[external_id] = _OUTCOMES[result.outcome]
        self.conflicts += len(result.conflicts)

    def removed(self, external_id: str) -> None:
        self.outcomes[external_id] = ChangeOutcome.REMOVED

    def failed(self, external_id: str, error: SyncError) -> None:
        self.outcomes[external_id] = ChangeOutcome.FAILED
        self.errors.append(error)

    def result(self) -> Applied:
        outcomes = list(self.outcomes.values())
        counts = RunCounts(
            added=outcomes.count(ChangeOutcome.ADDED),
            updated=outcomes.count(ChangeOutcome.UPDATED),
            unchanged=outcomes.count(ChangeOutcome.UNCHANGED),
            removed=outcomes.count(ChangeOutcome.REMOVED),
            failed=outcomes.count(ChangeOutcome.FAILED),
            conflicts=self.conflicts,
        )
        changes = tuple(AppliedChange(e, o) for e, o in self.outcomes.items())
        changed = tuple(
            product_id(self.integration_id, e)
            for e, o in self.outcomes.items()
            if o in (ChangeOutcome.ADDED, ChangeOutcome.UPDATED, ChangeOutcome.REMOVED)
        )
        return Applied(counts, tuple(self.errors), changes, changed_ids=changed)


_OUTCOMES = {
    Outcome.ADDED: ChangeOutcome.ADDED,
    Outcome.UPDATED: ChangeOutcome.UPDATED,
    Outcome.UNCHANGED: ChangeOutcome.UNCHANGED,
    Outcome.STALE: ChangeOutcome.UNCHANGED,
    Outcome.REMOVED: ChangeOutcome.REMOVED,
}


def digest_summary(run: Run) -> str:
    """The activity log's line for an hour's WEBHOOK digest, e.g. "32 changes applied from store
    notifications: 3 added, 27 updated, 2 removed"."""
    c = run.counts
    parts = [
        f"{n} {word}"
        for n, word in (
            (c.added, "added"),
            (c.updated, "updated"),
            (c.removed, "removed"),
            (c.unchanged, "unchanged"),
            (c.failed, "failed"),
            (c.conflicts, "conflict" if c.conflicts == 1 else "conflicts"),
        )
        if n
    ]
    return digest_message(run.progress.processed) + (f": {', '.join(parts)}" if parts else "")


def _newer_or_same(candidate: Delivery, current: Delivery) -> bool:
    a, b = candidate.store_updated_at, current.store_updated_at
    if a is None or b is None:
        return True  # fall back to arrival order
    return a >= b
