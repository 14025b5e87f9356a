"""Rate-limit state shared by every process that talks to one store.

A store's rate limit belongs to the store (BigCommerce), or to the store and the app (Shopify), never
to one run: a sync on one worker, a webhook batch on another and a connect check on an API process
all spend the same bucket. So a platform's `Budget` (gateway/httpclient.py) keeps its model here, in
one of three primitives, through the `RateState` the connection's HTTP client is bound to:

- `SharedBucket`: a leaky bucket with a cost per request (Shopify's calculated query cost). A request
  reserves its requested cost before it is sent and settles after the answer with what it was charged
  and the platform's own reading of the bucket, which replaces the model (the platform's figure is the
  truth).
- `SharedWindow`: a fixed allowance per time window, refilled at once at the window's reset
  (BigCommerce's `X-Rate-Limit-*` headers), of which this app may spend a share.
- `SharedPause`: a store-wide "wait until" set from Retry-After, for platforms that publish no quota
  (WooCommerce behind a host's limiter): once the store tells one client to wait, every client waits.

Two backends implement them. `RedisRateState` keeps the state in Redis under one key per store and
primitive and changes it only in Lua scripts, which are atomic and read the clock with Redis TIME, so
processes with skewed clocks agree. `LocalRateState` keeps it in memory, for one process (plugin unit
tests, the conformance kit, a client built without the core's connection factory); it takes an injectable clock.
Both answer the same way; tests/test_ratebudget.py runs one suite against both.

Which store? `store_identity` of the connection's store URL (host, port and path; the scheme and a
trailing slash left out), so every integration of one store shares one state whichever account it
belongs to. A budget names its primitive, and may add a scope to the name when the platform's limit is
narrower than the store: Shopify's bucket is per app and store, so two integrations of one shop through
the same app (an app-store install claimed in two accounts, or the same custom app's keys pasted twice)
share a bucket, and two different custom apps on one shop get one each (the Shopify plugin scopes by a
digest of the app's client secret, `scope_digest`). BigCommerce's quota is per store whatever the app,
and a WooCommerce host limits the store's site, so those use the store alone.

When Redis cannot be reached, a Redis primitive carries on with an in-memory model of its own (logged),
so a Redis outage slows nothing down beyond what the platform's own headers then say.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from yarl import URL

from gateway.constants import rate_key

log = logging.getLogger(__name__)

#: A learned limit (bucket size, restore rate, quota) is kept this long after the last request.
STATE_TTL = 24 * 3600.0
#: A reservation whose request never settled (its process died) is forgotten after this.
HOLD_TTL = 120.0
#: A waiter that stops asking (its process died) loses its place in the queue after this.
CLAIM_GRACE = 5.0
#: How long a waiter sleeps at most before reading the shared state again: another process's answer
#: (a refund, a new window) does not wake it.
SHARED_POLL = 0.25


def store_identity(store_url: str) -> str:
    """The store a URL names: `host[:port][/path]`, host lower-cased, default port, scheme and trailing slash
    left out (http:// and https:// of one store are one store)."""
    url = URL(store_url.strip())
    host = (url.raw_host or "").lower().strip("[]")
    port = "" if url.port is None or url.is_default_port() else f":{url.port}"
    path = url.raw_path.rstrip("/")
    return f"{host}{port}{path}".replace("{", "%7B").replace("}", "%7D")


def scope_digest(value: str) -> str:
    """A short, one-way name for a secret-derived scope (an app's client secret): keys never hold secrets."""
    return hashlib.sha256(b"alana-rate-scope\x00" + value.encode()).hexdigest()[:16]


# ---- values -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hold:
    """A granted reservation: hand it back to `settle` (or `release`) once the request is answered."""

    id: str
    points: float
    #: What the bucket had charged in all when this was granted (settles since then are counted against
    #: an older reading of the bucket).
    mark: float = 0.0
    #: Granted by the in-memory fallback while Redis was unreachable.
    local: bool = False


@dataclass(frozen=True)
class BucketStatus:
    """A bucket as its model sees it."""

    available: float
    maximum: float
    restore_rate: float


@dataclass(frozen=True)
class BucketReading:
    """What the platform said about its bucket; a figure it did not give is None."""

    available: float | None = None
    maximum: float | None = None
    restore_rate: float | None = None


@dataclass(frozen=True)
class WindowReading:
    """The platform's figures for its current window, from one answer."""

    quota: int
    window_ms: int
    reset_ms: int
    left: int


@dataclass(frozen=True)
class WindowStatus:
    """A window as its model sees it (None where nothing is known yet)."""

    quota: int | None = None
    window: float | None = None
    left: int | None = None
    room: int = 0
    spent: float = 0.0
    in_flight: float = 0.0


def _number(value: Any) -> float | None:
    if value is None or value == b"" or value == "":
        return None
    return float(value.decode() if isinstance(value, bytes) else value)


def _arg(value: float | int | None) -> str:
    return "" if value is None else repr(float(value))


# ---- the primitives -----------------------------------------------------------------------------------
class SharedBucket(ABC):
    """A leaky bucket shared by everyone who spends it: `reserve` before a request, `settle` after it."""

    def __init__(self, maximum: float, restore_rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._status = BucketStatus(maximum, maximum, restore_rate)
        self._seen_at = clock()

    @property
    def status(self) -> BucketStatus:
        """The bucket as the last call saw it."""
        return self._status

    @status.setter
    def status(self, value: BucketStatus) -> None:
        self._status = value
        self._seen_at = self.clock()

    def estimate(self) -> float:
        """Points the bucket holds now, by the last call's figures restored since (planning, no round trip)."""
        status = self._status
        elapsed = max(0.0, self.clock() - self._seen_at)
        return min(status.maximum, status.available + elapsed * status.restore_rate)

    @abstractmethod
    async def reserve(self, points: float, waiter: str) -> Hold | float:
        """Take `points` (at most the bucket's size) and return the Hold, or return the seconds to wait
        before asking again. Waiters are served in the order they were first refused: a small request
        does not pass one that has waited for a bigger one unless the bucket holds enough for both."""

    @abstractmethod
    async def settle(
        self, hold: Hold | None, *, charged: float | None = None, reading: BucketReading | None = None
    ) -> BucketStatus:
        """The request answered: it was `charged` (None: unknown, so the reservation stays spent) and the
        platform read its bucket as `reading`, which replaces the model, less what other requests still
        hold and what answers settled since this one was granted have been charged."""

    @abstractmethod
    async def release(self, hold: Hold) -> None:
        """The request got no answer: forget the reservation (what it held stays spent: it may have been charged)."""


class SharedWindow(ABC):
    """A fixed allowance per window (BigCommerce's quota), of which this app spends up to `share`.

    Before anything is known, and again once the known window has reset, one request goes out alone as a
    probe and the others wait for its answer. In a known window a request goes out while (a) our requests
    in the window stay within `share * quota`, and (b) the store's `left`, less what the other apps are
    still due (the rest of the quota, spent evenly over the window) and less our requests in flight, leaves
    room for it; (b) is read from the answer the store gave last (the smallest reset time).
    """

    def __init__(self, share: float, stale_after: float) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        self.stale_after = stale_after
        self.status = WindowStatus()

    @abstractmethod
    async def reserve(self, cost: float, waiter: str) -> Hold | float: ...

    @abstractmethod
    async def settle(self, hold: Hold | None, reading: WindowReading | None, *, throttled: bool = False) -> None:
        """Record an answer's figures (None: it carried none). `throttled` for a 429: nothing is left."""

    @abstractmethod
    async def release(self, hold: Hold) -> None: ...


class SharedPause(ABC):
    """A store-wide "wait until": the longest Retry-After any client of the store was given."""

    @abstractmethod
    async def remaining(self) -> float:
        """Seconds until the pause ends (0 when there is none)."""

    @abstractmethod
    async def extend(self, seconds: float) -> None:
        """Nobody sends before `seconds` from now (a longer pause already set stays)."""


def window_cap(share: float, quota: int) -> float:
    """Our own requests allowed per window."""
    return float(max(1, math.floor(share * quota + 1e-9)))


def window_due(share: float, quota: int, window: float, reset_ms: int) -> int:
    """What the other apps, spending their part of the quota evenly, are still due `reset_ms` before the reset."""
    others = quota - window_cap(share, quota)
    if others <= 0 or window <= 0:
        return 0
    # Reset-Ms is rounded up to the millisecond: without that millisecond, an answer given just as the
    # other apps' pace crosses a whole request does not make them due one more than they are.
    remaining = min(1.0, max(0.0, (reset_ms - 1) / 1000 / window))
    return math.ceil(others * remaining - 1e-9)


# ---- in memory ----------------------------------------------------------------------------------------
class MemoryBucket(SharedBucket):
    """`SharedBucket` for one process; the same rules as the Redis script below."""

    def __init__(self, maximum: float, restore_rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(maximum, restore_rate, clock)
        self.maximum = float(maximum)
        self.rate = float(restore_rate)
        self.available = float(maximum)
        self.at = clock()
        self.charged = 0.0
        self.holds: dict[str, tuple[float, float]] = {}  # id -> (points, expires)
        self.claims: dict[str, tuple[float, float, float]] = {}  # id -> (need, since, expires)

    def _restore(self) -> float:
        now = self.clock()
        self.available = min(self.maximum, self.available + max(0.0, now - self.at) * self.rate)
        self.at = now
        for hold_id, (_, expires) in list(self.holds.items()):
            if expires < now:
                del self.holds[hold_id]
        for claim_id, (_, _, expires) in list(self.claims.items()):
            if expires < now:
                del self.claims[claim_id]
        return now

    def _publish(self) -> BucketStatus:
        self.status = BucketStatus(self.available, self.maximum, self.rate)
        return self.status

    def reserve_now(self, points: float, waiter: str, poll: float = math.inf) -> Hold | float:
        now = self._restore()
        need = max(0.0, min(float(points), self.maximum))
        mine = self.claims.get(waiter)
        ahead = sum(
            n
            for claim_id, (n, since, _) in self.claims.items()
            if claim_id != waiter and (mine is None or (since, claim_id) < (mine[1], waiter))
        )
        if self.available - ahead >= need:
            self.available -= need
            self.claims.pop(waiter, None)
            self.holds[waiter] = (need, now + HOLD_TTL)
            self._publish()
            return Hold(waiter, need, self.charged)
        wait = (need + ahead - self.available) / max(self.rate, 1e-6)
        self.claims[waiter] = (need, mine[1] if mine else now, now + min(wait, poll) + CLAIM_GRACE)
        self._publish()
        return max(wait, 1e-3)

    def settle_now(
        self, hold: Hold | None, *, charged: float | None = None, reading: BucketReading | None = None
    ) -> BucketStatus:
        self._restore()
        points = hold.points if hold else 0.0
        since = max(0.0, self.charged - hold.mark) if hold else 0.0
        if hold:
            self.holds.pop(hold.id, None)
        self.charged += points if charged is None else max(0.0, charged)
        if reading is not None and reading.available is not None:
            if reading.maximum is not None and reading.maximum > 0:
                self.maximum = reading.maximum
            if reading.restore_rate is not None and reading.restore_rate > 0:
                self.rate = reading.restore_rate
            others = sum(p for p, _ in self.holds.values())
            self.available = min(self.maximum, reading.available) - others - since
        elif charged is not None:
            self.available = min(self.maximum, self.available + points - max(0.0, charged))
        return self._publish()

    def release_now(self, hold: Hold) -> None:
        self._restore()
        self.holds.pop(hold.id, None)
        self.claims.pop(hold.id, None)

    async def reserve(self, points: float, waiter: str) -> Hold | float:
        return self.reserve_now(points, waiter)

    async def settle(
        self, hold: Hold | None, *, charged: float | None = None, reading: BucketReading | None = None
    ) -> BucketStatus:
        return self.settle_now(hold, charged=charged, reading=reading)

    async def release(self, hold: Hold) -> None:
        self.release_now(hold)


class MemoryWindow(SharedWindow):
    """`SharedWindow` for one process; the same rules as the Redis script below."""

    def __init__(self, share: float = 1.0, stale_after: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__(share, stale_after)
        self.clock = clock
        self.quota: int | None = None
        self.window: float | None = None
        #: Requests the store has left in the current window; None when unknown (a new window).
        self.left: int | None = None
        #: Of those, what the other apps are not due (as of the answer the store gave last).
        self.room = 0
        self.room_reset_ms = 0
        self.reset_at = 0.0
        #: Our requests counted against the current window.
        self.spent = 0.0
        self.holds: dict[str, tuple[float, float]] = {}  # id -> (points, reserved at)

    @property
    def in_flight(self) -> float:
        return sum(points for points, _ in self.holds.values())

    def _expire(self, now: float) -> None:
        # A request that failed without an answer may never settle: forget its reservation.
        for hold_id, (_, at) in list(self.holds.items()):
            if now - at > self.stale_after:
                del self.holds[hold_id]

    def _status(self) -> None:
        self.status = WindowStatus(self.quota, self.window, self.left, self.room, self.spent, self.in_flight)

    def reserve_now(self, cost: float, waiter: str) -> Hold | float:
        now = self.clock()
        self._expire(now)
        try:
            if self.quota is None or self.window is None:
                return self._probe(now, cost, waiter)
            if now >= self.reset_at and self.left is not None:
                # The window we knew has ended; its numbers say nothing about the new one.
                self.left = None
                self.spent = 0.0
            if self.left is None:
                return self._probe(now, cost, waiter)
            cap = window_cap(self.share, self.quota)
            if min(cap - self.spent, self.room - self.in_flight) < cost:
                return max(self.reset_at - now, 0.001)  # nothing opens before the reset, unless an answer says so
            return self._grant(now, cost, waiter)
        finally:
            self._status()

    def _probe(self, now: float, cost: float, waiter: str) -> Hold | float:
        if self.holds:
            return self.stale_after
        return self._grant(now, cost, waiter)

    def _grant(self, now: float, cost: float, waiter: str) -> Hold:
        self.holds[waiter] = (cost, now)
        self.spent += cost
        return Hold(waiter, cost)

    def settle_now(self, hold: Hold | None, reading: WindowReading | None, *, throttled: bool = False) -> None:
        now = self.clock()
        if hold is not None:
            self.holds.pop(hold.id, None)
        self._expire(now)
        if reading is None:
            self._status()
            return
        self.quota, self.window = max(1, reading.quota), max(reading.window_ms, 1) / 1000
        reset_at = now + reading.reset_ms / 1000
        counted = 0.0 if throttled else (hold.points if hold else 0.0)
        due = window_due(self.share, self.quota, self.window, reading.reset_ms)
        if self.left is None or reset_at > self.reset_at + self.window / 2:
            # A new window: count it from what this answer says.
            self.left, self.reset_at = reading.left, reset_at
            self.spent = counted + self.in_flight
            self.room, self.room_reset_ms = reading.left - due, reading.reset_ms
        elif reset_at >= self.reset_at - self.window / 2:
            # The same window: Left only goes down within it; a smaller number is the later truth.
            self.left = min(self.left, reading.left)
            self.reset_at = min(self.reset_at, reset_at)
            if reading.reset_ms < self.room_reset_ms:  # answered after the one we had
                self.room, self.room_reset_ms = reading.left - due, reading.reset_ms
            elif reading.reset_ms == self.room_reset_ms:
                # Answered in the same millisecond (Reset-Ms is whole): the smaller Left is the later answer,
                # whichever order the answers are read in.
                self.room = min(self.room, reading.left - due)
        # else: a late answer from a window already over; its numbers are stale.
        if throttled:
            self.left = self.room = 0
        self._status()

    def release_now(self, hold: Hold) -> None:
        self.holds.pop(hold.id, None)
        self._status()

    async def reserve(self, cost: float, waiter: str) -> Hold | float:
        return self.reserve_now(cost, waiter)

    async def settle(self, hold: Hold | None, reading: WindowReading | None, *, throttled: bool = False) -> None:
        self.settle_now(hold, reading, throttled=throttled)

    async def release(self, hold: Hold) -> None:
        self.release_now(hold)


class MemoryPause(SharedPause):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.until = 0.0

    async def remaining(self) -> float:
        return max(0.0, self.until - self.clock())

    async def extend(self, seconds: float) -> None:
        self.until = max(self.until, self.clock() + max(0.0, seconds))


# ---- in Redis ----------------------------------------------------------------------------------------
# Every script reads the clock with TIME (scripts are replicated by their effects, so that is allowed)
# and returns numbers as strings: Redis would truncate a Lua number to an integer.
_CLOCK = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
"""

# The bucket's scripts. KEYS: state, holds (id -> "points|expires"), claims (id -> "need|since|expires").
# ARGV[1..4]: the hold or waiter id ('' for none), default maximum, default rate, state ttl (ms).
_BUCKET_LOAD = (
    _CLOCK
    + """
local s = redis.call('HMGET', KEYS[1], 'max', 'rate', 'avail', 'at', 'charged')
local max = tonumber(s[1]) or tonumber(ARGV[2])
local rate = tonumber(s[2]) or tonumber(ARGV[3])
local avail = tonumber(s[3]) or max
local at = tonumber(s[4]) or now
local charged = tonumber(s[5]) or 0
avail = math.min(max, avail + math.max(0, now - at) * rate)
local held = {}
local h = redis.call('HGETALL', KEYS[2])
for i = 1, #h, 2 do
  local points, expires = string.match(h[i + 1], '^([^|]+)|(.+)$')
  if tonumber(expires) < now then
    redis.call('HDEL', KEYS[2], h[i])
  else
    held[h[i]] = tonumber(points)
  end
end
local function save()
  redis.call('HSET', KEYS[1], 'max', tostring(max), 'rate', tostring(rate), 'avail', tostring(avail),
    'at', tostring(now), 'charged', tostring(charged))
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
end
"""
)

# ARGV[5..8]: points, hold ttl, claim grace, poll.
# Returns {granted 0/1, points granted or seconds to wait, mark, available, maximum, rate}.
_BUCKET_RESERVE = (
    _BUCKET_LOAD
    + """
local waiter = ARGV[1]
local need = math.max(0, math.min(tonumber(ARGV[5]), max))
local mine = nil
local queue = {}
local c = redis.call('HGETALL', KEYS[3])
for i = 1, #c, 2 do
  local n, since, expires = string.match(c[i + 1], '^([^|]+)|([^|]+)|(.+)$')
  if tonumber(expires) < now then
    redis.call('HDEL', KEYS[3], c[i])
  elseif c[i] == waiter then
    mine = tonumber(since)
  else
    table.insert(queue, {tonumber(n), tonumber(since), c[i]})
  end
end
local ahead = 0
for _, q in ipairs(queue) do
  if mine == nil or q[2] < mine or (q[2] == mine and q[3] < waiter) then ahead = ahead + q[1] end
end
if avail - ahead >= need then
  avail = avail - need
  redis.call('HDEL', KEYS[3], waiter)
  redis.call('HSET', KEYS[2], waiter, tostring(need) .. '|' .. tostring(now + tonumber(ARGV[6])))
  save()
  return {1, tostring(need), tostring(charged), tostring(avail), tostring(max), tostring(rate)}
end
local wait = (need + ahead - avail) / math.max(rate, 0.000001)
local expires = now + math.min(wait, tonumber(ARGV[8])) + tonumber(ARGV[7])
redis.call('HSET', KEYS[3], waiter, tostring(need) .. '|' .. tostring(mine or now) .. '|' .. tostring(expires))
save()
return {0, tostring(math.max(wait, 0.001)), tostring(charged), tostring(avail), tostring(max), tostring(rate)}
"""
)

# ARGV[5..10]: points held, mark, charged ('' unknown), the reading's available, maximum and rate ('' where
# not given). Returns {available, maximum, rate}.
_BUCKET_SETTLE = (
    _BUCKET_LOAD
    + """
local points = tonumber(ARGV[5])
local since = 0
if ARGV[1] ~= '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
  held[ARGV[1]] = nil
  since = math.max(0, charged - tonumber(ARGV[6]))
end
local cost = tonumber(ARGV[7])
charged = charged + (cost and math.max(0, cost) or points)
local current = tonumber(ARGV[8])
if current then
  local m, r = tonumber(ARGV[9]), tonumber(ARGV[10])
  if m and m > 0 then max = m end
  if r and r > 0 then rate = r end
  local others = 0
  for _, p in pairs(held) do others = others + p end
  avail = math.min(max, current) - others - since
elseif cost then
  avail = math.min(max, avail + points - math.max(0, cost))
end
save()
return {tostring(avail), tostring(max), tostring(rate)}
"""
)

# Forgets a reservation, or a waiter's place in the queue; what a reservation held stays spent.
_BUCKET_RELEASE = """
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""

# The window's scripts. KEYS: state, holds (id -> "points|reserved at").
# ARGV[1..4]: the hold or waiter id ('' for none), share, stale after (s), state ttl (ms).
_WINDOW_LOAD = (
    _CLOCK
    + """
local s = redis.call('HMGET', KEYS[1], 'quota', 'window', 'left', 'room', 'rrm', 'reset_at', 'spent')
local quota, window, left = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
local room, rrm = tonumber(s[4]) or 0, tonumber(s[5]) or 0
local reset_at, spent = tonumber(s[6]) or 0, tonumber(s[7]) or 0
local share, stale = tonumber(ARGV[2]), tonumber(ARGV[3])
local inflight, holds = 0, 0
local h = redis.call('HGETALL', KEYS[2])
for i = 1, #h, 2 do
  local points, at = string.match(h[i + 1], '^([^|]+)|(.+)$')
  if now - tonumber(at) > stale then
    redis.call('HDEL', KEYS[2], h[i])
  else
    inflight = inflight + tonumber(points)
    holds = holds + 1
  end
end
local function save()
  local fields = {'room', tostring(room), 'rrm', tostring(rrm), 'reset_at', tostring(reset_at),
    'spent', tostring(spent)}
  if quota then table.insert(fields, 'quota'); table.insert(fields, tostring(quota)) end
  if window then table.insert(fields, 'window'); table.insert(fields, tostring(window)) end
  if left then
    table.insert(fields, 'left'); table.insert(fields, tostring(left))
  else
    redis.call('HDEL', KEYS[1], 'left')
  end
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
local function cap()
  return math.max(1, math.floor(share * quota + 1e-9))
end
"""
)

# ARGV[5]: cost. Returns {granted 0/1, seconds to wait}.
_WINDOW_RESERVE = (
    _WINDOW_LOAD
    + """
local cost = tonumber(ARGV[5])
local function grant()
  redis.call('HSET', KEYS[2], ARGV[1], tostring(cost) .. '|' .. tostring(now))
  spent = spent + cost
  save()
  return {1, '0'}
end
local function probe()
  if holds > 0 then
    save()
    return {0, tostring(stale)}
  end
  return grant()
end
if quota == nil or window == nil then return probe() end
if left ~= nil and now >= reset_at then
  left = nil
  spent = 0
end
if left == nil then return probe() end
if math.min(cap() - spent, room - inflight) < cost then
  save()
  return {0, tostring(math.max(reset_at - now, 0.001))}
end
return grant()
"""
)

# ARGV[5..10]: points held, then the reading ('' for none): quota, window ms, reset ms, left; throttled 0/1.
# Returns {quota, window, left, room, spent, in flight} ('' where unknown).
_WINDOW_SETTLE = (
    _CLOCK
    + """
if ARGV[1] ~= '' then redis.call('HDEL', KEYS[2], ARGV[1]) end
"""
    + _WINDOW_LOAD.replace(_CLOCK, "")
    + """
local points = tonumber(ARGV[5])
if ARGV[6] ~= '' then
  quota = math.max(1, tonumber(ARGV[6]))
  window = math.max(tonumber(ARGV[7]), 1) / 1000
  local reset_ms, l = tonumber(ARGV[8]), tonumber(ARGV[9])
  local throttled = ARGV[10] == '1'
  local new_reset = now + reset_ms / 1000
  local counted = points
  if throttled then counted = 0 end
  local others = quota - cap()
  local due = 0
  if others > 0 and window > 0 then
    local remaining = math.min(1, math.max(0, (reset_ms - 1) / 1000 / window))
    due = math.ceil(others * remaining - 1e-9)
  end
  if left == nil or new_reset > reset_at + window / 2 then
    left, reset_at = l, new_reset
    spent = counted + inflight
    room, rrm = l - due, reset_ms
  elseif new_reset >= reset_at - window / 2 then
    left = math.min(left, l)
    reset_at = math.min(reset_at, new_reset)
    if reset_ms < rrm then room, rrm = l - due, reset_ms
    elseif reset_ms == rrm then room = math.min(room, l - due) end
  end
  if throttled then
    left = 0
    room = 0
  end
end
save()
return {tostring(quota or ''), tostring(window or ''), tostring(left or ''), tostring(room), tostring(spent),
  tostring(inflight)}
"""
)

# KEYS: the pause. ARGV: seconds to extend it by (0 only reads). Returns the seconds left.
_PAUSE = (
    _CLOCK
    + """
local ends = tonumber(redis.call('GET', KEYS[1])) or 0
local seconds = tonumber(ARGV[1])
if seconds > 0 and now + seconds > ends then
  ends = now + seconds
  redis.call('SET', KEYS[1], tostring(ends), 'PX', math.ceil(seconds * 1000) + 1000)
end
return tostring(math.max(0, ends - now))
"""
)


class _Fallback:
    """Runs a Redis call, or the in-memory model when Redis cannot be reached (logged once a minute)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._warned = -math.inf

    def failed(self) -> None:
        now = time.monotonic()
        if now - self._warned > 60:
            self._warned = now
            log.warning("rate limit state in Redis unreachable; this process models %s alone meanwhile", self.what)


class RedisBucket(SharedBucket):
    def __init__(self, state: RedisRateState, key: str, maximum: float, restore_rate: float) -> None:
        super().__init__(maximum, restore_rate)
        self.keys = [key, f"{key}:holds", f"{key}:claims"]
        self._state = state
        self._common = (_arg(maximum), _arg(restore_rate), str(int(STATE_TTL * 1000)))
        self._local = MemoryBucket(maximum, restore_rate)
        self._fallback = _Fallback(key)

    def _seen(self, available: Any, maximum: Any, rate: Any) -> BucketStatus:
        self.status = BucketStatus(_number(available) or 0.0, _number(maximum) or 0.0, _number(rate) or 0.0)
        return self.status

    async def _run(self, source: str, hold: str, *args: str) -> Any:
        return await self._state.script(source)(keys=self.keys, args=[hold, *self._common, *args])

    async def reserve(self, points: float, waiter: str) -> Hold | float:
        try:
            reply = await self._run(
                _BUCKET_RESERVE, waiter, _arg(points), _arg(HOLD_TTL), _arg(CLAIM_GRACE), _arg(self._state.poll)
            )
        except (RedisError, OSError):
            self._fallback.failed()
            result = self._local.reserve_now(points, waiter, self._state.poll)
            self.status = self._local.status
            return Hold(result.id, result.points, result.mark, local=True) if isinstance(result, Hold) else result
        granted, value, mark, available, maximum, rate = reply
        self._seen(available, maximum, rate)
        if int(granted):
            return Hold(waiter, _number(value) or 0.0, _number(mark) or 0.0)
        return _number(value) or 0.001

    async def settle(
        self, hold: Hold | None, *, charged: float | None = None, reading: BucketReading | None = None
    ) -> BucketStatus:
        if hold is not None and hold.local:
            self.status = self._local.settle_now(hold, charged=charged, reading=reading)
            return self.status
        reading = reading or BucketReading()
        try:
            reply = await self._run(
                _BUCKET_SETTLE,
                hold.id if hold else "",
                _arg(hold.points if hold else 0.0),
                _arg(hold.mark if hold else 0.0),
                _arg(charged),
                _arg(reading.available),
                _arg(reading.maximum),
                _arg(reading.restore_rate),
            )
        except (RedisError, OSError):
            self._fallback.failed()
            self.status = self._local.settle_now(None, reading=reading)
            return self.status
        return self._seen(*reply)

    async def release(self, hold: Hold) -> None:
        if hold.local:
            self._local.release_now(hold)
            return
        try:
            await self._state.script(_BUCKET_RELEASE)(keys=self.keys, args=[hold.id])
        except (RedisError, OSError):
            self._fallback.failed()  # the hold expires on its own


class RedisWindow(SharedWindow):
    def __init__(self, state: RedisRateState, key: str, share: float, stale_after: float) -> None:
        super().__init__(share, stale_after)
        self.keys = [key, f"{key}:holds"]
        self._state = state
        self._common = (_arg(share), _arg(stale_after), str(int(STATE_TTL * 1000)))
        self._local = MemoryWindow(share, stale_after)
        self._fallback = _Fallback(key)

    async def _run(self, source: str, hold: str, *args: str) -> Any:
        return await self._state.script(source)(keys=self.keys, args=[hold, *self._common, *args])

    async def reserve(self, cost: float, waiter: str) -> Hold | float:
        try:
            granted, wait = await self._run(_WINDOW_RESERVE, waiter, _arg(cost))
        except (RedisError, OSError):
            self._fallback.failed()
            result = self._local.reserve_now(cost, waiter)
            self.status = self._local.status
            return Hold(result.id, result.points, local=True) if isinstance(result, Hold) else result
        if int(granted):
            return Hold(waiter, float(cost))
        return _number(wait) or 0.001

    async def settle(self, hold: Hold | None, reading: WindowReading | None, *, throttled: bool = False) -> None:
        if hold is not None and hold.local:
            self._local.settle_now(hold, reading, throttled=throttled)
            self.status = self._local.status
            return
        figures = (
            [str(reading.quota), str(reading.window_ms), str(reading.reset_ms), str(reading.left)]
            if reading is not None
            else ["", "", "", ""]
        )
        try:
            reply = await self._run(
                _WINDOW_SETTLE,
                hold.id if hold else "",
                _arg(hold.points if hold else 0.0),
                *figures,
                "1" if throttled else "0",
            )
        except (RedisError, OSError):
            self._fallback.failed()
            self._local.settle_now(None, reading, throttled=throttled)
            self.status = self._local.status
            return
        quota, window, left, room, spent, in_flight = (_number(v) for v in reply)
        self.status = WindowStatus(
            None if quota is None else int(quota),
            window,
            None if left is None else int(left),
            int(room or 0),
            spent or 0.0,
            in_flight or 0.0,
        )

    async def release(self, hold: Hold) -> None:
        await self.settle(hold, None)


class RedisPause(SharedPause):
    def __init__(self, state: RedisRateState, key: str) -> None:
        self.key = key
        self._state = state
        self._local = MemoryPause()
        self._fallback = _Fallback(key)

    async def _call(self, seconds: float) -> float:
        try:
            reply = await self._state.script(_PAUSE)(keys=[self.key], args=[_arg(seconds)])
        except (RedisError, OSError):
            self._fallback.failed()
            if seconds > 0:
                await self._local.extend(seconds)
            return await self._local.remaining()
        return float(_number(reply) or 0.0)

    async def remaining(self) -> float:
        return await self._call(0.0)

    async def extend(self, seconds: float) -> None:
        await self._call(max(0.0, seconds))


# ---- one store's state ------------------------------------------------------------------------------
class RateState(ABC):
    """One store's rate-limit state, handed to a Budget by the connection's HTTP client.

    Asking twice for a primitive of the same name gives the same one: every budget of the store (and,
    with Redis, of every process) spends the same bucket.
    """

    #: Longest a waiter sleeps before asking the shared state again (answers settled by other processes
    #: do not wake it); infinite where only this process spends.
    poll: float = math.inf

    @abstractmethod
    def bucket(self, name: str, *, maximum: float, restore_rate: float) -> SharedBucket:
        """The leaky bucket `name`; `maximum` and `restore_rate` are assumed until an answer says otherwise."""

    @abstractmethod
    def window(self, name: str, *, share: float = 1.0, stale_after: float = 10.0) -> SharedWindow:
        """The fixed window `name`, of which this app spends up to `share`; an unanswered request stops
        counting after `stale_after` seconds."""

    @abstractmethod
    def pause(self, name: str) -> SharedPause:
        """The store-wide pause `name`."""


class LocalRateState(RateState):
    """In memory, for one process. `clock` is injectable (tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._made: dict[tuple[str, str], Any] = {}

    def bucket(self, name: str, *, maximum: float, restore_rate: float) -> SharedBucket:
        made = self._made.setdefault(("bucket", name), MemoryBucket(maximum, restore_rate, self.clock))
        assert isinstance(made, MemoryBucket)
        return made

    def window(self, name: str, *, share: float = 1.0, stale_after: float = 10.0) -> SharedWindow:
        made = self._made.setdefault(("window", name), MemoryWindow(share, stale_after, self.clock))
        assert isinstance(made, MemoryWindow)
        return made

    def pause(self, name: str) -> SharedPause:
        made = self._made.setdefault(("pause", name), MemoryPause(self.clock))
        assert isinstance(made, MemoryPause)
        return made


@dataclass
class RedisRateState(RateState):
    """In Redis, for every process that reaches it: `store` is the store's `store_identity`."""

    redis: Redis
    store: str
    poll: float = SHARED_POLL
    _scripts: dict[str, Any] = field(default_factory=dict, repr=False)
    _made: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    @classmethod
    def for_store(cls, redis: Redis, store_url: str) -> RedisRateState:
        return cls(redis, store_identity(store_url))

    def key(self, name: str) -> str:
        return rate_key(self.store, name)

    def script(self, source: str) -> Any:
        """The registered script (EVALSHA, loading it again after a Redis restart)."""
        registered = self._scripts.get(source)
        if registered is None:
            registered = self._scripts[source] = self.redis.register_script(source)
        return registered

    def bucket(self, name: str, *, maximum: float, restore_rate: float) -> SharedBucket:
        made = self._made.get(("bucket", name))
        if made is None:
            made = self._made[("bucket", name)] = RedisBucket(self, self.key(name), maximum, restore_rate)
        assert isinstance(made, RedisBucket)
        return made

    def window(self, name: str, *, share: float = 1.0, stale_after: float = 10.0) -> SharedWindow:
        made = self._made.get(("window", name))
        if made is None:
            made = self._made[("window", name)] = RedisWindow(self, self.key(name), share, stale_after)
        assert isinstance(made, RedisWindow)
        return made

    def pause(self, name: str) -> SharedPause:
        made = self._made.get(("pause", name))
        if made is None:
            made = self._made[("pause", name)] = RedisPause(self, self.key(name))
        assert isinstance(made, RedisPause)
        return made


class Waker:
    """Sleeps until a deadline or until `wake` (an answer in this process changed the shared state)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def nap(self, seconds: float) -> None:
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            pass


__all__ = [
    "BucketReading",
    "BucketStatus",
    "Hold",
    "LocalRateState",
    "MemoryBucket",
    "MemoryPause",
    "MemoryWindow",
    "RateState",
    "RedisRateState",
    "SharedBucket",
    "SharedPause",
    "SharedWindow",
    "Waker",
    "WindowReading",
    "WindowStatus",
    "scope_digest",
    "store_identity",
    "window_cap",
    "window_due",
]
