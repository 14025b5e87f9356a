"""Scheduled syncs: every worker runs the scheduler; MongoDB decides which one queues a due run.

Claiming a due integration is one conditional update on its `next_sync_at` (the value that was read),
so with any number of workers exactly one moves it forward and queues the run. Nothing lives only in
memory: a restart picks up `next_sync_at` where it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from gateway.connect import ConnectService
from gateway.constants import APPLY_JOB, RUN_JOB, apply_job_id, run_job_id
from gateway.deliveries import DeliveryStore
from gateway.domain import RunKind, Trigger
from gateway.hookrepair import WebhookRepairService
from gateway.integration_store import IntegrationStore
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
    ) -> None:
        self.integrations = integrations
        self.runs = runs
        self.deliveries = deliveries
        self.syncs = syncs
        self.repairs = repairs
        self.connect = connect
        self.jobs = jobs
        self.clock = clock

    async def tick(self) -> list[str]:
        """Queue every due scheduled run (once across workers) and recover orphaned runs."""
        queued = await self.queue_due()
        await self.recover_orphans()
        await self.recover_webhooks()
        await self.maintain_connections()
        return queued

    async def maintain_connections(self) -> None:
        """Webhook registrations checked and repaired (gateway/hookrepair.py); connect attempts expired."""
        await self.repairs.check_due()
        await self.connect.expire_overdue()

    async def queue_due(self) -> list[str]:
        now = self.clock()
        queued: list[str] = []
        async for integration in self.integrations.due(now):
            period = integration.settings.frequency.period
            expected = integration.next_sync_at
            assert expected is not None  # due() found it by next_sync_at
            claimed = await self.integrations.claim_due(
                integration.id, expected, max(expected + period, now + period / 2)
            )
            if claimed is None:
                continue  # another worker took it
            if claimed.paused:
                continue  # paused until the merchant reconnects: no run would get past the store's 401
            last_full = claimed.last_full_sync_at
            full = last_full is None or now - last_full >= FULL_RUN_EVERY or not claimed.sync_cursor
            run, created = await self.syncs.queue(
                claimed, Trigger.SCHEDULED, kind=RunKind.FULL if full else RunKind.INCREMENTAL
            )
            if created:
                queued.append(run.id)
        return queued

    async def recover_webhooks(self) -> None:
        """Deliveries whose claim's lease ran out (the worker died, froze, or lost MongoDB half-way) are applied
        by another job, and so are deliveries that wait without a job (their job was lost with Redis)."""
        now = self.clock()
        released = await self.deliveries.release_expired(now, now - LEGACY_STALE_CLAIM)
        waiting = await self.deliveries.waiting_since(now - STALE_WAITING)
        for integration_id in sorted({*released, *waiting}):
            # One recovery job at a time per integration: a backlog does not get a job per tick.
            await self.jobs.enqueue(APPLY_JOB, integration_id, job_id=apply_job_id(integration_id, "recover"))

    async def recover_orphans(self) -> list[str]:
        """Runs whose worker died (lease expired) get a fresh job; they resume from their checkpoint. Runs
        queued long ago get their job back if it was lost."""
        recovered: list[str] = []
        for run in await self.runs.orphaned(self.clock()):
            try:
                await self.jobs.enqueue(RUN_JOB, run.id, job_id=run_job_id(run.id, run.attempts))
            except Exception:  # noqa: BLE001
                log.warning("could not re-enqueue orphaned run %s", run.id, exc_info=True)
                continue
            recovered.append(run.id)
        for run in await self.runs.queued_before(self.clock() - STALE_QUEUED):
            try:
                # Same job id as when it was queued: a no-op unless the job was lost.
                await self.jobs.enqueue(RUN_JOB, run.id, job_id=run_job_id(run.id))
            except Exception:  # noqa: BLE001
                log.warning("could not re-enqueue queued run %s", run.id, exc_info=True)
        return recovered
