"""The one-time migration to the canonical product shape (gateway/migrations.py), on the real servers.

Products stored in the shape the gateway wrote before (BigCommerce money "221.1" and handles
"/laundry-mug-150/", Shopify positions from 1, timestamps with or without microseconds) are rewritten
once; the next sync of the unchanged store then counts every product unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from gateway.domain import RunKind, Trigger
from gateway.integration_store import Integration
from gateway.migrations import COLLECTION, MIGRATIONS, Step, canonical_shape, run_migrations
from gateway.model import hash_document
from gateway.plugins import load_plugins
from gateway.runs import Run
from gateway.services import Gateway
from gateway.simkit import Simulator
from gateway.testing.toy import ToySimulator

ACCOUNT = "acct-1"
NAME = MIGRATIONS[0][0]
#: Every migration's name: a database without migration records runs them all.
EVERY = [name for name, _ in MIGRATIONS]


def old_money(money: dict[str, Any] | None) -> dict[str, Any] | None:
    if money is None:
        return None
    # The store's spelling, as mappers kept it: BigCommerce's numbers lose trailing zeros.
    return {**money, "amount": format(Decimal(money["amount"]).normalize(), "f")}


def old_time(text: str | None, index: int) -> str | None:
    if text is None:
        return None
    # pydantic wrote no fraction for whole seconds, and six digits for the microseconds stores sent.
    if index % 2:
        return text.replace("Z", "456Z")
    return text.removesuffix(".000Z") + "Z" if text.endswith(".000Z") else text


def old_shape(store: dict[str, Any], platform: str, index: int) -> dict[str, Any]:
    """The store document as the gateway stored it before the canonical shape."""
    old = dict(store)
    one_based = 1 if platform == "shopify" else 0
    old["images"] = [{**image, "position": image["position"] + one_based} for image in store["images"]]
    old["variants"] = [
        {
            **v,
            "position": v["position"] + one_based,
            "price": old_money(v["price"]),
            "compare_at_price": old_money(v["compare_at_price"]),
        }
        for v in store["variants"]
    ]
    old["price"], old["compare_at_price"] = old_money(store["price"]), old_money(store["compare_at_price"])
    if platform == "bigcommerce" and store["handle"]:
        old["handle"] = f"/{store['handle']}/"
    for name in ("store_updated_at", "store_created_at", "sale_starts_at", "sale_ends_at"):
        old[name] = old_time(store[name], index)
    return old


def simulator(platform: str, products: int) -> Simulator:
    cls = load_plugins([platform]).adapter(platform).simulator()
    assert cls is not None
    fast = {"restore_rate": 1_000_000} if platform == "shopify" else {}
    return cls(products=products, seed=3, **fast)


@pytest_asyncio.fixture
async def stores() -> AsyncIterator[list[Simulator]]:
    sims = [simulator("shopify", 40), simulator("bigcommerce", 40)]
    for sim in sims:
        await sim.start()
    yield sims
    for sim in sims:
        await sim.stop()


async def full_sync(gw: Gateway, integration: Integration) -> Run:
    run, _ = await gw.syncs.queue(integration, Trigger.MANUAL, kind=RunKind.FULL)
    done = await gw.engine.run(run.id)
    assert done is not None and done.status == "SUCCEEDED", done
    return done


async def connect_and_sync(gw: Gateway, sim: Simulator) -> Integration:
    integration = await gw.integrations.connect(
        ACCOUNT, sim.platform, f"{sim.platform} store", sim.store_url, sim.credentials()
    )
    first = (await gw.runs.latest(integration.id, 1))[0]
    done = await gw.engine.run(first.id)
    assert done is not None and done.status == "SUCCEEDED", done
    return integration


async def store_in_old_shape(gw: Gateway, integration: Integration) -> int:
    """Rewrite an integration's products as the gateway stored them before; how many differ."""
    differing = 0
    cursor = gw.db.products.find({"integration_id": integration.id}).sort("_id", 1)
    for index, doc in enumerate([d async for d in cursor]):
        old = old_shape(doc["store"], integration.platform, index)
        old_hash = hash_document(old)
        differing += old_hash != doc["hash"]
        await gw.db.products.update_one({"_id": doc["_id"]}, {"$set": {"store": old, "hash": old_hash}})
    return differing


