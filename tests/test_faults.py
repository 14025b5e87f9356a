"""The fault matrix on the multi-process rig (gateway.testing.rig): two APIs, two workers.

Each test hurts one moving part during a full sync of a 2,000-product store while the store edits
products and delivers webhooks (through the rig's proxy, retried like a platform retries), then
checks what the gateway promises operators: the stored catalog equals the store's (nothing lost,
nothing duplicated, every edit applied), each run's summary equals a recount of what it wrote, health
says what happened, no run is left QUEUED or RUNNING, and /readyz said 503 while a dependency was
down and says 200 after.

The matrix takes minutes of two cores (each fault waits for its moment in a real sync and for the
recovery), more than the suite's ten-minute budget can hold beside everything else: `make test`
skips it, saying so; `make test-faults` (ALANA_FAULT_MATRIX=1) runs it, as CI-scale checks before a
release should. The scale-out, fuzz and operations tests run on the rig in every `make test`.

Tests marked xfail(strict=True) fail today for the reason given; whoever fixes it removes the mark
(an unexpected pass is an error, so the mark cannot outlive the bug).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from gateway.constants import account_channel
from gateway.domain import RunKind, RunStatus, SyncMode, utcnow
from gateway.runs import Run
from gateway.testing.rig import (
    Rig,
    Subscription,
    WebhookStream,
    WorkerProcess,
    catalog_diff,
    retrying,
    wait_progress,
    wait_run,
)
from gateway.testing.toy import ToySimulator

pytestmark = [
    pytest.mark.rig,
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        not os.environ.get("ALANA_FAULT_MATRIX"),
        reason="the fault matrix runs with `make test-faults` (ALANA_FAULT_MATRIX=1): minutes of two cores",
    ),
]

#: The store's size: big enough that the run outlasts the search for a fault's moment (freeze_at_a_moment)
#: on a loaded machine; an 800-product store was not (its run ended first). ALANA_FAULT_PRODUCTS=5000 runs
#: the matrix on a bigger store.
PRODUCTS = int(os.environ.get("ALANA_FAULT_PRODUCTS", "2000"))
#: Store edits per second while a test runs (each is a webhook delivery).
EDITS_PER_SECOND = 10.0
#: How long MongoDB or Valkey stays down.
OUTAGE_SECONDS = 10.0
#: How long the gateway gets, once the faults are over, to match the store. (Deliveries a dead worker held
#: go back to the queue when their claim's lease runs out: seconds on the rig.)
SETTLE_LIMIT = 60.0

#: With ALANA_FAULT_REPORT=<file>, every check appends what it found there, one JSON object per line:
#: `make bench` runs this matrix that way (benchmarks/faults.py) and writes the figures down.
REPORT = os.environ.get("ALANA_FAULT_REPORT")

RetryingToy = retrying(ToySimulator)


def report(**figures: Any) -> None:
    if REPORT:
        current = os.environ.get("PYTEST_CURRENT_TEST", "?")  # "tests/test_faults.py::test_x (call)"
        test = current.split("::")[-1].split(" ")[0]
        with open(REPORT, "a", encoding="utf-8") as out:
            out.write(json.dumps({"test": test, **figures}) + "\n")


PROGRESS = "subscription($id: ID!) { syncProgress(runId: $id) { runId status processed total } }"
HEALTH = """query($id: ID!) { integration(id: $id) { productCount
  health { status reason action lastRun { id status } } } }"""
SYNC_NOW = "mutation($id: ID!) { syncNow(integrationId: $id) { id status kind } }"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    async with Rig(Path(tmp_path_factory.mktemp("faults")), apis=2, workers=2) as started:
        yield started


@pytest_asyncio.fixture(loop_scope="session")
async def healed(rig: Rig) -> AsyncIterator[Rig]:
    await rig.heal()  # whatever the previous test broke is running again
    yield rig
    # A test that failed half-way leaves its store editing: stop it.
    for scenario in Scenario.live:
        if scenario.stream is not None:
            await scenario.stream.stop()
        await scenario.sim.stop()
    Scenario.live.clear()


@dataclass
class Scenario:
    """One store mid-way through its first full sync, with a stream of edits arriving as webhooks."""

    rig: Rig
    sim: ToySimulator
    account: str
    integration_id: str
    run_id: str
    stream: WebhookStream | None
    random: random.Random = field(default_factory=lambda: random.Random(7))
    began: float = field(default_factory=time.monotonic)
    edits: int = 0
    live: ClassVar[list[Scenario]] = []

    @classmethod
    async def begin(
        cls, rig: Rig, *, at: float = 0.3, edits_per_second: float = EDITS_PER_SECOND, **options: Any
    ) -> Scenario:
        sim = RetryingToy(products=PRODUCTS)
        assert isinstance(sim, ToySimulator)
        await sim.start()
        account = f"acct-{uuid.uuid4().hex[:8]}"
        integration = await rig.gw.integrations.connect(
            account, "toy", "Faulty store", sim.store_url, sim.credentials(), options=options
        )
        run = (await rig.gw.runs.latest(integration.id, 1))[0]
        scenario = cls(rig, sim, account, integration.id, run.id, None)
        if edits_per_second:
            scenario.stream = WebhookStream(scenario.edit, edits_per_second)
            scenario.stream.start()
        cls.live.append(scenario)
        # Hurt it once the run is well under way.
        progress = await wait_progress(rig.gw, run.id, int(PRODUCTS * at))
        assert progress.status is RunStatus.RUNNING, progress
        return scenario

    def edit(self, n: int) -> None:
        external_id = self.random.choice(list(self.sim.catalog))
        self.sim.update_product(external_id, name=f"Edit {n} of {external_id}")

    def catalog(self) -> dict[str, str]:
        return {external_id: str(p["name"]) for external_id, p in self.sim.catalog.items()}

    async def end(self) -> None:
        """Stop editing, then wait until the store has had every delivery answered (retries included)."""
        if self.stream is not None:
            self.edits = await self.stream.stop()
        await asyncio.wait_for(self.sim.drain_deliveries(), 120)
        await self.sim.stop()

    async def settle(self, limit: float = SETTLE_LIMIT) -> dict[str, Any]:
        """Wait until no run is active, no delivery waits and MongoDB matches the store; the last diff."""
        gw = self.rig.gw
        catalog = self.catalog()
        deadline = time.monotonic() + limit
        diff: dict[str, Any] = {}
        async with gw.hub.listen(account_channel(self.account)) as events:
            while time.monotonic() < deadline:
                with contextlib.suppress(Exception):  # a server may still be coming back
                    active = await gw.db.runs.count_documents({"integration_id": self.integration_id, "active": True})
                    waiting = await gw.db.queue.count_documents({"integration_id": self.integration_id})
                    waiting += await gw.webhooks.journal.length()  # answered, not yet in MongoDB
                    diff = await catalog_diff(gw, self.integration_id, catalog)
                    diff.update(active_runs=active, waiting_deliveries=waiting)
                    if not active and not waiting and not any(diff[k] for k in ("missing", "extra", "stale")):
                        return diff
                # Re-check after the next event, and at least every second.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(events.get(), 1.0)
                while not events.empty():
                    events.get_nowait()
        return diff

    async def health(self, api: int = 0) -> dict[str, Any]:
        body = await self.rig.graphql(api, HEALTH, {"id": self.integration_id}, account=self.account)
        assert not body.get("errors"), body
        health: dict[str, Any] = body["data"]["integration"]["health"]
        return health

    async def sync_now(self, api: int = 0) -> str:
        body = await self.rig.graphql(api, SYNC_NOW, {"id": self.integration_id}, account=self.account)
        assert not body.get("errors"), body
        return str(body["data"]["syncNow"]["id"])

    async def runs(self) -> list[Run]:
        return sorted(await self.rig.gw.runs.latest(self.integration_id, 1_000), key=lambda r: r.queued_at)

    async def check(self, diff: dict[str, Any]) -> list[Run]:
        """The checks every fault ends with; returns the integration's runs, oldest first."""
        runs = await self.runs()
        report(
            products=PRODUCTS,
            edits=self.edits,
            lost=len(diff["missing"]),
            extra=len(diff["extra"]),
            duplicated=len(diff["duplicated"]),
            stale=len(diff["stale"]),
            waiting=diff["waiting_deliveries"],
            stuck=len([r for r in runs if r.active]),
            runs=[
                f"{r.kind.value} {r.status.value} ({r.attempts} attempts)" for r in runs if r.kind is not RunKind.DIGEST
            ],
            seconds=round(time.monotonic() - self.began, 1),
        )
        assert diff["missing"] == [], f"{len(diff['missing'])} products lost: {diff['missing'][:20]}"
        assert diff["extra"] == [], f"{len(diff['extra'])} products the store does not have: {diff['extra'][:20]}"
        assert diff["duplicated"] == [], f"stored twice: {diff['duplicated'][:20]}"
        assert diff["stale"] == [], f"{len(diff['stale'])} edits not applied: {diff['stale'][:20]}"
        assert diff["waiting_deliveries"] == 0
        assert [r.status for r in runs if r.active] == [], "a run is stuck"
        for run in runs:
            await assert_summary_recounts(self.rig, run)
        assert [r for r in runs if r.kind is not RunKind.DIGEST][-1].status is RunStatus.SUCCEEDED, runs[-1]
        for api in self.rig.apis:
            assert await api.readyz() == 200
        return runs


