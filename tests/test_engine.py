"""The sync engine on the toy platform: runs, change detection, faults, cancellation, resumption."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from gwtest import Api, connect, progress_of, start_worker, wait_run

from gateway.constants import run_channel
from gateway.domain import RunKind, Trigger
from gateway.events import RunEvent
from gateway.services import Gateway
from gateway.testing.toy import ToySimulator

SYNC_NOW = "mutation($id: ID!, $full: Boolean) { syncNow(integrationId: $id, full: $full) { id status } }"


async def first_sync(gw: Gateway, api: Api, sim: ToySimulator) -> str:
    integration_id = await connect(api, sim)
    run = await gw.runs.latest(integration_id, 1)
    done = await wait_run(gw, run[0].id)
    assert done.status == "SUCCEEDED", done
    return integration_id


async def sync_now(gw: Gateway, api: Api, integration_id: str, full: bool | None = None) -> dict[str, Any]:
    data = await api.query(SYNC_NOW, {"id": integration_id, "full": full})
    return await wait_run(gw, data["syncNow"]["id"])


async def test_full_then_incremental_then_removals(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await first_sync(gw, api, toy_store)
    unchanged = await sync_now(gw, api, integration_id, full=True)
    assert unchanged.kind == "FULL"
    assert unchanged.counts.as_dict() == {
        "added": 0,
        "updated": 0,
        "unchanged": 30,
        "removed": 0,
        "failed": 0,
        "conflicts": 0,
    }
    versions = {d["_id"]: d["version"] async for d in gw.db.products.find({}, {"version": 1})}

    toy_store.deliver_webhooks = False  # these changes reach the gateway only through the sync
    for external_id in ("3", "4", "5"):
        toy_store.update_product(external_id)
    toy_store.delete_product("7")
    toy_store.delete_product("8")
    requests_before = toy_store.faults.api_requests
    incremental = await sync_now(gw, api, integration_id)
    assert incremental.kind == "INCREMENTAL", incremental
    assert incremental.counts.updated == 3, (incremental.counts.as_dict(), incremental.progress)
    assert incremental.counts.removed == 0
    assert toy_store.faults.api_requests - requests_before <= 3  # count + one page, not the catalog
    after = {d["_id"]: d["version"] async for d in gw.db.products.find({}, {"version": 1})}
    changed = {pid for pid in versions if after[pid] != versions[pid]}
    assert changed == {f"{integration_id}:{e}" for e in ("3", "4", "5")}

    full = await sync_now(gw, api, integration_id, full=True)
    assert full.counts.removed == 2 and full.counts.unchanged == 28
    removed = await gw.db.products.count_documents({"integration_id": integration_id, "removed": True})
    assert removed == 2  # kept and flagged, never deleted
    data = await api.query(
        "query($id: ID!) { integration(id: $id) { productCount apiCallsLast24h } }", {"id": integration_id}
    )
    assert data["integration"]["productCount"] == 28
    assert data["integration"]["apiCallsLast24h"] > 0


async def test_products_by_id_and_summary_errors(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await first_sync(gw, api, toy_store)
    toy_store.deliver_webhooks = False
    toy_store.update_product("2", name="Renamed")
    toy_store.delete_product("9")
    data = await api.query(
        'mutation($id: ID!) { syncNow(integrationId: $id, productExternalIds: ["2", "9"]) { id } }',
        {"id": integration_id},
    )
    run = await wait_run(gw, data["syncNow"]["id"])
    assert run.kind == "PRODUCTS"
    assert run.counts.updated == 1 and run.counts.removed == 1

    toy_store.faults.set(malformed_ids=["5"])
    toy_store.update_product("5")
    run = await sync_now(gw, api, integration_id, full=True)
    assert run.status == "SUCCEEDED"
    assert run.counts.failed == 1
    summary = await api.query(
        "query($id: ID!) { syncRun(id: $id) { summary { failed errors { externalId code message } } } }",
        {"id": run.id},
    )
    errors = summary["syncRun"]["summary"]["errors"]
    assert errors[0]["externalId"] == "5" and errors[0]["code"] == "BAD_PRICE"
    # The broken product's earlier version is kept, and it was not counted as removed.
    assert await gw.db.products.count_documents({"external_id": "5", "removed": False}) == 1


async def test_throttling_and_server_errors_are_retried(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    toy_store.faults.set(every_nth_429=5, burst_500=3, retry_after=0.01)
    integration_id = await first_sync(gw, api, toy_store)
    assert await gw.db.products.count_documents({"integration_id": integration_id}) == 30
    assert toy_store.faults.injected_500 == 3 and toy_store.faults.injected_429 >= 1


async def test_store_that_rejects_credentials_fails_the_run_and_turns_red(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await first_sync(gw, api, toy_store)
    toy_store.token = "rotated"
    run = await sync_now(gw, api, integration_id)
    assert run.status == "FAILED"
    data = await api.query(
        "query($id: ID!) { integration(id: $id) { productCount health { status reason } } }",
        {"id": integration_id},
    )
    assert data["integration"]["health"]["status"] == "RED"
    assert "credentials" in data["integration"]["health"]["reason"]
    assert data["integration"]["productCount"] == 30  # it keeps what it saved


async def test_sync_now_returns_the_active_run_and_cancel_keeps_saved_products(
    gw: Gateway, api: Api, worker: object
) -> None:
    sim = ToySimulator(products=200)
    await sim.start()
    try:
        integration = await gw.integrations.connect(
            "acct-1", "toy", "slow", sim.store_url, sim.credentials(), options={"page_size": 10}
        )
        first = await gw.runs.latest(integration.id, 1)
        await wait_run(gw, first[0].id)
        sim.faults.set(slow_ms=40)
        data = await api.query(SYNC_NOW, {"id": integration.id, "full": True})
        again = await api.query(SYNC_NOW, {"id": integration.id, "full": True})
        run_id = data["syncNow"]["id"]
        assert again["syncNow"]["id"] == run_id
        async with gw.hub.listen(run_channel(run_id)) as queue:
            while True:
                event = await asyncio.wait_for(queue.get(), 30)
                if isinstance(event, RunEvent) and event.run.progress.processed >= 30:
                    break
        cancelled = await api.query("mutation($id: ID!) { cancelSyncRun(runId: $id) { id } }", {"id": run_id})
        assert cancelled["cancelSyncRun"]["id"] == run_id
        run = await wait_run(gw, run_id)
        assert run.status == "CANCELLED"
        assert 30 <= run.progress.processed < 200
        assert await gw.db.products.count_documents({"integration_id": integration.id, "removed": False}) == 200
    finally:
        await sim.stop()


async def test_progress_subscription_is_monotonic_and_completes(gw: Gateway, api: Api, worker: object) -> None:
    sim = ToySimulator(products=120)
    await sim.start()
    try:
        integration = await gw.integrations.connect(
            "acct-1", "toy", "progress", sim.store_url, sim.credentials(), options={"page_size": 20}
        )
        run_id = (await gw.runs.latest(integration.id, 1))[0].id
        transport = WebsocketsTransport(
            url=api.url.replace("http", "ws") + "/graphql",
            init_payload={"Authorization": f"Bearer {api.token('acct-1')}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        request = GraphQLRequest(
            "subscription($id: ID!) { syncProgress(runId: $id) { status processed total percent } }",
            variable_values={"id": run_id},
        )
        async with Client(transport=transport) as session:
            events = [e["syncProgress"] async for e in session.subscribe(request)]
        processed = [e["processed"] for e in events]
        assert processed == sorted(processed)
        assert events[-1]["status"] == "SUCCEEDED" and events[-1]["percent"] == 100.0
        assert events[-1]["processed"] == 120 and events[-1]["total"] == 120
        run = await gw.runs.get_any(run_id)
        assert run is not None and run.queued_at <= run.started_at <= run.finished_at
    finally:
        await sim.stop()


async def test_a_killed_worker_is_resumed_with_exactly_the_right_products(gw: Gateway) -> None:
    sim = ToySimulator(products=150)
    await sim.start()
    first = await start_worker(gw)
    second: asyncio.subprocess.Process | None = None
    try:
        integration = await gw.integrations.connect(
            "acct-1", "toy", "kill", sim.store_url, sim.credentials(), options={"page_size": 10}
        )
        run_id = (await gw.runs.latest(integration.id, 1))[0].id
        sim.faults.set(slow_ms=30)
        async with gw.hub.listen(run_channel(run_id)) as queue:
            while (await progress_of(queue)) < 40:
                pass
        first.send_signal(signal.SIGKILL)
        await first.wait()
        sim.faults.set(slow_ms=0)
        second = await start_worker(gw)
        run = await wait_run(gw, run_id, 60)
        assert run.status == "SUCCEEDED" and run.attempts >= 2
        assert run.counts.added == 150 and run.counts.unchanged == 0
        ids = [d["external_id"] async for d in gw.db.products.find({"integration_id": integration.id})]
        assert sorted(ids, key=int) == [str(i) for i in range(1, 151)]
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await process.wait()
        await sim.stop()


async def test_one_active_run_per_integration_is_enforced_by_the_database(gw: Gateway, toy_store: ToySimulator) -> None:
    integration = await gw.integrations.connect("acct-1", "toy", "x", toy_store.store_url, toy_store.credentials())
    service = gw.syncs
    results = await asyncio.gather(*(service.queue(integration, Trigger.MANUAL, kind=RunKind.FULL) for _ in range(5)))
    assert len({run.id for run, _ in results}) == 1


async def test_the_worker_serves_its_own_metrics(gw: Gateway, toy_store: ToySimulator) -> None:
    import aiohttp

    from gateway.simkit import free_port

    port = free_port()
    worker = await start_worker(gw, GATEWAY_WORKER_METRICS_PORT=str(port), GATEWAY_HOST="127.0.0.1")
    try:
        integration = await gw.integrations.connect("acct-1", "toy", "m", toy_store.store_url, toy_store.credentials())
        run = await wait_run(gw, (await gw.runs.latest(integration.id, 1))[0].id)
        assert run.status == "SUCCEEDED"
        # The worker counts the run just after it is marked SUCCEEDED, which is what wait_run saw: scrape until
        # the count is there (or the deadline says it never came).
        deadline = asyncio.get_running_loop().time() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    text = await response.text()
                counted = 'gateway_sync_runs_total{status="SUCCEEDED"} 1.0' in text
                if counted or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.05)  # a scrape is the only way to ask another process's counter
        assert counted, text
        assert "gateway_queue_depth" in text
    finally:
        worker.send_signal(signal.SIGTERM)
        await worker.wait()


async def test_a_run_handed_twice_to_one_process_is_worked_once(gw: Gateway, api: Api, toy_store: ToySimulator) -> None:
    """arq can hand one process a run's job again while the first attempt still works it (the job was
    re-enqueued after Redis lost its in-progress key): the second attempt must not share the lease."""
    integration_id = await connect(api, toy_store)
    run = (await gw.runs.latest(integration_id, 1))[0]
    second: list[object] = []

    async def hand_it_again(_: object) -> None:
        second.append(await gw.engine.run(run.id))

    done = await gw.engine.run(run.id, before=[hand_it_again])
    assert second == [None]  # the second attempt found the run held and left it alone
    assert done is not None and done.status == "SUCCEEDED"
    assert done.counts.added == 30 and done.attempts == 1, done
