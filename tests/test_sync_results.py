"""Sync results a merchant can trust (issue 15): summaries that add up, failed and cancelled runs that say
why, Sync Now of chosen products, and a Sync Now that meets a running run."""

from __future__ import annotations

from typing import Any

import pytest
from gwtest import Api, connect, wait_run

from gateway.domain import RunKind, RunStatus, SyncErrorCode, Trigger
from gateway.engine import failure_of
from gateway.errors import (
    StoreAuthError,
    StoreHTTPError,
    StorePayloadError,
    StoreRateLimited,
    StoreUnreachable,
)
from gateway.products import product_id
from gateway.runs import Run
from gateway.services import Gateway
from gateway.testing.toy import ToySimulator

RUN = """query($id: ID!) { syncRun(id: $id) { id status trigger kind failure progress { processed }
  summary { added updated unchanged removed failed conflicts errors { externalId code message }
            pendingChangesApplied { count products { externalId outcome } } } } }"""
SYNC_NOW = """mutation($id: ID!, $ids: [String!], $full: Boolean) {
  syncNow(integrationId: $id, productExternalIds: $ids, full: $full) { id status kind reused } }"""
EDIT = "mutation($id: ID!, $title: String) { editProduct(productId: $id, input: {title: $title}) { id } }"
PENDING = "query($id: ID!) { integration(id: $id) { pendingChanges } }"


async def connected(gw: Gateway, api: Api, sim: ToySimulator, **settings: Any) -> str:
    integration_id = await connect(api, sim, **settings)
    run = (await gw.runs.latest(integration_id, 1))[0]
    assert (await wait_run(gw, run.id)).status == "SUCCEEDED"
    return integration_id


async def sync_now(gw: Gateway, api: Api, integration_id: str, **variables: Any) -> dict[str, Any]:
    started = (await api.query(SYNC_NOW, {"id": integration_id, **variables}))["syncNow"]
    await wait_run(gw, started["id"])
    run: dict[str, Any] = (await api.query(RUN, {"id": started["id"]}))["syncRun"]
    return run


async def pending(api: Api, integration_id: str) -> int:
    return int((await api.query(PENDING, {"id": integration_id}))["integration"]["pendingChanges"])


async def title(gw: Gateway, integration_id: str, external_id: str) -> str:
    doc = await gw.db.products.find_one({"_id": product_id(integration_id, external_id)})
    assert doc is not None
    return str(doc["store"]["title"])


# ---- summaries that add up -------------------------------------------------------------------------
async def test_a_sync_now_counts_the_conflicts_of_the_changes_it_applies_and_lists_them(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store, mode="MANUAL")
    await api.query(EDIT, {"id": product_id(integration_id, "2"), "title": "Alana's title"})
    toy_store.update_product("2", name="The store's title")  # held for Sync Now
    toy_store.update_product("3", name="Another store change")
    toy_store.delete_product("4")
    await toy_store.drain_deliveries()
    assert await pending(api, integration_id) == 3

    run = await sync_now(gw, api, integration_id)
    summary = run["summary"]
    conflicts = await gw.db.conflicts.count_documents({"run_id": run["id"]})
    assert conflicts == 1 and summary["conflicts"] == 1  # was 0: the conflict existed, with this run's id
    assert summary["updated"] == 2 and summary["removed"] == 1 and summary["added"] == 0
    assert summary["updated"] == await gw.db.products.count_documents({"updated_run": run["id"]})
    # The walk read 2 and 3 again (changed since the last sync): counted once, as updated, not twice.
    assert summary["unchanged"] == run["progress"]["processed"] - 2
    assert summary["pendingChangesApplied"] == {
        "count": 3,
        "products": [
            {"externalId": "2", "outcome": "UPDATED"},
            {"externalId": "3", "outcome": "UPDATED"},
            {"externalId": "4", "outcome": "REMOVED"},
        ],
    }
    assert await pending(api, integration_id) == 0
    assert await title(gw, integration_id, "2") == "The store's title"


async def test_a_waiting_change_that_changed_nothing_does_not_hide_a_newer_store_change(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store, mode="MANUAL")
    toy_store.notify_again("2")  # a repeated notification: what Alana has already
    await toy_store.drain_deliveries()
    toy_store.deliver_webhooks = False
    toy_store.update_product("2", name="Changed after the notification")  # no notification this time

    run = await sync_now(gw, api, integration_id)
    summary = run["summary"]
    assert summary["pendingChangesApplied"]["products"] == [{"externalId": "2", "outcome": "UNCHANGED"}]
    # Was "updated: 0" (the walk's update hidden behind the waiting change's "unchanged").
    assert summary["updated"] == 1 == await gw.db.products.count_documents({"updated_run": run["id"]})
    assert summary["unchanged"] == run["progress"]["processed"] - 1
    assert await title(gw, integration_id, "2") == "Changed after the notification"


