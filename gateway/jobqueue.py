"""Putting arq jobs on their lane's queue (the job functions themselves are in gateway.jobs).

Which lane a job goes to is decided here, once: a run a merchant pressed Sync Now for goes to
SYNC_NOW, every other run to RUNS, webhook applies to WEBHOOKS (gateway.constants.Lane).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from arq.connections import ArqRedis
from redis.exceptions import RedisError

from gateway.constants import APPLY_JOB, RUN_JOB, Lane, apply_job_id, lane_queue_name, run_job_id
from gateway.domain import Trigger

log = logging.getLogger(__name__)


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

    async def try_enqueue(
        self, function: str, *args: Any, lane: Lane, job_id: str | None = None, defer_by: float | None = None
    ) -> bool:
        """`enqueue`, for work whose state is already safe in MongoDB: False (logged) while Redis is unavailable.
        The scheduler gives such work its job once Redis is back (a run QUEUED for long, a delivery waiting
        unclaimed: gateway.scheduler), so the caller need not fail."""
        try:
            await self.enqueue(function, *args, lane=lane, job_id=job_id, defer_by=defer_by)
        except (RedisError, OSError) as exc:
            log.warning("could not queue %s (Redis unavailable: %s); the scheduler will", function, type(exc).__name__)
            return False
        return True

    async def enqueue_run(self, run_id: str, trigger: Trigger, attempt: int = 0, *, best_effort: bool = False) -> None:
        """The job of one attempt at a run (arq refuses a second one while the first is queued or kept).
        `best_effort`: the run is QUEUED in MongoDB already, so a Redis outage is logged, not raised."""
        lane, job_id = run_lane(trigger), run_job_id(run_id, attempt)
        if best_effort:
            await self.try_enqueue(RUN_JOB, run_id, lane=lane, job_id=job_id)
        else:
            await self.enqueue(RUN_JOB, run_id, lane=lane, job_id=job_id)

    async def hasten_run(self, run_id: str) -> None:
        """A second job for a run queued on the runs lane, on the Sync Now lane: a merchant pressed Sync
        Now while it waited behind other stores' runs. Whichever job comes first works the run; the
        other finds it taken (its lease, gateway.engine). Best effort: the run has its job already."""
        await self.try_enqueue(RUN_JOB, run_id, lane=Lane.SYNC_NOW, job_id=f"{run_job_id(run_id)}:now")

    async def enqueue_apply(
        self, integration_id: str, window: int | str, defer_by: float | None = None, *, best_effort: bool = False
    ) -> None:
        """The job applying an integration's waiting deliveries (one per coalescing window). `best_effort`:
        the deliveries are safe in MongoDB, and the scheduler gives them a job if this one is lost."""
        job_id = apply_job_id(integration_id, window)
        if best_effort:
            await self.try_enqueue(APPLY_JOB, integration_id, lane=Lane.WEBHOOKS, job_id=job_id, defer_by=defer_by)
        else:
            await self.enqueue(APPLY_JOB, integration_id, lane=Lane.WEBHOOKS, job_id=job_id, defer_by=defer_by)

    async def oldest_due_ms(self, *lanes: Lane) -> float | None:
        """When the oldest job now due on these lanes fell due (Unix ms; arq keeps a job there until it
        ends, so a job running long counts too); None when none is due."""
        now = time.time() * 1000
        oldest: float | None = None
        for lane in lanes:
            found = await self.redis.zrangebyscore(self.queue(lane), "-inf", now, start=0, num=1, withscores=True)
            if found and (oldest is None or found[0][1] < oldest):
                oldest = float(found[0][1])
        return oldest

    async def depth(self) -> dict[Lane, int]:
        """Jobs waiting on each lane (deferred ones included)."""
        return {lane: int(await self.redis.zcard(self.queue(lane))) for lane in Lane}