async def snapshot(gw: Gateway) -> dict[str, tuple[Any, ...]]:
    return {
        d["_id"]: (d["version"], d["hash"], d["store"], d["synced_at"], d["updated_run"])
        async for d in gw.db.products.find({})
    }


async def test_stored_products_move_to_the_canonical_shape_once_and_stay_unchanged(
    gw: Gateway, stores: list[Simulator]
) -> None:
    assert await gw.db.db[COLLECTION].find_one({"_id": NAME, "state": "done"}) is not None  # Gateway.create ran it
    integrations = [await connect_and_sync(gw, sim) for sim in stores]
    new_shape = await snapshot(gw)
    for integration in integrations:
        # Every product reads differently in the old shape: without the migration all would count as updated.
        assert await store_in_old_shape(gw, integration) == 40
    sample = await gw.db.products.find_one({"integration_id": integrations[1].id, "store.handle": {"$ne": None}})
    assert sample is not None and sample["store"]["handle"].startswith("/")
    await gw.db.db[COLLECTION].delete_many({})  # a database from before the migration existed

    assert await run_migrations(gw.db) == EVERY
    migrated = await snapshot(gw)
    assert {pid: (h, s) for pid, (_, h, s, _, _) in migrated.items()} == {
        pid: (h, s) for pid, (_, h, s, _, _) in new_shape.items()
    }
    # Not an update a merchant sees: synced_at and updated_run are the first sync's.
    assert {pid: (t, r) for pid, (_, _, _, t, r) in migrated.items()} == {
        pid: (t, r) for pid, (_, _, _, t, r) in new_shape.items()
    }
    record = await gw.db.db[COLLECTION].find_one({"_id": NAME})
    assert record is not None and record["state"] == "done"
    assert record["counts"] == {"seen": 80, "rewritten": 80, "failed": 0}

    # Twice changes nothing: the record says done; and run again regardless, it finds nothing to do.
    assert await run_migrations(gw.db) == []
    await gw.db.db[COLLECTION].delete_many({})
    assert await run_migrations(gw.db) == EVERY
    record = await gw.db.db[COLLECTION].find_one({"_id": NAME})
    assert record is not None and record["counts"] == {"seen": 80, "rewritten": 0, "failed": 0}
    assert await snapshot(gw) == migrated

    for integration in integrations:
        run = await full_sync(gw, integration)
        assert run.counts.unchanged == 40, run.counts
        assert run.counts.updated == 0 and run.counts.added == 0 and run.counts.failed == 0


async def test_processes_starting_together_run_it_once(gw: Gateway) -> None:
    sim = ToySimulator(products=30)
    await sim.start()
    try:
        integration = await connect_and_sync(gw, sim)
    finally:
        await sim.stop()
    docs = [d async for d in gw.db.products.find({})]
    for doc in docs:
        old = {**doc["store"], "store_updated_at": doc["store"]["store_updated_at"].replace(".000Z", "Z")}
        await gw.db.products.update_one({"_id": doc["_id"]}, {"$set": {"store": old}})
    await gw.db.db[COLLECTION].delete_many({})

    results = await asyncio.gather(*(run_migrations(gw.db, owner=f"process-{n}") for n in range(4)))
    finished = [names for names in results if names]
    assert len(finished) == 1 and finished[0] == EVERY  # one process did it; the others went on starting
    record = await gw.db.db[COLLECTION].find_one({"_id": NAME})
    assert record is not None and record["state"] == "done" and record["counts"]["rewritten"] == 30
    versions = {d["_id"]: d["version"] for d in docs}
    assert {d["_id"]: d["version"] async for d in gw.db.products.find({})} == {k: v + 1 for k, v in versions.items()}
    assert integration.platform == "toy"


