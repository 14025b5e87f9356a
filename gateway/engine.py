"""The sync engine: executes one run against any platform adapter.

For each page the adapter yields: map every product (a product that fails to map becomes a SyncError
and the run goes on), then the product store writes what changed in one bulk write
(`ProductStore.write_page`: change detection, typed counts), and the page is checkpointed (cursor +
counters, atomically with a lease renewal: `RunLease`) and its progress published. Memory holds one
page at a time (and, for a full run's last step, the ids it saw: ~100 bytes a product).

A full run keeps the ids each page saw in MongoDB with the run, written before the page's checkpoint
(`RunStore.record_seen`: one small document a page), so at its end the products it did not see are
marked removed (`ProductStore.sweep_unseen`) whatever happened to its workers or to Redis; a run
that cannot show a record for every page it counted removes nothing and says so. A retried run
resumes from its last checkpoint with exactly the same result. The end-of-run updates to the
integration are `IntegrationService.record_run_end`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from gateway import metrics
from gateway.activity import ActivityLog
from gateway.adapter import Connection, FetchMode, FetchRequest, MappingContext, Page
from gateway.conflicts import ConflictService
from gateway.constants import Lane
from gateway.domain import ActivityKind, EventKind, RunKind, RunStatus, SyncErrorCode, Trigger, utcnow
from gateway.errors import (
    LeaseLost,
    RunCancelled,
    StoreAuthError,
    StoreError,
    StoreHTTPError,
    StoreRateLimited,
    StoreUnreachable,
)
from gateway.events import EventPublisher, ProductChanged, run_event
from gateway.healthwatch import HealthWatch
from gateway.integration_store import Integration
from gateway.integrations import IntegrationService
from gateway.jobqueue import JobQueue
from gateway.lifecycle import LifecycleService
from gateway.logs import bind_context
from gateway.mapping import map_one, prefetch
from gateway.model import Product
from gateway.plugins import PluginRegistry
from gateway.products import YIELD_EVERY, ProductStore
from gateway.runs import (
    STARTING,
    Applied,
    Checkpoint,
    HeldChanges,
    Run,
    RunCounts,
    RunLease,
    RunStore,
    SyncError,
    held_mark,
    run_failure,
)
from gateway.settings import Settings

log = logging.getLogger(__name__)

PRODUCT_EVENTS_PER_PAGE = 50
#: Pages fetched ahead while the current one is written: the store and MongoDB work in parallel,
#: and memory stays bounded (at most this many pages beyond the one being written).
PREFETCH_PAGES = 2
#: Interactive work (a webhook apply, a Sync Now) due longer than this makes a bulk run's next page wait...
INTERACTIVE_PATIENCE = 0.25
#: ... for at most this long (so a bulk run always moves), looking again this often.
YIELD_LIMIT = 2.0
YIELD_POLL = 0.05
#: How often a run saves its progress (and renews its lease) while one page takes long.
HEARTBEAT_SECONDS = 1.0

#: Work a job hands to the engine, done under the run's lease before the store is read: applying the
#: webhook deliveries a manual-mode integration kept waiting for Sync Now. What it applied is counted
#: in the run (with the run's `held` changes); a retried run does not take the step again.
RunStep = Callable[[Run], Awaitable[Applied | None]]

REMOVALS_SKIPPED = run_failure(
    SyncErrorCode.REMOVALS_SKIPPED,
    "Products missing from the store were not marked removed: this run has no record of every page it read "
    "(it was begun by an earlier release, or its records were lost). The next full sync marks them.",
)
CANCELLED = run_failure(SyncErrorCode.CANCELLED, "Cancelled on request; the products saved before it stopped are kept")
DISCONNECTED = run_failure(SyncErrorCode.DISCONNECTED, "The integration was disconnected")


class SyncEngine:
    """Runs one sync run to its end (or to a lost lease / cancellation)."""

    def __init__(
        self,
        *,
        runs: RunStore,
        products: ProductStore,
        integrations: IntegrationService,
        lifecycle: LifecycleService,
        conflicts: ConflictService,
        activity: ActivityLog,
        publisher: EventPublisher,
        health: HealthWatch,
        registry: PluginRegistry,
        settings: Settings,
        clock: Callable[[], datetime],
        worker_id: str,
        jobs: JobQueue | None = None,
    ) -> None:
        self.jobs = jobs
        self.runs = runs
        self.products = products
        self.integrations = integrations
        self.lifecycle = lifecycle
        self.conflicts = conflicts
        self.activity = activity
        self.publisher = publisher
        self.health = health
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self.worker_id = worker_id
        #: A run whose worker stops renewing its lease is taken over after this.
        self.lease_seconds = settings.run_lease_seconds

    async def yield_to_interactive(self) -> None:
        """Before a bulk run (not a merchant's Sync Now) writes a page: wait while interactive work (webhook
        applies, Sync Now runs) has been due longer than INTERACTIVE_PATIENCE, for at most YIELD_LIMIT.

        Every process shares one database, and under load it is what everyone waits for: a page of a
        50,000-product sync is hundreds of document writes, and the webhook applies of every other store
        queued behind them. Yielding page by page lets them go first while the big sync still moves (at
        least a page per YIELD_LIMIT); with nothing interactive waiting it costs a Redis call per lane.
        (Measured in docs/benchmarks.md, fair work: webhook -> stored p99 17 s before, about 5 s after.)"""
        if self.jobs is None:
            return
        deadline = time.monotonic() + YIELD_LIMIT
        try:
            while time.monotonic() < deadline:
                oldest = await self.jobs.oldest_due_ms(Lane.WEBHOOKS, Lane.SYNC_NOW)
                if oldest is None or time.time() * 1000 - oldest < INTERACTIVE_PATIENCE * 1000:
                    return
                await asyncio.sleep(YIELD_POLL)
        except RedisError:  # without Redis there is no telling: the run goes on
            return

    async def run(self, run_id: str, before: Sequence[RunStep] = ()) -> Run | None:
        """Execute the run; `before` are steps done under its lease before the store is read."""
        # One owner per attempt, not per process: a job arq hands this process twice (its job was
        # re-enqueued while the first attempt still ran, e.g. after Redis lost its in-progress key)
        # must not share the first attempt's lease and count every product twice.
        owner = f"{self.worker_id}:{uuid.uuid4().hex[:6]}"
        lease = await RunLease.acquire(self.runs, run_id, owner, self.lease_seconds)
        if lease is None:
            return None  # finished, cancelled, or another worker holds it
        integration = await self.integrations.get_any(lease.run.integration_id)
        if integration is None:
            why = DISCONNECTED
            return await self.runs.finish(run_id, RunStatus.FAILED, why.message, why.message, [why])
        with bind_context(run_id=run_id, integration_id=integration.id):
            return await _Execution(self, lease, integration, before).execute()

    async def started(self, run: Run, integration: Integration | None = None) -> None:
        """A worker took the run: the activity log (first attempt only), RUN_STARTED, the light.
        `integration`: as read when the run was taken."""
        if run.attempts <= 1:
            await self.activity.record(
                run.account_id,
                ActivityKind.SYNC_STARTED,
                "Sync started",
                integration_id=run.integration_id,
                run_id=run.id,
            )
        await self.publish_run(EventKind.RUN_STARTED, run)
        await self.health.refresh(run.integration_id, integration=integration, active=run)  # queued -> running

    async def ended(self, run: Run, integration: Integration, max_updated: datetime | None) -> None:
        """The run ended: its integration, the activity log, RUN_FINISHED, the light, its seen records."""
        metrics.RUNS.labels(status=run.status.value).inc()
        recorded = await self.integrations.record_run_end(integration, run, max_updated)
        kind, text = activity_of(run)
        await self.activity.record(run.account_id, kind, text, integration_id=run.integration_id, run_id=run.id)
        await self.publish_run(EventKind.RUN_FINISHED, run)
        # The light's last run is this one (a run a worker executed); the integration is read again
        # unless the run's end just wrote it (a failed run may have paused it meanwhile).
        await self.health.refresh(run.integration_id, integration=recorded, last_finished=run)
        await self.runs.forget_seen(run.id)
        # The product counts are kept by every write; a recount here catches what a dead process left.
        await self.products.repair_counts(run.integration_id)
        log.info("sync run finished", extra={"run_id": run.id, "status": run.status.value, **run.counts.as_dict()})

    async def lost(self, run: Run) -> None:
        """The run's lease was lost: another worker has it, or the integration was disconnected."""
        if await self.integrations.get_any(run.integration_id) is None:
            # Disconnected mid-run: the page written after the disconnect must not linger.
            await self.products.delete_integration(run.integration_id)
        else:
            log.warning("lost the lease of run %s: another worker took it over", run.id)

    async def publish_run(self, kind: EventKind, run: Run) -> None:
        await self.publisher.publish(run_event(kind, run, self.clock()))

    async def publish_products(self, run: Run, product_ids: Sequence[str]) -> None:
        for pid in product_ids:
            await self.publisher.publish(
                ProductChanged(
                    account_id=run.account_id,
                    integration_id=run.integration_id,
                    at=self.clock(),
                    product_id=pid,
                    run_id=run.id,
                )
            )


