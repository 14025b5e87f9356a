"""Putting arq jobs on the queue (the job functions themselves are in gateway.jobs)."""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import ArqRedis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class JobQueue:
    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis

    async def enqueue(
        self, function: str, *args: Any, job_id: str | None = None, defer_by: float | None = None
    ) -> None:
        await self.redis.enqueue_job(function, *args, _job_id=job_id, _defer_by=defer_by)

    async def try_enqueue(
        self, function: str, *args: Any, job_id: str | None = None, defer_by: float | None = None
    ) -> bool:
        """`enqueue`, for work whose state is already safe in MongoDB: False (logged) while Redis is unavailable.
        The scheduler gives such work its job once Redis is back (a run QUEUED for long, a delivery waiting
        unclaimed: gateway.scheduler), so the caller need not fail."""
        try:
            await self.enqueue(function, *args, job_id=job_id, defer_by=defer_by)
        except (RedisError, OSError) as exc:
            log.warning("could not queue %s (Redis unavailable: %s); the scheduler will", function, type(exc).__name__)
            return False
        return True
