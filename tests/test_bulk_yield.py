"""A bulk run's page waits while interactive work (a webhook apply, a Sync Now) is overdue, so one store's
big sync cannot hold the database every other store's webhooks wait for (`SyncEngine.yield_to_interactive`)."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway import engine as engine_module
from gateway.constants import Lane
from gateway.services import Gateway


async def test_a_bulk_page_waits_for_overdue_interactive_work_and_goes_on_when_it_is_done(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    lane = gw.jobs.queue(Lane.WEBHOOKS)
    assert await gw.jobs.oldest_due_ms(Lane.WEBHOOKS, Lane.SYNC_NOW) is None
    await gw.engine.yield_to_interactive()  # nothing due: no wait

    # An apply job due a second ago (waiting for a slot, or running that long), and one deferred to later.
    now_ms = time.time() * 1000
    await gw.redis.zadd(lane, {"wh:overdue": now_ms - 1_000, "wh:later": now_ms + 60_000})
    assert await gw.jobs.oldest_due_ms(Lane.WEBHOOKS, Lane.SYNC_NOW) == now_ms - 1_000
    looked = 0
    looked_twice = asyncio.Event()
    oldest_due_ms = gw.jobs.oldest_due_ms

    async def counting(*lanes: Lane) -> float | None:
        nonlocal looked
        looked += 1
        if looked >= 2:
            looked_twice.set()
        return await oldest_due_ms(*lanes)

    monkeypatch.setattr(gw.jobs, "oldest_due_ms", counting)
    waiting = asyncio.ensure_future(gw.engine.yield_to_interactive())
    await asyncio.wait_for(looked_twice.wait(), 10)
    assert not waiting.done()  # still waiting: the overdue job is there
    await gw.redis.zrem(lane, "wh:overdue")  # done; the deferred one is not due
    await asyncio.wait_for(waiting, 10)


async def test_a_bulk_page_waits_at_most_the_yield_limit(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "YIELD_LIMIT", 0.2)
    await gw.redis.zadd(gw.jobs.queue(Lane.SYNC_NOW), {"sync:stuck:0": time.time() * 1000 - 60_000})
    # Returns by itself (bounded), though the overdue job never goes.
    await asyncio.wait_for(gw.engine.yield_to_interactive(), 10)
    assert await gw.jobs.oldest_due_ms(Lane.SYNC_NOW) is not None