async def assert_summary_recounts(rig: Rig, run: Run) -> None:
    """A run's counters against what MongoDB says it did."""
    counts = run.counts
    products = rig.gw.db.products
    added = await products.count_documents({"created_run": run.id})
    removed = await products.count_documents({"removed_run": run.id})
    assert (counts.added, counts.removed) == (added, removed), f"summary {counts} vs recount {added=} {removed=}"
    if run.status is RunStatus.SUCCEEDED and run.kind is RunKind.FULL:
        checked = counts.added + counts.updated + counts.unchanged + counts.failed
        assert checked == run.progress.processed == PRODUCTS, (counts, run.progress)


async def freeze_at_a_moment(rig: Rig, scenario: Scenario, workers: list[WorkerProcess], *, holding: bool) -> None:
    """Freeze `workers` (SIGSTOP) at a moment when deliveries of the store are (or, `holding=False`, are
    not) claimed by a worker. MongoDB is asked while they are frozen, so the answer still holds; when
    it does not, they are thawed and it is asked again a moment later."""
    claimed = {"integration_id": scenario.integration_id, "claim": {"$ne": None}}

    async def holds() -> bool:
        return (await rig.gw.db.queue.count_documents(claimed) > 0) == holding

    for _ in range(5_000):
        if await holds():  # looks right: freeze, and make sure it still is
            for worker in workers:
                worker.send(signal.SIGSTOP)
            if await holds():
                return
            thaw(workers)
        await asyncio.sleep(0.002)
    raise AssertionError(f"never found the moment (deliveries claimed: {holding})")


