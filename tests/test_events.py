"""Events a live UI can trust (issue 13): one HEALTH_CHANGED per transition and none without one,
YELLOW with WAIT as soon as a run is queued or starts, progress that never contradicts the run's
state, and late subscribers that get the current state first."""

from __future__ import annotations

import asyncio
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from gwtest import Api

from gateway.constants import account_channel, run_channel
from gateway.domain import HealthAction, HealthStatus, RunKind, RunStatus, SyncFrequency, Trigger
from gateway.events import Event, HealthChanged, ProductChanged, RunEvent
from gateway.runs import STARTING, WAITING
from gateway.services import Gateway
from gateway.testing.toy import ToySimulator

SENTINEL = "sentinel"


async def until_sentinel(gw: Gateway, queue: asyncio.Queue[Event], account: str = "acct-1") -> list[Event]:
    """Every event published before a sentinel this test publishes last (pub/sub keeps the order)."""
    await gw.publisher.publish(ProductChanged(account_id=account, integration_id="-", at=gw.now(), product_id=SENTINEL))
    events: list[Event] = []
    while True:
        event = await asyncio.wait_for(queue.get(), 20)
        if isinstance(event, ProductChanged) and event.product_id == SENTINEL:
            return events
        events.append(event)


def lights(events: list[Event]) -> list[tuple[HealthStatus, str | None, HealthAction | None]]:
    return [(e.health.status, e.health.reason, e.health.action) for e in events if isinstance(e, HealthChanged)]


async def test_each_health_transition_is_published_exactly_once(gw: Gateway, toy_store: ToySimulator) -> None:
    async with gw.hub.listen(account_channel("acct-1")) as queue:
        integration = await gw.integrations.connect(
            "acct-1", "toy", "lights", toy_store.store_url, toy_store.credentials()
        )
        queued = lights(await until_sentinel(gw, queue))
        assert queued == [(HealthStatus.YELLOW, "A sync is queued.", HealthAction.WAIT)]

        run = (await gw.runs.latest(integration.id, 1))[0]
        assert (await gw.engine.run(run.id)) is not None
        assert lights(await until_sentinel(gw, queue)) == [
            (HealthStatus.YELLOW, "A sync is running.", HealthAction.WAIT),
            (HealthStatus.GREEN, None, None),
        ]

        # Nothing that leaves the light as it is publishes anything.
        await gw.integrations.update_settings("acct-1", integration.id, None, SyncFrequency.EVERY_4_HOURS)
        await gw.health.refresh(integration.id)
        assert lights(await until_sentinel(gw, queue)) == []

        # Two processes (two gateways) that see the same transition at once publish it once.
        other = await Gateway.create(gw.settings)
        try:
            await gw.db.integrations.update_one({"_id": integration.id}, {"$set": {"pending_changes": 2}})
            await asyncio.gather(*(g.health.refresh(integration.id) for g in (gw, other, gw, other)))
        finally:
            await other.close()
        assert lights(await until_sentinel(gw, queue)) == [
            (HealthStatus.YELLOW, "2 changes waiting for Sync Now.", HealthAction.SYNC_NOW)
        ]

        # A Sync Now: queued, running, then green again (the manual run clears the waiting changes).
        again, _ = await gw.syncs.queue(integration, Trigger.MANUAL, kind=RunKind.INCREMENTAL)
        assert (await gw.engine.run(again.id)) is not None
        assert lights(await until_sentinel(gw, queue)) == [
            (HealthStatus.YELLOW, "A sync is queued. 2 changes waiting for Sync Now.", HealthAction.WAIT),
            (HealthStatus.YELLOW, "A sync is running. 2 changes waiting for Sync Now.", HealthAction.WAIT),
            (HealthStatus.GREEN, None, None),
        ]


