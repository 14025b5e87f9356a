"""Every built-in platform end to end on real servers: full and incremental syncs, real-time webhooks,
and deliveries that must be refused (forged, truncated, replayed, missing the registered secret)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from gwtest import Api, connect, wait_run

from gateway.constants import account_channel
from gateway.events import ProductChanged
from gateway.plugins import load_plugins
from gateway.services import Gateway
from gateway.simkit import Simulator

SYNC_NOW = "mutation($id: ID!, $full: Boolean) { syncNow(integrationId: $id, full: $full) { id } }"
PLATFORMS = ["shopify", "woocommerce", "bigcommerce"]


def make_simulator(platform: str, products: int) -> Simulator:
    cls = load_plugins([platform]).adapter(platform).simulator()
    assert cls is not None
    options: dict[str, Any] = {"examples": False} if platform == "woocommerce" else {}
    return cls(products=products, seed=21, **options)


@pytest_asyncio.fixture(params=PLATFORMS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    sim = make_simulator(request.param, 1000)
    await sim.start()
    yield sim
    await sim.stop()


async def first_sync(gw: Gateway, api: Api, sim: Simulator) -> tuple[str, dict[str, Any]]:
    integration_id = await connect(api, sim, platform=sim.platform)
    run = await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id, 180)
    assert run.status == "SUCCEEDED", run
    return integration_id, run


async def test_full_then_incremental(gw: Gateway, api: Api, worker: object, store: Simulator) -> None:
    integration_id, run = await first_sync(gw, api, store)
    total = len(store.product_ids())
    assert run.counts.added == total and run.counts.failed == 0
    if store.platform == "shopify":
        widest = await gw.db.products.aggregate(
            [{"$project": {"n": {"$size": "$store.variants"}}}, {"$sort": {"n": -1}}, {"$limit": 1}]
        )
        assert [row["n"] async for row in widest] == [150]  # a product with 150 variants arrives whole
    if store.platform == "bigcommerce":
        named = await gw.db.products.find_one({"store.categories.0": {"$exists": True}, "store.vendor": {"$ne": None}})
        assert named is not None
        assert all(isinstance(c, str) and not c.isdigit() for c in named["store"]["categories"])

    store.deliver_webhooks = False  # these changes must be found by the incremental run
    edited = store.product_ids()[40:50]
    before = {e: (await gw.db.products.find_one({"external_id": e}))["hash"] for e in edited}
    for external_id in edited:
        store.update_product(external_id)
    run = await wait_run(gw, (await api.query(SYNC_NOW, {"id": integration_id}))["syncNow"]["id"], 120)
    assert run.kind == "INCREMENTAL" and run.status == "SUCCEEDED"
    assert run.counts.updated == 10 and run.counts.added == 0
    after = {e: (await gw.db.products.find_one({"external_id": e}))["hash"] for e in edited}
    assert all(before[e] != after[e] for e in edited)


async def test_store_changes_arrive_in_real_time(gw: Gateway, api: Api, worker: object) -> None:
    for platform in PLATFORMS:
        sim = make_simulator(platform, 60)
        await sim.start()
        try:
            integration_id, _ = await first_sync(gw, api, sim)
            target = sim.product_ids()[5]
            pid = f"{integration_id}:{target}"
            before = await gw.db.products.find_one({"_id": pid})
            async with gw.hub.listen(account_channel("acct-1")) as queue:
                sim.update_product(target)
                while True:
                    event = await asyncio.wait_for(queue.get(), 30)
                    if isinstance(event, ProductChanged) and event.product_id == pid:
                        break
            after = await gw.db.products.find_one({"_id": pid})
            assert before is not None and after is not None
            assert after["hash"] != before["hash"], platform
            assert await gw.db.deliveries.count_documents({"integration_id": integration_id}) >= 1
        finally:
            await sim.stop()


def _shopify_headers(body: bytes, secret: str, webhook_id: str, triggered: datetime) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "X-Shopify-Hmac-Sha256": digest,
        "X-Shopify-Topic": "products/update",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Shop-Domain": "sim.myshopify.com",
        "X-Shopify-API-Version": "2026-01",
        "X-Shopify-Triggered-At": triggered.isoformat(),
        "Content-Type": "application/json",
    }


async def test_shopify_forged_truncated_and_replayed_deliveries_are_refused(
    gw: Gateway, api: Api, worker: object
) -> None:
    sim = make_simulator("shopify", 20)
    await sim.start()
    try:
        integration_id, _ = await first_sync(gw, api, sim)
        secret = sim.credentials()["client_secret"]
        product = {"id": int(sim.product_ids()[0]), "title": "x", "updated_at": "2030-01-01T00:00:00Z"}
        body = json.dumps(product).encode()
        now = datetime.now(UTC)
        url = f"{api.url}/webhooks/shopify/{integration_id}"
        cases = [
            (body, _shopify_headers(body, "not-the-secret", "w1", now)),  # forged
            (body[:-5], _shopify_headers(body, secret, "w2", now)),  # truncated in transit
            (body, _shopify_headers(body, secret, "w3", now - timedelta(days=5))),  # replayed days later
        ]
        for data, headers in cases:
            async with api.session.post(url, data=data, headers=headers) as response:
                assert response.status == 401
        assert await gw.db.deliveries.count_documents({"integration_id": integration_id}) == 0
        async with api.session.post(url, data=body, headers=_shopify_headers(body, secret, "w4", now)) as response:
            assert response.status == 200  # the genuine one is accepted
    finally:
        await sim.stop()


async def test_bigcommerce_delivery_without_the_registered_secret_is_refused(gw: Gateway, api: Api) -> None:
    sim = make_simulator("bigcommerce", 20)
    await sim.start()
    try:
        integration_id = await connect(api, sim, platform="bigcommerce")
        hook = next(iter(sim.hooks.values()))
        payload = {
            "scope": "store/product/updated",
            "store_id": "1",
            "data": {"type": "product", "id": 1},
            "hash": "abc",
            "created_at": int(datetime.now(UTC).timestamp()),
            "producer": "stores/x",
        }
        url = f"{api.url}/webhooks/bigcommerce/{integration_id}"
        for headers in ({}, {name: "wrong" for name in hook.headers}):
            async with api.session.post(url, json=payload, headers=headers) as response:
                assert response.status == 401
        assert await gw.db.deliveries.count_documents({"integration_id": integration_id}) == 0
        async with api.session.post(url, json=payload, headers=hook.headers) as response:
            assert response.status == 200
    finally:
        await sim.stop()
