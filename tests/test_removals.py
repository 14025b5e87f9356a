"""Removal detection survives anything: workers killed with SIGKILL and Redis losing its data during
full runs never remove a product the store still has, and the run's summary stays exact.

Real worker processes, a Valkey of the test's own (so FLUSHALL touches nobody else), the toy store.
The first explicit example is issue 11's finding 2: a full run resumed after its worker died and
Redis lost its data removed 1,585 of 3,000 live products.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gwtest import make_settings, worker_env
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient

from gateway.adapter import MappingContext
from gateway.constants import run_channel
from gateway.domain import RunKind, RunStatus, Trigger
from gateway.embedded import start_valkey
from gateway.runs import Run
from gateway.services import Gateway
from gateway.settings import Settings
from gateway.testing.toy import ToyAdapter, ToySimulator

PRODUCTS = 160
PAGE = 10


class Rig:
    """A Valkey of the test's own and real workers on it, shared by the examples (each has its own
    integration): only a killed worker is replaced."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self) -> None:
        env = worker_env(self.settings, GATEWAY_RUN_LEASE_SECONDS="2")
        command = [sys.executable, "-m", "gateway.cli", "worker"]
        self.workers.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def kill_owner(self, lease_owner: str) -> bool:
        """SIGKILL the worker holding the run (its id names its pid) and start another."""
        victim = next((w for w in self.workers if f":{w.pid}:" in lease_owner and w.poll() is None), None)
        if victim is None:
            return False
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.start_worker()
        return True


@pytest.fixture(scope="module")
def rig(mongodb_url: str) -> Iterator[Rig]:
    with tempfile.TemporaryDirectory() as tmp, start_valkey(Path(tmp)) as valkey:
        rig = Rig(make_settings(mongodb_url, valkey.url))
        rig.start_worker()
        rig.start_worker()
        try:
            yield rig
        finally:
            for worker in rig.workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                    worker.wait()
            with MongoClient(mongodb_url) as client:
                client.drop_database(rig.settings.mongodb_database)


#: A fault, injected once the run has processed this many products: the worker holding the run is
#: killed, Redis loses everything (FLUSHALL), or both.
fault = st.tuples(st.sampled_from(["kill", "flush", "kill+flush"]), st.integers(PAGE, PRODUCTS - 3 * PAGE))
# The store's changes since the last full run: deleted, updated and new products.
change = st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 6))


@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(faults=st.lists(fault, min_size=1, max_size=2), changes=change)
@example(faults=[("kill+flush", 60)], changes=(10, 5, 3))  # issue 11, finding 2
def test_kills_and_redis_data_loss_never_remove_a_live_product(
    rig: Rig, faults: list[tuple[str, int]], changes: tuple[int, int, int]
) -> None:
    asyncio.run(asyncio.wait_for(_full_run_under_faults(rig, faults, changes), 150))


async def _full_run_under_faults(rig: Rig, faults: list[tuple[str, int]], changes: tuple[int, int, int]) -> None:
    gw = await Gateway.create(rig.settings)
    sim = ToySimulator(products=PRODUCTS, seed=len(faults))
    sim.deliver_webhooks = False  # the store's changes reach the gateway only through the run
    await sim.start()
    integration = await gw.integrations.connect(
        "acct-1", "toy", "faults", sim.store_url, sim.credentials(), options={"page_size": PAGE}
    )
    try:
        first = (await gw.runs.latest(integration.id, 1))[0]
        async with gw.hub.listen(run_channel(first.id)) as progress:
            assert (await _finished(gw, first.id, progress)).status is RunStatus.SUCCEEDED

        deleted, updated, added = changes
        ids = sim.product_ids()
        for external_id in ids[:deleted]:
            sim.delete_product(external_id)
        for external_id in ids[deleted : deleted + updated]:
            sim.update_product(external_id)
        for _ in range(added):
            sim.create_product()

        integration = await gw.integrations.get("acct-1", integration.id)
        run, _ = await gw.syncs.queue(integration, Trigger.MANUAL, kind=RunKind.FULL)
        run_id = run.id
        sim.faults.set(slow_ms=25)
        killed = 0
        async with gw.hub.listen(run_channel(run_id)) as progress:
            for what, at in sorted(faults, key=lambda f: f[1]):
                if not await _reached(gw, run_id, progress, at):
                    break  # the run ended before this fault's moment
                if "kill" in what:
                    current = await gw.runs.get_any(run_id)
                    killed += rig.kill_owner((current.lease_owner if current else None) or "")
                if "flush" in what:
                    await gw.redis.flushall()
            sim.faults.set(slow_ms=0)
            done = await _finished(gw, run_id, progress)

        assert done.status == RunStatus.SUCCEEDED, done
        assert done.attempts >= 1 + killed  # each killed worker's run was taken over
        live = set(sim.product_ids())
        query = {"integration_id": integration.id, "removed": {"$ne": True}}
        stored = {d["external_id"] async for d in gw.db.products.find(query)}
        assert stored == live  # nothing the store has was removed, everything it lost was
        assert done.counts.as_dict() == {
            "added": added,
            "updated": updated,
            "unchanged": PRODUCTS - deleted - updated,
            "removed": deleted,
            "failed": 0,
            "conflicts": 0,
        }
    finally:
        await sim.stop()
        await gw.products.delete_integration(integration.id)
        await gw.close()