async def test_a_failed_sync_now_counts_the_waiting_changes_it_applied_and_says_why(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store, mode="MANUAL")
    new_id = toy_store.create_product(name="Made while Alana waited")
    await toy_store.drain_deliveries()
    toy_store.faults.set(burst_500=10_000)  # the store goes down before the run reads it
    run = await sync_now(gw, api, integration_id)
    toy_store.faults.reset()

    assert run["status"] == "FAILED"
    added = await gw.db.products.count_documents({"created_run": run["id"]})
    assert added == 1 and run["summary"]["added"] == 1  # was "added 0" against a recount of 1
    assert run["summary"]["pendingChangesApplied"]["products"] == [{"externalId": new_id, "outcome": "ADDED"}]
    assert run["failure"] and "500" in run["failure"]
    assert run["summary"]["errors"] == [{"externalId": None, "code": "STORE_UNREACHABLE", "message": run["failure"]}]
    assert await pending(api, integration_id) == 0  # applied, so no longer waiting
    log = await api.query(
        "query($id: ID) { activityLog(integrationId: $id, first: 1) { edges { node { kind message } } } }",
        {"id": integration_id},
    )
    assert log["activityLog"]["edges"][0]["node"]["kind"] == "SYNC_FAILED"


async def test_a_run_the_store_refuses_says_credentials_rejected(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store)
    toy_store.token = "rotated"
    run = await sync_now(gw, api, integration_id)
    assert run["status"] == "FAILED"
    assert [(e["externalId"], e["code"]) for e in run["summary"]["errors"]] == [(None, "CREDENTIALS_REJECTED")]
    assert run["summary"]["errors"][0]["message"] == run["failure"]


async def test_cancelled_runs_say_so_in_their_summary(gw: Gateway, api: Api, toy_store: ToySimulator) -> None:
    integration = await gw.integrations.connect("acct-1", "toy", "c", toy_store.store_url, toy_store.credentials())
    queued = (await gw.runs.latest(integration.id, 1))[0]
    await api.query("mutation($id: ID!) { cancelSyncRun(runId: $id) { id } }", {"id": queued.id})
    before = (await api.query(RUN, {"id": queued.id}))["syncRun"]
    assert before["status"] == "CANCELLED" and before["failure"]
    assert [e["code"] for e in before["summary"]["errors"]] == ["CANCELLED"]

    # Cancelled while running: it stops at the first page boundary.
    run, _ = await gw.syncs.queue(integration, Trigger.MANUAL, kind=RunKind.FULL)

    async def cancel(started: Run) -> None:
        await gw.runs.request_cancel(started.account_id, started.id)

    ended = await gw.engine.run(run.id, before=[cancel])
    assert ended is not None and ended.status is RunStatus.CANCELLED
    after = (await api.query(RUN, {"id": run.id}))["syncRun"]
    assert after["failure"] and [e["code"] for e in after["summary"]["errors"]] == ["CANCELLED"]
    assert after["summary"]["added"] == 30  # the first page was written before it stopped, and counted
    assert await gw.db.products.count_documents({"created_run": run.id}) == 30


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StoreAuthError("401", status=401), SyncErrorCode.CREDENTIALS_REJECTED),
        (StoreRateLimited("429 after 6 retries", status=429), SyncErrorCode.RATE_LIMITED),
        (StoreUnreachable("connection refused"), SyncErrorCode.STORE_UNREACHABLE),
        (StoreHTTPError("HTTP 503", status=503), SyncErrorCode.STORE_UNREACHABLE),
        (StoreHTTPError("HTTP 404", status=404), SyncErrorCode.STORE_ERROR),
        (StorePayloadError("not JSON"), SyncErrorCode.STORE_ERROR),
        (KeyError("x"), SyncErrorCode.INTERNAL),
    ],
)
def test_each_failure_has_a_code_a_frontend_can_map(error: Exception, code: SyncErrorCode) -> None:
    _, failure = failure_of(error)
    assert failure.code == code.value and failure.external_id is None and failure.message


