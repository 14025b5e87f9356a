"""Webhook work in the history (issue 15): the changes applied from store notifications show up as one
WEBHOOK digest run per integration per hour, with one activity entry that follows it, so a storm of
notifications keeps the history readable and a merchant can see what arrived today."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from gwtest import Api, connect, wait_run

from gateway.constants import account_channel
from gateway.domain import utcnow
from gateway.events import Event, ProductChanged
from gateway.products import product_id
from gateway.runs import digest_id
from gateway.services import Gateway
from gateway.testing.toy import ToySimulator

HISTORY = """query($id: ID!) {
  syncRuns(integrationId: $id) { edges { node { id trigger kind status progress { processed message }
    summary { added updated unchanged removed failed conflicts } } } }
  integration(id: $id) { syncRuns(first: 5) { id trigger kind } health { status lastRun { id trigger } } }
  activityLog(integrationId: $id, first: 20) { edges { node { kind message runId } } }
}"""


async def connected(gw: Gateway, api: Api, sim: ToySimulator) -> str:
    integration_id = await connect(api, sim)
    run = (await gw.runs.latest(integration_id, 1))[0]
    assert (await wait_run(gw, run.id)).status == "SUCCEEDED"
    return integration_id


async def applied(queue: asyncio.Queue[Event], changes: int) -> None:
    """Wait until the store's notifications for `changes` products were applied (their PRODUCT_CHANGED)."""
    seen = 0
    while seen < changes:
        event = await asyncio.wait_for(queue.get(), 30)
        if isinstance(event, ProductChanged):
            seen += 1


async def history(api: Api, integration_id: str) -> dict[str, Any]:
    data: dict[str, Any] = await api.query(HISTORY, {"id": integration_id})
    return data


async def test_store_notifications_show_as_an_hourly_digest_in_the_history_and_the_log(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store)
    initial = (await gw.runs.latest(integration_id, 1))[0]
    await api.query(
        'mutation($id: ID!) { editProduct(productId: $id, input: {title: "Alana"}) { id } }',
        {"id": product_id(integration_id, "5")},
    )
    async with gw.hub.listen(account_channel("acct-1")) as queue:
        for external_id in ("1", "2", "5"):
            toy_store.update_product(external_id)
        toy_store.create_product(name="New in the store")
        toy_store.delete_product("7")
        await applied(queue, 5)

    data = await history(api, integration_id)
    runs = [edge["node"] for edge in data["syncRuns"]["edges"]]
    digests = [r for r in runs if r["trigger"] == "WEBHOOK"]
    assert len(digests) == 1, runs
    digest = digests[0]
    assert digest["kind"] == "DIGEST" and digest["status"] == "SUCCEEDED"
    assert digest["summary"] == {
        "added": 1,
        "updated": 3,
        "unchanged": 0,
        "removed": 1,
        "failed": 0,
        "conflicts": 1,
    }
    assert digest["progress"] == {"processed": 5, "message": "5 changes applied from store notifications"}
    conflict = await gw.db.conflicts.find_one({"integration_id": integration_id})
    assert conflict is not None and conflict["run_id"] == digest["id"]
    # The digest is history, not the light's "last run".
    assert data["integration"]["health"]["lastRun"]["id"] == initial.id
    assert digest["id"] in [r["id"] for r in data["integration"]["syncRuns"]]
    entries = [e["node"] for e in data["activityLog"]["edges"] if e["node"]["kind"] == "WEBHOOK_CHANGES_APPLIED"]
    assert entries == [
        {
            "kind": "WEBHOOK_CHANGES_APPLIED",
            "message": "5 changes applied from store notifications: 1 added, 3 updated, 1 removed, 1 conflict",
            "runId": digest["id"],
        }
    ]

    # More notifications in the same hour: the same digest and the same log entry grow.
    async with gw.hub.listen(account_channel("acct-1")) as queue:
        toy_store.update_product("2")
        toy_store.update_product("3")
        await applied(queue, 2)
    data = await history(api, integration_id)
    digests = [e["node"] for e in data["syncRuns"]["edges"] if e["node"]["trigger"] == "WEBHOOK"]
    assert [d["id"] for d in digests] == [digest["id"]]
    assert digests[0]["progress"]["processed"] == 7 and digests[0]["summary"]["updated"] == 5
    messages = [
        e["node"]["message"] for e in data["activityLog"]["edges"] if e["node"]["kind"] == "WEBHOOK_CHANGES_APPLIED"
    ]
    assert messages == ["7 changes applied from store notifications: 1 added, 5 updated, 1 removed, 1 conflict"]


async def test_each_hour_has_its_own_digest(gw: Gateway, api: Api, worker: object, toy_store: ToySimulator) -> None:
    integration_id = await connected(gw, api, toy_store)
    now = utcnow().replace(minute=59, second=0)
    gw.clock = lambda: now
    async with gw.hub.listen(account_channel("acct-1")) as queue:
        toy_store.update_product("1")
        await applied(queue, 1)
    gw.clock = lambda: now + timedelta(minutes=2)
    async with gw.hub.listen(account_channel("acct-1")) as queue:
        toy_store.update_product("2")
        await applied(queue, 1)
    data = await history(api, integration_id)
    digests = [e["node"]["id"] for e in data["syncRuns"]["edges"] if e["node"]["trigger"] == "WEBHOOK"]
    assert digests == [digest_id(integration_id, now + timedelta(minutes=2)), digest_id(integration_id, now)]
    logged = [
        e["node"]["runId"] for e in data["activityLog"]["edges"] if e["node"]["kind"] == "WEBHOOK_CHANGES_APPLIED"
    ]
    assert logged == digests