def thaw(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        worker.send(signal.SIGCONT)


async def kill_at_a_moment(rig: Rig, scenario: Scenario, victim: WorkerProcess, *, holding: bool) -> None:
    """SIGKILL `victim` at a moment when deliveries are (or are not) claimed."""
    await freeze_at_a_moment(rig, scenario, [victim], holding=holding)
    await victim.kill()


async def readyz_all(rig: Rig) -> list[int]:
    return [await api.readyz(limit=60) for api in rig.apis]


# ---------------------------------------------------------------- workers


async def test_a_worker_killed_mid_run(healed: Rig) -> None:
    rig = healed
    scenario = await Scenario.begin(rig)
    run = await rig.gw.runs.get_any(scenario.run_id)
    assert run is not None
    victim = rig.worker_owning(run.lease_owner)
    assert victim is not None, f"no rig worker holds the lease {run.lease_owner}"
    # Not while a worker holds claimed deliveries: that case is the test below.
    await kill_at_a_moment(rig, scenario, victim, holding=False)

    # The lease expires and the other worker resumes from the last checkpoint.
    done = await wait_run(rig.gw, scenario.run_id, limit=120)
    await scenario.end()
    diff = await scenario.settle()

    assert done.status is RunStatus.SUCCEEDED and done.attempts >= 2, done
    runs = await scenario.check(diff)
    assert len([r for r in runs if r.kind is not RunKind.DIGEST]) == 1  # the webhooks' digest aside
    health = await scenario.health(api=1)
    assert health["status"] == "GREEN" and health["lastRun"]["status"] == "SUCCEEDED", health


async def test_a_worker_killed_while_it_applies_webhooks(healed: Rig) -> None:
    rig = healed
    victim, other = rig.workers
    await other.stop()  # the victim alone works the run and the deliveries
    scenario = await Scenario.begin(rig)
    await kill_at_a_moment(rig, scenario, victim, holding=True)
    killed_at = utcnow()
    await other.start()

    done = await wait_run(rig.gw, scenario.run_id, limit=120)
    assert done.status is RunStatus.SUCCEEDED and done.attempts >= 2, done
    # By the time another worker has taken over the dead worker's run and finished it, the dead
    # worker's deliveries are no longer held either.
    held = {"integration_id": scenario.integration_id, "claim": {"$ne": None}, "claimed_at": {"$lt": killed_at}}
    assert await rig.gw.db.queue.count_documents(held) == 0
    await scenario.end()
    await scenario.check(await scenario.settle())


async def test_a_worker_killed_mid_run_while_redis_loses_its_data(healed: Rig) -> None:
    rig = healed
    scenario = await Scenario.begin(rig, at=0.5)
    run = await rig.gw.runs.get_any(scenario.run_id)
    assert run is not None
    victim = rig.worker_owning(run.lease_owner)
    assert victim is not None
    await victim.kill()
    await rig.gw.redis.flushall()  # as a Valkey restarted without persistence would

    done = await wait_run(rig.gw, scenario.run_id, limit=120)
    # Nothing the store has may be marked removed, whatever the webhooks still have to apply.
    lost = (await catalog_diff(rig.gw, scenario.integration_id, scenario.catalog()))["missing"]
    assert lost == [], f"{len(lost)} products lost ({done.status}, summary {done.counts})"
    await scenario.end()
    diff = await scenario.settle()

    assert done.status in (RunStatus.SUCCEEDED, RunStatus.FAILED), done
    if done.status is RunStatus.FAILED:  # failing clearly is fine; the next run then does the job
        assert (await wait_run(rig.gw, await scenario.sync_now())).status is RunStatus.SUCCEEDED
        diff = await scenario.settle()
    await scenario.check(diff)
    assert (await scenario.health())["status"] == "GREEN"


# ---------------------------------------------------------------- APIs


async def test_an_api_killed_mid_request_and_mid_subscription(healed: Rig) -> None:
    rig = healed
    scenario = await Scenario.begin(rig)
    token = rig.token(scenario.account)
    victim, survivor = rig.apis

    async with Subscription(victim.ws_url, token, PROGRESS, {"id": scenario.run_id}) as watching:
        first = await watching.next(30)
        assert first is not None and first["syncProgress"]["status"] == "RUNNING"
        # Requests in flight on the victim when it dies: product pages and Sync Now presses.
        presses = [
            asyncio.ensure_future(
                rig.graphql(victim, SYNC_NOW, {"id": scenario.integration_id}, account=scenario.account)
            )
            for _ in range(3)
        ]
        pages = [
            asyncio.ensure_future(
                rig.graphql(
                    victim, "{ products(first: 250) { totalCount edges { node { id } } } }", account=scenario.account
                )
            )
            for _ in range(3)
        ]
        await victim.kill()
        outcomes = await asyncio.gather(*presses, *pages, return_exceptions=True)
        # The subscription ends with the process...
        while await watching.next(30) is not None:
            pass
        assert watching.ended is not None and watching.ended != "complete"

    # ... and a client that subscribes again on the other API gets the current state, then the rest.
    async with Subscription(survivor.ws_url, token, PROGRESS, {"id": scenario.run_id}) as again:
        states = []
        while (message := await again.next(120)) is not None:
            states.append(message["syncProgress"])
    assert again.ended == "complete", (again.ended, again.errors)
    assert states[-1]["status"] == "SUCCEEDED" and states[-1]["processed"] == PRODUCTS, states[-3:]
    processed = [s["processed"] for s in states]
    assert processed == sorted(processed)

    # A press that got an answer before the kill got the running run, never a second one.
    answered = [o for o in outcomes[:3] if isinstance(o, dict) and not o.get("errors")]
    assert all(o["data"]["syncNow"]["id"] == scenario.run_id for o in answered), answered

    await victim.start()
    await scenario.end()
    diff = await scenario.settle()
    runs = await scenario.check(diff)
    assert runs[0].id == scenario.run_id and runs[0].status is RunStatus.SUCCEEDED
    assert (await scenario.health(api=0))["status"] == "GREEN"


# ---------------------------------------------------------------- the servers


async def test_valkey_stopped_for_ten_seconds(healed: Rig) -> None:
    """Issue 11 finding 6: workers wait Redis out instead of exiting; the interrupted run finishes with an
    exact summary, the webhooks sent meanwhile are applied, and a run queued meanwhile starts afterwards."""
    rig = healed
    other = ToySimulator(products=20, seed=11)
    await other.start()
    try:
        account = f"acct-{uuid.uuid4().hex[:8]}"
        manual = await rig.gw.integrations.connect(
            account, "toy", "Quiet store", other.store_url, other.credentials(), mode=SyncMode.MANUAL
        )
        first = (await rig.gw.runs.latest(manual.id, 1))[0]
        assert (await wait_run(rig.gw, first.id)).status is RunStatus.SUCCEEDED
        other.deliver_webhooks = False  # found by the run itself (held deliveries are counted apart: issue 15)
        other.create_product(name="Added while nobody synced")

        scenario = await Scenario.begin(rig)
        async with rig.outage("valkey"):
            started = time.monotonic()
            assert await readyz_all(rig) == [503, 503]
            # Sync Now while Redis is down: the run is QUEUED in MongoDB, its job cannot be.
            pressed, _ = await rig.gw.syncs.sync_now(account, manual.id, None)
            assert pressed.status is RunStatus.QUEUED
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))
        assert await readyz_all(rig) == [200, 200]
        dead = [w.name for w in rig.workers if not w.running]
        assert dead == [], f"workers exited during the outage: {dead}"

        await finish_after_outage(rig, scenario)
        await scenario.end()
        await scenario.check(await scenario.settle())
        assert (await scenario.health())["status"] == "GREEN"
        # The run queued during the outage was picked up once Redis was back.
        done = await wait_run(rig.gw, pressed.id, limit=120)
        assert done.status is RunStatus.SUCCEEDED and done.counts.added == 1, done
    finally:
        await other.stop()


