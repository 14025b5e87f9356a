"""Scheduled syncs: every worker runs the scheduler; MongoDB decides which one queues a due run.

Claiming due integrations is a conditional update on `next_sync_at <= now` that moves it forward, so
with any number of workers exactly one claims each due run. A tick claims everything due in a few
writes and queues the runs in bulk (`SyncService.queue_many`), so its cost hardly grows with the
number of integrations or of runs due at once. Between ticks the loop sleeps until the next run falls
due, at most GATEWAY_SCHEDULER_INTERVAL (`pause`): runs start on time, not up to an interval late.
Nothing lives only in memory: a restart picks up `next_sync_at` where it was.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from gateway import metrics
from gateway.connect import ConnectService
from gateway.deliveries import DeliveryStore
from gateway.domain import RunKind, Trigger
from gateway.hookrepair import WebhookRepairService
from gateway.integration_store import Integration, IntegrationStore
from gateway.jobqueue import JobQueue
from gateway.runs import RunStore
from gateway.syncs import SyncService

log = logging.getLogger(__name__)

#: Scheduled runs are incremental, with a full run at least this often (docs/reference/BEHAVIOUR.md).
FULL_RUN_EVERY = timedelta(days=1)
#: A run queued longer ago than this may have lost its job (Redis restarted without persistence, as the
#: demo's Valkey does): its job is put on the queue again, which arq ignores while the job is still there.
STALE_QUEUED = timedelta(seconds=30)
#: A claim made by a release without claim leases is taken for a dead worker's after this.
LEGACY_STALE_CLAIM = timedelta(seconds=120)
#: A delivery waiting unclaimed this long lost its apply job (Redis was down or lost its data).
STALE_WAITING = timedelta(seconds=30)
#: The shortest pause between ticks, whatever falls due (a due run another worker is claiming right now).
MIN_PAUSE = 0.05


class Scheduler:
    def __init__(
        self,
        *,
        integrations: IntegrationStore,
        runs: RunStore,
        deliveries: DeliveryStore,
        syncs: SyncService,
        repairs: WebhookRepairService,
        connect: ConnectService,
        jobs: JobQueue,
        clock: Callable[[], datetime],
        interval: float,
        recover_journal: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self.recover_journal = recover_journal
        self.integrations = integrations
        self.runs = runs
        self.deliveries = deliveries
        self.syncs = syncs
        self.repairs = repairs
        self.connect = connect
        self.jobs = jobs
        self.clock = clock
        #: The longest pause between ticks (GATEWAY_SCHEDULER_INTERVAL), and between maintenance passes.
        self.interval = interval
        self._next_maintenance = 0.0

    async def tick(self) -> list[str]:
        """Queue every due scheduled run (once across workers), recover orphaned runs and deliveries, and
        maintain connections: everything the loop does, at once."""
        queued = await self.queue_due()
        await self.maintain()
        return queued

    async def maintain(self) -> None:
        """Orphaned runs and deliveries recovered, webhook registrations checked, connect attempts expired."""
        started = time.perf_counter()
        await self.recover_orphans()
        await self.recover_webhooks()
        await self.maintain_connections()
        metrics.SCHEDULER_MAINTENANCE.observe(time.perf_counter() - started)

    async def step(self) -> float:
        """One turn of the worker's scheduler loop; returns the seconds to wait before the next.

        Due runs are claimed on every turn, and the loop turns when the next run falls due, so runs start
        on time; that path reads only the `next_sync_at` index, so it costs the same however many
        integrations there are. Maintenance (`maintain`, which reads more widely: webhook checks) runs at
        most once per interval, however often due runs make the loop turn."""
        started = time.perf_counter()
        await self.queue_due()
        metrics.SCHEDULER_TICK.observe(time.perf_counter() - started)
        if time.monotonic() >= self._next_maintenance:
            self._next_maintenance = time.monotonic() + self.interval
            await self.maintain()
        return await self.pause()

    async def pause(self) -> float:
        """Seconds to wait before the next tick: the interval, or less when a scheduled run falls due sooner."""
        now = self.clock()
        due = await self.integrations.next_due_at(now + timedelta(seconds=self.interval))
        if due is None:
            return self.interval
        return max(MIN_PAUSE, min(self.interval, (due - now).total_seconds()))

    async def maintain_connections(self) -> None:
        """Webhook registrations checked and repaired (gateway/hookrepair.py); connect attempts expired."""
        await self.repairs.check_due()
        await self.connect.expire_overdue()

    async def queue_due(self) -> list[str]:
        """Claim what is due (once across workers) and queue its runs; returns the new runs' ids."""
        now = self.clock()
        wanted: list[tuple[Integration, RunKind]] = []
        for integration in await self.integrations.claim_due(now, uuid.uuid4().hex):
            if integration.paused:
                continue  # paused until the merchant reconnects: no run would get past the store's 401
            last_full = integration.last_full_sync_at
            full = last_full is None or now - last_full >= FULL_RUN_EVERY or not integration.sync_cursor
            wanted.append((integration, RunKind.FULL if full else RunKind.INCREMENTAL))
        # An integration whose previous run is still going gets no second one.
        return [run.id for run in await self.syncs.queue_many(wanted, Trigger.SCHEDULED)]

    async def recover_webhooks(self) -> None:
        """Deliveries whose claim's lease ran out (the worker died, froze, or lost MongoDB half-way) are applied
        by another job, and so are deliveries that wait without a job (their job was lost with Redis)."""
        if self.recover_journal is not None:
            # Deliveries an API answered and died before storing: into MongoDB, where the rest finds them.
            try:
                await self.recover_journal()
            except RedisError:
                log.warning("could not read the webhook journal", exc_info=True)
        now = self.clock()
        released = await self.deliveries.release_expired(now, now - LEGACY_STALE_CLAIM)
        waiting = await self.deliveries.waiting_since(now - STALE_WAITING)
        for integration_id in sorted({*released, *waiting}):
            # One recovery job at a time per integration: a backlog does not get a job per tick.
            await self.jobs.enqueue_apply(integration_id, "recover")

    async def recover_orphans(self) -> list[str]:
        """Runs whose worker died (lease expired) get a fresh job; they resume from their checkpoint. Runs
        queued long ago get their job back if it was lost."""
        recovered: list[str] = []
        for run in await self.runs.orphaned(self.clock()):
            try:
                await self.jobs.enqueue_run(run.id, run.trigger, run.attempts)
            except Exception:  # noqa: BLE001
                log.warning("could not re-enqueue orphaned run %s", run.id, exc_info=True)
                continue
            recovered.append(run.id)
        for run in await self.runs.queued_before(self.clock() - STALE_QUEUED):
            try:
                # Same job id as when it was queued: a no-op unless the job was lost.
                await self.jobs.enqueue_run(run.id, run.trigger)
            except Exception:  # noqa: BLE001
                log.warning("could not re-enqueue queued run %s", run.id, exc_info=True)
        return recovered
