"""A Shopify integration connected through the install flow keeps syncing across many expiries of its
offline token (a few seconds long on the simulator), with two worker processes and a webhook stream
running: every run succeeds, the store never answers 401, and each expiry costs exactly one refresh (no
refresh token is ever used twice: the refreshes form one chain)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from connectkit import Stores, app_settings, connect_through, first_run, register_apps, start_stores, stop_stores
from gwtest import Api, start_worker, wait_run

from gateway.services import Gateway
from gateway.simkit import IssuedToken
from gateway.testing.installkit import Browser

#: The simulated offline token's lifetime, in seconds (Shopify's is 3600): refreshed a third ahead.
TOKEN_TTL = 6
#: Expiries to live through.
EXPIRIES = 4


@pytest_asyncio.fixture
async def stores() -> AsyncIterator[Stores]:
    started = await start_stores(products=150, token_ttl=TOKEN_TTL)
    yield started
    await stop_stores(started)


@pytest.fixture
def settings_overrides(stores: Stores) -> dict[str, Any]:
    return app_settings(stores)


@pytest.mark.timeout(300)
async def test_syncing_across_token_expiries_with_two_workers_and_webhooks(
    gw: Gateway, api: Api, stores: Stores
) -> None:
    sim = stores.shopify
    register_apps(gw, stores)
    issued_by: dict[str, str] = {}  # refresh token -> the refresh token it was used to obtain
    used: list[str] = []
    refused: list[str | None] = []
    refresh, accepts = sim.app.tokens.refresh, sim.app.accepts

    def recording_refresh(refresh_token: str) -> IssuedToken | None:
        used.append(refresh_token)
        issued = refresh(refresh_token)
        if issued is not None and issued.refresh_token is not None:
            issued_by[issued.refresh_token] = refresh_token
        return issued

    def recording_accepts(token: str | None) -> bool:
        ok = accepts(token)
        if not ok:
            refused.append(token)
        return ok

    sim.app.tokens.refresh = recording_refresh  # type: ignore[method-assign]
    sim.app.accepts = recording_accepts  # type: ignore[method-assign]

    env = {name: str(value) for name, value in app_settings(stores).items()}
    env["GATEWAY_PUBLIC_URL"] = gw.settings.public_url
    workers = [await start_worker(gw, **env) for _ in range(2)]
    browser = Browser()
    try:
        connected = await connect_through(api, browser, "shopify", sim.install_store)
        integration_id = connected["integration"]["id"]
        assert (await first_run(gw, integration_id)).status == "SUCCEEDED"
        products = sim.product_ids()
        changes = 0
        sync = "mutation($id: ID!) { syncNow(integrationId: $id, full: true) { id } }"
        async with asyncio.timeout(240):
            while sim.app.tokens.refreshes < EXPIRIES:
                run_id = (await api.query(sync, {"id": integration_id}))["syncNow"]["id"]
                for external_id in products[changes % len(products) :][:3]:
                    sim.update_product(external_id)  # the webhook stream, applied by the workers meanwhile
                    changes += 1
                run = await wait_run(gw, run_id, 120)
                assert run.status == "SUCCEEDED", run.failure
            await sim.drain_deliveries()
    finally:
        await browser.close()
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.terminate()
            await worker.wait()

    assert refused == [], f"the store refused {len(refused)} request(s)"
    runs = [doc async for doc in gw.db.runs.find({"integration_id": integration_id})]
    assert runs and all(doc["status"] == "SUCCEEDED" for doc in runs)
    # One refresh per expiry: every refresh used the refresh token the previous one issued, none twice.
    assert len(used) == len(set(used)) == sim.app.tokens.refreshes >= EXPIRIES
    for earlier, later in zip(used, used[1:], strict=False):
        assert issued_by[later] == earlier
    assert await gw.db.deliveries.count_documents({"integration_id": integration_id}) == changes
    stored = await gw.db.integrations.find_one({"_id": integration_id})
    assert stored is not None and not stored.get("credentials_rejected")