async def mongodb_outage(rig: Rig, scenario: Scenario, *, while_applying: bool) -> None:
    """Stop MongoDB for OUTAGE_SECONDS at a moment when a worker is (or is not) applying deliveries."""
    await freeze_at_a_moment(rig, scenario, rig.workers, holding=while_applying)
    try:
        async with rig.outage("mongo"):
            thaw(rig.workers)  # they carry on with MongoDB gone
            started = time.monotonic()
            assert await readyz_all(rig) == [503, 503]
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))
    finally:
        thaw(rig.workers)
    assert await readyz_all(rig) == [200, 200]
    dead = [w.name for w in rig.workers if not w.running]
    assert dead == [], f"workers exited during the outage: {dead}"


async def finish_after_outage(rig: Rig, scenario: Scenario) -> None:
    done = await wait_run(rig.gw, scenario.run_id, limit=120)
    assert done.status in (RunStatus.SUCCEEDED, RunStatus.FAILED), done
    if done.status is RunStatus.FAILED:  # the run may fail, clearly; the next one must succeed
        assert done.failure, done
        assert (await scenario.health())["status"] == "RED"
        assert (await wait_run(rig.gw, await scenario.sync_now())).status is RunStatus.SUCCEEDED


async def test_mongodb_stopped_for_ten_seconds_during_a_full_sync_and_webhooks(healed: Rig) -> None:
    """The full sync and the deliveries both live through the outage. (A separate run without webhooks
    proved nothing more: the same run is checked here, with deliveries held by a worker as well.)"""
    rig = healed
    scenario = await Scenario.begin(rig)
    await mongodb_outage(rig, scenario, while_applying=True)
    back_at = utcnow()
    await finish_after_outage(rig, scenario)
    held = {"integration_id": scenario.integration_id, "claim": {"$ne": None}, "claimed_at": {"$lt": back_at}}
    assert await rig.gw.db.queue.count_documents(held) == 0, "deliveries claimed before the outage are still held"
    await scenario.end()
    await scenario.check(await scenario.settle())
    assert (await scenario.health())["status"] == "GREEN"