# ---- chosen products ----------------------------------------------------------------------------------
async def test_a_sync_of_chosen_products_touches_and_counts_only_them(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store, mode="MANUAL")
    for external_id in ("1", "2", "3"):
        toy_store.update_product(external_id, name=f"Changed {external_id}")
    await toy_store.drain_deliveries()
    assert await pending(api, integration_id) == 3
    toy_store.faults.paths.clear()

    run = await sync_now(gw, api, integration_id, ids=["1", " 2 ", "2", "no-such-product"])
    assert run["kind"] == "PRODUCTS" and run["status"] == "SUCCEEDED"
    summary = run["summary"]
    # Was "updated: 2" with product 3's waiting change applied too, and the unknown id dropped silently.
    assert (summary["added"], summary["updated"], summary["unchanged"], summary["removed"]) == (0, 2, 0, 0)
    assert summary["updated"] == await gw.db.products.count_documents({"updated_run": run["id"]})
    assert summary["errors"] == [
        {
            "externalId": "no-such-product",
            "code": "NOT_FOUND",
            "message": "The store has no product with id 'no-such-product'",
        }
    ]
    assert summary["failed"] == 0
    assert {p["externalId"] for p in summary["pendingChangesApplied"]["products"]} == {"1", "2"}
    assert all("ids=1%2C2%2Cno-such-product" in p or "ids=1,2,no-such-product" in p for p in toy_store.faults.paths)
    assert await title(gw, integration_id, "3") != "Changed 3"  # still waiting
    assert await pending(api, integration_id) == 1

    whole = await sync_now(gw, api, integration_id)
    assert await title(gw, integration_id, "3") == "Changed 3"
    assert whole["summary"]["pendingChangesApplied"]["products"] == [{"externalId": "3", "outcome": "UPDATED"}]
    assert await pending(api, integration_id) == 0


async def test_a_chosen_product_gone_from_the_store_is_removed_and_one_never_there_is_not_found(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store)
    toy_store.deliver_webhooks = False
    toy_store.delete_product("9")
    run = await sync_now(gw, api, integration_id, ids=["9", "10"])
    assert run["summary"]["removed"] == 1 and run["summary"]["unchanged"] == 1 and run["summary"]["errors"] == []
    again = await sync_now(gw, api, integration_id, ids=["9"])
    assert again["summary"]["removed"] == 0  # removed before: not counted again, and not in the store
    assert [e["code"] for e in again["summary"]["errors"]] == ["NOT_FOUND"]


async def test_an_empty_list_of_products_is_a_mistake_not_the_whole_store(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    integration = await gw.integrations.connect("acct-1", "toy", "e", toy_store.store_url, toy_store.credentials())
    runs_before = await gw.db.runs.count_documents({})
    for ids in ([], ["  "]):
        body = await api.raw(SYNC_NOW, {"id": integration.id, "ids": ids})
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        assert "productExternalIds" in body["errors"][0]["message"]
    assert await gw.db.runs.count_documents({}) == runs_before


async def test_a_sync_now_during_a_run_returns_that_run_and_says_so(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    integration = await gw.integrations.connect("acct-1", "toy", "r", toy_store.store_url, toy_store.credentials())
    first = (await gw.runs.latest(integration.id, 1))[0]  # the first sync, queued (no worker here)
    asked = (await api.query(SYNC_NOW, {"id": integration.id, "ids": ["1"]}))["syncNow"]
    assert asked["id"] == first.id and asked["reused"] is True and asked["kind"] == "FULL"
    await gw.engine.run(first.id)
    fresh = (await api.query(SYNC_NOW, {"id": integration.id, "ids": ["1"]}))["syncNow"]
    assert fresh["id"] != first.id and fresh["reused"] is False and fresh["kind"] == "PRODUCTS"
    history = await api.query(
        "query($id: ID!) { syncRuns(integrationId: $id) { edges { node { id reused } } } }", {"id": integration.id}
    )
    assert all(edge["node"]["reused"] is False for edge in history["syncRuns"]["edges"])


async def test_a_sync_now_whose_first_attempt_died_after_applying_the_waiting_changes_counts_them(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    """The first attempt applied the held changes and died before saving their counts: the retry finds
    nothing waiting any more, so the products that attempt wrote are counted by the retry's walk."""
    integration_id = await connect(api, toy_store, mode="MANUAL")  # no worker: attempts run here
    first = (await gw.runs.latest(integration_id, 1))[0]
    assert (await gw.engine.run(first.id)) is not None
    new_id = toy_store.create_product(name="Made while nobody synced")  # held for Sync Now
    await toy_store.drain_deliveries()
    assert await pending(api, integration_id) == 1
    queued = (await api.query(SYNC_NOW, {"id": integration_id}))["syncNow"]

    dead = await gw.runs.acquire_lease(queued["id"], "a-worker-that-dies", -1)  # its lease is over at once
    assert dead is not None
    assert await gw.webhooks.apply_held(dead) is not None  # applied, then the worker died: nothing saved

    done = await gw.engine.run(queued["id"], before=[gw.webhooks.apply_held])
    assert done is not None and done.status is RunStatus.SUCCEEDED and done.attempts == 2, done
    assert done.counts.added == 1, done.counts  # was 0: the retry skipped what the dead attempt wrote
    assert await gw.db.products.count_documents({"created_run": done.id}) == 1
    assert await gw.db.products.count_documents({"_id": product_id(integration_id, new_id)}) == 1
