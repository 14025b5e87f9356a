"""Webhook repair on real servers: the gateway is down for a while, each platform gives up on its hook the way
it does (WooCommerce disables it after repeated failures, BigCommerce deactivates it, Shopify removes the
subscription), and the scheduler notices, says YELLOW / REREGISTER_WEBHOOKS while it cannot repair, then
registers the hook again, logs WEBHOOKS_REREGISTERED, and a full run catches up what the dead hook missed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from connectkit import Stores, first_run, health, kinds, start_stores, stop_stores
from gwtest import Api, connect, wait_run

from gateway.api.app import create_app
from gateway.services import Gateway


class Outage:
    """While `down`, the gateway answers every store webhook with 503 (as if it were unreachable)."""

    def __init__(self) -> None:
        self.down = False

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.down and request.path.startswith("/webhooks/") and not request.path.endswith("/app"):
            return web.Response(status=503, text="down for maintenance")
        return await handler(request)


@pytest_asyncio.fixture
async def stores() -> AsyncIterator[Stores]:
    started = await start_stores(products=20)
    yield started
    await stop_stores(started)


@pytest_asyncio.fixture
async def outage() -> Outage:
    return Outage()


@pytest_asyncio.fixture
async def api(gw: Gateway, outage: Outage) -> AsyncIterator[Api]:
    """The API on its real port, with the outage switch in front of the webhook endpoint."""
    port: int = gw._test_port  # type: ignore[attr-defined]
    app = create_app(gw)
    app.middlewares.append(outage.middleware)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as session:
        yield Api(f"http://127.0.0.1:{port}", session)
    await runner.cleanup()


async def last_checked(gw: Gateway, integration_id: str, ago: timedelta) -> None:
    await gw.db.integrations.update_one({"_id": integration_id}, {"$set": {"webhooks.checked_at": gw.now() - ago}})


@pytest.mark.parametrize("platform", ["woocommerce", "bigcommerce", "shopify"])
async def test_a_dead_webhook_is_registered_again_and_a_run_catches_up(
    gw: Gateway, api: Api, worker: object, stores: Stores, outage: Outage, platform: str
) -> None:
    sim = stores.of(platform)
    integration_id = await connect(api, sim, platform=platform)
    await first_run(gw, integration_id)
    repair = gw.repairs
    assert await repair.check_due() == []  # just checked when connecting

    outage.down = True
    missed = sim.product_ids()[:7]
    for external_id in missed:  # seven failed deliveries: every platform has given up on the hook by now
        sim.update_product(external_id)
        await sim.drain_deliveries(retries=True)
    outage.down = False
    titles = {e: (await gw.db.products.find_one({"external_id": e}))["store"]["title"] for e in missed}  # type: ignore[index]

    # A delivery gap alone makes the hook due within minutes, not a day.
    await last_checked(gw, integration_id, timedelta(minutes=20))
    assert await repair.check_due() == []
    await gw.db.integrations.update_one({"_id": integration_id}, {"$set": {"webhooks.silent": True}})

    # The store cannot be reached for the repair: YELLOW with REREGISTER_WEBHOOKS, and it tries again later.
    sim.faults.set(burst_500=1000)
    await gw.scheduler.tick()
    sim.faults.reset()
    light = await health(api, integration_id)
    assert light["status"] == "YELLOW" and light["action"] == "REREGISTER_WEBHOOKS"
    assert "could not register them again" in light["reason"]
    assert "WEBHOOKS_REREGISTERED" not in await kinds(api, integration_id)

    runs_before = await gw.db.runs.count_documents({"integration_id": integration_id})
    await last_checked(gw, integration_id, timedelta(minutes=16))
    await gw.scheduler.tick()
    assert "WEBHOOKS_REREGISTERED" in await kinds(api, integration_id)
    latest = (await gw.runs.latest(integration_id, 1))[0]
    assert await gw.db.runs.count_documents({"integration_id": integration_id}) == runs_before + 1
    assert latest.trigger == "SCHEDULED" and latest.kind == "FULL"
    assert (await wait_run(gw, latest.id)).status == "SUCCEEDED"
    for external_id in missed:  # caught up what the dead hook missed
        product = await gw.db.products.find_one({"external_id": external_id, "integration_id": integration_id})
        assert product is not None and product["store"]["title"] != titles[external_id]
    assert (await health(api, integration_id))["status"] == "GREEN"

    before = await gw.db.deliveries.count_documents({"integration_id": integration_id})
    sim.update_product(sim.product_ids()[10])  # and the hook delivers again
    await sim.drain_deliveries()
    await gw.webhooks.journal_settled()  # answered from the journal; in MongoDB right after
    assert await gw.db.deliveries.count_documents({"integration_id": integration_id}) == before + 1


async def test_webhooks_are_checked_daily(gw: Gateway, api: Api, stores: Stores) -> None:
    sim = stores.woocommerce
    integration_id = await connect(api, sim, platform="woocommerce")
    repair = gw.repairs
    await last_checked(gw, integration_id, timedelta(hours=23))
    assert await repair.check_due() == []
    await last_checked(gw, integration_id, timedelta(hours=25))
    assert await repair.check_due() == [integration_id]
    assert await repair.check_due() == []  # claimed: checked once, whatever the number of workers
    assert "WEBHOOKS_REREGISTERED" not in await kinds(api, integration_id)  # all active: nothing to repair
