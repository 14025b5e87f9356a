"""WooCommerce end to end on real servers: connect, Sync Now, progress, summaries, faults, worker death."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from gwtest import Api, connect, progress_of, start_worker, wait_run

from gateway.constants import run_channel
from gateway.services import Gateway
from gateway.simkit import Simulator

SYNC_NOW = "mutation($id: ID!, $full: Boolean) { syncNow(integrationId: $id, full: $full) { id } }"
SUMMARY = """query($id: ID!) { syncRun(id: $id) { status summary { added updated unchanged removed failed
  errors { externalId code message } } } }"""


def woo_simulator(products: int) -> Simulator:
    from alana_woocommerce.simulator import WooCommerceSimulator

    return WooCommerceSimulator(products=products, seed=3, examples=False)


@pytest_asyncio.fixture
async def woo() -> AsyncIterator[Any]:
    sim = woo_simulator(1000)
    await sim.start()
    yield sim
    await sim.stop()


async def summary(api: Api, run_id: str) -> dict[str, Any]:
    data = await api.query(SUMMARY, {"id": run_id})
    return dict(data["syncRun"])


async def test_connect_sync_now_progress_and_summaries(gw: Gateway, api: Api, worker: object, woo: Any) -> None:
    variable = sum(1 for p in woo.products.values() if p.get("type") == "variable")
    assert 250 <= variable <= 420  # about a third of the catalog has variations
    integration_id = await connect(api, woo, platform="woocommerce")
    first = (await gw.runs.latest(integration_id, 1))[0].id
    transport = WebsocketsTransport(
        url=api.url.replace("http", "ws") + "/graphql",
        init_payload={"Authorization": f"Bearer {api.token('acct-1')}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    request = GraphQLRequest(
        "subscription($id: ID!) { syncProgress(runId: $id) { status processed percent } }",
        variable_values={"id": first},
    )
    async with Client(transport=transport) as session:
        events = [e["syncProgress"] async for e in session.subscribe(request)]
    processed = [e["processed"] for e in events]
    assert processed == sorted(processed) and len(events) >= 3
    assert events[-1]["status"] == "SUCCEEDED"
    result = await summary(api, first)
    assert result["summary"]["added"] == 1000 and result["summary"]["failed"] == 0
    variants = await gw.db.products.aggregate([{"$group": {"_id": None, "n": {"$sum": {"$size": "$store.variants"}}}}])
    async for row in variants:
        assert row["n"] >= 3 * variable

    versions = {d["_id"]: d["version"] async for d in gw.db.products.find({}, {"version": 1})}
    run = await wait_run(gw, (await api.query(SYNC_NOW, {"id": integration_id, "full": True}))["syncNow"]["id"])
    assert run.counts.unchanged == 1000 and run.counts.added == run.counts.updated == 0
    assert {d["_id"]: d["version"] async for d in gw.db.products.find({}, {"version": 1})} == versions

    woo.deliver_webhooks = False  # these changes must be found by the runs, not by webhooks
    ids = woo.product_ids()
    for external_id in ids[100:110]:
        woo.update_product(external_id)
    for external_id in ids[200:203]:
        woo.delete_product(external_id)
    requests_before = woo.faults.api_requests
    run = await wait_run(gw, (await api.query(SYNC_NOW, {"id": integration_id}))["syncNow"]["id"])
    assert run.kind == "INCREMENTAL" and run.counts.updated == 10
    # A page or two plus the variations of the changed products: independent of the catalog's size.
    assert woo.faults.api_requests - requests_before <= 20
    run = await wait_run(gw, (await api.query(SYNC_NOW, {"id": integration_id, "full": True}))["syncNow"]["id"])
    assert run.counts.removed == 3 and run.counts.unchanged == 997 - 10 + 10


# The run may take up to its 120 s wait on a loaded machine: the test's whole time (teardown included) gets more.
@pytest.mark.timeout(240)
async def test_throttling_server_errors_and_a_broken_product(gw: Gateway, api: Api, worker: object, woo: Any) -> None:
    broken = woo.product_ids()[17]
    woo.faults.set(every_nth_429=5, retry_after=0.01, burst_500=4, malformed_ids=[broken])
    integration_id = await connect(api, woo, platform="woocommerce")
    run = await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id, 120)
    assert run.status == "SUCCEEDED"
    result = await summary(api, run.id)
    assert result["summary"]["added"] == 999 and result["summary"]["failed"] == 1
    assert result["summary"]["errors"][0]["externalId"] == broken
    assert woo.faults.injected_429 > 10 and woo.faults.injected_500 == 4


async def test_a_killed_worker_resumes_a_woocommerce_sync(gw: Gateway, woo: Any) -> None:
    worker = await start_worker(gw, plugins="")
    second = None
    try:
        woo.faults.set(slow_ms=15)
        integration = await gw.integrations.connect("acct-1", "woocommerce", "kill", woo.store_url, woo.credentials())
        run_id = (await gw.runs.latest(integration.id, 1))[0].id
        async with gw.hub.listen(run_channel(run_id)) as queue:
            while (await progress_of(queue)) < 300:
                pass
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        woo.faults.set(slow_ms=0)
        second = await start_worker(gw, plugins="")
        run = await wait_run(gw, run_id, 120)
        assert run.status == "SUCCEEDED" and run.attempts >= 2
        assert run.counts.added == 1000
        stored = sorted([d["external_id"] async for d in gw.db.products.find({}, {"external_id": 1})], key=int)
        assert stored == sorted(woo.product_ids(), key=int)
    finally:
        for process in (worker, second):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await process.wait()
