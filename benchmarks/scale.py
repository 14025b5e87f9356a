"""Issue 14's figures, measured on the multi-process rig (gateway.testing.rig): real `serve` and `worker`
processes over a MongoDB-protocol server and a Valkey of their own, with production settings.

- burst: a merchant's bulk edit, 10,000 webhook deliveries at 200/s into one API;
- soak: 1,000 integrations on EVERY_15_MINUTES for 30 simulated minutes, the scheduler ticking on a
  controllable clock (in this process; the workers' own schedulers are parked) while real workers run
  what it queues;
- fair: 100 integrations, one of them in a 50,000-product full sync, the others receiving webhooks
  at 20/s in total and Sync Now presses.

The benchmark plays the stores' webhook senders itself (signed toy deliveries straight to the API),
so that the rate and the moment of each delivery are its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from benchmarks.common import percentile, simulator
from gateway.constants import account_channel
from gateway.domain import RunStatus, SyncFrequency, utcnow
from gateway.events import ProductChanged
from gateway.integration_store import Integration
from gateway.testing.rig import Rig, wait_progress, wait_run

#: Production defaults (gateway/settings.py) where the test rig shortens them.
BENCH_ENV = {
    "GATEWAY_RUN_LEASE_SECONDS": "30",
    "GATEWAY_SCHEDULER_INTERVAL": "5",
    "GATEWAY_HTTP_BACKOFF_BASE": "0.25",
    "GATEWAY_WEBHOOK_COALESCE": "0.05",
    "GATEWAY_INCREMENTAL_OVERLAP": "300",
    "GATEWAY_STORE_CONCURRENCY": "8",
}
ACCOUNT = "bench"
#: How a platform treats a delivery: Shopify waits 5 s for an answer, then retries later.
PLATFORM_TIMEOUT = 5.0
PLATFORM_RETRY_AFTER = 10.0
PLATFORM_TRIES = 5
#: How long after the last delivery the burst benchmark waits for every product's last edit.
SETTLE_SECONDS = 300.0


def machine_load() -> list[float]:
    """1, 5 and 15 minute load averages: the machine is shared, and its load moves these figures."""
    return [round(x, 2) for x in os.getloadavg()]


def ms(values: list[float]) -> dict[str, float | None]:
    """p50 / p99 / max of durations in seconds, as milliseconds."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    out = [v * 1000 for v in values]
    return {"p50": round(percentile(out, 50), 1), "p99": round(percentile(out, 99), 1), "max": round(max(out), 1)}


def toy_product(external_id: str, name: str, updated_at: datetime) -> dict[str, Any]:
    return {
        "id": external_id,
        "name": name,
        "price": "9.99",
        "tags": ["bench"],
        "updated_at": updated_at.isoformat(),
        "variants": [{"id": f"{external_id}-1", "sku": f"B-{external_id}", "price": "9.99", "stock": 3}],
    }


