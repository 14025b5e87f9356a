"""One store, one integration (issue 15): connecting a store the account has already, by any way in
(pasted keys, beginConnect, its callback, claimInstall), is CONFLICT naming the integration to reconnect;
two integrations never fight over one store's webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from connectkit import (
    ATTEMPT,
    BEGIN,
    CLAIM,
    Stores,
    app_settings,
    approve,
    connect_through,
    query_of,
    register_apps,
    return_url,
    start_stores,
    stop_stores,
)
from gwtest import CONNECT, Api, connect

from gateway.services import Gateway
from gateway.testing.installkit import Browser
from gateway.testing.toy import ToySimulator


def connect_input(sim: ToySimulator, store_url: str, name: str = "Again") -> dict[str, Any]:
    return {"input": {"platform": "toy", "name": name, "storeUrl": store_url, "credentials": sim.credentials()}}


def conflict_of(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("errors"), body
    extensions: dict[str, Any] = body["errors"][0]["extensions"]
    assert extensions["code"] == "CONFLICT", body
    assert "reconnect" in body["errors"][0]["message"].lower()
    return extensions


async def test_pasting_the_keys_of_a_connected_store_again_is_a_conflict(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    first = await connect(api, toy_store)
    port = toy_store.store_url.rsplit(":", 1)[1]
    for url in (toy_store.store_url, toy_store.store_url + "/", f"HTTP://127.0.0.1:{port}//"):
        body = await api.raw(CONNECT, connect_input(toy_store, url))
        assert conflict_of(body)["integrationId"] == first
    assert await gw.db.integrations.count_documents({}) == 1
    assert len(toy_store.hooks) == 1  # no second registration fighting over the store's webhooks
    # Another account connecting the same store is another tenant: allowed.
    other = await api.raw(CONNECT, connect_input(toy_store, toy_store.store_url), account="acct-2")
    assert not other.get("errors"), other


async def test_two_connects_of_one_store_at_once_make_one_integration(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    bodies = await asyncio.gather(
        *(api.raw(CONNECT, connect_input(toy_store, toy_store.store_url, f"Click {n}")) for n in range(3))
    )
    made = [b["data"]["connectIntegration"]["id"] for b in bodies if not b.get("errors")]
    refused = [conflict_of(b)["integrationId"] for b in bodies if b.get("errors")]
    assert len(made) == 1 and refused == [made[0]] * 2
    assert await gw.db.integrations.count_documents({}) == 1
    assert len(toy_store.hooks) == 1  # the losers took their webhook registrations back


# ---- the install flows -----------------------------------------------------------------------------
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


async def test_begin_connect_of_a_connected_store_is_a_conflict_before_the_merchant_leaves(
    gw: Gateway, api: Api, apps: Stores, browser: Browser
) -> None:
    sim = apps.shopify
    attempt = await connect_through(api, browser, "shopify", sim.install_store)
    existing = attempt["integration"]["id"]
    body = await api.raw(
        BEGIN,
        {"input": {"platform": "shopify", "name": "Twice", "store": sim.install_store, "returnUrl": return_url(api)}},
    )
    assert conflict_of(body)["integrationId"] == existing
    assert await gw.db.connect_attempts.count_documents({}) == 1  # nothing started


async def test_a_store_picked_on_the_platform_that_is_connected_already_fails_the_attempt(
    gw: Gateway, api: Api, apps: Stores, browser: Browser
) -> None:
    # BigCommerce: the merchant picks the store on BigCommerce's side, so only the callback can tell.
    first = await connect_through(api, browser, "bigcommerce", None)
    existing = first["integration"]["id"]
    again = (
        await api.query(BEGIN, {"input": {"platform": "bigcommerce", "name": "Twice", "returnUrl": return_url(api)}})
    )["beginConnect"]
    landed = await approve(browser, again["authorizeUrl"])
    assert query_of(landed.url)["status"] == "FAILED"
    after = await api.query(
        "query($id: ID!) { connectAttempt(id: $id) { status error integration { id } existingIntegration { id } } }",
        {"id": again["id"]},
    )
    attempt = after["connectAttempt"]
    assert attempt["status"] == "FAILED" and attempt["integration"] is None
    assert attempt["existingIntegration"] == {"id": existing} and "reconnect" in attempt["error"].lower()
    assert await gw.db.integrations.count_documents({}) == 1
    # The first connect's attempt is no "existing integration" of anything.
    ok = await api.query(ATTEMPT.replace("error", "error existingIntegration { id }"), {"id": first["id"]})
    assert ok["connectAttempt"]["existingIntegration"] is None


async def test_claiming_an_install_of_a_connected_store_is_a_conflict_and_of_a_paused_one_restores_it(
    gw: Gateway, api: Api, apps: Stores, browser: Browser
) -> None:
    sim = apps.shopify
    existing = await connect(api, sim, platform="shopify")  # pasted keys first

    async def install_on_shopify() -> str:
        screen = await browser.open(str(await sim.app_event("install")))
        landed = await browser.choose(screen, "approve")
        token = query_of(landed.url).get("claimInstall")
        assert token, landed.url
        return token

    token = await install_on_shopify()  # then the app, from Shopify's app store, for the same shop
    body = await api.raw(CLAIM, {"token": token})
    assert conflict_of(body)["integrationId"] == existing
    assert await gw.db.integrations.count_documents({}) == 1
    assert await gw.db.pending_installs.count_documents({}) == 1  # kept: the link still works for an hour

    # Paused (its credentials stopped working): claiming the install is how it comes back, in place.
    await gw.db.integrations.update_one({"_id": existing}, {"$set": {"credentials_rejected": True}})
    restored = (await api.query(CLAIM, {"token": token}))["claimInstall"]
    assert restored["id"] == existing
    assert await gw.db.integrations.count_documents({}) == 1
    stored = await gw.db.integrations.find_one({"_id": existing})
    assert stored is not None and stored["credentials_rejected"] is False and stored["connected_via"] == "INSTALL_FLOW"
