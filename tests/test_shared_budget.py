"""One rate budget per store, shared by every process (gateway/ratebudget.py), end to end on real processes.

Shopify: a full run and a storm of product webhooks on one shop, worked by two worker processes, spend
one bucket and are never THROTTLED; the bucket's figures live in Redis afterwards. BigCommerce: two
integrations of one store (two accounts) sync at once, one in a worker process and one in this
process, fetching pages 8 ahead on a quota tight enough to bind and all theirs to spend, and never draw
a 429 (with a window per process they do: each spends the Left it last read while the other does too).
How close the Shopify run comes to the bucket's minimum is measured by `make bench`
(benchmarks/ratelimits.py), not asserted here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from alana_bigcommerce.simulator import BigCommerceSimulator
from alana_shopify.client import ShopifyBudget
from alana_shopify.simulator import ShopifySimulator
from gwtest import Api, start_worker, wait_run

from gateway.constants import RATE_KEY_PREFIX, account_channel, run_channel
from gateway.domain import RunStatus, utcnow
from gateway.integration_store import Integration, seal_context
from gateway.ratebudget import RedisRateState
from gateway.services import Gateway


async def stop(workers: list[asyncio.subprocess.Process]) -> None:
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            worker.terminate()
        await worker.wait()


@pytest.mark.timeout(240)
async def test_a_run_and_a_webhook_storm_on_two_workers_share_one_shopify_bucket(gw: Gateway, api: Api) -> None:
    # A bucket small and slow enough that the run is paced by it (about 8 s of restoring for the run alone),
    # so the webhook batches' refreshes compete with the run's pages for the same points.
    sim = ShopifySimulator(300, seed=3, bucket_size=1000, restore_rate=400)
    await sim.start()
    workers = [
        await start_worker(gw, GATEWAY_PUBLIC_URL=gw.settings.public_url, GATEWAY_WEBHOOK_COALESCE="0.01")
        for _ in range(2)
    ]
    storm: list[str] = []
    try:
        integration = await gw.integrations.connect(
            "acct-1", "shopify", "Shared bucket", sim.store_url, sim.credentials(), options={"bulk_threshold": 0}
        )
        run = (await gw.runs.latest(integration.id, 1))[0]
        products = sim.product_ids()
        async with asyncio.timeout(180), gw.hub.listen(run_channel(run.id)) as progress:
            # The storm: a few product edits at every progress event of the run, for as long as it runs.
            while (current := await gw.runs.get_any(run.id)) is not None and current.active:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(progress.get(), timeout=2.0)
                current = await gw.runs.get_any(run.id)
                if current is not None and current.status == RunStatus.RUNNING and len(storm) < 150:
                    for external_id in products[len(storm) * 7 % len(products) :][:3]:
                        sim.update_product(external_id, title=f"Storm {len(storm)}")
                        storm.append(external_id)
        done = await wait_run(gw, run.id, 60)
        await sim.drain_deliveries()
        await applied(gw, integration.id, len(storm))
    finally:
        await stop(workers)
        await sim.stop()

    assert done.status == RunStatus.SUCCEEDED, done.failure
    assert done.counts.failed == 0
    # Some products of the storm were stored by a webhook batch before the run reached them.
    assert await gw.db.products.count_documents({"integration_id": integration.id}) == 300
    assert len(storm) >= 30, "the run ended before the storm got going"
    assert sim.stats["throttled"] == 0, f"Shopify answered THROTTLED {sim.stats['throttled']} time(s)"
    # Every edit of the storm is stored: the run and the webhook batches both read the store.
    for external_id in set(storm):
        stored = await gw.db.products.find_one({"_id": f"{integration.id}:{external_id}"})
        assert stored is not None and stored["store"]["title"] == sim.catalog.products[int(external_id)].title
    # The bucket both workers spent is one Redis state, with the figures the shop gave.
    state = RedisRateState.for_store(gw.redis, sim.store_url)
    keys = [key async for key in gw.redis.scan_iter(match=f"{RATE_KEY_PREFIX}{{{state.store}}}:shopify*")]
    bucket = [k for k in keys if not k.endswith((b":holds", b":claims"))]
    assert len(bucket) == 1
    figures = await gw.redis.hgetall(bucket[0])
    assert (float(figures[b"max"]), float(figures[b"rate"])) == (1000, 400)


async def applied(gw: Gateway, integration_id: str, deliveries: int) -> None:
    """Wait until every delivery was received and applied: the queue is empty."""
    async with asyncio.timeout(60), gw.hub.listen(account_channel("acct-1")) as events:
        while await gw.db.deliveries.count_documents({"integration_id": integration_id}) < deliveries or (
            await gw.db.queue.count_documents({"integration_id": integration_id})
        ):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(events.get(), 0.5)


TIGHT: dict[str, Any] = {"quota": 30, "window_ms": 3000, "other_apps_share": 0.0}


@pytest.mark.timeout(240)
async def test_two_processes_syncing_one_bigcommerce_store_never_draw_a_429(gw: Gateway, api: Api) -> None:
    sim = BigCommerceSimulator(2500, seed=4, **TIGHT)
    await sim.start()
    service = gw.integrations
    options = {"quota_share": 1.0, "page_size": 50, "page_concurrency": 8}
    workers: list[asyncio.subprocess.Process] = []
    try:
        # The second account's integration of the same store syncs in this process...
        here = await service.connect("acct-2", "bigcommerce", "Here", sim.store_url, sim.credentials(), options=options)
        here_run = (await gw.runs.latest(here.id, 1))[0]
        here_task = asyncio.ensure_future(gw.engine.run(here_run.id))
        async with gw.hub.listen(run_channel(here_run.id)) as progress:
            await asyncio.wait_for(progress.get(), 30)  # it holds the run's lease: no worker takes it
        # ...while the first account's syncs in a worker process, at the same time.
        workers.append(await start_worker(gw))
        there = await service.connect(
            "acct-1", "bigcommerce", "There", sim.store_url, sim.credentials(), options=options
        )
        there_run = (await gw.runs.latest(there.id, 1))[0]
        done_there = await wait_run(gw, there_run.id, 180)
        done_here = await asyncio.wait_for(here_task, 180)
    finally:
        await stop(workers)
        await sim.stop()

    assert done_here is not None and done_here.status == RunStatus.SUCCEEDED, done_here
    assert done_there.status == RunStatus.SUCCEEDED, done_there.failure
    assert done_here.counts.added == done_there.counts.added == 2500
    # This process never works queued runs (no worker here), so the worker process ran the other one, and
    # the two ran at the same time.
    assert done_there.started_at is not None and done_here.finished_at is not None
    assert done_there.started_at < done_here.finished_at
    assert sim.faults.api_requests > 4 * TIGHT["quota"]  # the quota bound them for several windows
    assert sim.rate_limited == 0, f"the store answered 429 {sim.rate_limited} time(s)"


async def test_every_connection_to_a_store_spends_one_shared_state(gw: Gateway) -> None:
    """Runs and webhook batches (`connection`), connect checks (`connection_for`) and webhook repair all
    build their clients through the connection's factory: each client's budget is bound to the store's
    state in Redis, the same for every integration of the store (and per app on Shopify)."""
    service = gw.integrations
    shopify = gw.registry.adapter("shopify")
    store = "https://alana-shared.myshopify.com"
    app = {"access_token": "shpat_one", "client_secret": "shpss_app"}
    saved = Integration(
        id="one",
        account_id="acct-1",
        platform="shopify",
        name="Saved",
        store_url=store,
        created_at=utcnow(),
        credentials=gw.box.seal(app, seal_context("acct-1", "one")),
    )
    keys = []
    for conn in (
        service.connection_for("check", store + "/", app),
        service.connection_for("other-account", store, {**app, "access_token": "shpat_two"}),
        service.connection(saved),
        service.connection_for("custom-app", store, {**app, "client_secret": "shpss_another"}),
    ):
        budget = shopify.client(conn).budget
        assert isinstance(budget, ShopifyBudget) and isinstance(budget.shared, RedisRateState)
        assert budget.shared.store == "alana-shared.myshopify.com"
        keys.append(budget.shared.key(budget.name))
        await conn.close()
    assert keys[0] == keys[1] == keys[2] != keys[3]  # one bucket per app and shop
