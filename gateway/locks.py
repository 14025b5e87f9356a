"""A lock in Redis that one process holds at a time: SET NX PX to take it, compare-and-delete to let
it go, so a holder that outlived its expiry never releases the next holder's lock. It orders work for
efficiency (one applier per integration); correctness never rests on it, since what it guards is
version-guarded in MongoDB anyway."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RedisLock:
    def __init__(self, redis: Redis, key: str, token: str, seconds: float) -> None:
        self.redis = redis
        self.key = key
        self.token = token
        self.seconds = seconds

    @classmethod
    async def acquire(cls, redis: Redis, key: str, seconds: float) -> RedisLock | None:
        """The lock, or None when another process holds it."""
        token = uuid.uuid4().hex
        if await redis.set(key, token, nx=True, px=int(seconds * 1000)):
            return cls(redis, key, token, seconds)
        return None

    async def release(self) -> None:
        await self.redis.eval(_RELEASE, 1, self.key, self.token)  # type: ignore[misc]
