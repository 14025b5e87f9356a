"""Putting arq jobs on their lane's queue (the job functions themselves are in gateway.jobs).

Which lane a job goes to is decided here, once: a run a merchant pressed Sync Now for goes to
SYNC_NOW, every other run to RUNS, webhook applies to WEBHOOKS (gateway.constants.Lane).
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis

from gateway.constants import APPLY_JOB, RUN_JOB, Lane, apply_job_id, lane_queue_name, run_job_id
from gateway.domain import Trigger


def run_lane(trigger: Trigger) -> Lane:
    """Sync Now presses have slots of their own: a merchant at the screen never waits behind scheduled runs."""
    return Lane.SYNC_NOW if trigger is Trigger.MANUAL else Lane.RUNS


class JobQueue:
    def __init__(self, redis: ArqRedis, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name

    def queue(self, lane: Lane) -> str:
        return lane_queue_name(self.queue_name, lane)

    async def enqueue(
        self, function: str, *args: Any, lane: Lane, job_id: str | None = None, defer_by: float | None = None
    ) -> None:
        await self.redis.enqueue_job(function, *args, _job_id=job_id, _defer_by=defer_by, _queue_name=self.queue(lane))

    async def enqueue_run(self, run_id: str, trigger: Trigger, attempt: int = 0) -> None:
        """The job of one attempt at a run (arq refuses a second one while the first is queued or kept)."""
        await self.enqueue(RUN_JOB, run_id, lane=run_lane(trigger), job_id=run_job_id(run_id, attempt))

    async def hasten_run(self, run_id: str) -> None:
        """A second job for a run queued on the runs lane, on the Sync Now lane: a merchant pressed Sync
        Now while it waited behind other stores' runs. Whichever job comes first works the run; the
        other finds it taken (its lease, gateway.engine)."""
        await self.enqueue(RUN_JOB, run_id, lane=Lane.SYNC_NOW, job_id=f"{run_job_id(run_id)}:now")

    async def enqueue_apply(self, integration_id: str, window: int | str, defer_by: float | None = None) -> None:
        """The job applying an integration's waiting deliveries (one per coalescing window)."""
        await self.enqueue(
            APPLY_JOB,
            integration_id,
            lane=Lane.WEBHOOKS,
            job_id=apply_job_id(integration_id, window),
            defer_by=defer_by,
        )

    async def depth(self) -> dict[Lane, int]:
        """Jobs waiting on each lane (deferred ones included)."""
        return {lane: int(await self.redis.zcard(self.queue(lane))) for lane in Lane}
