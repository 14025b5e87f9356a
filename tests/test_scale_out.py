"""Scale-out on the multi-process rig (gateway.testing.rig): two `serve` processes and two `worker`
processes over one MongoDB-protocol server and one Valkey, as `docker compose --scale` runs them.

One rig serves the whole module; each test works in an account of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from gateway.constants import account_channel
from gateway.domain import RunStatus, SyncFrequency, SyncMode, Trigger, utcnow
from gateway.events import RunFinished
from gateway.integration_store import CACHE_SECONDS as INTEGRATION_CACHE_TTL
from gateway.runs import Run
from gateway.testing.rig import Rig, Subscription, wait_run
from gateway.testing.toy import ToySimulator

pytestmark = [pytest.mark.rig, pytest.mark.timeout(300)]

CONNECT = """mutation($input: ConnectIntegrationInput!) {
  connectIntegration(input: $input) { id settings { mode frequency } } }"""
SYNC_NOW = "mutation($id: ID!) { syncNow(integrationId: $id) { id status } }"
SYNC_FULL = "mutation($id: ID!) { syncNow(integrationId: $id, full: true) { id status } }"
INTEGRATION = """query($id: ID!) { integration(id: $id) { id pendingChanges settings { mode frequency }
  health { status nextSyncAt } } }"""
EVENTS = """subscription($id: ID) { integrationEvents(integrationId: $id) {
  kind productId run { id status progress { processed total } } health { status } } }"""
PROGRESS = "subscription($id: ID!) { syncProgress(runId: $id) { runId status processed total message } }"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    async with Rig(Path(tmp_path_factory.mktemp("scale-out")), apis=2, workers=2) as started:
        yield started


@pytest_asyncio.fixture(loop_scope="session")
async def account(rig: Rig) -> str:
    await rig.heal()  # whatever an earlier test stopped is running again
    return f"acct-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture(loop_scope="session")
async def store() -> AsyncIterator[ToySimulator]:
    sim = ToySimulator(products=30)
    await sim.start()
    yield sim
    await sim.stop()


def data(body: dict[str, Any]) -> Any:
    assert not body.get("errors"), body["errors"]
    return body["data"]


async def connect(rig: Rig, api: int, sim: ToySimulator, account: str, **settings: str) -> str:
    variables = {
        "input": {
            "platform": "toy",
            "name": "Scale-out store",
            "storeUrl": sim.store_url,
            "credentials": sim.credentials(),
            **({"settings": settings} if settings else {}),
        }
    }
    return str(data(await rig.graphql(api, CONNECT, variables, account=account))["connectIntegration"]["id"])


async def initial_run(rig: Rig, integration_id: str) -> Run:
    run = (await rig.gw.runs.latest(integration_id, 1))[0]
    done = await wait_run(rig.gw, run.id)
    assert done.status is RunStatus.SUCCEEDED, done
    return done


async def subscribers(rig: Rig, channel: str) -> int:
    """How many processes hold a Redis subscription on `channel` (each API holds one per channel)."""
    counts = await rig.gw.redis.pubsub_numsub(channel)
    return int(counts[0][1]) if counts else 0


async def until_subscribed(rig: Rig, channel: str, processes: int) -> None:
    """Wait until `processes` API processes subscribed to `channel` in Redis (a subscription is live)."""

    async def wait() -> None:
        while True:
            if await subscribers(rig, channel) >= processes:
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), 30)


# ---------------------------------------------------------------- schedules


async def test_a_schedule_fires_exactly_once_with_every_worker_ticking(rig: Rig, account: str) -> None:
    sims = [ToySimulator(products=3) for _ in range(12)]  # one store is one integration: twelve stores
    for sim in sims:
        await sim.start()
    try:
        service = rig.gw.integrations
        ids = []
        for n, sim in enumerate(sims):
            integration = await service.connect(
                account, "toy", f"store {n}", sim.store_url, sim.credentials(), frequency=SyncFrequency.EVERY_15_MINUTES
            )
            ids.append(integration.id)
        for integration_id in ids:
            await initial_run(rig, integration_id)

        # All twelve fall due at once while both workers' schedulers tick every 0.25 s.
        due = utcnow().replace(microsecond=0) - timedelta(seconds=1)
        async with rig.gw.hub.listen(account_channel(account)) as events:
            await rig.gw.db.integrations.update_many({"_id": {"$in": ids}}, {"$set": {"next_sync_at": due}})
            finished: set[str] = set()
            while len(finished) < len(ids):
                event = await asyncio.wait_for(events.get(), 60)
                if isinstance(event, RunFinished) and event.run.trigger is Trigger.SCHEDULED:
                    assert event.run.status is RunStatus.SUCCEEDED, event
                    finished.add(event.integration_id)
    finally:
        for sim in sims:
            await sim.stop()

    scheduled = [r async for r in rig.gw.db.runs.find({"integration_id": {"$in": ids}, "trigger": "SCHEDULED"})]
    assert sorted(r["integration_id"] for r in scheduled) == sorted(ids)
    for integration_id in ids:
        # Claimed once: moved forward by exactly one period from the due time.
        stored = await rig.gw.integrations.get(account, integration_id)
        assert stored.next_sync_at == due + timedelta(minutes=15)
    queued = await rig.gw.db.activity.count_documents(
        {"account_id": account, "kind": "SYNC_QUEUED", "message": {"$regex": "scheduled"}}
    )
    assert queued == len(ids)


# ---------------------------------------------------------------- live events across processes


async def test_subscribers_on_either_api_see_every_event_of_runs_worked_anywhere(
    rig: Rig, account: str, store: ToySimulator
) -> None:
    integration_id = await connect(rig, 0, store, account)
    await initial_run(rig, integration_id)
    token = rig.token(account)

    for worker in rig.workers:
        # Only `worker` runs: the run is worked there and nowhere else.
        await asyncio.gather(*(w.stop() for w in rig.workers))
        async with (
            Subscription(rig.apis[0].ws_url, token, EVENTS, {"id": integration_id}) as events_0,
            Subscription(rig.apis[1].ws_url, token, EVENTS, {"id": integration_id}) as events_1,
        ):
            # Each subscription answers with the state first (the light): read before anything happens.
            for events in (events_0, events_1):
                state = await events.next(30)
                assert state is not None and state["integrationEvents"]["kind"] == "HEALTH_CHANGED", state
                assert state["integrationEvents"]["health"]["status"] == "GREEN", state
            await until_subscribed(rig, account_channel(account), processes=2)
            run_id = data(await rig.graphql(1, SYNC_FULL, {"id": integration_id}, account=account))["syncNow"]["id"]
            async with (
                Subscription(rig.apis[0].ws_url, token, PROGRESS, {"id": run_id}) as progress_0,
                Subscription(rig.apis[1].ws_url, token, PROGRESS, {"id": run_id}) as progress_1,
            ):
                # Each answers with the current state first: the run waits, QUEUED, for a worker.
                for progress in (progress_0, progress_1):
                    first = await progress.next(30)
                    assert first is not None and first["syncProgress"]["status"] == "QUEUED", first
                await worker.start()
                states_0 = [m["syncProgress"] for m in await collect_progress(progress_0)]
                states_1 = [m["syncProgress"] for m in await collect_progress(progress_1)]
            assert states_0 == states_1
            assert states_0[-1]["status"] == "SUCCEEDED" and states_0[-1]["processed"] == 30
            assert [s["status"] for s in states_0[:1]] == ["RUNNING"]

            kinds_0 = await events_until_health(events_0)
            kinds_1 = await events_until_health(events_1)
        assert kinds_0 == kinds_1
        # The run's events, the light following them.
        assert [k for k, _, _ in kinds_0 if k not in ("RUN_PROGRESS", "HEALTH_CHANGED")] == [
            "RUN_QUEUED",
            "RUN_STARTED",
            "RUN_FINISHED",
        ]
        assert all(run in (run_id, None) for _, run, _ in kinds_0)
        assert kinds_0[-2] == ("RUN_FINISHED", run_id, "SUCCEEDED")
        assert kinds_0[-1] == ("HEALTH_CHANGED", None, "GREEN")
    await asyncio.gather(*(w.start() for w in rig.workers if not w.running))


async def collect_progress(sub: Subscription) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while (message := await sub.next(60)) is not None:
        seen.append(message)
    assert sub.ended == "complete", (sub.ended, sub.errors)
    return seen


async def events_until_health(sub: Subscription) -> list[tuple[str, str | None, str | None]]:
    """(kind, run id, run or light status) of every event up to the health change that follows the run's
    end."""
    seen: list[tuple[str, str | None, str | None]] = []
    while True:
        message = await sub.next(60)
        assert message is not None, (sub.ended, sub.errors, seen)
        event = message["integrationEvents"]
        run = event.get("run") or {}
        health = event.get("health") or {}
        seen.append((event["kind"], run.get("id"), run.get("status") or health.get("status")))
        if event["kind"] == "HEALTH_CHANGED" and any(kind == "RUN_FINISHED" for kind, _, _ in seen):
            return seen


# ---------------------------------------------------------------- one run, whoever asks


async def test_sync_now_pressed_on_both_apis_at_once_gives_one_run(rig: Rig, account: str) -> None:
    sims = [ToySimulator(products=5, seed=n) for n in range(6)]
    for sim in sims:
        await sim.start()
    try:
        ids = [await connect(rig, n % 2, sim, account) for n, sim in enumerate(sims)]
        for integration_id in ids:
            await initial_run(rig, integration_id)

        for _ in range(2):
            answers = await asyncio.gather(
                *(
                    rig.graphql(api, SYNC_NOW, {"id": integration_id}, account=account)
                    for integration_id in ids
                    for api in (0, 1)
                )
            )
            run_ids = [data(body)["syncNow"]["id"] for body in answers]
            for n in range(len(ids)):
                from_api_0, from_api_1 = run_ids[2 * n], run_ids[2 * n + 1]
                assert from_api_0 == from_api_1, f"two runs for one press: {from_api_0} and {from_api_1}"
                assert (await wait_run(rig.gw, from_api_0)).status is RunStatus.SUCCEEDED
    finally:
        for sim in sims:
            await sim.stop()

    for integration_id in ids:
        manual = await rig.gw.db.runs.count_documents({"integration_id": integration_id, "trigger": "MANUAL"})
        assert manual == 2


# ---------------------------------------------------------------- no stale reads across processes


def signed(secret: str, product: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"event": "upsert", "product": product}).encode()
    return body, {
        "X-Toy-Delivery": uuid.uuid4().hex,
        "Content-Type": "application/json",
        "X-Toy-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


async def deliver(url: str, integration_id: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/webhooks/toy/{integration_id}", data=body, headers=headers) as response,
    ):
        answer = await response.json()
        return response.status, str(answer.get("status"))


async def test_connect_settings_and_disconnect_on_one_api_are_seen_by_the_other(
    rig: Rig, account: str, store: ToySimulator
) -> None:
    store.deliver_webhooks = False  # the test sends each delivery itself, to one API of its choice
    integration_id = await connect(rig, 0, store, account)
    secret = next(iter(store.hooks.values())).secret  # the store forgets it on disconnect; a forger keeps it
    # Seen by the other API at once: no cache in front of GraphQL reads.
    seen = data(await rig.graphql(1, INTEGRATION, {"id": integration_id}, account=account))["integration"]
    assert seen["id"] == integration_id and seen["settings"]["mode"] == "AUTOMATIC"
    listed = data(await rig.graphql(1, "{ integrations { id } }", account=account))["integrations"]
    assert [i["id"] for i in listed] == [integration_id]
    await initial_run(rig, integration_id)

    # API 0 reads the integration for a delivery (and may keep it for INTEGRATION_CACHE_TTL).
    product = dict(store.catalog["1"])
    assert await deliver(rig.apis[0].url, integration_id, *signed(secret, product)) == (200, "ok")

    changed = await rig.graphql(
        1,
        "mutation($id: ID!) { updateSyncSettings(integrationId: $id, settings: {mode: MANUAL}) { id } }",
        {"id": integration_id},
        account=account,
    )
    data(changed)
    seen = data(await rig.graphql(0, INTEGRATION, {"id": integration_id}, account=account))["integration"]
    assert seen["settings"]["mode"] == SyncMode.MANUAL.value and seen["health"]["nextSyncAt"] is None

    # Past the documented TTL, API 0's webhook endpoint follows the new mode too. (The test waits for
    # the TTL to pass: time passing is the very thing under test.)
    await asyncio.sleep(INTEGRATION_CACHE_TTL)
    product["name"] = "Kept for Sync Now"
    assert await deliver(rig.apis[0].url, integration_id, *signed(secret, product)) == (
        200,
        "recorded for the next Sync Now",
    )
    seen = data(await rig.graphql(1, INTEGRATION, {"id": integration_id}, account=account))["integration"]
    assert seen["pendingChanges"] == 1

    assert await deliver(rig.apis[1].url, integration_id, *signed(secret, product)) == (
        200,
        "recorded for the next Sync Now",
    )
    disconnected = await rig.graphql(
        0, "mutation($id: ID!) { disconnectIntegration(integrationId: $id) }", {"id": integration_id}, account=account
    )
    assert data(disconnected)["disconnectIntegration"] == integration_id
    gone = await rig.graphql(1, INTEGRATION, {"id": integration_id}, account=account)
    assert [e["extensions"]["code"] for e in gone["errors"]] == ["NOT_FOUND"]
    assert data(await rig.graphql(1, "{ integrations { id } }", account=account))["integrations"] == []

    await asyncio.sleep(INTEGRATION_CACHE_TTL)
    status, _ = await deliver(rig.apis[1].url, integration_id, *signed(secret, product))
    assert status == 404
    for collection in (rig.gw.db.products, rig.gw.db.runs, rig.gw.db.queue, rig.gw.db.integrations):
        assert await collection.count_documents({"integration_id": integration_id}) == 0, collection.name


async def test_a_delivery_a_stale_cache_accepts_after_disconnect_leaves_nothing_behind(
    rig: Rig, account: str, store: ToySimulator
) -> None:
    store.deliver_webhooks = False
    integration_id = await connect(rig, 0, store, account)
    secret = next(iter(store.hooks.values())).secret
    await initial_run(rig, integration_id)
    product = dict(store.catalog["2"])
    # API 1 reads the integration now, and keeps it for up to INTEGRATION_CACHE_TTL.
    assert await deliver(rig.apis[1].url, integration_id, *signed(secret, product)) == (200, "ok")
    disconnected = await rig.graphql(
        0, "mutation($id: ID!) { disconnectIntegration(integrationId: $id) }", {"id": integration_id}, account=account
    )
    assert data(disconnected)["disconnectIntegration"] == integration_id

    product["name"] = "After the disconnect"
    status, _ = await deliver(rig.apis[1].url, integration_id, *signed(secret, product))
    if status == 404:
        pytest.skip("the delivery arrived after API 1's cache expired: the stale window was missed")
    assert status == 200
    # Whatever the stale read let in is dropped once the workers are done with it.
    await asyncio.wait_for(queue_drained(rig), 30)
    for collection in (rig.gw.db.products, rig.gw.db.queue, rig.gw.db.runs):
        assert await collection.count_documents({"integration_id": integration_id}) == 0, collection.name


async def queue_drained(rig: Rig) -> None:
    """Wait until no answered delivery waits to be moved into MongoDB, the arq queue is empty and no job
    is in progress. (A journaled delivery's job is queued before it leaves the journal.)"""
    while True:
        moved = await rig.gw.webhooks.journal.length() == 0
        in_progress = [k async for k in rig.gw.redis.scan_iter(match="arq:in-progress:*", count=1000)]
        if moved and not in_progress and await rig.queue_depth() == 0:
            return
        await asyncio.sleep(0.05)
