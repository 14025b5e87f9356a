"""Helpers for the install-flow tests: the three simulated platforms with their apps, the settings that
point the gateway at them, and the GraphQL the frontend sends (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from alana_bigcommerce.simulator import BigCommerceSimulator
from alana_shopify.simulator import ShopifySimulator
from alana_woocommerce.simulator import WooCommerceSimulator
from gwtest import Api, wait_run

from gateway.constants import account_channel
from gateway.events import Event
from gateway.runs import Run
from gateway.services import Gateway
from gateway.simkit import Simulator
from gateway.testing.installkit import Browser, Page

BEGIN = """mutation($input: BeginConnectInput!) {
  beginConnect(input: $input) { id platform status authorizeUrl expiresAt error integration { id } }
}"""
RECONNECT = """mutation($id: ID!, $returnUrl: String, $credentials: JSON) {
  reconnectIntegration(integrationId: $id, returnUrl: $returnUrl, credentials: $credentials) {
    id status authorizeUrl error integration { id name } }
}"""
ATTEMPT = """query($id: ID!) {
  connectAttempt(id: $id) { id platform status authorizeUrl error integration { id name platform storeUrl } }
}"""
CLAIM = """mutation($token: String!, $name: String) {
  claimInstall(token: $token, name: $name) { id name platform storeUrl }
}"""
HEALTH = """query($id: ID!) { integration(id: $id) { id health { status reason action } productCount } }"""
ACTIVITY = """query($id: ID) { activityLog(integrationId: $id, first: 100) { edges { node { kind message } } } }"""

#: Retries without waiting, so a failing hook is removed / deactivated at once.
FAST = {"webhook_retry_schedule": [0.0, 0.0], "hook_retry_schedule": [0.0, 0.0], "restore_rate": 1_000_000}


@dataclass
class Stores:
    shopify: ShopifySimulator
    bigcommerce: BigCommerceSimulator
    woocommerce: WooCommerceSimulator

    def all(self) -> list[Simulator]:
        return [self.shopify, self.bigcommerce, self.woocommerce]

    def of(self, platform: str) -> Simulator:
        sim: Simulator = getattr(self, platform)
        return sim


async def start_stores(products: int = 12, **shopify_options: Any) -> Stores:
    stores = Stores(
        shopify=ShopifySimulator(products, seed=31, **{**FAST, **shopify_options}),
        bigcommerce=BigCommerceSimulator(products, seed=32, hook_retry_schedule=[0.0, 0.0]),
        # The tests' gateway is on http://127.0.0.1: let the simulated store post keys there.
        woocommerce=WooCommerceSimulator(products, seed=33, examples=False, insecure_callbacks=True),
    )
    for sim in stores.all():
        await sim.start()
    return stores


async def stop_stores(stores: Stores) -> None:
    for sim in stores.all():
        await sim.stop()


def app_settings(stores: Stores) -> dict[str, Any]:
    """GATEWAY_<PLATFORM>_* pointing the gateway's install flows at the simulators' app sides."""
    shopify = stores.shopify.app_credentials()
    bigcommerce = stores.bigcommerce.app_credentials()
    return {
        "GATEWAY_SHOPIFY_CLIENT_ID": shopify["client_id"],
        "GATEWAY_SHOPIFY_CLIENT_SECRET": shopify["client_secret"],
        "GATEWAY_SHOPIFY_AUTH_URL": stores.shopify.base_url,
        "GATEWAY_BIGCOMMERCE_CLIENT_ID": bigcommerce["client_id"],
        "GATEWAY_BIGCOMMERCE_CLIENT_SECRET": bigcommerce["client_secret"],
        "GATEWAY_BIGCOMMERCE_AUTH_URL": stores.bigcommerce.base_url,
    }


def register_apps(gw: Gateway, stores: Stores) -> None:
    """What an operator enters in each platform's app dashboard (the gateway's callback URLs)."""
    for sim in stores.all():
        flow = gw.flows.install_flow(sim.platform)
        assert flow is not None, sim.platform
        sim.register_app(flow.app_registration())


def query_of(url: str | None) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url or "").query, keep_blank_values=True))


def return_url(api: Api) -> str:
    """A returnUrl on the gateway's own origin (always allowed): its console."""
    return f"{api.url}/?tab=stores"


async def begin(
    api: Api, platform: str, store: str | None, *, name: str = "Flow store", account: str = "acct-1", **more: Any
) -> dict[str, Any]:
    data = await api.query(
        BEGIN,
        {"input": {"platform": platform, "name": name, "store": store, "returnUrl": return_url(api), **more}},
        account,
    )
    attempt: dict[str, Any] = data["beginConnect"]
    return attempt


async def approve(browser: Browser, authorize_url: str, decision: str = "approve") -> Page:
    """The merchant's browser: the gateway's start URL, the platform's screen, the decision, every redirect."""
    screen = await browser.open(authorize_url)
    assert screen.status == 200 and screen.forms, (screen.status, screen.text[:300])
    return await browser.choose(screen, decision)


async def connect_through(api: Api, browser: Browser, platform: str, store: str | None, **more: Any) -> dict[str, Any]:
    """beginConnect, then the browser through the platform's approve screen; returns the attempt afterwards."""
    attempt = await begin(api, platform, store, **more)
    landed = await approve(browser, attempt["authorizeUrl"])
    back = query_of(landed.url)
    assert back.get("connectAttempt") == attempt["id"], (landed.url, landed.text[:300])
    assert back.get("status") == "CONNECTED", await api.query(ATTEMPT, {"id": attempt["id"]})
    after = await api.query(ATTEMPT, {"id": attempt["id"]}, more.get("account", "acct-1"))
    result: dict[str, Any] = after["connectAttempt"]
    return result


async def kinds(api: Api, integration_id: str | None = None, account: str = "acct-1") -> list[str]:
    data = await api.query(ACTIVITY, {"id": integration_id}, account)
    return [edge["node"]["kind"] for edge in data["activityLog"]["edges"]]


async def health(api: Api, integration_id: str) -> dict[str, Any]:
    data = await api.query(HEALTH, {"id": integration_id})
    result: dict[str, Any] = data["integration"]["health"]
    return result


async def first_run(gw: Gateway, integration_id: str) -> Run:
    runs = await gw.runs.latest(integration_id, 1)
    assert runs, "no run was queued"
    return await wait_run(gw, runs[0].id, 120)


@contextlib.asynccontextmanager
async def account_events(gw: Gateway, account: str = "acct-1") -> AsyncIterator[asyncio.Queue[Event]]:
    async with gw.hub.listen(account_channel(account)) as queue:
        yield queue


async def next_event(queue: asyncio.Queue[Event], kind: str) -> Event:
    """The next event of `kind` on an account channel (30 s at most)."""
    async with asyncio.timeout(30):
        while True:
            event = await queue.get()
            if event.kind == kind:
                return event
