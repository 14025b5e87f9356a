"""Connecting and reconnecting a store through its platform's own approve screen on the Integrations page, in
Chromium: Connect a store > Shopify > Continue to Shopify, the simulated Shopify's Install screen, back on
the page connected; the light RED with Reconnect after Shopify stops accepting Alana, and the same trip
again to restore the same store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from arq.worker import Worker
from connectkit import Stores, app_settings, register_apps, start_stores, stop_stores
from gwtest import Api, wait_run
from pagekit import Shots, card, sign_in
from playwright.async_api import expect

from gateway.services import Gateway

NAME = "Shop through the app"


@pytest_asyncio.fixture
async def stores() -> AsyncIterator[Stores]:
    started = await start_stores(products=30)
    yield started
    await stop_stores(started)


@pytest.fixture
def settings_overrides(stores: Stores) -> dict[str, Any]:
    return app_settings(stores)


async def test_connect_and_reconnect_through_shopifys_screen(
    gw: Gateway, api: Api, worker: Worker, stores: Stores, page: Any, shots: Shots
) -> None:
    register_apps(gw, stores)
    sim = stores.shopify
    await sign_in(page, f"{api.url}/", api.token())
    await page.get_by_role("button", name="Connect a store").click()
    dialog = page.get_by_role("dialog", name="Connect a store")
    await dialog.get_by_label("Platform").select_option(label="Shopify")
    await dialog.get_by_label("Name in Alana").fill(NAME)
    await dialog.get_by_label("Shop", exact=True).fill("not a shop")
    await dialog.get_by_role("button", name="Continue to Shopify").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("is not a Shopify shop")
    await shots(page, "install-bad-shop")
    await dialog.get_by_label("Shop", exact=True).fill(sim.install_store)
    await shots(page, "install-flow-offered")
    await dialog.get_by_role("button", name="Continue to Shopify").click()

    # Shopify's own screen (simulated): what Alana asks for, Install / Cancel.
    await expect(page.get_by_role("heading", name="Install app")).to_be_visible()
    assert page.url.startswith(sim.base_url)
    await shots(page, "shopify-grant-screen")
    await page.get_by_role("button", name="Install").click()

    # Back on the page (still signed in: the token lives in the tab's sessionStorage), connected; the first
    # sync runs to GREEN.
    await expect(page.get_by_text("Your store is connected")).to_be_visible()
    await expect(card(page, NAME, "GREEN")).to_be_visible()
    assert page.url == f"{api.url}/"  # the return parameters are taken off the address
    await shots(page, "connected-through-shopify")

    [integration] = (await api.query("{ integrations { id } }"))["integrations"]
    sim.revoke_credentials()  # the merchant revoked Alana's access on Shopify
    store = card(page, NAME)
    await store.get_by_role("button", name="Sync Now", exact=True).click()
    await expect(card(page, NAME, "RED")).to_be_visible()
    await expect(store.locator(".reason")).to_contain_text("no longer accepts Alana's access")
    await shots(page, "access-revoked-red")
    await store.get_by_role("button", name=f"Reconnect {NAME}").click()
    await expect(page.get_by_role("heading", name="Install app")).to_be_visible()
    await page.get_by_role("button", name="Install").click()
    await expect(page.get_by_text("Your store is connected")).to_be_visible()
    runs = await gw.runs.latest(integration["id"], 1)
    await wait_run(gw, runs[0].id)
    await expect(card(page, NAME, "GREEN")).to_be_visible()
    assert [i["id"] for i in (await api.query("{ integrations { id } }"))["integrations"]] == [integration["id"]]
    await shots(page, "reconnected-green")