# ---------------------------------------------------------------- the store


async def test_a_store_that_throttles_then_errors_then_times_out(healed: Rig) -> None:
    """429s, then 500s, then no answer at all. The platform's minute of each is shortened to "until the
    run it hurts has given up": the client retries the same seven times whatever the phase lasts."""
    rig = healed
    scenario = await Scenario.begin(rig, timeout=0.5)
    faults = scenario.sim.faults
    phases: list[tuple[dict[str, Any], str]] = [
        ({"every_nth_429": 1, "retry_after": 0.1}, "kept throttling"),
        ({"burst_500": 1_000_000}, "answered 500"),
        ({"slow_ms": 1_500}, "could not be reached"),
    ]
    run_id = scenario.run_id
    for plan, reason in phases:
        faults.reset()
        faults.set(**plan)
        if run_id != scenario.run_id:
            run_id = await scenario.sync_now()
        done = await wait_run(rig.gw, run_id, limit=180)
        assert done.status is RunStatus.FAILED and reason in (done.failure or ""), done
        health = await scenario.health()
        assert health["status"] == "RED" and reason in health["reason"], health
        assert health["action"] == "RETRY"
        assert await readyz_all(rig) == [200, 200]  # a store's trouble is not the gateway's
        run_id = ""
    faults.reset()
    assert (await wait_run(rig.gw, await scenario.sync_now(), limit=120)).status is RunStatus.SUCCEEDED
    await scenario.end()
    runs = await scenario.check(await scenario.settle())
    assert [r.status for r in runs if r.kind is not RunKind.DIGEST] == [RunStatus.FAILED] * 3 + [RunStatus.SUCCEEDED]
    health = await scenario.health()
    assert health["status"] == "GREEN", health


async def test_a_failed_sync_now_counts_the_waiting_changes_it_applied(healed: Rig) -> None:
    rig = healed
    sim = ToySimulator(products=20)
    await sim.start()
    try:
        account = f"acct-{uuid.uuid4().hex[:8]}"
        integration = await rig.gw.integrations.connect(
            account, "toy", "Manual store", sim.store_url, sim.credentials(), mode=SyncMode.MANUAL
        )
        first = (await rig.gw.runs.latest(integration.id, 1))[0]
        assert (await wait_run(rig.gw, first.id)).status is RunStatus.SUCCEEDED
        sim.create_product(name="Made while nobody synced")  # kept for the next Sync Now
        await sim.drain_deliveries()
        assert await rig.gw.db.queue.count_documents({"integration_id": integration.id}) == 1
        sim.faults.set(burst_500=1_000_000)  # then the store fails every request

        body = await rig.graphql(1, SYNC_NOW, {"id": integration.id}, account=account)
        done = await wait_run(rig.gw, body["data"]["syncNow"]["id"])
    finally:
        await sim.stop()
    assert done.status is RunStatus.FAILED, done
    await assert_summary_recounts(rig, done)
