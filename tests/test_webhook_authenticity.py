"""Webhook authenticity through the gateway (issue 11): BigCommerce deletions are confirmed with the store
(finding 8); Shopify deliveries are deduped on what a replayer cannot change, must be recent, and must
name the integration's shop (finding 9)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
from gwtest import CONNECT, Api, connect, wait_run

from gateway.plugins import load_plugins
from gateway.products import product_id
from gateway.services import Gateway
from gateway.simkit import Simulator


async def _simulator(platform: str, products: int) -> Simulator:
    cls = load_plugins([platform]).adapter(platform).simulator()
    assert cls is not None
    sim = cls(products=products, seed=5)
    await sim.start()
    return sim


@pytest_asyncio.fixture
async def bigcommerce() -> AsyncIterator[Simulator]:
    sim = await _simulator("bigcommerce", 20)
    yield sim
    await sim.stop()


@pytest_asyncio.fixture
async def shopify() -> AsyncIterator[Simulator]:
    sim = await _simulator("shopify", 5)
    yield sim
    await sim.stop()


async def _removed(gw: Gateway, integration_id: str, external_id: str) -> bool:
    doc = await gw.db.products.find_one({"_id": product_id(integration_id, external_id)})
    assert doc is not None
    return bool(doc.get("removed"))


async def test_a_forged_bigcommerce_deletion_leaves_a_live_product_alone(
    gw: Gateway, api: Api, worker: object, bigcommerce: Simulator
) -> None:
    sim = bigcommerce
    # Manual mode: deliveries are recorded, and this test applies them itself (no timing involved).
    integration_id = await connect(api, sim, platform="bigcommerce", mode="MANUAL")
    run = await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id, 120)
    assert run.status == "SUCCEEDED"
    live, doomed = sim.product_ids()[3], sim.product_ids()[4]
    hook = next(iter(sim.hooks.values()))
    forged = {
        "scope": "store/product/deleted",
        "store_id": "1",
        "data": {"type": "product", "id": int(live)},
        "hash": "f" * 40,
        "created_at": int(datetime.now(UTC).timestamp()),
        "producer": "stores/x",
    }
    # Whoever holds the secret header can send any body: it is accepted, but removes nothing.
    async with api.session.post(
        f"{api.url}/webhooks/bigcommerce/{integration_id}", json=forged, headers=hook.headers
    ) as response:
        assert response.status == 200
    await gw.webhooks.apply_pending(integration_id)
    assert not await _removed(gw, integration_id, live)

    sim.delete_product(doomed)  # a genuine deletion, delivered by the store
    await sim.drain_deliveries()
    await gw.webhooks.apply_pending(integration_id)
    assert await _removed(gw, integration_id, doomed)
    assert not await _removed(gw, integration_id, live)


def _shopify_delivery(
    body: bytes, secret: str, *, domain: str, triggered: str | None, webhook_id: str
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "products/update",
        "X-Shopify-Hmac-Sha256": base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode(),
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-API-Version": "2026-01",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": webhook_id + "-event",
    }
    if triggered is not None:
        headers["X-Shopify-Triggered-At"] = triggered
    return headers


async def test_shopify_replays_and_other_shops_deliveries_are_refused(
    gw: Gateway, api: Api, shopify: Simulator
) -> None:
    sim = shopify
    port = sim.store_url.rsplit(":", 1)[1]
    # Reached by name, so the shop domain can be compared (the simulator's IP URL cannot be).
    data = await api.query(
        CONNECT,
        {
            "input": {
                "platform": "shopify",
                "name": "Shop A",
                "storeUrl": f"http://localhost:{port}",
                "credentials": sim.credentials(),
                "settings": {"mode": "MANUAL"},
            }
        },
    )
    integration_id = data["connectIntegration"]["id"]
    secret = sim.credentials()["client_secret"]
    url = f"{api.url}/webhooks/shopify/{integration_id}"
    now = datetime.now(UTC)

    def body(n: int) -> bytes:
        return json.dumps({"id": int(sim.product_ids()[0]), "title": f"t{n}", "updated_at": now.isoformat()}).encode()

    async def post(data: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async with api.session.post(url, data=data, headers=headers) as response:
            return response.status, (await response.json())["status"]

    fresh = now.isoformat()
    first = _shopify_delivery(body(1), secret, domain="localhost", triggered=fresh, webhook_id="w1")
    assert (await post(body(1), first))[0] == 200
    assert await gw.db.deliveries.count_documents({"integration_id": integration_id}) == 1
    # The captured delivery with new ids: a duplicate, not a second change.
    replay = _shopify_delivery(body(1), secret, domain="localhost", triggered=fresh, webhook_id="w2")
    assert await post(body(1), replay) == (200, "duplicate delivery")
    refused = [
        _shopify_delivery(body(2), secret, domain="shop-b.myshopify.com", triggered=fresh, webhook_id="w3"),
        _shopify_delivery(body(3), secret, domain="localhost", triggered=None, webhook_id="w4"),
        _shopify_delivery(body(4), secret, domain="localhost", triggered="not a time", webhook_id="w5"),
        _shopify_delivery(
            body(5), secret, domain="localhost", triggered=(now + timedelta(hours=2)).isoformat(), webhook_id="w6"
        ),
        _shopify_delivery(
            body(6), secret, domain="localhost", triggered=(now - timedelta(hours=7)).isoformat(), webhook_id="w7"
        ),
    ]
    for n, headers in enumerate(refused, start=2):
        status, _ = await post(body(n), headers)
        assert status == 401, headers
    assert await gw.db.deliveries.count_documents({"integration_id": integration_id}) == 1