def not_found(external_id: str) -> SyncError:
    """A chosen product the store does not have (reported, not counted as failed)."""
    return SyncError(external_id, SyncErrorCode.NOT_FOUND.value, f"The store has no product with id {external_id!r}")


def fetch_request(run: Run, integration: Integration, cursor: str | None, overlap: timedelta) -> FetchRequest:
    """What a run asks the store for: its products by id, the changes since the cursor, or everything."""
    if run.kind is RunKind.PRODUCTS:
        return FetchRequest(mode=FetchMode.IDS, ids=run.product_ids, cursor=cursor)
    if run.kind is RunKind.INCREMENTAL:
        since = integration.sync_cursor
        return FetchRequest(mode=FetchMode.SINCE, since=since - overlap if since else None, cursor=cursor)
    return FetchRequest(mode=FetchMode.FULL, cursor=cursor)


def failure_of(exc: Exception) -> tuple[str, SyncError]:
    """Why a run failed, for its progress message and its summary (`SyncRun.failure` and an entry in
    `errors` with a code a frontend maps: gateway.domain.SyncErrorCode)."""
    if isinstance(exc, StoreAuthError):
        return "The store refused Alana's credentials", run_failure(SyncErrorCode.CREDENTIALS_REJECTED, exc.message)
    if isinstance(exc, StoreRateLimited):
        return "The store kept throttling Alana", run_failure(SyncErrorCode.RATE_LIMITED, exc.message)
    if isinstance(exc, StoreUnreachable) or (isinstance(exc, StoreHTTPError) and (exc.status or 0) >= 500):
        return "The store could not be reached", run_failure(SyncErrorCode.STORE_UNREACHABLE, exc.message)
    if isinstance(exc, StoreError):
        return "The store could not be read", run_failure(SyncErrorCode.STORE_ERROR, exc.message)
    return "Internal error", run_failure(SyncErrorCode.INTERNAL, f"internal error ({type(exc).__name__})")