async def test_a_migration_whose_runner_died_is_taken_over_from_its_checkpoint(gw: Gateway) -> None:
    calls: list[Any] = []

    async def interrupted(step: Step) -> bool:
        calls.append(step.checkpoint)
        step.checkpoint = "p-500"
        assert await step.save()
        return False  # as if the process died here, after its last checkpoint

    async def resumed(step: Step) -> bool:
        calls.append(step.checkpoint)
        return True

    clock = [gw.now()]
    assert await run_migrations(gw.db, owner="a", clock=lambda: clock[0], migrations=[("test-step", interrupted)]) == []
    # Its lease is live: another process leaves it alone and starts.
    assert await run_migrations(gw.db, owner="b", clock=lambda: clock[0], migrations=[("test-step", resumed)]) == []
    from gateway.migrations import LEASE

    clock[0] += LEASE * 2
    assert await run_migrations(gw.db, owner="b", clock=lambda: clock[0], migrations=[("test-step", resumed)]) == [
        "test-step"
    ]
    assert calls == [None, "p-500"]


@pytest.mark.parametrize("broken", [{"price": {"amount": "not money", "currency": "USD"}}, {"title": None}])
async def test_a_product_the_model_cannot_read_is_left_as_it_is(gw: Gateway, broken: dict[str, Any]) -> None:
    store = {"external_id": "1", "title": "Mug", "store_updated_at": "2026-01-01T00:00:00Z", **broken}
    await gw.db.products.insert_one({"_id": "i:1", "integration_id": "i", "store": store, "hash": "h", "version": 3})
    assert await run_migrations(gw.db, migrations=[("again", canonical_shape)]) == ["again"]
    record = await gw.db.db[COLLECTION].find_one({"_id": "again"})
    assert record is not None and record["counts"] == {"seen": 1, "rewritten": 0, "failed": 1}
    doc = await gw.db.products.find_one({"_id": "i:1"})
    assert doc is not None and doc["store"] == store and doc["version"] == 3


async def test_hourly_api_calls_fold_into_days_once_and_count_the_last_24_hours(gw: Gateway) -> None:
    """Migration 0003: the old hourly documents become a document per day; apiCallsLast24h reads the same
    whole hours from them (and what this release counted meanwhile is kept, not added twice)."""
    now = gw.now().replace(minute=30, second=0, microsecond=0)
    hour = now.replace(minute=0)
    old = [
        {"integration_id": integration, "hour": hour - timedelta(hours=back), "count": 10 + back}
        for integration in ("i1", "i2")
        for back in range(0, 40, 3)  # some within the last 24 hours, some before
    ]
    await gw.db.api_calls.insert_many(old)
    await gw.integration_store.add_api_calls("i1", hour, 4)  # counted by this release before the fold
    name = "0003-api-calls-by-day"
    await gw.db.db[COLLECTION].delete_many({"_id": name})
    clock = lambda: now  # noqa: E731
    assert await run_migrations(gw.db, clock=clock) == [name]
    assert await gw.db.api_calls.count_documents({}) == 0  # dropped
    since = hour - timedelta(hours=24)
    expected = {
        i: sum(d["count"] for d in old if d["integration_id"] == i and d["hour"] >= since) for i in ("i1", "i2")
    }
    found = await gw.integration_store.api_calls_since(["i1", "i2", "i3"], since, now)
    assert found == {**expected, "i3": 0}  # i1's 4 this hour: below the old count of 10, kept by $max
    # Run again (a take-over): nothing changes.
    await gw.db.db[COLLECTION].delete_many({"_id": name})
    assert await run_migrations(gw.db, clock=clock) == [name]
    assert await gw.integration_store.api_calls_since(["i1", "i2"], since, now) == expected
