"""Webhook ordering (issue 11 finding 7): a removal is a store version, and nothing older undoes it.

A replayed or late WooCommerce `product.updated` (a new delivery id, a valid signature) used to bring a
deleted product back, because removing it did not advance its store version; a body older than the
stored version must change nothing either. Deliveries are applied by the test itself (manual mode:
they wait for it), so nothing depends on timing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from gwtest import Api

from gateway.domain import RunStatus, SyncMode
from gateway.plugins import load_plugins
from gateway.products import product_id
from gateway.services import Gateway
from gateway.simkit import Simulator
from gateway.testing.toy import ToySimulator


@pytest_asyncio.fixture
async def woo() -> AsyncIterator[Any]:
    cls = load_plugins(["woocommerce"]).adapter("woocommerce").simulator()
    assert cls is not None
    sim = cls(products=6, seed=4, examples=False)
    await sim.start()
    sim.deliver_webhooks = False  # the test sends each delivery itself
    yield sim
    await sim.stop()


async def connected(gw: Gateway, sim: Simulator, platform: str) -> str:
    integration = await gw.integrations.connect(
        "acct-1", platform, "ordering", sim.store_url, sim.credentials(), mode=SyncMode.MANUAL
    )
    first = await gw.engine.run((await gw.runs.latest(integration.id, 1))[0].id)
    assert first is not None and first.status is RunStatus.SUCCEEDED
    return integration.id


async def deliver_woo(api: Api, sim: Any, integration_id: str, topic: str, body: bytes) -> None:
    """A genuine-looking delivery: signed with the hook's secret, a delivery id never used before."""
    hook = next(iter(sim.hooks.values()))
    signature = base64.b64encode(hmac.new(hook.secret.encode(), body, hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": f"{sim.store_url}/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-ID": str(hook.id),
        "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
        "X-WC-Webhook-Signature": signature,
    }
    async with api.session.post(f"{api.url}/webhooks/woocommerce/{integration_id}", data=body, headers=headers) as r:
        assert r.status == 200, await r.text()


def simple(sim: Any) -> list[str]:
    """Simple products: their deliveries carry the product (a variable one's are read back instead)."""
    return [str(pid) for pid, p in sorted(sim.products.items()) if p.get("type") == "simple"]


async def stored(gw: Gateway, integration_id: str, external_id: str) -> dict[str, Any]:
    doc = await gw.db.products.find_one({"_id": product_id(integration_id, external_id)})
    assert doc is not None
    return doc


async def test_a_replayed_woocommerce_update_does_not_bring_a_deleted_product_back(
    gw: Gateway, api: Api, woo: Any
) -> None:
    integration_id = await connected(gw, woo, "woocommerce")
    doomed = simple(woo)[1]
    woo.update_product(doomed, name="Last edit before the deletion")
    update = woo._product_bytes(int(doomed))  # the body WooCommerce delivered for that edit
    await deliver_woo(api, woo, integration_id, "product.updated", update)
    await gw.webhooks.apply_pending(integration_id)
    assert (await stored(gw, integration_id, doomed))["store"]["title"] == "Last edit before the deletion"

    woo.delete_product(doomed)
    await deliver_woo(api, woo, integration_id, "product.deleted", json.dumps({"id": int(doomed)}).encode())
    await gw.webhooks.apply_pending(integration_id)
    removed = await stored(gw, integration_id, doomed)
    assert removed["removed"] is True

    # The same body again under a new delivery id: a replay, or the platform's late retry of it.
    await deliver_woo(api, woo, integration_id, "product.updated", update)
    await deliver_woo(api, woo, integration_id, "product.created", update)
    assert await gw.webhooks.apply_pending(integration_id) == 0
    after = await stored(gw, integration_id, doomed)
    assert after["removed"] is True and after["version"] == removed["version"]


async def test_a_woocommerce_body_older_than_the_stored_version_changes_nothing(
    gw: Gateway, api: Api, woo: Any
) -> None:
    integration_id = await connected(gw, woo, "woocommerce")
    edited = simple(woo)[0]
    woo.update_product(edited, name="First edit")
    first = woo._product_bytes(int(edited))
    woo.update_product(edited, name="Second edit")
    second = woo._product_bytes(int(edited))
    await deliver_woo(api, woo, integration_id, "product.updated", second)
    await gw.webhooks.apply_pending(integration_id)
    before = await stored(gw, integration_id, edited)
    assert before["store"]["title"] == "Second edit"

    await deliver_woo(api, woo, integration_id, "product.updated", first)  # late: older than what is stored
    assert await gw.webhooks.apply_pending(integration_id) == 0
    after = await stored(gw, integration_id, edited)
    assert after["store"]["title"] == "Second edit" and after["version"] == before["version"]


def toy_delivery(sim: ToySimulator, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    secret = next(iter(sim.hooks.values())).secret
    return body, {
        "X-Toy-Delivery": uuid.uuid4().hex,
        "X-Toy-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


async def test_a_deletion_delivered_in_a_body_is_not_undone_by_an_older_one(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, toy_store, "toy")
    toy_store.deliver_webhooks = False
    before = dict(toy_store.catalog["2"])
    toy_store.delete_product("2")
    for payload in ({"event": "delete", "product": {"id": "2"}}, {"event": "upsert", "product": before}):
        body, headers = toy_delivery(toy_store, payload)
        async with api.session.post(f"{api.url}/webhooks/toy/{integration_id}", data=body, headers=headers) as r:
            assert r.status == 200
        await gw.webhooks.apply_pending(integration_id)
    assert (await stored(gw, integration_id, "2"))["removed"] is True
