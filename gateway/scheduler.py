"""Scheduled syncs: every worker runs the scheduler; MongoDB decides which one queues a due run.

Claiming a due integration is one conditional update on its `next_sync_at` (the value that was read),
so with any number of workers exactly one moves it forward and queues the run. Nothing lives only in
memory: a restart picks up `next_sync_at` where it was.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from gateway.domain import RunKind, SyncFrequency, SyncMode, Trigger
from gateway.syncs import RUN_JOB, SyncService, run_job_id

if TYPE_CHECKING:
    from gateway.services import Gateway

log = logging.getLogger(__name__)

#: Scheduled runs are incremental, with a full run at least this often (docs/reference/BEHAVIOUR.md).
FULL_RUN_EVERY = timedelta(days=1)


class Scheduler:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def tick(self) -> list[str]:
        """Queue every due scheduled run (once across workers) and recover orphaned runs."""
        queued = await self.queue_due()
        await self.recover_orphans()
        await self.recover_webhooks()
        await self.maintain_connections()
        return queued

    async def maintain_connections(self) -> None:
        """Webhook registrations checked and repaired (gateway/hookrepair.py); connect attempts expired."""
        from gateway.connect import ConnectService
        from gateway.hookrepair import WebhookRepairService

        await WebhookRepairService(self.gw).check_due()
        await ConnectService(self.gw).expire_overdue()

    async def queue_due(self) -> list[str]:
        gw = self.gw
        now = gw.now()
        queued: list[str] = []
        cursor = gw.db.integrations.find(
            {"settings.mode": SyncMode.AUTOMATIC.value, "next_sync_at": {"$lte": now}},
            {"credentials": 0},
        )
        async for integration in cursor:
            period = SyncFrequency(integration["settings"]["frequency"]).period
            claimed = await gw.db.integrations.find_one_and_update(
                {"_id": integration["_id"], "next_sync_at": integration["next_sync_at"]},
                {"$set": {"next_sync_at": max(integration["next_sync_at"] + period, now + period / 2)}},
                return_document=True,
            )
            if claimed is None:
                continue  # another worker took it
            if claimed.get("credentials_rejected") or claimed.get("app_uninstalled"):
                continue  # paused until the merchant reconnects: no run would get past the store's 401
            last_full = claimed.get("last_full_sync_at")
            full = last_full is None or now - last_full >= FULL_RUN_EVERY or not claimed.get("sync_cursor")
            run, created = await SyncService(gw).queue(
                claimed, Trigger.SCHEDULED, kind=RunKind.FULL if full else RunKind.INCREMENTAL
            )
            if created:
                queued.append(run["_id"])
        return queued

    async def recover_webhooks(self) -> None:
        """Deliveries a dead worker had claimed are applied by another."""
        from gateway.webhooks import APPLY_JOB, WebhookService

        for integration_id in await WebhookService(self.gw).release_stale_claims():
            await self.gw.enqueue(APPLY_JOB, integration_id)

    async def recover_orphans(self) -> list[str]:
        """Runs whose worker died (lease expired) get a fresh job; they resume from their checkpoint."""
        recovered: list[str] = []
        for run in await self.gw.runs.orphaned(self.gw.now()):
            attempt = int(run.get("attempts", 0))
            try:
                await self.gw.enqueue(RUN_JOB, run["_id"], job_id=run_job_id(run["_id"], attempt))
            except Exception:  # noqa: BLE001
                log.warning("could not re-enqueue orphaned run %s", run["_id"], exc_info=True)
                continue
            recovered.append(run["_id"])
        return recovered
