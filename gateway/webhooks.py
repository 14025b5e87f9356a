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
writes them together through the version-guarded path (`ProductStore.write_changes_many`), where a
store version older than the stored one changes nothing; then it looks again, until nothing waits.
The jobs of different integrations running at one moment in a worker share their pass
(`_apply_pass`): one claim, one products write, one digest and activity write for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway import metrics
from gateway.activity import ActivityLog, DigestEntry
from gateway.adapter import ChangeKind, Connection, FetchMode, FetchRequest, MappingContext, PlatformAdapter
from gateway.batching import WriteBatcher
from gateway.conflicts import ConflictService
from gateway.constants import apply_lock_key, journal_key
from gateway.deliveries import Arrival, Delivery, DeliveryStore, storable
from gateway.domain import ActivityKind, ChangeOutcome, RunKind, SyncMode, Trigger, utcnow
from gateway.errors import StoreAuthError, StoreError
from gateway.events import EventPublisher, ProductChanged
from gateway.healthwatch import HealthWatch
from gateway.integration_store import CallCounter, Integration, IntegrationStore
from gateway.integrations import IntegrationService
from gateway.jobqueue import JobQueue
from gateway.journal import BACKLOG_LIMIT, ORPHAN_SECONDS, Entry, Journal, Mover
from gateway.lifecycle import LifecycleService
from gateway.locks import RedisLock
from gateway.mapping import map_one, prefetch
from gateway.model import Product
from gateway.plugins import PluginRegistry
from gateway.products import Changes, Outcome, ProductStore, WriteResult, product_id
from gateway.runs import (
    Applied,
    AppliedChange,
    DigestBatch,
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
#: The most integrations one apply pass serves (the apply jobs this process runs at that moment).
APPLY_PASS_LIMIT = 64


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
        #: The apply jobs running at one moment in this process share their passes' reads and writes.
        self._passes: WriteBatcher[str, int | Exception] = WriteBatcher(self._apply_pass, max_items=APPLY_PASS_LIMIT)
        self._waiting: WriteBatcher[str, bool] = WriteBatcher(self._waiting_batch, max_items=APPLY_PASS_LIMIT)
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
            if not await self._waiting.submit(integration_id):
                return changed

    async def apply_pending(self, integration_id: str) -> int:
        """The apply job: apply every pending delivery of the integration and add them to the hour's WEBHOOK
        digest run (history and activity log); returns how many products changed.

        The deliveries are claimed under a lease renewed while they are applied: if this worker dies or
        freezes, or the apply fails, they go back to the queue for another job (never lost, never held).

        Concurrent calls in this process (the webhook slots' jobs for other stores) share one pass
        (`_apply_pass`): what each store's apply costs MongoDB is paid once for all of them."""
        result = await self._passes.submit(integration_id)
        if isinstance(result, Exception):
            raise result
        return result

    async def _apply_pass(self, integration_ids: list[str]) -> list[int | Exception]:
        """One apply pass for every integration asked for: one read of the integrations, one claim, one
        products' write, one digest write and one activity write for all of them (each store's own
        commands, a dozen, made a steady stream of single deliveries to many stores cost more than the
        database could serve). A failure of one store's part (its plugin, its store) fails that store's
        job only; a failed shared write fails them all, and every claim goes back to the queue."""
        unique = list(dict.fromkeys(integration_ids))
        found = await self.store.get_many_any(unique)
        outcome: dict[str, int | Exception] = {}
        now = self.clock()
        jobs: list[_Job] = []
        for integration_id in unique:
            integration = found.get(integration_id)
            if integration is None:
                # Disconnected (a delivery accepted from another API's cached read just before): nothing
                # waits for an integration that is gone.
                await self.deliveries.delete_integration(integration_id)
                outcome[integration_id] = 0
            elif integration.paused:
                # Credentials rejected or app removed: no calls to the store. The full sync that follows a
                # reconnect catches up these changes.
                dropped = await self.deliveries.drop_unclaimed(integration_id)
                await self.store.settle_pending_changes(integration_id, dropped)
                outcome[integration_id] = 0
            else:
                jobs.append(_Job(integration, digest_id(integration_id, now)))

        async def record(applied: Mapping[str, Applied]) -> None:
            batches = [(job, applied[job.integration.id]) for job in jobs if job.integration.id in applied]
            await self._digest(batches, now)

        results = await self._claim_and_apply(jobs, record=record) if jobs else {}
        for job in jobs:
            integration = job.integration
            result = results.get(integration.id, Applied())
            if isinstance(result, Exception) or result.deliveries == 0:
                outcome[integration.id] = result if isinstance(result, Exception) else 0
                continue
            try:
                # Only what manual mode had counted (kept before a switch to automatic): nearly always none,
                # and then the integration is not written at all.
                await self.store.settle_pending_changes(integration.id, result.held)
                await self._announce(integration, result, None)
                outcome[integration.id] = len(result.changed_ids)
            except Exception as exc:  # noqa: BLE001 - this store's job fails; the others' passes stand
                outcome[integration.id] = exc
        answered: set[str] = set()
        answers: list[int | Exception] = []
        for integration_id in integration_ids:
            # The same store asked twice at once: the first call's pass applied everything.
            answers.append(0 if integration_id in answered else outcome[integration_id])
            answered.add(integration_id)
        return answers

    async def _waiting_batch(self, integration_ids: list[str]) -> list[bool]:
        waiting = await self.deliveries.waiting_of(list(dict.fromkeys(integration_ids)))
        return [integration_id in waiting for integration_id in integration_ids]

    async def apply_held(self, run: Run) -> Applied | None:
        """The step a Sync Now run takes first: apply the changes manual mode kept waiting (for a run of
        chosen products, only theirs: the others keep waiting). The run counts what this returns."""
        if run.trigger is not Trigger.MANUAL:
            return None
        integration = await self.store.get_any(run.integration_id)
        if integration is None or integration.paused:
            return None  # the run fails at the store; what waits is applied after a reconnect
        only = run.product_ids if run.kind is RunKind.PRODUCTS else None
        job = _Job(integration, run.id, held=held_mark(run))
        result = (await self._claim_and_apply([job], only=only)).get(integration.id, Applied())
        if isinstance(result, Exception):
            raise result
        if result.deliveries:
            # Deliveries queued before a switch to manual mode were never counted: only the held ones are.
            await self.store.settle_pending_changes(integration.id, result.held)
            await self.health.refresh(integration.id)
        await self._announce(integration, result, run.id)
        return result

    async def _claim_and_apply(
        self,
        jobs: Sequence[_Job],
        *,
        only: Sequence[str] | None = None,
        record: Callable[[Mapping[str, Applied]], Awaitable[None]] | None = None,
    ) -> dict[str, Applied | Exception]:
        """Claim the pending deliveries of the jobs' integrations (of the products in `only`, when given),
        apply the newest change of each product under each job's run, `record` what was applied, and
        forget them. By integration: what was applied, or why that integration's part failed (its
        deliveries went back to the queue); integrations with nothing waiting are left out.

        Recorded before the deliveries are forgotten: if recording fails (MongoDB went away between the
        products' writes and the digest's), the deliveries go back to the queue and their retry records
        them. Forgotten first, the hour's digest would have missed the batch for good."""
        ids = [job.integration.id for job in jobs]
        token = uuid.uuid4().hex
        lease = timedelta(seconds=self.settings.run_lease_seconds)
        claimed = await self.deliveries.claim_many(ids, token, self.clock(), lease, only)
        busy = [job for job in jobs if claimed.get(job.integration.id)]
        if not busy:
            return {}
        for job in busy:
            metrics.APPLY_BATCH.observe(len(claimed[job.integration.id]))
        held_ids = [job.integration.id for job in busy]
        renewing = asyncio.get_running_loop().create_task(self._renew(held_ids, token, lease))
        failed: dict[str, Exception] = {}
        try:
            applied = {
                integration_id: replace(
                    result,
                    deliveries=len(claimed[integration_id]),
                    held=sum(1 for d in claimed[integration_id] if d.held),
                )
                for integration_id, result in (await self._apply_claimed(busy, claimed, token, failed)).items()
            }
            if record is not None and applied:
                await record(applied)
        except BaseException:
            with contextlib.suppress(Exception):  # MongoDB may be what failed: then the lease runs out
                await self.deliveries.release(held_ids, token)
            raise
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        # A failed integration's deliveries were given back (unclaimed): this forgets only the applied ones.
        await self.deliveries.done(held_ids, token)
        now = time.time()
        for integration_id in applied:
            for delivery in claimed[integration_id]:
                started = delivery.triggered_at
                latency = now - (started.timestamp() if started is not None else delivery.received_mono)
                metrics.WEBHOOK_LATENCY.observe(max(0.0, latency))
        return {**applied, **failed}

    async def _renew(self, integration_ids: Sequence[str], token: str, lease: timedelta) -> None:
        """Keep the claim's lease while its deliveries are applied (three renewals per lease)."""
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            try:
                await self.deliveries.renew(integration_ids, token, self.clock(), lease)
            except Exception:  # noqa: BLE001 - MongoDB unreachable: the apply itself will say so
                log.warning("could not renew a webhook claim", exc_info=True)

    async def _apply_claimed(
        self, jobs: Sequence[_Job], claimed: Mapping[str, list[Delivery]], token: str, failed: dict[str, Exception]
    ) -> dict[str, Applied]:
        """Apply each integration's claimed deliveries: its own part first (deletions, mapping, changes kept
        for Sync Now), then every integration's carried products in one write, then what must be read
        back from each store. An integration whose own part raises is left out, its claim given back."""
        passes: list[_Pass] = []
        try:
            for job in jobs:
                counter = self.integrations.counter(job.integration.id)
                applying = _Pass(job, counter, self.integrations.connection(job.integration, counter))
                passes.append(applying)
                await self._isolated(applying, self._prepare(applying, claimed[job.integration.id]), token, failed)
            live = [p for p in passes if p.job.integration.id not in failed]
            await self._write_carried([p for p in live if p.carried])
            for applying in live:
                if applying.refresh:
                    await self._isolated(applying, self._refresh(applying), token, failed)
        finally:
            for applying in passes:
                await applying.conn.close()
                await applying.counter.flush()
        return {p.job.integration.id: p.tally.result() for p in passes if p.job.integration.id not in failed}

    async def _isolated(self, applying: _Pass, step: Awaitable[None], token: str, failed: dict[str, Exception]) -> None:
        """Run one integration's step of a pass: what its store or plugin does wrong stays its own."""
        integration = applying.job.integration
        try:
            await step
        except StoreAuthError as exc:
            applying.stop()
            await self.lifecycle.credentials_rejected(integration, exc.message)
        except StoreError as exc:
            # The store could not be read: these deliveries are dropped; the next sync catches them up.
            applying.stop()
            log.warning("could not fetch products for webhooks: %s", exc.message)
        except Exception as exc:  # noqa: BLE001 - handed to this integration's job; the others go on
            failed[integration.id] = exc
            with contextlib.suppress(Exception):  # MongoDB may be what failed: then the lease runs out
                await self.deliveries.release(integration.id, token)

    async def _prepare(self, applying: _Pass, deliveries: list[Delivery]) -> None:
        """An integration's own part of a pass: coalesce its deliveries to the newest change of each product,
        apply deletions (and, for Sync Now, held changes one by one), map what the deliveries carried."""
        job = applying.job
        integration, integration_id = job.integration, job.integration.id
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
        adapter = self.registry.adapter(integration.platform)
        applying.context = await self._mapping_context(adapter, applying.conn)
        for delivery in latest.values():
            if delivery.kind is ChangeKind.DELETE:
                # The store had removed it when the delivery arrived: no body of before then revives it.
                await self._remove(
                    applying.tally, integration_id, [delivery.external_id], job.run_id, job.held, delivery.received_at
                )
            elif delivery.kind is ChangeKind.REFRESH or delivery.product is None:
                applying.refresh.append(delivery.external_id)
            else:
                mapped = map_one(self.registry, adapter, delivery.product, applying.context)
                if not isinstance(mapped, Product):
                    log.warning("webhook product could not be mapped: %s", mapped.message)
                    applying.tally.failed(delivery.external_id, mapped)
                elif job.held is None:
                    applying.carried[mapped.external_id] = mapped  # written with every store's, below
                else:
                    applying.tally.wrote(
                        await self._write(integration.account_id, integration_id, mapped, job.run_id, job.held)
                    )

    async def _refresh(self, applying: _Pass) -> None:
        """Read back from the store the products whose deliveries did not carry them, and write them."""
        job, context = applying.job, applying.context
        if context is None:  # the pass stopped before it could map anything
            return
        integration = job.integration
        adapter = self.registry.adapter(integration.platform)
        request = FetchRequest(mode=FetchMode.IDS, ids=tuple(applying.refresh))
        reading_since = utcnow()
        async for page in prefetch(adapter.fetch_products(applying.conn, request), 1):
            for native in page.items:
                mapped = map_one(self.registry, adapter, native, context)
                if isinstance(mapped, Product):
                    applying.tally.wrote(
                        await self._write(
                            integration.account_id, integration.id, mapped, job.run_id, job.held, reading_since
                        )
                    )
                elif mapped.external_id:
                    applying.tally.failed(mapped.external_id, mapped)
            await self._remove(applying.tally, integration.id, page.missing_ids, job.run_id, job.held)

    async def _digest(self, batches: Sequence[tuple[_Job, Applied]], at: datetime) -> None:
        """Add each integration's batch to its hour's WEBHOOK digest: its run in the history, one activity
        entry that follows it (both written once for every integration of the pass)."""
        if not batches:
            return
        runs = await self.runs.add_to_digests(
            [DigestBatch(job.integration.account_id, job.integration.id, job.run_id, at, a) for job, a in batches]
        )
        await self.activity.record_digests(
            [
                DigestEntry(
                    job.integration.account_id, job.integration.id, run.id, at, digest_summary(run), run.progress.seq
                )
                for (job, _), run in zip(batches, runs, strict=True)
            ]
        )

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

    async def _write_carried(self, passes: Sequence[_Pass]) -> None:
        """Write the products deliveries carried, every integration's together (one read, one bulk write)."""
        if not passes:
            return
        written = await self.products.write_changes_many(
            [Changes(p.job.integration.account_id, p.job.integration.id, p.carried, p.job.run_id) for p in passes]
        )
        for applying, results in zip(passes, written, strict=True):
            job = applying.job
            for external_id, result in results.items():
                for found in result.conflicts:
                    await self.conflicts.record(
                        job.integration.account_id, job.integration.id, result.product_id, found, job.run_id
                    )
                applying.tally.wrote((external_id, result))

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


@dataclass(frozen=True)
class _Job:
    """One integration's part of an apply pass: under which run its changes are applied (the hour's
    digest, or a Sync Now run applying what manual mode kept: then `held` is its mark)."""

    integration: Integration
    run_id: str
    held: str | None = None


@dataclass
class _Pass:
    """What one integration's part of a pass has found so far."""

    job: _Job
    counter: CallCounter
    conn: Connection
    tally: _Tally = field(init=False)
    context: MappingContext | None = None
    #: Mapped products the deliveries carried, by external id: written with every integration's.
    carried: dict[str, Product] = field(default_factory=dict)
    #: Products to read back from the store.
    refresh: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tally = _Tally(self.job.integration.id)

    def stop(self) -> None:
        """The store failed this pass: nothing more is written for it."""
        self.carried.clear()
        self.refresh.clear()


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
