"""The webhook endpoint's journal: deliveries are answered once they are in Redis, and moved into
MongoDB (the dedupe log and the apply queue, gateway.deliveries) right behind the answer.

Why: a platform waits a few seconds for an answer and sends the delivery again when it does not
get one. Writing every delivery to MongoDB before answering tied the endpoint's answer to the
database's slowest moment: under a merchant's bulk edit, with the applies writing products at the
same time, answers took seconds, the platform's retries multiplied the load, and the endpoint fell
behind for good. A Redis stream append takes well under a millisecond whatever MongoDB is doing.

What keeps an answered delivery from being lost, each fault on its own:

- The API process dies after answering: its deliveries are still in the journal. A worker's
  maintenance pass moves entries older than `ORPHAN_SECONDS` (`WebhookService.recover_journal`).
- Redis loses its data (restarted without persistence): the process that answered still holds
  each delivery in memory until it is in MongoDB, and moves it from there.
- MongoDB is down: the mover keeps its deliveries and retries; the journal keeps them too.
- Redis is down: nothing is journaled; the endpoint stores the delivery in MongoDB before
  answering, as it always did (`WebhookService.receive`).

Only both at once (an API killed and Redis losing its data within the moment between the answer
and the move) loses a delivery, and the next scheduled sync then reads the product. Moving twice
is harmless: the dedupe log takes a delivery id once, and a copy it refuses is taken off the queue.

A journaled delivery also marks its id in Redis (`delivered_key`) for `MARK_SECONDS`, so a platform's
quick retry is answered "duplicate delivery" at the door. The dedupe log in MongoDB (a week) stays the
authority: a later redelivery is journaled, and dropped when it is moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import bson
from bson.codec_options import CodecOptions
from redis.asyncio import Redis

from gateway import metrics
from gateway.constants import delivered_key
from gateway.deliveries import Arrival

log = logging.getLogger(__name__)

#: A journal entry this old was answered by a process that did not move it (it died): a worker moves it.
ORPHAN_SECONDS = 30.0
#: The most entries one move writes to MongoDB.
MOVE_BATCH = 500
#: Past this many deliveries waiting in one process for MongoDB, the endpoint stops journaling and
#: stores each delivery before answering (then MongoDB's absence answers 503 and the platform retries).
BACKLOG_LIMIT = 50_000
#: How long a journaled delivery's id is remembered in Redis (the dedupe log in MongoDB keeps it a week):
#: long enough for a platform's quick retries, short enough that the marks stay small.
MARK_SECONDS = 3600
#: Retry delays of a move that failed (MongoDB away), growing to the last.
RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)

# Appends the deliveries whose ids were not marked before, marking them; returns each one's stream id,
# or 0 for a delivery already marked (a redelivery). One round trip for a whole batch.
_APPEND = """
local out = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    out[i - 1] = redis.call('XADD', KEYS[1], '*', 'd', ARGV[i])
  else
    out[i - 1] = 0
  end
end
return out
"""


def encode(arrival: Arrival, wall: float) -> bytes:
    return bson.encode(arrival.to_doc(wall))


def decode(data: bytes) -> Arrival:
    return Arrival.from_doc(bson.decode(data, codec_options=_CODEC))


@dataclass(frozen=True)
class Entry:
    stream_id: bytes
    arrival: Arrival


class Journal:
    """The Redis stream (`key`) and the delivered marks."""

    def __init__(self, redis: Redis, key: str, *, mark_seconds: int = MARK_SECONDS) -> None:
        self.redis = redis
        self.key = key
        self.mark_seconds = mark_seconds
        self._append = redis.register_script(_APPEND)

    async def append(self, arrivals: Sequence[Arrival]) -> list[Entry | None]:
        """Journal deliveries; per delivery, its entry, or None when its id was journaled before."""
        wall = time.time()
        keys = [self.key, *(delivered_key(a.integration_id, a.event.delivery_id) for a in arrivals)]
        args: list[int | bytes] = [self.mark_seconds, *(encode(a, wall) for a in arrivals)]
        ids = await self._append(keys=keys, args=args)
        return [Entry(i, a) if i != 0 else None for i, a in zip(ids, arrivals, strict=True)]

    async def forget(self, stream_ids: Sequence[bytes]) -> None:
        if stream_ids:
            await self.redis.xdel(self.key, *stream_ids)

    async def older_than(self, seconds: float, count: int = MOVE_BATCH) -> list[Entry]:
        """The oldest entries journaled at least `seconds` ago (by Redis's clock: stream ids are its milliseconds)."""
        (now_s, now_us) = await self.redis.time()
        cutoff_ms = int(now_s) * 1000 + int(now_us) // 1000 - int(seconds * 1000)
        rows = await self.redis.xrange(self.key, "-", str(max(0, cutoff_ms)), count=count)
        return [Entry(stream_id, decode(fields[b"d"])) for stream_id, fields in rows]

    async def length(self) -> int:
        return int(await self.redis.xlen(self.key))


class Mover:
    """Moves what this process journaled into MongoDB, in the background, in batches: `store` writes
    a batch (returns when it is in MongoDB); then the entries leave the journal. Deliveries stay in
    memory until they are moved, whatever happens to Redis."""

    def __init__(self, journal: Journal, store: Callable[[list[Arrival]], Awaitable[object]]) -> None:
        self.journal = journal
        self._store = store
        self._waiting: list[Entry] = []
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def backlog(self) -> int:
        return len(self._waiting)

    def add(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        self._waiting.extend(entries)
        metrics.JOURNAL_WAITING.inc(len(entries))
        self._idle.clear()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def settled(self) -> None:
        """Returns once everything this process journaled is in MongoDB."""
        await self._idle.wait()

    async def close(self, grace: float) -> None:
        """Give the mover up to `grace` seconds to finish; what is left stays in the journal (a worker moves it)."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._idle.wait()), grace)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        failures = 0
        try:
            while self._waiting:
                batch = self._waiting[:MOVE_BATCH]
                try:
                    await self._store([e.arrival for e in batch])
                except Exception:  # noqa: BLE001 - MongoDB away: kept, tried again
                    delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                    failures += 1
                    log.warning("could not store %d journaled deliveries; retrying", len(batch), exc_info=True)
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                del self._waiting[: len(batch)]
                metrics.JOURNAL_WAITING.dec(len(batch))
                try:
                    await self.journal.forget([e.stream_id for e in batch])
                except Exception:  # noqa: BLE001 - Redis away: a worker moves them again later, which changes nothing
                    log.warning("could not take moved deliveries off the journal", exc_info=True)
        finally:
            self._task = None
            if not self._waiting:
                self._idle.set()
