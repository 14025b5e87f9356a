"""Automatic sync: webhooks in real time, manual mode, schedules and health."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
from datetime import timedelta
from typing import Any

from arq.constants import job_key_prefix
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from gwtest import Api, connect, wait_run, wait_run_recorded

from gateway.constants import account_channel, run_job_id
from gateway.domain import HealthStatus, RunStatus, SyncFrequency, utcnow
from gateway.events import HealthChanged
from gateway.services import Gateway
from gateway.testing.toy import ToySimulator

HEALTH = """query($id: ID!) { integration(id: $id) { pendingChanges productCount
  health { status reason lastSyncAt nextSyncAt lastRun { status } } } }"""


async def connected(gw: Gateway, api: Api, sim: ToySimulator, **settings: Any) -> str:
    integration_id = await connect(api, sim, **settings)
    run = (await gw.runs.latest(integration_id, 1))[0]
    # Recorded too (the activity entry comes a moment after the run is marked finished): the entries a
    # test adds come after it.
    assert (await wait_run_recorded(gw, run.id)).status == "SUCCEEDED"
    return integration_id


def signed(sim: ToySimulator, payload: dict[str, Any], delivery: str) -> tuple[bytes, dict[str, str]]:
    return signed_with(next(iter(sim.hooks.values())).secret, payload, delivery)


def signed_with(secret: str, payload: dict[str, Any], delivery: str) -> tuple[bytes, dict[str, str]]:
    """A toy delivery of `payload`, signed with the hook's `secret` as the toy store signs it."""
    body = json.dumps(payload).encode()
    return body, {
        "X-Toy-Delivery": delivery,
        "Content-Type": "application/json",
        "X-Toy-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


async def post(api: Api, integration_id: str, body: bytes, headers: dict[str, str]) -> int:
    async with api.session.post(f"{api.url}/webhooks/toy/{integration_id}", data=body, headers=headers) as r:
        return r.status


async def product_title(gw: Gateway, integration_id: str, external_id: str) -> str:
    doc = await gw.db.products.find_one({"_id": f"{integration_id}:{external_id}"})
    assert doc is not None
    return str(doc["store"]["title"])


async def test_a_store_change_reaches_the_product_and_a_subscriber(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store)
    transport = WebsocketsTransport(
        url=api.url.replace("http", "ws") + "/graphql",
        init_payload={"Authorization": f"Bearer {api.token('acct-1')}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    request = GraphQLRequest(
        "subscription($id: ID) { integrationEvents(integrationId: $id) { kind productId } }",
        variable_values={"id": integration_id},
    )
    async with Client(transport=transport) as session:
        events = session.subscribe(request)
        first = asyncio.ensure_future(anext(events))
        # The subscription is live once the server has subscribed to the account channel.
        await asyncio.wait_for(gw.hub.wait_for_listener(account_channel("acct-1")), 10)
        toy_store.update_product("3", name="Fresh from the store")
        event = await asyncio.wait_for(first, 20)
        while event["integrationEvents"]["kind"] != "PRODUCT_CHANGED":
            event = await asyncio.wait_for(anext(events), 20)
        await events.aclose()
    assert event["integrationEvents"]["productId"] == f"{integration_id}:3"
    assert await product_title(gw, integration_id, "3") == "Fresh from the store"


async def test_forged_duplicate_and_older_deliveries(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store)
    toy_store.deliver_webhooks = False
    product = dict(toy_store.catalog["4"])

    forged_body = json.dumps({"event": "upsert", "product": {**product, "name": "Forged"}}).encode()
    status = await post(api, integration_id, forged_body, {"X-Toy-Delivery": "f1", "X-Toy-Signature": "00" * 32})
    assert status == 401
    assert await gw.db.deliveries.count_documents({}) == 0
    assert await product_title(gw, integration_id, "4") != "Forged"
    log = await api.query("{ activityLog(first: 1) { edges { node { kind } } } }")
    assert log["activityLog"]["edges"][0]["node"]["kind"] == "WEBHOOK_REJECTED"

    newer = {**product, "name": "Newer", "updated_at": (utcnow() + timedelta(days=400)).isoformat()}
    body, headers = signed(toy_store, {"event": "upsert", "product": newer}, "d-1")
    assert await post(api, integration_id, body, headers) == 200
    assert await post(api, integration_id, body, headers) == 200  # a redelivery
    await gw.webhooks.journal_settled()  # answered from the journal: now in MongoDB too
    assert await gw.db.deliveries.count_documents({"integration_id": integration_id}) == 1
    await wait_for_applied(gw, integration_id, 1)
    assert await product_title(gw, integration_id, "4") == "Newer"

    older = {**product, "name": "Older"}
    body, headers = signed(toy_store, {"event": "upsert", "product": older}, "d-2")
    assert await post(api, integration_id, body, headers) == 200
    await wait_for_applied(gw, integration_id, 2)
    assert await product_title(gw, integration_id, "4") == "Newer"

    huge = b"{" + b" " * (gw.settings.max_webhook_bytes + 10) + b"}"
    async with api.session.post(f"{api.url}/webhooks/toy/{integration_id}", data=io.BytesIO(huge)) as response:
        assert response.status == 413
    assert await post(api, "no-such-integration", body, headers) == 404


async def wait_for_applied(gw: Gateway, integration_id: str, count: int) -> None:
    async def applied() -> None:
        async with gw.hub.listen(account_channel("acct-1")) as queue:
            while await gw.db.deliveries.count_documents({"integration_id": integration_id}) < count or (
                await gw.db.queue.count_documents({"integration_id": integration_id})
            ):
                try:
                    await asyncio.wait_for(queue.get(), 0.5)
                except TimeoutError:
                    pass

    await asyncio.wait_for(applied(), 20)


async def test_manual_mode_keeps_changes_for_sync_now(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store, mode="MANUAL")
    data = await api.query(HEALTH, {"id": integration_id})
    assert data["integration"]["health"]["status"] == "GREEN", data
    assert data["integration"]["health"]["nextSyncAt"] is None
    for external_id in ("1", "2", "3"):
        toy_store.update_product(external_id, name=f"Manual {external_id}")
    await toy_store.drain_deliveries()
    data = await api.query(HEALTH, {"id": integration_id})
    assert data["integration"]["pendingChanges"] == 3
    assert data["integration"]["health"]["status"] == "YELLOW"
    assert "3 changes waiting for Sync Now" in data["integration"]["health"]["reason"]
    assert await product_title(gw, integration_id, "1") != "Manual 1"

    run = await api.query("mutation($id: ID!) { syncNow(integrationId: $id) { id } }", {"id": integration_id})
    await wait_run(gw, run["syncNow"]["id"])
    assert await product_title(gw, integration_id, "1") == "Manual 1"
    data = await api.query(HEALTH, {"id": integration_id})
    assert data["integration"]["pendingChanges"] == 0
    assert data["integration"]["health"]["status"] == "GREEN", data


async def test_schedule_queues_once_when_due_and_red_after_failure(gw: Gateway, toy_store: ToySimulator) -> None:
    now = utcnow().replace(microsecond=0)
    gw.clock = lambda: now
    service = gw.integrations
    integration = await service.connect("acct-1", "toy", "sched", toy_store.store_url, toy_store.credentials())
    first_run = (await gw.runs.latest(integration.id, 1))[0]
    await gw.runs.finish(first_run.id, RunStatus.SUCCEEDED, "done")
    await gw.db.integrations.update_one(
        {"_id": integration.id},
        {"$set": {"last_full_sync_at": now, "last_sync_at": now, "sync_cursor": now}},
    )
    await service.update_settings("acct-1", integration.id, None, SyncFrequency.EVERY_15_MINUTES)
    doc = await service.get("acct-1", integration.id)
    assert doc.next_sync_at == now + timedelta(minutes=15)
    assert (await service.health(doc)).status.value == "GREEN"

    gw.clock = lambda: now + timedelta(minutes=14, seconds=59)
    assert await gw.scheduler.queue_due() == []

    gw.clock = lambda: now + timedelta(minutes=15)
    one, two = await asyncio.gather(gw.scheduler.queue_due(), gw.scheduler.queue_due())
    assert len(one) + len(two) == 1
    run = await gw.runs.get_any((one + two)[0])
    assert run is not None and run.trigger == "SCHEDULED" and run.kind == "INCREMENTAL"
    doc = await service.get("acct-1", integration.id)
    assert doc.next_sync_at == now + timedelta(minutes=30)

    await gw.runs.acquire_lease(run.id, "w", 5)
    await gw.runs.finish(run.id, RunStatus.FAILED, "failed", failure="the store answered HTTP 503")
    health = await service.health(doc)
    assert health.status.value == "RED" and "503" in (health.reason or "")

    gw.clock = lambda: now + timedelta(minutes=62)
    overdue = await service.health(await service.get("acct-1", integration.id))
    assert overdue.status.value == "RED"


async def test_changes_only_a_scheduled_run_finds_turn_the_light_yellow(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store)
    toy_store.deliver_webhooks = False  # the store stops delivering, but keeps changing
    toy_store.update_product("6", name="Missed by webhooks")
    await gw.db.integrations.update_one({"_id": integration_id}, {"$set": {"next_sync_at": utcnow()}})
    # The run is marked finished a moment before its job records what it found on the integration
    # (that is what turns the light): wait for the light's own event, not for the run.
    async with gw.hub.listen(account_channel("acct-1")) as queue:
        queued = await gw.scheduler.queue_due()
        assert len(queued) == 1
        while True:
            event = await asyncio.wait_for(queue.get(), 20)
            if isinstance(event, HealthChanged) and "real-time" in (event.health.reason or ""):
                break
    run = await wait_run(gw, queued[0])
    assert run.trigger == "SCHEDULED" and run.counts.updated == 1
    data = await api.query(HEALTH, {"id": integration_id})
    assert data["integration"]["health"]["status"] == "YELLOW"
    assert "real-time" in data["integration"]["health"]["reason"]
    toy_store.deliver_webhooks = True
    async with gw.hub.listen(account_channel("acct-1")) as queue:
        toy_store.update_product("6", name="Delivered again")
        while True:  # the delivery clears the "silent" reason: the light turns green again
            event = await asyncio.wait_for(queue.get(), 20)
            if isinstance(event, HealthChanged) and event.health.status is HealthStatus.GREEN:
                break
    data = await api.query(HEALTH, {"id": integration_id})
    assert data["integration"]["health"]["status"] == "GREEN", data


async def test_a_queued_run_whose_job_was_lost_gets_it_back(gw: Gateway, toy_store: ToySimulator) -> None:
    """Redis without persistence (the demo's Valkey) forgets queued jobs on a restart; the run stays QUEUED."""
    now = utcnow()
    gw.clock = lambda: now
    integration = await gw.integrations.connect("acct-1", "toy", "lost", toy_store.store_url, toy_store.credentials())
    run = (await gw.runs.latest(integration.id, 1))[0]
    job_id = run_job_id(run.id)
    queue = gw.settings.queue_name
    assert await gw.redis.zscore(queue, job_id) is not None
    gw.clock = lambda: now + timedelta(seconds=31)
    await gw.scheduler.recover_orphans()  # the job is still there: nothing doubles
    assert await gw.redis.zcard(queue) == 1

    await gw.redis.delete(job_key_prefix + job_id)
    await gw.redis.zrem(queue, job_id)
    gw.clock = lambda: now + timedelta(seconds=29)
    await gw.scheduler.recover_orphans()
    assert await gw.redis.zscore(queue, job_id) is None  # queued only just now: its job may be on its way
    gw.clock = lambda: now + timedelta(seconds=31)
    await gw.scheduler.recover_orphans()
    assert await gw.redis.zscore(queue, job_id) is not None and await gw.redis.zcard(queue) == 1