def toy_delivery(secret: str, product: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A delivery exactly as the toy platform signs it."""
    body = json.dumps({"event": "upsert", "product": product}).encode()
    return body, {
        "X-Toy-Delivery": uuid.uuid4().hex,
        "X-Toy-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "Content-Type": "application/json",
    }


async def connect(
    rig: Rig, store_url: str, credentials: dict[str, str], name: str, account: str = ACCOUNT, **kwargs: Any
) -> Integration:
    return await rig.gw.integrations.connect(account, "toy", name, store_url, credentials, **kwargs)


def hook_secret(rig: Rig, integration: Integration) -> str:
    return rig.gw.integrations.credentials(integration)["hook_secret"]


def histogram_share_within(metrics: str, name: str, bound: str) -> float | None:
    """From Prometheus text: the share of observations of histogram `name` at or under bucket `bound`."""
    buckets = dict(re.findall(rf'^{name}_bucket{{le="([^"]+)"}} ([0-9.e+]+)$', metrics, re.MULTILINE))
    if bound not in buckets or not float(buckets.get("+Inf", 0)):
        return None
    return round(float(buckets[bound]) / float(buckets["+Inf"]), 4)


async def poll(condition: Callable[[], Awaitable[bool]], *, limit: float, every: float) -> bool:
    """A benchmark's poll (not a test's wait): True once `condition` holds, False after `limit` seconds."""
    deadline = time.perf_counter() + limit
    while True:
        if await condition():
            return True
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def bench_rig(apis: int, workers: int, **env: str) -> AsyncIterator[Rig]:
    async with Rig(apis=apis, workers=workers, env={**BENCH_ENV, **env}) as rig:
        yield rig


# ---------------------------------------------------------------- burst


async def webhook_burst(quick: bool) -> dict[str, Any]:
    """10,000 deliveries at 200/s for one store into one API: answered, kept, applied, coalesced."""
    deliveries, rate, products = (1_000, 200.0, 250) if quick else (10_000, 200.0, 2_000)
    async with simulator("toy", products) as sim, bench_rig(apis=1, workers=2) as rig:
        integration = await connect(rig, sim.store_url, sim.credentials, "burst", options={"page_size": 250})
        first = (await rig.gw.runs.latest(integration.id, 1))[0]
        assert (await wait_run(rig.gw, first.id, 600)).status is RunStatus.SUCCEEDED
        secret = hook_secret(rig, integration)
        api = rig.apis[0]
        ids = [str(n) for n in range(1, products + 1)]
        expected: dict[str, str] = {}
        stamp = datetime(2027, 1, 1, tzinfo=UTC)
        answers: list[tuple[float, int]] = []

        capacity = await closed_loop_capacity(api.url, integration.id, secret, ids, 20, 500 if quick else 2_000)
        timeouts = 0
        given_up = 0

        async def send(session: aiohttp.ClientSession, n: int) -> None:
            # As a platform does: a delivery not answered within PLATFORM_TIMEOUT counts as failed and is
            # sent again a little later (the same delivery id), up to a few times.
            nonlocal timeouts, given_up
            external_id = ids[n % len(ids)]
            name = f"Bulk edit {n}"
            expected[external_id] = name  # deliveries for one product are numbered in edit order
            body, headers = toy_delivery(secret, toy_product(external_id, name, stamp + timedelta(seconds=n)))
            for _ in range(PLATFORM_TRIES):
                sent = time.perf_counter()
                try:
                    async with session.post(
                        f"{api.url}/webhooks/toy/{integration.id}",
                        data=body,
                        headers=headers,
                        timeout=aiohttp.ClientTimeout(total=PLATFORM_TIMEOUT),
                    ) as response:
                        await response.read()
                        answers.append((time.perf_counter() - sent, response.status))
                        if 200 <= response.status < 300:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    timeouts += 1
                await asyncio.sleep(PLATFORM_RETRY_AFTER)
            given_up += 1

        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            started = time.perf_counter()
            tasks = []
            for n in range(deliveries):
                await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                tasks.append(asyncio.ensure_future(send(session, n)))
            sending_done = time.perf_counter()
            await asyncio.gather(*tasks)
            last_sent = time.perf_counter()
        sending_seconds = sending_done - started

        # Applied: every product carries its last edit (a benchmark poll, not a test wait). The products
        # are read only once nothing waits (the journal and the queue are empty): reading 2,000 of
        # them four times a second took much of the server's time from the appliers being measured.
        wrong = len(expected)
        deadline = time.perf_counter() + SETTLE_SECONDS
        while time.perf_counter() < deadline:
            if await rig.gw.webhooks.journal.length() or await rig.gw.db.queue.count_documents(
                {"integration_id": integration.id}
            ):
                await asyncio.sleep(0.25)
                continue
            stored = {
                d["external_id"]: d["store"]["title"]
                async for d in rig.gw.db.products.find(
                    {"integration_id": integration.id}, {"external_id": 1, "store.title": 1}
                )
            }
            wrong = sum(1 for e, name in expected.items() if stored.get(e) != name)
            if not wrong:
                break
            await asyncio.sleep(0.25)
        applied_after = time.perf_counter() - last_sent
        writes = 0
        async for row in await rig.gw.db.products.aggregate(
            [
                {"$match": {"integration_id": integration.id}},
                {"$group": {"_id": None, "v": {"$sum": "$version"}, "n": {"$sum": 1}}},
            ]
        ):
            writes = int(row["v"]) - int(row["n"])  # every product was written once by the full sync
        server_share = histogram_share_within(await api_metrics(api.url), "gateway_webhook_response_seconds", "0.02")
        return {
            "deliveries": deliveries,
            "products": products,
            "rate_per_second": rate,
            "achieved_rate_per_second": round(deliveries / sending_seconds, 1),
            "endpoint_ms": ms([seconds for seconds, _ in answers]),
            "server_share_within_20ms": server_share,
            "not_2xx": sum(1 for _, status in answers if not 200 <= status < 300),
            "timed_out_tries": timeouts,
            "platform_timeout_s": PLATFORM_TIMEOUT,
            "deliveries_given_up": given_up,
            # Products whose last edit was not stored SETTLE_SECONDS after the last answer: their
            # deliveries were given up (a platform would retry them for hours) or lost.
            "lost": wrong,
            "closed_loop_capacity": capacity,
            # After the last delivery was answered (retries included).
            "applied_seconds_after_last": round(applied_after, 2) if not wrong else None,
            "product_writes": writes,
            "writes_per_delivery": round(writes / deliveries, 3),
            "load_average": machine_load(),
        }


async def closed_loop_capacity(
    url: str, integration_id: str, secret: str, ids: list[str], concurrency: int, deliveries: int
) -> dict[str, Any]:
    """Deliveries per second the endpoint answers with `concurrency` senders that wait for each answer."""
    latencies: list[float] = []
    stamp = datetime(2026, 6, 1, tzinfo=UTC)  # older than the burst's edits: those still win
    counter = iter(range(deliveries))

    async def sender(session: aiohttp.ClientSession) -> None:
        for n in counter:
            product = toy_product(ids[n % len(ids)], f"Warm-up {n}", stamp + timedelta(seconds=n))
            body, headers = toy_delivery(secret, product)
            sent = time.perf_counter()
            async with session.post(f"{url}/webhooks/toy/{integration_id}", data=body, headers=headers) as r:
                await r.read()
            latencies.append(time.perf_counter() - sent)

    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "per_second": round(deliveries / elapsed, 1), "ms": ms(latencies)}


async def api_metrics(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        return await response.text()


# ---------------------------------------------------------------- soak


class SimulatedClock:
    """A clock the benchmark sets (Gateway.clock): the scheduler sees simulated time."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def soak(quick: bool) -> dict[str, Any]:
    """Integrations on EVERY_15_MINUTES for 30 simulated minutes: each due run once, how late, at what cost."""
    # The clock runs `speed` times real time, so the workers see `speed` times production's demand (1,000
    # stores every 15 minutes: 1.1 small runs a second). At 10x (11 a second) two workers on a 2-core
    # machine fall behind, whatever the scheduler does, and lateness measures that backlog; at 3x the
    # rig still carries three times production's load, in ten real minutes.
    n, speed = (100, 30.0) if quick else (1_000, 3.0)
    interval = 5.0  # the production scheduler interval, in simulated seconds
    window = timedelta(minutes=30)
    period = SyncFrequency.EVERY_15_MINUTES.period
    # The workers' own schedulers are parked: the benchmark ticks one on its clock.
    async with simulator("toy", 3) as sim, bench_rig(apis=0, workers=2, GATEWAY_SCHEDULER_INTERVAL="3600") as rig:
        gw = rig.gw
        connected = await connect(
            rig, sim.store_url, sim.credentials, "soak 0", frequency=SyncFrequency.EVERY_15_MINUTES
        )
        first = (await gw.runs.latest(connected.id, 1))[0]
        assert (await wait_run(gw, first.id, 120)).status is RunStatus.SUCCEEDED
        credentials = gw.integrations.credentials(await gw.integrations.get(ACCOUNT, connected.id))
        # Copied as stored: the benchmark inserts the other integrations directly, as many at once.
        template = await gw.db.integrations.find_one({"_id": connected.id})
        assert template is not None
        t0 = utcnow().replace(microsecond=0) + timedelta(hours=1)  # ahead of the real clock
        clock = SimulatedClock(t0 - timedelta(minutes=1))
        gw.clock = clock
        gw.scheduler.interval = interval
        due: dict[str, datetime] = {template["_id"]: t0}
        await gw.db.integrations.update_one(
            {"_id": template["_id"]},
            {"$set": {"next_sync_at": t0, "last_full_sync_at": t0, "last_sync_at": t0, "sync_cursor": t0}},
        )
        # The integrations arrive in three steps; between them, the cost of a tick with nothing due.
        idle_cost: dict[str, float] = {}
        maintenance_cost: dict[str, float] = {}
        for size in sorted({10, n // 10, n}):
            docs = []
            for i in range(len(due), size):
                integration_id = uuid.uuid4().hex
                due[integration_id] = t0 + period * i / n
                doc = {
                    **template,
                    "_id": integration_id,
                    "name": f"soak {i}",
                    # One store is one integration per account: each copy stands for a store of its own.
                    "store_identity": f"{template.get('store_identity')}#{i}",
                    "credentials": gw.box.seal(credentials, f"{ACCOUNT}/{integration_id}"),
                    "next_sync_at": due[integration_id],
                    "last_full_sync_at": t0,
                    "last_sync_at": t0,
                    "sync_cursor": t0,
                }
                docs.append(doc)
            if docs:
                await gw.db.integrations.insert_many(docs)
            costs, upkeep = [], []
            for _ in range(20):
                # What the worker's loop does at every turn: claim what is due, find when to turn next.
                started = time.perf_counter()
                await gw.scheduler.queue_due()
                await gw.scheduler.pause()
                costs.append(time.perf_counter() - started)
                # And once per interval: recovery and connection upkeep (webhook checks read widely).
                started = time.perf_counter()
                await gw.scheduler.maintain()
                upkeep.append(time.perf_counter() - started)
            idle_cost[str(size)] = round(percentile([c * 1000 for c in costs], 50), 2)
            maintenance_cost[str(size)] = round(percentile([c * 1000 for c in upkeep], 50), 2)

        ticks: list[tuple[float, float, int]] = []
        queued_at_sim: dict[str, datetime] = {}
        real_start = time.perf_counter()
        elapsed = 0.0
        while elapsed <= window.total_seconds():
            # As the worker's loop turns (Scheduler.step): at the next due run, at most an interval on.
            await asyncio.sleep(max(0.0, real_start + elapsed / speed - time.perf_counter()))
            now = clock.at = t0 + timedelta(seconds=elapsed)
            started = time.perf_counter()
            queued = await gw.scheduler.queue_due()
            ticks.append((elapsed, time.perf_counter() - started, len(queued)))
            for run_id in queued:
                queued_at_sim[run_id] = now
            # A clock running `speed` times real time: a turn that took longer than the pause finds the
            # clock further on and claims everything due by then at once, as the worker's loop would.
            elapsed = max(elapsed + await gw.scheduler.pause(), (time.perf_counter() - real_start) * speed)
        if ticks[-1][0] < window.total_seconds():  # the last turn, at the window's end
            now = clock.at = t0 + window
            started = time.perf_counter()
            queued = await gw.scheduler.queue_due()
            ticks.append((window.total_seconds(), time.perf_counter() - started, len(queued)))
            for run_id in queued:
                queued_at_sim[run_id] = now
        gw.clock = utcnow
        behind = time.perf_counter() - (real_start + window.total_seconds() / speed)

        async def all_finished() -> bool:
            return not await gw.db.runs.count_documents({"active": True})

        await poll(all_finished, limit=600, every=0.5)
        runs = [r async for r in gw.db.runs.find({"trigger": "SCHEDULED"}, {"errors": 0})]
        per_integration: dict[str, int] = {}
        lateness: list[float] = []
        claim_lateness: list[float] = []
        pickup: list[float] = []
        for run in runs:
            per_integration[run["integration_id"]] = per_integration.get(run["integration_id"], 0) + 1
            at = queued_at_sim[run["_id"]]
            first_due = due[run["integration_id"]]
            owed = first_due + period * ((at - first_due) // period)  # the due time this tick served
            # In real seconds: the simulated clock runs `speed` times faster, so a turn that took 0.3 s
            # moves it 0.3 * speed s on; at 1x (production) the same turn makes a run 0.3 s late.
            claim = (at - owed).total_seconds() / speed
            wait = (run["started_at"] - run["queued_at"]).total_seconds() if run.get("started_at") else float("nan")
            claim_lateness.append(claim)
            pickup.append(wait)
            lateness.append(claim + wait)
        end = t0 + window
        expected = {i: 1 + int((end - when) // period) for i, when in due.items()}
        busy = [cost for _, cost, count in ticks if count]
        return {
            "integrations": n,
            "simulated_minutes": 30,
            "clock_speed": speed,
            "scheduler_interval_s": interval,
            "ticks": len(ticks),
            "ticks_behind_real_time_s": round(max(0.0, behind), 2),
            "due_runs": sum(expected.values()),
            "scheduled_runs": len(runs),
            "missed": sum(max(0, e - per_integration.get(i, 0)) for i, e in expected.items()),
            "duplicated": sum(max(0, per_integration.get(i, 0) - e) for i, e in expected.items()),
            "not_succeeded": sum(1 for r in runs if r["status"] != "SUCCEEDED"),
            "lateness_ms": ms(lateness),
            "claim_lateness_ms": ms(claim_lateness),
            "queued_to_started_ms": ms(pickup),
            "tick_ms_with_runs_due": ms(busy),
            "runs_per_busy_tick": round(sum(c for _, _, c in ticks) / max(1, len(busy)), 2),
            "idle_tick_ms_by_integrations": idle_cost,
            "maintenance_ms_by_integrations": maintenance_cost,
            "load_average": machine_load(),
        }


# ---------------------------------------------------------------- fair work


async def fair_work(quick: bool) -> dict[str, Any]:
    """One store's big full sync against every other store's webhooks and Sync Now presses."""
    small, big_products, rate, window = (9, 5_000, 20.0, 15.0) if quick else (99, 50_000, 20.0, 60.0)
    presses_per_second = 1.0
    async with (
        simulator("toy", big_products) as big_store,
        simulator("toy", 1) as small_store,
        bench_rig(apis=1, workers=2) as rig,
    ):
        gw = rig.gw
        # One store is one integration per account: the small integrations of the one small store are in
        # accounts of their own.
        others = [
            await connect(rig, small_store.store_url, small_store.credentials, f"small {i}", f"{ACCOUNT}-{i}")
            for i in range(small)
        ]
        account_of = {i.id: i.account_id for i in others}
        for integration in others:
            run = (await gw.runs.latest(integration.id, 1))[0]
            await wait_run(gw, run.id, 300)
        secrets = {i.id: hook_secret(rig, i) for i in others}
        big = await connect(rig, big_store.store_url, big_store.credentials, "big", options={"page_size": 250})
        big_run = (await gw.runs.latest(big.id, 1))[0]
        await wait_progress(gw, big_run.id, big_products // 50, limit=600)

        changed: dict[str, float] = {}

        async def listen(account: str, listening: asyncio.Event) -> None:
            async with gw.hub.listen(account_channel(account)) as queue:
                listening.set()
                while True:
                    message = await queue.get()
                    if isinstance(message, ProductChanged):
                        changed.setdefault(message.product_id, time.perf_counter())

        ready = {account: asyncio.Event() for account in sorted(set(account_of.values()))}
        listeners = [asyncio.ensure_future(listen(account, event)) for account, event in ready.items()]
        await asyncio.gather(*(event.wait() for event in ready.values()))
        sent: dict[str, float] = {}
        answered: list[float] = []
        sent_at: dict[str, datetime] = {}
        pressed: dict[str, datetime] = {}
        rng = random.Random(3)
        api = rig.apis[0]
        stamp = datetime(2027, 1, 1, tzinfo=UTC)
        before = await gw.runs.get_any(big_run.id)
        big_before = before.progress.processed if before is not None else 0

        async def deliver(session: aiohttp.ClientSession, n: int) -> None:
            integration_id = rng.choice(others).id
            external_id = f"w{n}"
            body, headers = toy_delivery(
                secrets[integration_id], toy_product(external_id, f"Webhook {n}", stamp + timedelta(seconds=n))
            )
            sent[f"{integration_id}:{external_id}"] = at = time.perf_counter()
            sent_at[f"{integration_id}:{external_id}"] = utcnow()
            async with session.post(f"{api.url}/webhooks/toy/{integration_id}", data=body, headers=headers) as r:
                await r.read()
            answered.append(time.perf_counter() - at)

        async def press(integration_id: str) -> None:
            at = utcnow()
            body = await rig.graphql(
                api,
                "mutation($id: ID!) { syncNow(integrationId: $id) { id } }",
                {"id": integration_id},
                account=account_of[integration_id],
            )
            run_id = None if body.get("errors") else body["data"]["syncNow"]["id"]
            if run_id is not None and run_id not in pressed:
                pressed[run_id] = at  # a press that found an earlier press's run still going is not a new start

        started = time.perf_counter()
        tasks: list[asyncio.Future[None]] = []
        async with aiohttp.ClientSession() as session:
            n = presses = 0
            while (elapsed := time.perf_counter() - started) < window:
                if presses <= elapsed * presses_per_second:
                    tasks.append(asyncio.ensure_future(press(rng.choice(others).id)))
                    presses += 1
                tasks.append(asyncio.ensure_future(deliver(session, n)))
                n += 1
                await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            await asyncio.gather(*tasks)
        big_after = await gw.runs.get_any(big_run.id)

        async def all_stored() -> bool:
            return not set(sent) - set(changed)

        await poll(all_stored, limit=120, every=0.25)
        for listener in listeners:
            listener.cancel()
        for listener in listeners:
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        started_delays = []
        for run_id, at in pressed.items():
            run = await wait_run(gw, run_id, 300)
            if run.started_at is not None:
                started_delays.append(max(0.0, (run.started_at - at).total_seconds()))
        # Stored: when the worker wrote the product (its created_at in MongoDB), from when the delivery
        # was sent; both wall clocks of this machine. (The PRODUCT_CHANGED event reaches this process
        # later still, and this process also plays the stores: its own load would count.)
        written = {
            d["_id"]: d["created_at"]
            async for d in gw.db.products.find({"_id": {"$in": list(sent_at)}}, {"created_at": 1})
        }
        latencies = [
            max(0.0, (written[key].replace(tzinfo=UTC) - at).total_seconds())
            for key, at in sent_at.items()
            if key in written
        ]
        seen_latencies = [changed[key] - at for key, at in sent.items() if key in changed]
        processed = (big_after.progress.processed if big_after is not None else 0) - big_before
        return {
            "integrations": small + 1,
            "big_store_products": big_products,
            "webhooks_per_second": rate,
            "window_seconds": window,
            "deliveries": len(sent),
            "webhook_to_stored_ms": ms(latencies),
            "webhook_to_event_seen_here_ms": ms(seen_latencies),
            # The part of it the API took to answer (the rest is the apply job on a worker).
            "webhook_answered_ms": ms(answered),
            "not_stored": len(set(sent) - set(changed)),
            "sync_now_presses": len(pressed),
            "sync_now_to_started_ms": ms(started_delays),
            "big_sync_still_running_after_window": big_after is not None and big_after.status is RunStatus.RUNNING,
            "big_sync_products_per_second_during_window": round(processed / window, 1),
            "load_average": machine_load(),
        }


# ---------------------------------------------------------------- one Shopify bucket, two workers


async def shared_bucket(quick: bool) -> dict[str, Any]:
    """A paginated full run and a storm of product webhooks on one Shopify store, worked by two workers.

    Each webhook is a REFRESH: the applying worker reads the product back through the Admin API, from
    the same leaky bucket the run spends. Figures: THROTTLED answers, and the run's duration against
    the least time the bucket allows for the points both spent.
    """
    from gateway.plugins import load_plugins

    products, storm_rate = (300, 4.0) if quick else (1_000, 4.0)
    cls = load_plugins(["shopify"]).adapter("shopify").simulator()
    assert cls is not None
    store = cls(products=products, seed=5)  # in this process: its bucket's bookkeeping is read directly
    await store.start()
    try:
        async with bench_rig(apis=1, workers=2) as rig:
            gw = rig.gw
            integration = await gw.integrations.connect(
                ACCOUNT,
                "shopify",
                "bucket",
                store.store_url,
                store.credentials(),
                options={"bulk_threshold": 10**9},  # paginated, the case a budget governs
            )
            run = (await gw.runs.latest(integration.id, 1))[0]
            started = time.perf_counter()
            rng = random.Random(9)
            ids = store.product_ids()
            edits = 0

            async def storm() -> None:
                nonlocal edits
                while True:
                    store.update_product(rng.choice(ids))
                    edits += 1
                    await asyncio.sleep(1 / storm_rate)

            stormer = asyncio.ensure_future(storm())
            try:
                done = await wait_run(gw, run.id, 3_600)
            finally:
                stormer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stormer
            elapsed = time.perf_counter() - started
            await store.drain_deliveries()

            async def queue_empty() -> bool:
                # Answered deliveries are journaled first (gateway/journal.py), then queued in MongoDB.
                if await gw.webhooks.journal.length():
                    return False
                return not await gw.db.queue.count_documents({"integration_id": integration.id})

            await poll(queue_empty, limit=300, every=0.5)
            stats = store.cost_stats()
    finally:
        await store.stop()
    spent = float(stats["actual_cost_total"])
    bucket = float(stats["maximum_available"])
    restore = float(stats["restore_rate"])
    minimum = max(0.0, (spent - bucket) / restore)
    return {
        "products": products,
        "status": str(done.status),
        "webhook_edits": edits,
        "storm_per_second": storm_rate,
        "throttled_responses": stats["throttled_responses"],
        "throttled_errors_in_run": sum(1 for e in done.errors if "THROTTLED" in e.message),
        "cost_spent_by_both": spent,
        "bucket": f"{bucket:g} points, restoring {restore:g}/s",
        "run_seconds": round(elapsed, 1),
        "minimum_seconds": round(minimum, 1),
        "ratio_to_minimum": round(elapsed / minimum, 3) if minimum else None,
        "load_average": machine_load(),
    }
