"""Putting arq jobs on the queue (the job functions themselves are in gateway.jobs)."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis


class JobQueue:
    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis

    async def enqueue(
        self, function: str, *args: Any, job_id: str | None = None, defer_by: float | None = None
    ) -> None:
        await self.redis.enqueue_job(function, *args, _job_id=job_id, _defer_by=defer_by)
