"""Connecting stores through the platforms' install flows, end to end on the real API: beginConnect over
GraphQL, the merchant's browser through the gateway's start URL and each simulated platform's approve
screen, the platform's callbacks, the integration created and synced; installs begun on the platform and
claimed; reconnecting in place."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from connectkit import (
    ATTEMPT,
    CLAIM,
    RECONNECT,
    Stores,
    account_events,
    app_settings,
    approve,
    begin,
    connect_through,
    first_run,
    health,
    kinds,
    next_event,
    query_of,
    register_apps,
    return_url,
    start_stores,
    stop_stores,
)
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from gwtest import Api, wait_run

from gateway.connect import cookie_name
from gateway.constants import account_channel
from gateway.events import ConnectFinished
from gateway.services import Gateway
from gateway.testing.installkit import Browser

PLATFORMS = ["shopify", "bigcommerce", "woocommerce"]


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


def install_store(stores: Stores, platform: str) -> str | None:
    # BigCommerce: the merchant picks the store on BigCommerce's side.
    return None if platform == "bigcommerce" else stores.of(platform).install_store


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_each_platform_connects_through_its_install_flow(
    gw: Gateway, api: Api, worker: object, apps: Stores, browser: Browser, platform: str
) -> None:
    sim = apps.of(platform)
    platforms = await api.query("{ platforms { id connectMethods } }")
    methods = {p["id"]: p["connectMethods"] for p in platforms["platforms"]}
    assert methods[platform] == ["CREDENTIALS", "INSTALL_FLOW"] and methods["toy"] == ["CREDENTIALS"]

    attempt = await begin(api, platform, install_store(apps, platform), name=f"My {platform}")
    assert attempt["status"] == "PENDING" and attempt["integration"] is None
    assert attempt["authorizeUrl"] == f"{api.url}/connect/{platform}/start/{attempt['id']}"
    async with account_events(gw) as events:
        start = await browser.open(attempt["authorizeUrl"], follow=False)
        assert start.status == 302 and start.location is not None and start.location.startswith(sim.base_url)
        landed = await approve(browser, attempt["authorizeUrl"])
        finished = await next_event(events, "CONNECT_FINISHED")
    assert landed.url.startswith(return_url(api)) and landed.status == 200
    assert query_of(landed.url) == {"tab": "stores", "connectAttempt": attempt["id"], "status": "CONNECTED"}
    assert isinstance(finished, ConnectFinished)
    assert finished.attempt.id == attempt["id"] and finished.attempt.status == "CONNECTED"

    after = (await api.query(ATTEMPT, {"id": attempt["id"]}))["connectAttempt"]
    assert after["status"] == "CONNECTED" and after["authorizeUrl"] is None and after["error"] is None
    integration = after["integration"]
    assert integration["name"] == f"My {platform}" and integration["platform"] == platform
    stored = await gw.db.integrations.find_one({"_id": integration["id"]})
    assert stored is not None and stored["connected_via"] == "INSTALL_FLOW" and stored["store_key"]
    assert stored["webhooks"]["state"] == "REGISTERED" and stored["webhooks"]["hook_ids"]
    # Sealed at rest: no credential value appears in the stored document.
    opened = gw.box.open(stored["credentials"], f"acct-1/{integration['id']}")
    raw = repr(stored)
    assert opened and all(value not in raw for value in opened.values())
    run = await first_run(gw, integration["id"])
    assert run.trigger == "INITIAL" and run.kind == "FULL" and run.status == "SUCCEEDED"
    assert run.counts.added == len(sim.product_ids())
    assert (await health(api, integration["id"]))["status"] == "GREEN"
    assert "INTEGRATION_CONNECTED" in await kinds(api, integration["id"])
    # The attempt is another account's business only to its own account.
    body = await api.raw(ATTEMPT, {"id": attempt["id"]}, account="acct-2")
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_connect_finished_reaches_integration_events_over_the_websocket(
    gw: Gateway, api: Api, apps: Stores, browser: Browser
) -> None:
    attempt = await begin(api, "woocommerce", apps.woocommerce.install_store)
    transport = WebsocketsTransport(
        url=api.url.replace("http", "ws") + "/graphql",
        init_payload={"Authorization": f"Bearer {api.token('acct-1')}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    request = GraphQLRequest(
        "subscription { integrationEvents { kind integrationId connectAttempt { id status integration { id name } } } }"
    )
    async with Client(transport=transport) as session:
        stream = session.subscribe(request)
        pending = asyncio.ensure_future(stream.__anext__())
        await gw.hub.wait_for_listener(account_channel("acct-1"))
        await approve(browser, attempt["authorizeUrl"])
        event = (await asyncio.wait_for(pending, 30))["integrationEvents"]
        while event["kind"] != "CONNECT_FINISHED":
            event = (await asyncio.wait_for(stream.__anext__(), 30))["integrationEvents"]
        await stream.aclose()
    assert event["connectAttempt"]["id"] == attempt["id"] and event["connectAttempt"]["status"] == "CONNECTED"
    assert event["integrationId"] == event["connectAttempt"]["integration"]["id"]
    assert event["connectAttempt"]["integration"]["name"] == "Flow store"


async def test_a_merchant_who_declines_lands_back_with_failed(
    gw: Gateway, api: Api, apps: Stores, browser: Browser
) -> None:
    attempt = await begin(api, "woocommerce", apps.woocommerce.install_store)
    landed = await approve(browser, attempt["authorizeUrl"], "deny")
    assert query_of(landed.url)["status"] == "FAILED"
    after = (await api.query(ATTEMPT, {"id": attempt["id"]}))["connectAttempt"]
    assert after["status"] == "FAILED" and "declined" in after["error"]
    assert await gw.db.integrations.count_documents({}) == 0


async def test_an_install_begun_on_shopify_is_claimed_by_the_signed_in_merchant(
    gw: Gateway, api: Api, worker: object, apps: Stores, browser: Browser
) -> None:
    sim = apps.shopify
    app_url = await sim.app_event("install")  # the App URL Shopify opens, signed
    assert app_url is not None and app_url.startswith(f"{api.url}/apps/shopify/install?")
    screen = await browser.open(app_url)
    assert "Install app" in screen.text
    landed = await browser.choose(screen, "approve")
    token = query_of(landed.url).get("claimInstall")
    assert landed.url.startswith(f"{api.url}/?") and token
    assert await gw.db.integrations.count_documents({}) == 0
    pending = await gw.db.pending_installs.find_one({})
    assert pending is not None and token not in repr(pending)  # only its digest is kept

    claimed = (await api.query(CLAIM, {"token": token, "name": "From the app store"}))["claimInstall"]
    assert claimed["name"] == "From the app store" and claimed["platform"] == "shopify"
    assert (await first_run(gw, claimed["id"])).status == "SUCCEEDED"
    again = await api.raw(CLAIM, {"token": token}, account="acct-2")
    assert (
        again["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "install link" in again["errors"][0]["message"]
    )
    assert await gw.db.pending_installs.count_documents({}) == 0

    # Opening the installed app from Shopify's admin lands on Alana: no second install.
    reopened = await browser.open(str(await sim.app_event("install")), follow=False)
    assert reopened.status == 302 and reopened.location == f"{api.url}/"


async def test_an_external_bigcommerce_install_is_claimed_and_load_opens_alana(
    gw: Gateway, api: Api, worker: object, apps: Stores, browser: Browser
) -> None:
    sim = apps.bigcommerce
    screen = await browser.open(f"{sim.base_url}/app/{sim.app_credentials()['client_id']}/install")
    landed = await browser.choose(screen, "approve")
    token = query_of(landed.url).get("claimInstall")
    assert token, landed.url
    claimed = (await api.query(CLAIM, {"token": token}))["claimInstall"]
    assert claimed["platform"] == "bigcommerce" and sim.store_hash in claimed["name"]
    assert (await first_run(gw, claimed["id"])).status == "SUCCEEDED"
    load = await sim.app_event("load")
    opened = await browser.open(str(load), follow=False)
    assert opened.status == 302 and opened.location == f"{api.url}/"


async def test_reconnect_through_the_flow_keeps_everything(
    gw: Gateway, api: Api, worker: object, apps: Stores, browser: Browser
) -> None:
    sim = apps.shopify
    attempt = await connect_through(api, browser, "shopify", sim.install_store)
    integration_id = attempt["integration"]["id"]
    await first_run(gw, integration_id)
    product = await gw.db.products.find_one({"integration_id": integration_id})
    assert product is not None
    edit = 'mutation($id: ID!) { editProduct(productId: $id, input: {title: "Alana\'s title"}) { id title } }'
    assert (await api.query(edit, {"id": product["_id"]}))["editProduct"]["title"] == "Alana's title"
    count = await gw.db.products.count_documents({"integration_id": integration_id})
    runs_before = await gw.db.runs.count_documents({"integration_id": integration_id})

    sim.revoke_credentials()  # the merchant revoked the app's access
    run = await wait_run(
        gw,
        (await api.query("mutation($id: ID!) { syncNow(integrationId: $id) { id } }", {"id": integration_id}))[
            "syncNow"
        ]["id"],
    )
    assert run.status == "FAILED"
    light = await health(api, integration_id)
    assert light["status"] == "RED" and light["action"] == "RECONNECT" and "Reconnect the store" in light["reason"]
    assert (await kinds(api, integration_id)).count("CREDENTIALS_REJECTED") == 1

    reconnect = (await api.query(RECONNECT, {"id": integration_id, "returnUrl": return_url(api)}))[
        "reconnectIntegration"
    ]
    assert reconnect["status"] == "PENDING" and reconnect["authorizeUrl"]
    landed = await approve(browser, reconnect["authorizeUrl"])
    assert query_of(landed.url)["status"] == "CONNECTED"
    after = (await api.query(ATTEMPT, {"id": reconnect["id"]}))["connectAttempt"]
    assert after["integration"]["id"] == integration_id  # the same integration, not a new one
    assert await gw.db.integrations.count_documents({}) == 1
    restored = await gw.db.integrations.find_one({"_id": integration_id})
    assert restored is not None and restored["credentials_rejected"] is False
    rerun = await first_run(gw, integration_id)
    assert rerun.trigger == "INITIAL" and rerun.status == "SUCCEEDED"
    assert await gw.db.products.count_documents({"integration_id": integration_id}) == count
    kept = await gw.db.products.find_one({"_id": product["_id"]})
    assert kept is not None and any(o.get("active") and o["value"] == "Alana's title" for o in kept["overlays"])
    assert await gw.db.runs.count_documents({"integration_id": integration_id}) == runs_before + 2
    assert "INTEGRATION_RECONNECTED" in await kinds(api, integration_id)
    assert (await health(api, integration_id))["status"] == "GREEN"


async def test_reconnect_with_pasted_keys_where_there_is_no_flow(
    gw: Gateway, api: Api, worker: object, toy_store: Any
) -> None:
    from gwtest import connect

    integration_id = await connect(api, toy_store)
    await first_run(gw, integration_id)
    no_flow = await api.raw(RECONNECT, {"id": integration_id})
    assert no_flow["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "credentials"}

    toy_store.token = "rotated-token"  # the old key stops working
    run_id = (await api.query("mutation($id: ID!) { syncNow(integrationId: $id) { id } }", {"id": integration_id}))[
        "syncNow"
    ]["id"]
    assert (await wait_run(gw, run_id)).status == "FAILED"
    assert (await health(api, integration_id))["action"] == "RECONNECT"

    wrong = await api.raw(RECONNECT, {"id": integration_id, "credentials": {"token": "still-wrong"}})
    assert wrong["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "credentials"}
    assert "CONNECT_FAILED" in await kinds(api, integration_id)
    stored = await gw.db.integrations.find_one({"_id": integration_id})
    assert stored is not None and stored["credentials_rejected"] is True  # nothing changed

    done = (await api.query(RECONNECT, {"id": integration_id, "credentials": {"token": "rotated-token"}}))[
        "reconnectIntegration"
    ]
    assert done["status"] == "CONNECTED" and done["authorizeUrl"] is None
    assert done["integration"]["id"] == integration_id
    rerun = await first_run(gw, integration_id)
    assert rerun.status == "SUCCEEDED" and rerun.trigger == "INITIAL"
    assert (await health(api, integration_id))["status"] == "GREEN"


async def test_pasted_keys_keep_working_for_every_platform(gw: Gateway, api: Api, apps: Stores) -> None:
    from gwtest import connect

    for sim in apps.all():
        integration_id = await connect(api, sim, platform=sim.platform)
        stored = await gw.db.integrations.find_one({"_id": integration_id})
        assert (
            stored is not None and stored.get("connected_via") is None and stored["webhooks"]["state"] == "REGISTERED"
        )


async def test_the_browser_binding_refuses_a_callback_finished_elsewhere(
    gw: Gateway, api: Api, apps: Stores, browser: Browser
) -> None:
    attempt = await begin(api, "shopify", apps.shopify.install_store)
    await browser.open(attempt["authorizeUrl"], follow=False)  # bound to this browser
    assert any(c.key == cookie_name("shopify") for c in browser.session.cookie_jar)
    location = await apps.shopify.connect_decision(
        (await browser.open(attempt["authorizeUrl"], follow=False)).location or "", True
    )
    other = Browser()
    try:
        page = await other.open(str(location))
    finally:
        await other.close()
    assert page.status == 400 and "another browser" in page.text
    assert (await api.query(ATTEMPT, {"id": attempt["id"]}))["connectAttempt"]["status"] == "PENDING"
    landed = await browser.open(str(location))  # the browser that started it finishes it
    assert query_of(landed.url)["status"] == "CONNECTED"
