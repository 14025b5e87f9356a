"""The app's lifecycle on the platform and credentials that stop working, on real servers: uninstalls turn
the light RED with RECONNECT and keep the products; revoked credentials stop scheduled runs and webhook
applies from hammering the store; Shopify's compliance webhooks (401 on a bad HMAC, data requests
acknowledged, shop/redact erasing the shop in every account); BigCommerce's remove_user."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from alana_shopify.webhooks import sign
from connectkit import (
    RECONNECT,
    Stores,
    app_settings,
    approve,
    connect_through,
    first_run,
    health,
    kinds,
    query_of,
    register_apps,
    return_url,
    start_stores,
    stop_stores,
)
from gwtest import Api, wait_run

from gateway.services import Gateway
from gateway.testing.installkit import Browser


@pytest_asyncio.fixture
async def stores() -> AsyncIterator[Stores]:
    started = await start_stores()
    yield started
    await stop_stores(started)


@pytest.fixture
def settings_overrides(stores: Stores) -> dict[str, Any]:
    return app_settings(stores)


@pytest_asyncio.fixture
async def apps(gw: Gateway, stores: Stores) -> Stores:
    register_apps(gw, stores)
    return stores


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    made = Browser()
    yield made
    await made.close()


async def make_due(gw: Gateway, integration_id: str) -> None:
    await gw.db.integrations.update_one(
        {"_id": integration_id}, {"$set": {"next_sync_at": gw.now() - timedelta(minutes=1)}}
    )


async def runs_of(gw: Gateway, integration_id: str) -> int:
    return await gw.db.runs.count_documents({"integration_id": integration_id})


@pytest.mark.parametrize("platform", ["shopify", "bigcommerce"])
async def test_an_uninstall_stops_syncing_keeps_products_and_reconnect_restores(
    gw: Gateway, api: Api, worker: object, apps: Stores, browser: Browser, platform: str
) -> None:
    sim = apps.of(platform)
    store = sim.install_store if platform == "shopify" else None
    integration_id = (await connect_through(api, browser, platform, store))["integration"]["id"]
    await first_run(gw, integration_id)
    products = await gw.db.products.count_documents({"integration_id": integration_id})
    assert products == len(sim.product_ids())

    await sim.app_event("uninstall")  # Shopify: app/uninstalled webhook; BigCommerce: the signed uninstall callback
    await sim.drain_deliveries()
    light = await health(api, integration_id)
    assert light["status"] == "RED" and light["action"] == "RECONNECT"
    assert "app was removed from your store" in light["reason"]
    assert (await kinds(api, integration_id)).count("APP_UNINSTALLED") == 1
    assert await gw.db.products.count_documents({"integration_id": integration_id}) == products

    # Nothing hammers the store now: no scheduled run, no webhook apply.
    before = await runs_of(gw, integration_id)
    await make_due(gw, integration_id)
    assert await gw.scheduler.queue_due() == []
    assert await runs_of(gw, integration_id) == before
    calls = sim.faults.api_requests
    await gw.db.queue.insert_one(
        {"integration_id": integration_id, "delivery_id": "d1", "kind": "REFRESH", "external_id": "1", "claim": None}
    )
    assert await gw.webhooks.apply_pending(integration_id) == 0
    assert sim.faults.api_requests == calls and await gw.db.queue.count_documents({}) == 0

    # A redelivered uninstall changes nothing more.
    if platform == "bigcommerce":
        token = sim.app.signed_payload()  # type: ignore[attr-defined]
        async with api.session.get(f"{api.url}/apps/bigcommerce/uninstall", params={"signed_payload_jwt": token}) as r:
            assert r.status == 200
    assert (await kinds(api, integration_id)).count("APP_UNINSTALLED") == 1

    reconnect = (await api.query(RECONNECT, {"id": integration_id, "returnUrl": return_url(api)}))[
        "reconnectIntegration"
    ]
    landed = await approve(browser, reconnect["authorizeUrl"])
    assert query_of(landed.url)["status"] == "CONNECTED"
    rerun = await first_run(gw, integration_id)
    assert rerun.trigger == "INITIAL" and rerun.status == "SUCCEEDED"
    assert (await health(api, integration_id))["status"] == "GREEN"
    assert sim.hooks, "the webhooks the uninstall deleted were registered again"
    assert {"INTEGRATION_RECONNECTED", "WEBHOOKS_REREGISTERED"} <= set(await kinds(api, integration_id))
    target = sim.product_ids()[0]
    sim.update_product(target)  # and they deliver again
    await sim.drain_deliveries()
    await gw.webhooks.journal_settled()  # answered from the journal; in MongoDB right after
    assert await gw.db.deliveries.count_documents({"integration_id": integration_id}) >= 1


async def test_revoked_credentials_are_rejected_once_and_pause_the_integration(
    gw: Gateway, api: Api, worker: object, apps: Stores, browser: Browser
) -> None:
    sim = apps.woocommerce
    integration_id = (await connect_through(api, browser, "woocommerce", sim.install_store))["integration"]["id"]
    await first_run(gw, integration_id)
    sim.revoke_credentials()  # the key was deleted in WooCommerce > Settings > Advanced > REST API
    sync = "mutation($id: ID!) { syncNow(integrationId: $id, full: true) { id } }"
    for _ in range(2):
        run = await wait_run(gw, (await api.query(sync, {"id": integration_id}))["syncNow"]["id"])
        assert run.status == "FAILED"
    light = await health(api, integration_id)
    assert light["status"] == "RED" and light["action"] == "RECONNECT"
    assert "no longer accepts Alana's access" in light["reason"]
    assert (await kinds(api, integration_id)).count("CREDENTIALS_REJECTED") == 1  # once, not per attempt
    before = await runs_of(gw, integration_id)
    await make_due(gw, integration_id)
    await gw.scheduler.tick()
    assert await runs_of(gw, integration_id) == before


async def shopify_app_webhook(api: Api, stores: Stores, topic: str, body: dict[str, Any], secret: str | None = None):
    raw = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(secret or stores.shopify.app_credentials()["client_secret"], raw),
        "X-Shopify-Shop-Domain": stores.shopify.install_store,
        "X-Shopify-Webhook-Id": f"w-{topic}",
    }
    async with api.session.post(f"{api.url}/webhooks/shopify/app", data=raw, headers=headers) as response:
        return response.status


async def test_shopify_compliance_webhooks(
    gw: Gateway, api: Api, worker: object, apps: Stores, browser: Browser
) -> None:
    sim = apps.shopify
    mine = (await connect_through(api, browser, "shopify", sim.install_store))["integration"]["id"]
    other_browser = Browser()
    try:
        theirs = (await connect_through(api, other_browser, "shopify", sim.install_store, account="acct-2"))[
            "integration"
        ]["id"]
    finally:
        await other_browser.close()
    woo = (await connect_through(api, browser, "woocommerce", apps.woocommerce.install_store))["integration"]["id"]
    for integration_id in (mine, theirs, woo):
        await first_run(gw, integration_id)
    shop = {"shop_id": 1, "shop_domain": sim.install_store}
    customer = {"customer": {"id": 7, "email": "c@example.com"}}

    for topic in ("customers/data_request", "customers/redact", "shop/redact"):
        assert await shopify_app_webhook(api, apps, topic, shop, secret="forged-secret") == 401
    async with api.session.post(
        f"{api.url}/webhooks/shopify/app", data=b"{}", headers={"X-Shopify-Topic": "shop/redact"}
    ) as response:
        assert response.status == 401  # no HMAC at all
    assert await gw.db.integrations.count_documents({}) == 3

    assert await shopify_app_webhook(api, apps, "customers/data_request", {**shop, **customer}) == 200
    assert await shopify_app_webhook(api, apps, "customers/redact", {**shop, **customer}) == 200
    assert await gw.db.integrations.count_documents({}) == 3  # no customer data is held: nothing to change

    await sim.app_event("shop/redact")  # the simulator delivers it, signed, to the registered URL
    await sim.drain_deliveries()
    for gone in (mine, theirs):
        assert await gw.db.integrations.count_documents({"_id": gone}) == 0
        for collection in (gw.db.products, gw.db.runs, gw.db.activity, gw.db.deliveries):
            assert await collection.count_documents({"integration_id": gone}) == 0
    assert await gw.db.integrations.count_documents({"_id": woo}) == 1
    assert await gw.db.products.count_documents({"integration_id": woo}) == len(apps.woocommerce.product_ids())


async def test_bigcommerce_remove_user_is_logged(gw: Gateway, api: Api, apps: Stores, browser: Browser) -> None:
    sim = apps.bigcommerce
    integration_id = (await connect_through(api, browser, "bigcommerce", None))["integration"]["id"]
    await sim.app_event("remove_user", user_id=9002)
    await sim.drain_deliveries()
    assert "APP_USER_REMOVED" in await kinds(api, integration_id)
    assert (await health(api, integration_id))["action"] != "RECONNECT"