def activity_of(run: Run) -> tuple[ActivityKind, str]:
    """The activity-log entry of a finished run, in the merchant's words."""
    c = run.counts
    return {
        RunStatus.SUCCEEDED: (
            ActivityKind.SYNC_SUCCEEDED,
            f"Sync finished: {c.added} added, {c.updated} updated, {c.unchanged} unchanged, "
            f"{c.removed} removed, {c.failed} failed",
        ),
        RunStatus.FAILED: (ActivityKind.SYNC_FAILED, f"Sync failed: {run.failure}"),
        RunStatus.CANCELLED: (ActivityKind.SYNC_CANCELLED, "Sync cancelled; products saved so far are kept"),
    }[run.status]


class _Execution:
    """One attempt at one run: walks the store's pages under the run's lease, then ends the run."""

    def __init__(self, engine: SyncEngine, lease: RunLease, integration: Integration, before: Sequence[RunStep]):
        self.engine = engine
        self.lease = lease
        self.integration = integration
        self.before = before
        self.adapter = engine.registry.adapter(integration.platform)
        self.counter = engine.integrations.counter(integration.id)
        run = lease.run
        self.processed = run.progress.processed
        self.total = run.progress.total
        self.message = STARTING
        self.checkpoint = run.checkpoint or Checkpoint()
        self.nothing_stored = False
        #: This attempt began reading the store then: what it reads is no older (see gateway.products).
        self.reading_since = utcnow()
        #: Run-level entries for the summary's errors, added when the run ends (once, whatever the attempt).
        self.notes: list[SyncError] = []

    @property
    def run(self) -> Run:
        return self.lease.run

    async def save(
        self,
        *,
        checkpoint: Checkpoint | None = None,
        add: RunCounts | None = None,
        set_counts: dict[str, int] | None = None,
        errors: Sequence[SyncError] = (),
        held: HeldChanges | None = None,
    ) -> Run:
        processed = self.processed if checkpoint is not None else None  # it moves with a checkpoint only
        run = await self.lease.save(
            self.total,
            self.message,
            processed=processed,
            checkpoint=checkpoint,
            add=add,
            set_counts=set_counts,
            errors=errors,
            held=held,
        )
        await self.engine.publish_run(EventKind.RUN_PROGRESS, run)
        return run

    async def heartbeat(self) -> None:
        """Progress at least once a second, even while one page takes long; renews the lease."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.save()
            except LeaseLost:
                return

    async def execute(self) -> Run | None:
        engine = self.engine
        # Taking the lease wrote the RUNNING state (a new seq, "Starting"): announced as it is, not saved again.
        await engine.started(self.run, self.integration)
        conn = engine.integrations.connection(self.integration, self.counter)
        beat = asyncio.get_running_loop().create_task(self.heartbeat())
        failure: SyncError | None = None
        try:
            await self.take_steps()
            await self.walk(conn)
            status, message = RunStatus.SUCCEEDED, f"Done: {self.processed} products checked"
        except RunCancelled:
            status, message, failure = RunStatus.CANCELLED, "Cancelled: products saved so far are kept", CANCELLED
        except LeaseLost:
            await engine.lost(self.run)
            return None
        except Exception as exc:  # noqa: BLE001 - record the failure, never leave a run RUNNING
            if isinstance(exc, StoreAuthError):
                await engine.lifecycle.credentials_rejected(self.integration, exc.message)
            elif not isinstance(exc, StoreError):
                log.exception("sync run %s crashed", self.run.id)
            status = RunStatus.FAILED
            message, failure = failure_of(exc)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            await conn.close()
            await self.counter.flush()
        return await self.finish(status, message, failure)

    async def take_steps(self) -> None:
        """The job's steps (the held changes of a Sync Now), counted with the run; once per run."""
        if self.run.held is not None:
            return  # an earlier attempt took them and saved what they did
        for step in self.before:
            applied = await step(self.run)
            if applied is not None:
                self.message = "Applying the changes that waited for Sync Now"
                await self.save(
                    add=applied.counts, errors=applied.errors, held=HeldChanges.of(applied, held_mark(self.run))
                )

    async def walk(self, conn: Connection) -> None:
        run = self.run
        overlap = timedelta(seconds=self.engine.settings.incremental_overlap_seconds)
        request = fetch_request(run, self.integration, self.checkpoint.cursor, overlap)
        if run.checkpoint is None and run.kind is RunKind.FULL:
            # An integration's first load: nothing is stored yet, so no page needs to read what is.
            self.nothing_stored = not await self.engine.products.any_stored(self.integration.id)
        context = await self.adapter.mapping_context(conn)
        if self.total is None and request.cursor is None:
            with contextlib.suppress(StoreError):
                self.total = await self.adapter.count_products(conn, request)
        # A retry after the last page was checkpointed goes straight to the end-of-run work.
        if not self.checkpoint.complete:
            self.message = "Reading products from the store"
            self.reading_since = utcnow()
            async for page in prefetch(self.adapter.fetch_products(conn, request), PREFETCH_PAGES):
                await self.process_page(page, context)
        if run.kind is RunKind.FULL:
            await self.remove_unseen()

    async def process_page(self, page: Page, context: MappingContext) -> None:
        engine, run, integration = self.engine, self.run, self.integration
        if page.total is not None:
            self.total = page.total
        mapped: dict[str, Product] = {}
        errors: list[SyncError] = []
        for n, native in enumerate(page.items, 1):
            if not n % YIELD_EVERY:
                # Mapping is CPU work: let the process's other jobs (another store's webhook apply, a
                # Sync Now on another lane) have the event loop between products, not after the page.
                await asyncio.sleep(0)
            outcome = map_one(engine.registry, self.adapter, native, context)
            if isinstance(outcome, Product):
                mapped[outcome.external_id] = outcome  # a duplicate id in one page: the last one wins
            else:
                errors.append(outcome)
        # The mark of the attempt whose held changes the run counted (runs saved before marks: the run's id).
        held_counted = (run.held.mark or run.id) if run.held is not None else None
        if run.trigger is not Trigger.MANUAL:
            await engine.yield_to_interactive()
        write = await engine.products.write_page(
            integration.account_id,
            integration.id,
            run.id,
            mapped,
            nothing_stored=self.nothing_stored,
            held_counted=held_counted,
            observed_after=self.reading_since,
        )
        if run.kind is RunKind.FULL:  # kept with the run before its checkpoint: removals survive anything
            seen = [*mapped, *(e.external_id for e in errors if e.external_id)]
            await engine.runs.record_seen(run.id, integration.id, self.checkpoint.cursor, seen, len(page.items))
        for pid, found in write.conflicts:
            await engine.conflicts.record(integration.account_id, integration.id, pid, found, run.id)
        counts = write.counts + RunCounts(failed=len(errors))
        if page.missing_ids and run.kind is RunKind.PRODUCTS:
            removed, unknown = await engine.products.remove_missing(
                integration.id, run.id, page.missing_ids, held_counted=held_counted
            )
            counts += RunCounts(removed=removed)
            errors += [not_found(e) for e in unknown]
        newest = self.checkpoint.max_updated
        if write.max_updated is not None and (newest is None or write.max_updated > newest):
            newest = write.max_updated
        await self.counter.flush()
        self.processed += len(page.items)
        self.message = f"Checked {self.processed}{f' of {self.total}' if self.total else ''} products"
        self.checkpoint = Checkpoint(page.cursor, newest, page.cursor is None)
        saved = await self.save(checkpoint=self.checkpoint, add=counts, errors=errors)
        # Small pages of changes (incremental and product runs) announce each product; a full
        # catalog load announces itself through RUN_PROGRESS instead of thousands of events.
        if len(write.changed_ids) <= PRODUCT_EVENTS_PER_PAGE:
            await engine.publish_products(saved, write.changed_ids)
        if saved.cancel_requested:
            raise RunCancelled()

    async def remove_unseen(self) -> None:
        """A full run saw every product the store has: the rest are gone (marked, not deleted)."""
        seen = await self.engine.runs.seen(self.run.id)
        if seen.items != self.run.progress.processed:
            # Some page's record is missing (a run begun by a release that kept it in Redis only):
            # removing now could remove live products. Say so; the next full run finishes the job.
            self.notes.append(REMOVALS_SKIPPED)
            return
        started = self.run.started_at
        assert started is not None  # set when the lease was first taken
        removed = await self.engine.products.sweep_unseen(
            self.integration.id, self.run.id, started, seen.ids, retried=self.run.attempts > 1
        )
        # Set, not added: a retry that sweeps again counts the same products once (the held changes'
        # removals, counted when they were applied, stay in).
        held = self.run.held.counts.removed if self.run.held is not None else 0
        await self.save(set_counts={"removed": removed + held})

    async def finish(self, status: RunStatus, message: str, failure: SyncError | None) -> Run | None:
        engine = self.engine
        notes = self.notes if failure is None else [failure]
        why = failure.message if failure is not None else None
        run = await engine.runs.finish(self.run.id, status, message, why, notes)
        if run is None:
            return None
        await engine.ended(run, self.integration, self.checkpoint.max_updated)
        return run
