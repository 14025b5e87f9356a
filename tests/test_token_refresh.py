"""Expiring Shopify tokens on real servers: refreshed once however many processes ask at once, a refresh
that outlived its lock loses cleanly, a connection swaps the new token in before a request, and a refused
refresh (invalid_grant) marks the credentials rejected once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from alana_shopify.adapter import ShopifyAdapter
from connectkit import (
    Stores,
    app_settings,
    connect_through,
    first_run,
    health,
    kinds,
    register_apps,
    start_stores,
    stop_stores,
)
from gwtest import Api, wait_run

from gateway.errors import CredentialsRejected
from gateway.integration_store import Integration
from gateway.services import Gateway
from gateway.testing.installkit import Browser
from gateway.tokens import Expiry


@pytest_asyncio.fixture
async def stores() -> AsyncIterator[Stores]:
    started = await start_stores()
    yield started
    await stop_stores(started)


@pytest.fixture
def settings_overrides(stores: Stores) -> dict[str, Any]:
    return app_settings(stores)


@pytest_asyncio.fixture
async def shopify_integration(gw: Gateway, api: Api, worker: object, stores: Stores) -> str:
    register_apps(gw, stores)
    browser = Browser()
    try:
        integration_id = str(
            (await connect_through(api, browser, "shopify", stores.shopify.install_store))["integration"]["id"]
        )
    finally:
        await browser.close()
    assert (await first_run(gw, integration_id)).status == "SUCCEEDED"
    return integration_id


async def make_due(gw: Gateway, integration_id: str) -> None:
    """The stored expiry is reached (the platform's own token may live a little longer: that is fine)."""
    await gw.db.integrations.update_one(
        {"_id": integration_id}, {"$set": {"tokens.expires_at": gw.now() + timedelta(seconds=1)}}
    )


def opened(gw: Gateway, doc: dict[str, Any]) -> dict[str, str]:
    return gw.box.open(doc["credentials"], Integration.from_doc(doc).seal_context)


def record(doc: dict[str, Any] | None) -> Integration:
    assert doc is not None
    return Integration.from_doc(doc)


async def test_many_processes_asking_at_once_cause_one_refresh(
    gw: Gateway, stores: Stores, shopify_integration: str
) -> None:
    sim = stores.shopify
    before = await gw.db.integrations.find_one({"_id": shopify_integration})
    assert before is not None and Expiry.of(record(before)) is not None
    assert before["tokens"]["lifetime"] == pytest.approx(3600, abs=5)
    old = opened(gw, before)
    await make_due(gw, shopify_integration)
    # Four "processes" (each its own Gateway: its own MongoDB and Redis connections), five callers each.
    others = [await Gateway.create(gw.settings, registry=gw.registry) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(g.tokens.refresh(shopify_integration) for g in [gw, *others] for _ in range(5))
        )
    finally:
        for other in others:
            await other.close()
    assert sim.app.tokens.refreshes == 1
    tokens = {credentials["access_token"] for _, credentials in results}
    assert len(tokens) == 1 and old["access_token"] not in tokens
    after = await gw.db.integrations.find_one({"_id": shopify_integration})
    assert after is not None
    stored = opened(gw, after)
    assert stored["access_token"] in tokens and stored["refresh_token"] != old["refresh_token"]
    assert stored["client_secret"] == old["client_secret"]  # what verifies webhooks is kept
    assert stored["access_token"] not in repr(after)  # sealed at rest
    assert Expiry.of(record(after)) is not None and not Expiry.of(record(after)).due(gw.now())  # type: ignore[union-attr]


async def test_a_refresh_that_outlived_its_lock_loses_cleanly(
    gw: Gateway, stores: Stores, shopify_integration: str
) -> None:
    sim = stores.shopify
    await make_due(gw, shopify_integration)
    current = record(await gw.db.integrations.find_one({"_id": shopify_integration}))
    expiry = Expiry.of(current)
    assert expiry is not None
    # Both refresh with the same stored refresh token, as if the lock had expired under the first one: the
    # platform accepts both (the previous refresh token stays valid until its replacement is used).
    first, second = await asyncio.gather(gw.tokens._refresh(current, expiry), gw.tokens._refresh(current, expiry))
    assert sim.app.tokens.refreshes == 2
    assert first[1]["access_token"] == second[1]["access_token"]  # the loser took the winner's pair
    stored = opened(gw, await gw.db.integrations.find_one({"_id": shopify_integration}))  # type: ignore[arg-type]
    assert stored["access_token"] == first[1]["access_token"]
    # The stored pair keeps working: the next refresh succeeds.
    await make_due(gw, shopify_integration)
    _, renewed = await gw.tokens.refresh(shopify_integration)
    assert renewed["access_token"] != stored["access_token"] and sim.app.tokens.refreshes == 3


async def test_a_connection_refreshes_before_a_request_once_due(
    gw: Gateway, stores: Stores, shopify_integration: str
) -> None:
    sim = stores.shopify
    doc = await gw.db.integrations.find_one({"_id": shopify_integration})
    assert doc is not None
    await make_due(gw, shopify_integration)
    doc = await gw.db.integrations.find_one({"_id": shopify_integration})
    assert doc is not None
    conn = gw.integrations.connection(record(doc))
    adapter = ShopifyAdapter()
    old = dict(conn.credentials)
    sim.expire_tokens()  # the old token is dead now: a request with it would get 401
    try:
        await adapter.check_credentials(conn)  # the client is built with the old token, then refreshes before sending
        await adapter.mapping_context(conn)
    finally:
        await conn.close()
    assert sim.app.tokens.refreshes == 1
    assert conn.credentials["access_token"] != old["access_token"]


async def test_a_refused_refresh_rejects_the_credentials_once(
    gw: Gateway, api: Api, stores: Stores, shopify_integration: str
) -> None:
    sim = stores.shopify
    asked: list[str] = []
    refresh = sim.app.tokens.refresh

    def counting(refresh_token: str) -> Any:
        asked.append(refresh_token)
        return refresh(refresh_token)

    sim.app.tokens.refresh = counting  # type: ignore[method-assign]
    sim.revoke_credentials()  # every token and refresh token dies: the next refresh answers invalid_grant
    await make_due(gw, shopify_integration)
    with pytest.raises(CredentialsRejected):
        await gw.tokens.refresh(shopify_integration)
    run_id = (
        await api.query("mutation($id: ID!) { syncNow(integrationId: $id) { id } }", {"id": shopify_integration})
    )["syncNow"]["id"]
    run = await wait_run(gw, run_id)
    assert run.status == "FAILED"
    light = await health(api, shopify_integration)
    assert light["status"] == "RED" and light["action"] == "RECONNECT"
    assert (await kinds(api, shopify_integration)).count("CREDENTIALS_REJECTED") == 1
    assert len(asked) == 1  # asked once, refused; not asked again while the credentials stay rejected