async def _reached(gw: Gateway, run_id: str, progress: asyncio.Queue[Any], processed: int) -> bool:
    """Wait until the run has processed `processed` products; False if it ended first."""
    while True:
        run = await gw.runs.get_any(run_id)
        assert run is not None
        if run.status.finished:
            return False
        if run.progress.processed >= processed:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(progress.get(), 1.0)


async def _finished(gw: Gateway, run_id: str, progress: asyncio.Queue[Any]) -> Run:
    while True:
        run = await gw.runs.get_any(run_id)
        assert run is not None
        if run.status.finished:
            return run
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(progress.get(), 1.0)


async def test_a_run_whose_seen_set_is_incomplete_removes_nothing_and_says_so(
    gw: Gateway, toy_store: ToySimulator
) -> None:
    integration = await gw.integrations.connect(
        "acct-1", "toy", "old", toy_store.store_url, toy_store.credentials(), options={"page_size": 10}
    )
    first = await gw.engine.run((await gw.runs.latest(integration.id, 1))[0].id)
    assert first is not None and first.status is RunStatus.SUCCEEDED
    toy_store.deliver_webhooks = False
    toy_store.delete_product("4")
    toy_store.delete_product("5")

    run, _ = await gw.syncs.queue(
        await gw.integrations.get("acct-1", integration.id), Trigger.MANUAL, kind=RunKind.FULL
    )
    # A run an earlier release had begun: its first page was checkpointed, but the ids that page saw
    # were in Redis only, so this run has no record of them.
    await gw.db.runs.update_one(
        {"_id": run.id},
        {
            "$set": {
                "checkpoint": {"cursor": "2", "max_updated": None, "complete": False},
                "progress.processed": 10,
                "counts.unchanged": 8,
            }
        },
    )
    done = await gw.engine.run(run.id)
    assert done is not None and done.status is RunStatus.SUCCEEDED
    assert done.counts.removed == 0 and done.counts.unchanged == 8 + 18 and done.progress.processed == 28
    assert [e.code for e in done.errors] == ["REMOVALS_SKIPPED"]
    assert await gw.products.count("acct-1", integration.id) == 30  # nothing removed on an incomplete set

    run, _ = await gw.syncs.queue(
        await gw.integrations.get("acct-1", integration.id), Trigger.MANUAL, kind=RunKind.FULL
    )
    done = await gw.engine.run(run.id)  # the next full run finishes the job
    assert done is not None and done.counts.removed == 2 and done.errors == ()
    assert await gw.products.count("acct-1", integration.id) == 28


async def test_a_product_a_webhook_wrote_during_a_full_run_is_not_removed_by_it(
    gw: Gateway, toy_store: ToySimulator
) -> None:
    integration = await gw.integrations.connect(
        "acct-1", "toy", "race", toy_store.store_url, toy_store.credentials(), options={"page_size": 10}
    )
    assert (await gw.engine.run((await gw.runs.latest(integration.id, 1))[0].id)) is not None
    toy_store.deliver_webhooks = False
    original = gw.products.write_page
    late = toy_store.create_product(name="Created while the run was past its page")
    native = toy_store.catalog.pop(late)  # the run's pages will not list it: it arrives by webhook only

    async def page_then_webhook(*args: Any, **kwargs: Any) -> Any:
        written = await original(*args, **kwargs)
        if await gw.products.count("acct-1", integration.id) == 30:  # after the run's first page
            product = ToyAdapter().map_product(native, MappingContext())
            await gw.products.write_one("acct-1", integration.id, product, product.content_hash(), None)
        return written

    gw.products.write_page = page_then_webhook  # type: ignore[method-assign]
    try:
        run, _ = await gw.syncs.queue(integration, Trigger.MANUAL, kind=RunKind.FULL)
        done = await gw.engine.run(run.id)
    finally:
        gw.products.write_page = original  # type: ignore[method-assign]
    assert done is not None and done.counts.removed == 0 and done.counts.unchanged == 30
    assert await gw.products.count("acct-1", integration.id) == 31


async def test_a_page_read_before_a_webhook_removed_a_product_does_not_bring_it_back(
    gw: Gateway, toy_store: ToySimulator
) -> None:
    integration = await gw.integrations.connect(
        "acct-1", "toy", "stale page", toy_store.store_url, toy_store.credentials(), options={"page_size": 10}
    )
    assert (await gw.engine.run((await gw.runs.latest(integration.id, 1))[0].id)) is not None
    toy_store.deliver_webhooks = False
    original = gw.products.write_page
    removed: list[int] = []

    async def removal_then_page(*args: Any, **kwargs: Any) -> Any:
        if "30" in args[3] and not removed:
            # The run holds its last page (product 30 on it) when the store deletes product 30 and the
            # deletion's webhook is applied; then the run writes the page it read before.
            toy_store.delete_product("30")
            removed.append(await gw.products.mark_removed(integration.id, ["30"], None))
        return await original(*args, **kwargs)

    gw.products.write_page = removal_then_page  # type: ignore[method-assign]
    try:
        run, _ = await gw.syncs.queue(integration, Trigger.MANUAL, kind=RunKind.FULL)
        done = await gw.engine.run(run.id)
    finally:
        gw.products.write_page = original  # type: ignore[method-assign]
    assert removed == [1]
    assert done is not None and done.status is RunStatus.SUCCEEDED
    # Not added back, not removed by the run either: the webhook removed it. Every product checked once.
    assert (done.counts.added, done.counts.removed, done.counts.unchanged) == (0, 0, 30), done.counts
    assert await gw.products.count("acct-1", integration.id) == 29
