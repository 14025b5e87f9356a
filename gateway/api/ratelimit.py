"""Each caller's budget of query cost: a token bucket in Redis, so every API process draws on the same one.

The bucket holds up to `burst` points and refills at `rate` points a second; a request takes its cost
up front or is refused whole. Time comes from the Redis server (TIME), so API processes with drifting
clocks still agree.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.constants import query_cost_key

log = logging.getLogger(__name__)


# KEYS[1] bucket; ARGV: burst, rate per second, cost. Returns {taken (0/1), tokens left as a string}.
_TAKE = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local taken = 0
if cost <= tokens then
  tokens = tokens - cost
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {taken, tostring(tokens)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: Points left in the bucket after this request (before it, when refused).
    remaining: float
    #: Seconds until the bucket holds the cost again (0 when allowed).
    retry_after: float


class CostBucket:
    def __init__(self, redis: Redis, burst: int, rate: float) -> None:
        self.redis = redis
        self.burst = burst
        self.rate = rate

    async def take(self, caller: str, cost: int) -> Decision:
        """Take `cost` points from the caller's bucket. Allowed when Redis cannot be reached: the
        per-request ceiling still holds, and one Redis blip should not take the API down with it."""
        try:
            reply = self.redis.eval(_TAKE, 1, query_cost_key(caller), str(self.burst), str(self.rate), str(cost))
            taken, tokens = await reply  # type: ignore[misc]
        except (RedisError, OSError):
            log.warning("query cost rate not checked: Redis unavailable", exc_info=True)
            return Decision(True, math.inf, 0.0)
        remaining = float(tokens)
        if int(taken):
            return Decision(True, remaining, 0.0)
        return Decision(
            False, remaining, (min(cost, self.burst) - remaining) / self.rate if self.rate > 0 else math.inf
        )