async def test_progress_never_contradicts_the_run_state(gw: Gateway) -> None:
    sim = ToySimulator(products=60)
    await sim.start()
    try:
        integration = await gw.integrations.connect(
            "acct-1", "toy", "progress", sim.store_url, sim.credentials(), options={"page_size": 10}
        )
        run_id = (await gw.runs.latest(integration.id, 1))[0].id
        async with gw.hub.listen(run_channel(run_id)) as by_run, gw.hub.listen(account_channel("acct-1")) as by_acct:
            done = await gw.engine.run(run_id)
            assert done is not None and done.status is RunStatus.SUCCEEDED
            # The sentinel comes after every event published before it, on any channel (one reader).
            events = await until_sentinel(gw, by_acct) + _drain(by_run)
            seen = [(e.run.status, e.run.progress.message) for e in events if isinstance(e, RunEvent)]
        assert (RunStatus.RUNNING, STARTING) in seen and (RunStatus.SUCCEEDED, done.progress.message) in seen
        for status, message in seen:
            if status is RunStatus.RUNNING:
                assert message != WAITING and not (message or "").startswith("Done"), (status, message)
            elif status is RunStatus.SUCCEEDED:
                assert (message or "").startswith("Done"), (status, message)

        # The status and its message change in the same write: never RUNNING while "Waiting to start".
        again, _ = await gw.syncs.queue(integration, Trigger.MANUAL, kind=RunKind.FULL)
        assert (again.status, again.progress.message) == (RunStatus.QUEUED, WAITING)
        taken = await gw.runs.acquire_lease(again.id, "a-worker", 5)
        assert taken is not None and (taken.status, taken.progress.message) == (RunStatus.RUNNING, STARTING)
    finally:
        await sim.stop()


def _drain(queue: asyncio.Queue[Event]) -> list[Event]:
    events: list[Event] = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return events


SUBSCRIBE = """subscription($id: ID) { integrationEvents(integrationId: $id) {
  kind integrationId health { status reason action } run { id status progress { processed message } } } }"""


async def test_a_late_subscriber_gets_the_current_state_first(gw: Gateway, api: Api) -> None:
    sim = ToySimulator(products=80)
    other = ToySimulator(products=5)  # one store is one integration: the second one needs a store of its own
    await sim.start()
    await other.start()
    try:
        busy = await gw.integrations.connect(
            "acct-1", "toy", "busy", sim.store_url, sim.credentials(), options={"page_size": 10}
        )
        waiting = await gw.integrations.connect("acct-1", "toy", "waiting", other.store_url, other.credentials())
        run_id = (await gw.runs.latest(busy.id, 1))[0].id
        sim.faults.set(slow_ms=60)
        running = asyncio.ensure_future(gw.engine.run(run_id))
        async with gw.hub.listen(run_channel(run_id)) as progress:
            while not isinstance(event := await asyncio.wait_for(progress.get(), 30), RunEvent) or (
                event.run.progress.processed < 20
            ):
                pass

        transport = WebsocketsTransport(
            url=api.url.replace("http", "ws") + "/graphql",
            init_payload={"Authorization": f"Bearer {api.token('acct-1')}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        async with Client(transport=transport) as session:
            everything = session.subscribe(GraphQLRequest(SUBSCRIBE, variable_values={"id": None}))
            first: list[dict[str, Any]] = [(await anext(everything))["integrationEvents"] for _ in range(4)]
            await everything.aclose()
            one = session.subscribe(GraphQLRequest(SUBSCRIBE, variable_values={"id": busy.id}))
            state = [(await anext(one))["integrationEvents"] for _ in range(2)]
            sim.faults.set(slow_ms=0)
            live = (await anext(one))["integrationEvents"]  # then the live events
            await one.aclose()
        assert await running is not None

        by_integration = {(e["integrationId"], e["kind"]): e for e in first}
        assert [e["kind"] for e in first] == ["HEALTH_CHANGED", "RUN_PROGRESS", "HEALTH_CHANGED", "RUN_QUEUED"]
        assert by_integration[(busy.id, "HEALTH_CHANGED")]["health"] == {
            "status": "YELLOW",
            "reason": "A sync is running.",
            "action": "WAIT",
        }
        assert by_integration[(busy.id, "RUN_PROGRESS")]["run"]["status"] == "RUNNING"
        assert by_integration[(busy.id, "RUN_PROGRESS")]["run"]["progress"]["processed"] >= 20
        assert by_integration[(waiting.id, "HEALTH_CHANGED")]["health"]["reason"] == "A sync is queued."
        assert by_integration[(waiting.id, "RUN_QUEUED")]["run"]["status"] == "QUEUED"

        assert [e["kind"] for e in state] == ["HEALTH_CHANGED", "RUN_PROGRESS"]
        assert {e["integrationId"] for e in [*state, live]} == {busy.id}
        assert live["kind"] in ("RUN_PROGRESS", "RUN_FINISHED", "HEALTH_CHANGED", "PRODUCT_CHANGED")
    finally:
        await sim.stop()
        await other.stop()
