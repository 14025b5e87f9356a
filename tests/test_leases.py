"""A run's lease, taken with plain conditional updates by `_id` (gateway.storage.mongo.update_and_read):
free, expired or already ours is taken, held by another worker is not; and the update-then-read
helper itself (the embedded server scans a whole collection for findAndModify, and for `$or`)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.domain import RunKind, RunStatus, Trigger
from gateway.runs import STARTING
from gateway.services import Gateway
from gateway.storage.mongo import update_and_read
from gateway.testing.toy import ToySimulator


async def queued_run(gw: Gateway, sim: ToySimulator) -> str:
    integration = await gw.integrations.connect("acct-1", "toy", "leases", sim.store_url, sim.credentials())
    run = (await gw.runs.latest(integration.id, 1))[0]
    assert run.status is RunStatus.QUEUED
    return run.id


async def test_a_lease_is_taken_once_then_only_by_its_owner_or_after_it_expires(
    gw: Gateway, toy_store: ToySimulator
) -> None:
    run_id = await queued_run(gw, toy_store)
    queued = await gw.runs.get_any(run_id)
    assert queued is not None
    # Two workers at once: one takes it.
    taken = await asyncio.gather(*(gw.runs.acquire_lease(run_id, f"w{n}", 30) for n in range(4)))
    winners = [run for run in taken if run is not None]
    assert len(winners) == 1
    run = winners[0]
    assert run.status is RunStatus.RUNNING and run.attempts == 1 and run.progress.message == STARTING
    assert run.progress.seq == queued.progress.seq + 1  # a new state for subscribers
    owner = run.lease_owner
    assert owner is not None
    assert await gw.runs.acquire_lease(run_id, "another", 30) is None  # held
    again = await gw.runs.acquire_lease(run_id, owner, 30)  # its own owner takes it again
    assert again is not None and again.attempts == 2 and again.started_at == run.started_at
    # Expired: another worker takes it over, and the first one's saves are refused.
    await gw.db.runs.update_one({"_id": run_id}, {"$set": {"lease_until": gw.now().replace(year=2020)}})
    over = await gw.runs.acquire_lease(run_id, "rescuer", 30)
    assert over is not None and over.lease_owner == "rescuer" and over.attempts == 3
    assert await gw.runs.acquire_lease(run_id, owner, 30) is None
    finished = await gw.runs.finish(run_id, RunStatus.SUCCEEDED, "Done")
    assert finished is not None and finished.status is RunStatus.SUCCEEDED
    assert await gw.runs.acquire_lease(run_id, "late", 30) is None  # finished: nobody takes it
    assert await gw.runs.finish(run_id, RunStatus.FAILED, "again") is None  # ended once


async def test_update_and_read_changes_one_document_by_id_and_reads_it_back(gw: Gateway) -> None:
    collection = gw.db.db["scratch_updates"]
    await collection.insert_one({"_id": "a", "n": 1, "tag": "x"})
    after = await update_and_read(collection, {"_id": "a", "tag": "x"}, {"$inc": {"n": 1}})
    assert after == {"_id": "a", "n": 2, "tag": "x"}
    assert await update_and_read(collection, {"_id": "a", "tag": "y"}, {"$inc": {"n": 1}}) is None  # no match
    assert await update_and_read(collection, {"_id": "missing"}, {"$set": {"n": 1}}) is None
    made = await update_and_read(collection, {"_id": "b"}, {"$setOnInsert": {"n": 7}}, upsert=True, projection={"n": 1})
    assert made == {"_id": "b", "n": 7}
    with pytest.raises(ValueError):
        await update_and_read(collection, {"tag": "x"}, {"$set": {"n": 0}})  # not by _id
    with pytest.raises(ValueError):
        await update_and_read(collection, {"_id": "a", "$or": [{"n": 2}]}, {"$set": {"n": 0}})
    assert (await collection.find_one({"_id": "a"}) or {}).get("n") == 2


async def test_a_run_started_by_a_worker_is_announced_as_running_once(gw: Gateway, toy_store: ToySimulator) -> None:
    integration = await gw.integrations.connect(
        "acct-1", "toy", "announce", toy_store.store_url, toy_store.credentials()
    )
    first = (await gw.runs.latest(integration.id, 1))[0]
    assert (await gw.engine.run(first.id)) is not None
    run, _ = await gw.syncs.queue(integration, Trigger.MANUAL, kind=RunKind.INCREMENTAL)
    done = await gw.engine.run(run.id)
    assert done is not None and done.status is RunStatus.SUCCEEDED
    # Queued (seq of the queue), taken (one more), the page's checkpoint: no save in between.
    assert done.progress.seq == run.progress.seq + 2
    assert done.attempts == 1
