"""The shared rate-limit primitives (gateway/ratebudget.py), on both backends: in memory and in Valkey.

Each behaviour test runs against `LocalRateState` and against `RedisRateState` on the real embedded
Valkey, with restore rates so slow (a point every 1,000 s) that how long the test machine takes between
two calls cannot change an answer. The concurrency tests fire many coroutines, over several Redis
connections (as several processes would), at one store's state at once.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from multidict import CIMultiDict
from redis.asyncio import Redis

from gateway.httpclient import PauseBudget, Response
from gateway.ratebudget import (
    BucketReading,
    Hold,
    LocalRateState,
    MemoryBucket,
    RateState,
    RedisRateState,
    SharedBucket,
    WindowReading,
    store_identity,
)
from gateway.simkit import free_port

SLOW = 0.001  # points restored per second: nothing restores during a test


@pytest_asyncio.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[RateState]:
    if request.param == "memory":
        yield LocalRateState()
        return
    client = Redis.from_url(redis_url)
    try:
        yield RedisRateState(client, f"shop-{uuid.uuid4().hex[:8]}.example")
    finally:
        await client.aclose()


def test_store_identity_names_the_store_not_the_spelling() -> None:
    assert store_identity("https://Shop.Example.com/") == "shop.example.com"
    assert store_identity("http://shop.example.com:80") == store_identity("https://shop.example.com:443")
    assert store_identity("https://api.bigcommerce.com/stores/abc123/") == "api.bigcommerce.com/stores/abc123"
    assert store_identity("http://127.0.0.1:8123") == "127.0.0.1:8123"
    assert "{" not in store_identity("https://shop.example.com/{x}")  # braces are the key's slot tag


# ---- the bucket ---------------------------------------------------------------------------------------
async def test_the_bucket_spends_what_it_holds_then_says_how_long_to_wait(state: RateState) -> None:
    bucket = state.bucket("shopify", maximum=1000, restore_rate=SLOW)
    assert isinstance(await bucket.reserve(400, "a"), Hold)
    assert isinstance(await bucket.reserve(600, "b"), Hold)
    wait = await bucket.reserve(100, "c")
    assert isinstance(wait, float) and wait == pytest.approx(100 / SLOW, rel=1e-3)


async def test_a_request_never_needs_more_than_a_full_bucket(state: RateState) -> None:
    bucket = state.bucket("shopify", maximum=1000, restore_rate=SLOW)
    hold = await bucket.reserve(5000, "a")
    assert isinstance(hold, Hold) and hold.points == 1000


async def test_the_platforms_reading_replaces_the_model_less_what_others_hold(state: RateState) -> None:
    bucket = state.bucket("shopify", maximum=1000, restore_rate=SLOW)
    first = await bucket.reserve(300, "a")
    second = await bucket.reserve(200, "b")
    assert isinstance(first, Hold) and isinstance(second, Hold)
    status = await bucket.settle(first, charged=40, reading=BucketReading(1900, 2000, 100))
    # The store's figure, less the 200 still held by a request it has not charged yet.
    assert (status.available, status.maximum, status.restore_rate) == (1700, 2000, 100)


async def test_answers_settled_since_a_grant_count_against_its_older_reading(state: RateState) -> None:
    bucket = state.bucket("shopify", maximum=2000, restore_rate=SLOW)
    first = await bucket.reserve(300, "a")
    second = await bucket.reserve(200, "b")
    assert isinstance(first, Hold) and isinstance(second, Hold)
    await bucket.settle(second, charged=50, reading=BucketReading(1950))
    # The first answer's figure may predate the second's charge, which settled after the first was granted.
    status = await bucket.settle(first, charged=30, reading=BucketReading(1980))
    assert status.available == pytest.approx(1930)


async def test_a_refund_is_learnt_without_a_reading_and_unknown_costs_stay_spent(state: RateState) -> None:
    bucket = state.bucket("shopify", maximum=1000, restore_rate=SLOW)
    refunded, unknown = await bucket.reserve(400, "a"), await bucket.reserve(100, "b")
    assert isinstance(refunded, Hold) and isinstance(unknown, Hold)
    assert (await bucket.settle(refunded, charged=30)).available == pytest.approx(870)
    assert (await bucket.settle(unknown)).available == pytest.approx(870)
    await bucket.release(Hold("gone", 0.0))  # releasing what is not held is harmless
    assert bucket.estimate() == pytest.approx(870, abs=1)


async def test_waiters_are_served_in_the_order_they_were_refused(state: RateState) -> None:
    bucket = state.bucket("shopify", maximum=1000, restore_rate=SLOW)
    spender = await bucket.reserve(1000, "spender")
    assert isinstance(spender, Hold)
    assert isinstance(await bucket.reserve(800, "big"), float)
    await bucket.settle(spender, charged=700)  # 300 back: enough for a small request, not for the big one
    assert isinstance(await bucket.reserve(100, "small"), float)  # the big one asked first
    await bucket.release(Hold("big", 0.0))  # the big one gave up waiting (cancelled)
    assert isinstance(await bucket.reserve(100, "small"), Hold)


async def test_what_the_platform_said_outlives_the_client_that_heard_it(redis_url: str) -> None:
    store = f"shop-{uuid.uuid4().hex[:8]}.example"
    async with Redis.from_url(redis_url) as one, Redis.from_url(redis_url) as two:
        first = RedisRateState(one, store).bucket("shopify", maximum=1000, restore_rate=50)
        hold = await first.reserve(10, "a")
        assert isinstance(hold, Hold)
        await first.settle(hold, charged=5, reading=BucketReading(1950, 2000, 100))
        later = RedisRateState(two, store).bucket("shopify", maximum=1000, restore_rate=50)
        granted = await later.reserve(1800, "b")  # more than the assumed 1000: the learned bucket holds it
        assert isinstance(granted, Hold) and granted.points == 1800
        assert later.status.maximum == 2000 and later.status.restore_rate == 100


# ---- the window ---------------------------------------------------------------------------------------
READING = WindowReading(quota=30, window_ms=1_000_000, reset_ms=1_000_000, left=29)


async def test_the_window_probes_alone_then_spends_its_share(state: RateState) -> None:
    window = state.window("bigcommerce", share=0.8)
    probe = await window.reserve(1, "probe")
    assert isinstance(probe, Hold)
    assert isinstance(await window.reserve(1, "early"), float)  # nothing known: wait for the probe's answer
    await window.settle(probe, READING)
    granted = 0
    while isinstance(await window.reserve(1, f"r{granted}"), Hold):
        granted += 1
    assert granted == 23  # 24 of 30 is our share, the probe was one


async def test_the_window_leaves_other_apps_what_they_are_due(state: RateState) -> None:
    window = state.window("bigcommerce", share=0.8)
    probe = await window.reserve(1, "probe")
    assert isinstance(probe, Hold)
    # The other apps spent 21 of 30 with a tenth of the window gone: they are still due ceil(6 * 0.9) = 6
    # of the 8 left, which leaves us 2.
    await window.settle(probe, WindowReading(quota=30, window_ms=1_000_000, reset_ms=900_000, left=8))
    assert isinstance(await window.reserve(1, "a"), Hold)
    assert isinstance(await window.reserve(1, "b"), Hold)
    assert isinstance(await window.reserve(1, "c"), float)


async def test_a_429_empties_the_window_until_its_reset(state: RateState) -> None:
    window = state.window("bigcommerce", share=1.0)
    probe = await window.reserve(1, "probe")
    assert isinstance(probe, Hold)
    await window.settle(probe, READING, throttled=True)
    wait = await window.reserve(1, "a")
    assert isinstance(wait, float) and wait == pytest.approx(1000, rel=1e-2)


async def test_answers_given_in_the_same_millisecond_keep_the_smaller_left_in_either_order(state: RateState) -> None:
    """Found with two processes on a 3 s window under load: two answers the store gave in one millisecond
    carry the same Reset-Ms; read in the other order, the earlier one's larger Left made room for a request
    the store then refused (429)."""
    window = state.window("bigcommerce", share=1.0)
    probe = await window.reserve(1, "probe")
    assert isinstance(probe, Hold)
    await window.settle(probe, WindowReading(quota=30, window_ms=1_000_000, reset_ms=900_000, left=29))
    first, second = await window.reserve(1, "first"), await window.reserve(1, "second")
    assert isinstance(first, Hold) and isinstance(second, Hold)
    # The store served `first` then `second` in the same millisecond; `second`'s answer is read first.
    await window.settle(second, WindowReading(quota=30, window_ms=1_000_000, reset_ms=899_000, left=27))
    await window.settle(first, WindowReading(quota=30, window_ms=1_000_000, reset_ms=899_000, left=28))
    assert window.status.room == 27


async def test_the_pause_is_the_longest_retry_after(state: RateState) -> None:
    pause = state.pause("retry-after")
    assert await pause.remaining() == 0
    await pause.extend(1000)
    await pause.extend(10)  # a shorter one does not cut it short
    assert await pause.remaining() == pytest.approx(1000, rel=1e-2)


# ---- concurrency ---------------------------------------------------------------------------------------
async def test_many_coroutines_on_many_connections_never_overspend_the_bucket(redis_url: str) -> None:
    store = f"shop-{uuid.uuid4().hex[:8]}.example"
    clients = [Redis.from_url(redis_url) for _ in range(4)]  # as four processes would
    try:
        buckets = [RedisRateState(c, store).bucket("shopify", maximum=1000, restore_rate=SLOW) for c in clients]
        results = await asyncio.gather(*(buckets[i % 4].reserve(7, f"w{i}") for i in range(400)))
    finally:
        for client in clients:
            await client.aclose()
    granted = [r for r in results if isinstance(r, Hold)]
    assert len(granted) == 1000 // 7 and sum(h.points for h in granted) <= 1000


async def test_many_coroutines_reserving_and_settling_never_ask_for_more_than_the_platform_has(
    redis_url: str,
) -> None:
    """Requests on three connections reserve, are charged, answered and settled concurrently, their answers
    arriving out of order: the platform (Shopify's rules: the requested cost up front, the unused part
    refunded with the answer, whose reading is the bucket at that moment) is never asked for more than it
    holds."""
    store = f"shop-{uuid.uuid4().hex[:8]}.example"
    clients = [Redis.from_url(redis_url) for _ in range(3)]
    platform = {"available": 1000.0, "settled": 0}
    overdrawn: list[float] = []
    settled = asyncio.Condition()
    latency = random.Random(7)

    async def request(bucket: SharedBucket, n: int) -> None:
        while True:
            seen = platform["settled"]
            hold = await bucket.reserve(100, f"r{n}")
            if isinstance(hold, Hold):
                break
            async with settled:  # nothing restores: only another request's answer can make room
                await settled.wait_for(lambda: platform["settled"] != seen)  # noqa: B023 - read at once
        if platform["available"] < hold.points:
            overdrawn.append(platform["available"])
        platform["available"] -= hold.points
        # In flight, then the answer travels: others are charged, answered and settled meanwhile, in any
        # order (the latencies only shuffle the order; the assertion holds for every order).
        await asyncio.sleep(latency.uniform(0, 0.004))
        platform["available"] += hold.points - 20  # charged 20: the rest comes back with the answer
        reading = BucketReading(platform["available"])
        await asyncio.sleep(latency.uniform(0, 0.004))
        await bucket.settle(hold, charged=20, reading=reading)
        async with settled:
            platform["settled"] += 1
            platform["available"] += 20  # restored before the next (a fast restore rate)
            settled.notify_all()

    try:
        buckets = [RedisRateState(c, store).bucket("shopify", maximum=1000, restore_rate=SLOW) for c in clients]
        await asyncio.gather(*(request(buckets[n % 3], n) for n in range(90)))
    finally:
        for client in clients:
            await client.aclose()
    assert overdrawn == [] and platform["settled"] == 90


async def test_many_coroutines_never_overspend_the_window(redis_url: str) -> None:
    store = f"store-{uuid.uuid4().hex[:8]}"
    clients = [Redis.from_url(redis_url) for _ in range(4)]
    try:
        windows = [RedisRateState(c, store).window("bigcommerce", share=0.8) for c in clients]
        probe = await windows[0].reserve(1, "probe")
        assert isinstance(probe, Hold)
        await windows[0].settle(probe, READING)
        results = await asyncio.gather(*(windows[i % 4].reserve(1, f"w{i}") for i in range(200)))
    finally:
        for client in clients:
            await client.aclose()
    assert sum(isinstance(r, Hold) for r in results) == 23


async def test_memory_bucket_under_concurrent_coroutines_never_overspends() -> None:
    bucket = MemoryBucket(1000, SLOW)
    results = await asyncio.gather(*(bucket.reserve(7, f"w{i}") for i in range(400)))
    assert sum(isinstance(r, Hold) for r in results) == 1000 // 7


# ---- Redis unreachable ---------------------------------------------------------------------------------
async def test_without_redis_each_process_models_the_store_alone() -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=0.5)
    try:
        state = RedisRateState(dead, "shop.example")
        bucket = state.bucket("shopify", maximum=1000, restore_rate=SLOW)
        hold = await bucket.reserve(600, "a")
        assert isinstance(hold, Hold) and hold.local
        assert isinstance(await bucket.reserve(600, "b"), float)
        assert (await bucket.settle(hold, charged=100)).available == pytest.approx(900)
        window = state.window("bigcommerce")
        assert isinstance(await window.reserve(1, "probe"), Hold)
        await state.pause("p").extend(5)
        assert await state.pause("p").remaining() > 0
    finally:
        await dead.aclose()


# ---- the budgets over them --------------------------------------------------------------------------------
async def test_a_retry_after_one_client_is_told_holds_every_client_of_the_store(state: RateState) -> None:
    told, other = PauseBudget("woocommerce"), PauseBudget("woocommerce")
    told.bind(state)
    other.bind(state)
    throttled = Response(status=429, headers=CIMultiDict({"Retry-After": "1000"}), body=b"")
    assert await told.observe(throttled) is None  # the HTTP client waits out its own Retry-After
    assert await other.shared.pause("woocommerce").remaining() == pytest.approx(1000, rel=1e-2)
    fine = Response(status=200, headers=CIMultiDict({"Retry-After": "5000"}), body=b"")
    await other.observe(fine)  # only a refusal sets the pause
    assert await told.shared.pause("woocommerce").remaining() < 1001
