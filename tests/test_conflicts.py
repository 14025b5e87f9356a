"""Alana's edits and the store-wins rule: overlays, conflicts, re-apply, races, and a property test."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from gwtest import Api, connect, wait_run, wait_run_recorded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.products import ProductStore, product_id
from gateway.services import Gateway
from gateway.storage.mongo import connect as mongo_connect
from gateway.storage.mongo import ensure_indexes
from gateway.testing.toy import ToyAdapter, ToySimulator

PRODUCT = """query($id: ID!) { product(id: $id) { title tags storeVersion alanaEdits { field value } } }"""
EDIT = """mutation($id: ID!, $input: ProductEditInput!) { editProduct(productId: $id, input: $input) {
  title tags alanaEdits { field value } } }"""
CONFLICTS = """query($status: ConflictStatus) { conflicts(status: $status) { edges { node {
  id field storeValue alanaValue status runId productId } } } }"""
SYNC = "mutation($id: ID!) { syncNow(integrationId: $id, full: true) { id } }"


async def setup(gw: Gateway, api: Api, sim: ToySimulator) -> str:
    sim.deliver_webhooks = False  # store changes arrive through the syncs these tests drive
    integration_id = await connect(api, sim)
    await wait_run_recorded(gw, (await gw.runs.latest(integration_id, 1))[0].id)
    return integration_id


async def sync(gw: Gateway, api: Api, integration_id: str) -> dict[str, Any]:
    data = await api.query(SYNC, {"id": integration_id})
    return await wait_run(gw, data["syncNow"]["id"])


async def test_edit_overlays_the_store_version(gw: Gateway, api: Api, worker: object, toy_store: ToySimulator) -> None:
    integration_id = await setup(gw, api, toy_store)
    pid = product_id(integration_id, "1")
    store_title = toy_store.catalog["1"]["name"]
    data = await api.query(EDIT, {"id": pid, "input": {"title": "Alana's better title", "tags": ["seo"]}})
    assert data["editProduct"]["title"] == "Alana's better title"
    assert data["editProduct"]["tags"] == ["seo"]
    product = (await api.query(PRODUCT, {"id": pid}))["product"]
    assert product["storeVersion"]["title"] == store_title
    assert {e["field"] for e in product["alanaEdits"]} == {"title", "tags"}
    body = await api.raw(EDIT, {"id": pid, "input": {}})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body = await api.raw(EDIT, {"id": pid, "input": {"title": "x"}}, account="acct-2")
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    log = await api.query("{ activityLog(first: 1) { edges { node { kind productId } } } }")
    assert log["activityLog"]["edges"][0]["node"] == {"kind": "PRODUCT_EDITED", "productId": pid}


async def test_store_change_to_an_edited_field_wins_and_can_be_reapplied(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await setup(gw, api, toy_store)
    pid = product_id(integration_id, "2")
    await api.query(EDIT, {"id": pid, "input": {"title": "Alana title", "tags": ["alana"]}})

    toy_store.update_product("2", name="Store title")  # title only: tags untouched in the store
    run = await sync(gw, api, integration_id)
    assert run.counts.conflicts == 1
    product = (await api.query(PRODUCT, {"id": pid}))["product"]
    assert product["title"] == "Store title"
    assert product["tags"] == ["alana"]  # the tags overlay stays: the store did not touch tags
    conflicts = (await api.query(CONFLICTS, {"status": "STORE_WON"}))["conflicts"]["edges"]
    assert len(conflicts) == 1
    conflict = conflicts[0]["node"]
    assert conflict["field"] == "title" and conflict["storeValue"] == "Store title"
    assert conflict["alanaValue"] == "Alana title" and conflict["runId"] == run.id
    overlay = next(o for o in (await gw.db.products.find_one({"_id": pid}))["overlays"] if o["field"] == "title")
    assert overlay["active"] is False and overlay["conflict_id"] == conflict["id"]  # kept, linked

    again = await sync(gw, api, integration_id)
    assert again.counts.conflicts == 0  # an unchanged store raises nothing new

    reapplied = await api.query(
        "mutation($id: ID!) { reapplyAlanaChange(conflictId: $id) { status } }", {"id": conflict["id"]}
    )
    assert reapplied["reapplyAlanaChange"]["status"] == "REAPPLIED"
    twice = await api.query(
        "mutation($id: ID!) { reapplyAlanaChange(conflictId: $id) { status } }", {"id": conflict["id"]}
    )
    assert twice["reapplyAlanaChange"]["status"] == "REAPPLIED"
    product = (await api.query(PRODUCT, {"id": pid}))["product"]
    assert product["title"] == "Alana title"
    assert [e["field"] for e in product["alanaEdits"]].count("title") == 1
    kinds = [
        e["node"]["kind"]
        for e in (await api.query("{ activityLog(first: 10) { edges { node { kind } } } }"))["activityLog"]["edges"]
    ]
    assert kinds.count("CHANGE_REAPPLIED") == 1 and "CONFLICT" in kinds


async def test_edit_racing_a_run_on_the_same_product_loses_nothing(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await setup(gw, api, toy_store)
    pid = product_id(integration_id, "3")
    toy_store.update_product("3", tags=["store-new"])  # the store changes tags, not the title
    original_existing = gw.products.existing
    injected = asyncio.Event()

    async def existing_then_edit(integration: str, external_ids: Any) -> dict[str, Any]:
        found = await original_existing(integration, external_ids)
        if not injected.is_set() and "3" in external_ids:
            injected.set()  # the edit lands between the run's read and its write
            await api.query(EDIT, {"id": pid, "input": {"title": "Edited during the run"}})
        return found

    gw.products.existing = existing_then_edit  # type: ignore[method-assign]
    try:
        run = await sync(gw, api, integration_id)
    finally:
        gw.products.existing = original_existing  # type: ignore[method-assign]
    assert injected.is_set() and run.counts.conflicts == 0
    product = (await api.query(PRODUCT, {"id": pid}))["product"]
    assert product["title"] == "Edited during the run"  # the edit survived the run's write
    assert product["storeVersion"]["tags"] == ["store-new"]  # and so did the store's change


async def test_a_late_run_never_overwrites_a_newer_webhook_version(gw: Gateway, toy_store: ToySimulator) -> None:
    adapter = ToyAdapter()
    store = gw.products
    now = datetime(2026, 3, 1, tzinfo=UTC)
    native = {"id": "9", "name": "v1", "price": "1.00", "updated_at": now.isoformat()}
    newer = {**native, "name": "v2", "updated_at": (now + timedelta(seconds=5)).isoformat()}
    from gateway.adapter import MappingContext

    v1, v2 = (adapter.map_product(n, MappingContext()) for n in (native, newer))
    await store.write_one("acct", "int", v2, v2.content_hash(), None, skip_older=True)
    result = await store.write_one("acct", "int", v1, v1.content_hash(), "run", skip_older=True)
    assert result.outcome.value == "STALE"
    doc = await store.get("acct", product_id("int", "9"))
    assert doc is not None and doc.store["title"] == "v2"


# ---- property: random interleavings of store changes and Alana edits --------------------------
FIELDS = ("title", "description")
operation = st.one_of(
    st.tuples(st.just("store"), st.sampled_from(FIELDS), st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("edit"), st.sampled_from(FIELDS), st.sampled_from(["x", "y", "a"])),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operation, min_size=1, max_size=12))
def test_random_interleavings_keep_the_store_winning_and_lose_nothing(
    mongodb_url: str, ops: list[tuple[str, str, str]]
) -> None:
    asyncio.run(_interleave(mongodb_url, ops))


async def _interleave(url: str, ops: list[tuple[str, str, str]]) -> None:
    from gateway.adapter import MappingContext

    db = mongo_connect(url, f"prop_{uuid.uuid4().hex[:10]}")
    try:
        await ensure_indexes(db)
        store = ProductStore(db)
        adapter = ToyAdapter()
        clock = datetime(2026, 1, 1, tzinfo=UTC)
        state = {"title": "t0", "description": "d0"}
        store_changed_since_edit: dict[str, bool] = {}
        conflicts = 0

        async def push() -> None:
            nonlocal clock, conflicts
            clock += timedelta(seconds=1)
            native = {
                "id": "1",
                "name": state["title"],
                "description": state["description"],
                "price": "1.00",
                "updated_at": clock.isoformat(),
            }
            product = adapter.map_product(native, MappingContext())
            result = await store.write_one("acct", "int", product, product.content_hash(), None, skip_older=True)
            conflicts += len(result.conflicts)

        await push()
        pid = product_id("int", "1")
        for kind, field, value in ops:
            if kind == "store":
                changed = state[field] != value
                state[field] = value
                if changed:
                    store_changed_since_edit[field] = True
                await push()
            else:
                await store.add_overlays("acct", pid, {field: value})
                store_changed_since_edit[field] = False
        doc = await store.get("acct", pid)
        assert doc is not None
        # No store version is lost: the stored store version is the latest one.
        assert doc.store["title"] == state["title"] and doc.store["description"] == state["description"]
        for overlay in doc.overlays:
            # Every overlay is active, or linked to the conflict that deactivated it (or was made
            # moot because the store adopted Alana's value).
            assert overlay.active or overlay.conflict_id or overlay.deactivated_at
        for field in FIELDS:
            active = [o for o in doc.overlays if o.field == field and o.active]
            assert len(active) <= 1
            if store_changed_since_edit.get(field) and active:
                raise AssertionError(f"{field}: the store changed after the edit but the overlay is still active")
            if active:
                assert active[0].base == doc.store[field]
        linked = sum(1 for o in doc.overlays if o.conflict_id)
        assert linked == conflicts
    finally:
        await db.client.drop_database(db.db.name)
        await db.close()
