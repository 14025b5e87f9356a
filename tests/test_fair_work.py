"""Fair work (issue 14): one store's burst or long sync never holds up another store's webhooks or Sync
Now, a burst is stored whole and applied coalesced, and the scheduler fires each due run once.

Everything here is ordered by events (a gate the test opens, the run and account channels), never by
time: the speed targets are measured by `make bench` (benchmarks/scale.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from gwtest import Api, connect, wait_run
from pagekit import GatedToy
from test_automatic import post, signed_with

from gateway.constants import Lane, account_channel
from gateway.domain import RunStatus, SyncFrequency, Trigger, utcnow
from gateway.integration_store import seal_context
from gateway.services import Gateway
from gateway.testing.toy import ToySimulator
from gateway.webhooks import WebhookService


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # One run slot per worker: a single long run fills the runs lane, as many long runs would in production.
    return {"GATEWAY_WORKER_RUN_SLOTS": 1}


def signed(
    secret: str, external_id: str, name: str, updated_at: datetime, delivery: str
) -> tuple[bytes, dict[str, str]]:
    product = {
        "id": external_id,
        "name": name,
        "price": "9.99",
        "updated_at": updated_at.isoformat(),
        "variants": [{"id": f"{external_id}-1", "sku": f"F-{external_id}", "price": "9.99", "stock": 1}],
    }
    return signed_with(secret, {"event": "upsert", "product": product}, delivery)


async def connected(gw: Gateway, api: Api, sim: ToySimulator) -> tuple[str, str]:
    """An integration whose first sync succeeded, and its webhook secret."""
    integration_id = await connect(api, sim)
    run = (await gw.runs.latest(integration_id, 1))[0]
    assert (await wait_run(gw, run.id)).status is RunStatus.SUCCEEDED
    integration = await gw.integration_store.get_any(integration_id)
    assert integration is not None
    return integration_id, gw.integrations.credentials(integration)["hook_secret"]


async def until(gw: Gateway, condition: Callable[[], Awaitable[bool]], limit: float = 60.0) -> None:
    """Wait until `condition` holds, looking again at every event of the account (and every half second,
    for what publishes none)."""

    async def follow() -> None:
        async with gw.hub.listen(account_channel("acct-1")) as queue:
            while not await condition():
                try:
                    await asyncio.wait_for(queue.get(), 0.5)
                except TimeoutError:
                    pass

    await asyncio.wait_for(follow(), limit)


async def titles(gw: Gateway, integration_id: str) -> dict[str, str]:
    cursor = gw.db.products.find({"integration_id": integration_id}, {"external_id": 1, "store.title": 1})
    return {d["external_id"]: d["store"]["title"] async for d in cursor}


async def versions(gw: Gateway, integration_id: str) -> int:
    return sum([d["version"] async for d in gw.db.products.find({"integration_id": integration_id}, {"version": 1})])


class ApplyWatch:
    """Wraps the apply of a WebhookService: counts the apply jobs that start, the passes working each
    integration at once (the most ever seen), and holds the first pass at its start until `release`."""

    def __init__(self, service: WebhookService) -> None:
        self.jobs = 0
        self.busy: dict[str, int] = {}
        self.most = 0
        self.release = asyncio.Event()
        self.held = asyncio.Event()
        apply_queued, apply_pass = service.apply_queued, service.apply_pending

        async def queued(integration_id: str) -> int:
            self.jobs += 1
            return await apply_queued(integration_id)

        async def one_pass(integration_id: str) -> int:
            self.busy[integration_id] = self.busy.get(integration_id, 0) + 1
            self.most = max(self.most, self.busy[integration_id])
            try:
                self.held.set()
                await self.release.wait()
                return await apply_pass(integration_id)
            finally:
                self.busy[integration_id] -= 1

        service.apply_queued = queued  # type: ignore[method-assign]
        service.apply_pending = one_pass  # type: ignore[method-assign]


async def test_a_burst_for_one_store_is_stored_whole_and_applied_by_one_job_coalesced(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id, secret = await connected(gw, api, toy_store)
    toy_store.deliver_webhooks = False  # the test sends the store's deliveries itself
    products, edits = [str(n) for n in range(1, 11)], 30
    watch = ApplyWatch(gw.webhooks)
    before = await versions(gw, integration_id)
    stamp = datetime(2027, 1, 1, tzinfo=UTC)
    deliveries = [
        signed(secret, external_id, f"Edit {e} of {external_id}", stamp + timedelta(seconds=e), f"d-{external_id}-{e}")
        for e in range(edits)
        for external_id in products
    ]
    # All at once, as a bulk edit's deliveries arrive, and a tenth of them delivered twice.
    statuses = await asyncio.gather(*(post(api, integration_id, *d) for d in deliveries + deliveries[::10]))
    assert set(statuses) == {200}
    await gw.webhooks.journal_settled()  # answered from the journal; in MongoDB right after
    assert await gw.db.deliveries.count_documents({"integration_id": integration_id}) == len(deliveries)
    assert await gw.db.queue.count_documents({"integration_id": integration_id}) == len(deliveries)

    # The first pass waits (held at its start) while more apply jobs for the same store come and go.
    await asyncio.wait_for(watch.held.wait(), 30)
    for n in range(4):
        await gw.jobs.enqueue_apply(integration_id, f"extra-{n}")

    async def others_came() -> bool:
        return watch.jobs >= 5

    await until(gw, others_came)
    watch.release.set()

    last = {external_id: f"Edit {edits - 1} of {external_id}" for external_id in products}

    async def applied() -> bool:
        stored = await titles(gw, integration_id)
        done = not await gw.db.queue.count_documents({"integration_id": integration_id})
        return done and all(stored.get(e) == name for e, name in last.items())

    await until(gw, applied)
    assert watch.most == 1, "two apply passes worked one store at once"
    # Coalesced: one write per product for 300 deliveries (the held pass claimed them all at once).
    assert await versions(gw, integration_id) - before == len(products)


async def test_a_run_in_every_run_slot_starves_neither_webhooks_nor_sync_now(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator, big_store: GatedToy
) -> None:
    small_id, secret = await connected(gw, api, toy_store)
    toy_store.deliver_webhooks = False

    # The big store's first full sync takes the only run slot and stays in it (its second page waits).
    big_store.close_gate(from_page=2)
    big = await gw.integrations.connect("acct-1", "toy", "big", big_store.store_url, big_store.credentials())
    big_run = (await gw.runs.latest(big.id, 1))[0]

    async def big_running() -> bool:
        run = await gw.runs.get_any(big_run.id)
        return run is not None and run.status is RunStatus.RUNNING and run.progress.processed > 0

    await until(gw, big_running)

    # The small store's scheduled run falls due and queues behind it on the runs lane (claimed by this
    # call or by the worker's own scheduler loop, whichever came first).
    await gw.db.integrations.update_one({"_id": small_id}, {"$set": {"next_sync_at": utcnow()}})
    await gw.scheduler.queue_due()
    scheduled = (await gw.runs.latest(small_id, 1))[0]
    assert scheduled.trigger is Trigger.SCHEDULED and scheduled.status is RunStatus.QUEUED
    scheduled_id = scheduled.id
    # Another store's webhook is applied meanwhile (its own lane).
    body, headers = signed(secret, "3", "While the big store syncs", datetime(2027, 1, 1, tzinfo=UTC), "during-1")
    assert await post(api, small_id, body, headers) == 200

    async def webhook_applied() -> bool:
        return (await titles(gw, small_id)).get("3") == "While the big store syncs"

    await until(gw, webhook_applied)
    # The merchant presses Sync Now: it is the queued scheduled run, started on the Sync Now lane.
    data = await api.query("mutation($id: ID!) { syncNow(integrationId: $id) { id } }", {"id": small_id})
    assert data["syncNow"]["id"] == scheduled_id
    finished = await wait_run(gw, scheduled_id)
    assert finished.status is RunStatus.SUCCEEDED and finished.trigger is Trigger.SCHEDULED

    # All of it happened while the big run held the slot.
    still = await gw.runs.get_any(big_run.id)
    assert still is not None and still.status is RunStatus.RUNNING
    big_store.open_gate()
    assert (await wait_run(gw, big_run.id, 120)).status is RunStatus.SUCCEEDED


@pytest_asyncio.fixture
async def big_store() -> AsyncIterator[GatedToy]:
    sim = GatedToy(products=400)
    await sim.start()
    yield sim
    sim.open_gate()
    await sim.stop()


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def test_the_scheduler_fires_each_due_run_exactly_once_on_time(gw: Gateway, toy_store: ToySimulator) -> None:
    """30 integrations on EVERY_15_MINUTES, due at staggered times, for 30 minutes of a clock the test
    moves; two schedulers turn side by side, each turn as the worker's loop makes it (Scheduler.step)."""
    first = await gw.integrations.connect(
        "acct-1", "toy", "s0", toy_store.store_url, toy_store.credentials(), frequency=SyncFrequency.EVERY_15_MINUTES
    )
    await gw.db.runs.update_many({}, {"$set": {"active": False, "status": RunStatus.SUCCEEDED.value}})
    template = await gw.db.integrations.find_one({"_id": first.id})
    assert template is not None
    credentials = gw.integrations.credentials(first)
    start = utcnow().replace(microsecond=0) + timedelta(hours=1)
    period = SyncFrequency.EVERY_15_MINUTES.period
    count = 30
    due = {first.id: start}
    docs = []
    for n in range(1, count):
        integration_id = f"{first.id[:-4]}{n:04d}"
        due[integration_id] = start + period * n / count
        docs.append(
            {
                **template,
                "_id": integration_id,
                # One store is one integration per account: each copy stands for a store of its own.
                "store_identity": f"{template['store_identity']}#{n}",
                "credentials": gw.box.seal(credentials, seal_context("acct-1", integration_id)),
            }
        )
    await gw.db.integrations.insert_many(docs)
    for integration_id, when in due.items():
        synced = {"last_full_sync_at": start, "last_sync_at": start, "sync_cursor": start}
        await gw.db.integrations.update_one({"_id": integration_id}, {"$set": {"next_sync_at": when, **synced}})

    clock = Clock(start - timedelta(seconds=30))
    gw.clock = clock
    end = start + timedelta(minutes=30)
    while clock.at <= end:
        await asyncio.gather(gw.scheduler.queue_due(), gw.scheduler.queue_due())
        # Runs end between turns (no worker here): an integration with a run still going gets none.
        await gw.db.runs.update_many({"active": True}, {"$set": {"active": False, "status": "SUCCEEDED"}})
        pause = await gw.scheduler.pause()
        assert 0 < pause <= gw.settings.scheduler_interval
        clock.at += timedelta(seconds=pause)

    runs = [r async for r in gw.db.runs.find({"trigger": Trigger.SCHEDULED.value})]
    per_integration: dict[str, int] = {}
    for run in runs:
        per_integration[run["integration_id"]] = per_integration.get(run["integration_id"], 0) + 1
    expected = {i: 1 + int((end - when) / period) for i, when in due.items()}
    assert per_integration == expected
    # Each claimed at the moment it fell due: the loop turned then, not an interval later.
    claims = [i async for i in gw.db.integrations.find({"_id": {"$in": list(due)}}, {"schedule_claim": 1})]
    assert all(c["schedule_claim"]["at"] == c["schedule_claim"]["due"] for c in claims), claims
    # One job each (the first sync's too), on the runs lane.
    assert await gw.redis.zcard(gw.jobs.queue(Lane.RUNS)) == await gw.db.runs.count_documents({})
