"""The rate-limit Budget: unit tests on a fake clock, then a real fetch under a tight, shared quota."""

from __future__ import annotations

import math
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from alana_bigcommerce.adapter import BigCommerceAdapter
from alana_bigcommerce.client import BigCommerceBudget
from multidict import CIMultiDict

from gateway.adapter import FetchRequest
from gateway.httpclient import Response
from gateway.ratebudget import Hold, MemoryWindow, window_due


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def response(
    status: int = 200,
    *,
    left: int | None = 29,
    reset_ms: int = 3000,
    quota: int = 30,
    window_ms: int = 3000,
    retry_after: str | None = None,
) -> Response:
    headers: CIMultiDict[str] = CIMultiDict()
    if left is not None:
        headers.update(
            {
                "X-Rate-Limit-Requests-Left": str(left),
                "X-Rate-Limit-Time-Reset-Ms": str(reset_ms),
                "X-Rate-Limit-Requests-Quota": str(quota),
                "X-Rate-Limit-Time-Window-Ms": str(window_ms),
            }
        )
    if retry_after is not None:
        headers["X-Retry-After"] = retry_after
    return Response(status=status, headers=headers, body=b"{}")


class Driver:
    """Drives a BigCommerceBudget on a fake clock the way the HTTP client does, one request of cost 1 at a
    time: `try_reserve` is one look at the budget's window (None: sent), `observe` answers the oldest
    request still out (or none)."""

    def __init__(self, share: float = 0.8, *, stale_after: float = 10.0, clock: Clock) -> None:
        self.budget = BigCommerceBudget(share, stale_after=stale_after, clock=clock)
        window = self.budget.window
        assert isinstance(window, MemoryWindow)
        self.window = window
        self.out: deque[Hold] = deque()

    def try_reserve(self) -> float | None:
        result = self.window.reserve_now(1.0, uuid.uuid4().hex)
        if isinstance(result, Hold):
            self.out.append(result)
            return None
        return result

    async def observe(self, answer: Response) -> float | None:
        return await self.budget.observe(answer, 1.0, self.out.popleft() if self.out else None)

    def due(self, reset_ms: int) -> int:
        assert self.window.quota is not None and self.window.window is not None
        return window_due(self.window.share, self.window.quota, self.window.window, reset_ms)

    @property
    def left(self) -> int | None:
        return self.window.left

    @property
    def room(self) -> int:
        return self.window.room

    @property
    def in_flight(self) -> float:
        return self.window.in_flight

    @property
    def throttled(self) -> int:
        return self.budget.throttled


def drain(budget: Driver) -> int:
    """Reserve until the budget says wait; how many went through."""
    count = 0
    while budget.try_reserve() is None:
        count += 1
        assert count < 1000
    return count


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_first_request_probes_alone(clock: Clock) -> None:
    budget = Driver(clock=clock)
    assert budget.try_reserve() is None
    assert budget.try_reserve() is not None  # nothing known yet: wait for the probe's headers
    await budget.observe(response(left=29))
    assert budget.try_reserve() is None


async def test_never_spends_more_than_the_share_of_a_window(clock: Clock) -> None:
    budget = Driver(share=0.8, clock=clock)
    budget.try_reserve()
    await budget.observe(response(left=29, reset_ms=3000))
    sent = 1
    # Over the whole window, with every response saying the store has plenty left.
    while clock.now < 102.99:
        while budget.try_reserve() is None:
            sent += 1
            await budget.observe(response(left=29, reset_ms=int((103 - clock.now) * 1000)))
        clock.now += 0.01
    assert sent == 24  # 0.8 * 30


async def test_spends_the_share_at_the_window_start_then_waits_for_the_reset(clock: Clock) -> None:
    budget = Driver(share=0.8, clock=clock)
    budget.try_reserve()
    await budget.observe(response(left=29, reset_ms=3000))
    # No pacing: the rest of our 24 go out at once, before any of their responses is back. What we
    # send still leaves the store's Left the 6 the other apps are due this window.
    assert drain(budget) == 23
    assert budget.try_reserve() == pytest.approx(3.0)  # the window's reset, not a refill rate
    for left in range(28, 5, -1):
        await budget.observe(response(left=left, reset_ms=3000))
    assert budget.try_reserve() == pytest.approx(3.0)
    clock.now += 3.0
    assert budget.try_reserve() is None  # the next window's probe


async def test_other_apps_spending_their_share_evenly_never_hold_ours_back(clock: Clock) -> None:
    """A window as the simulator runs it: the other apps spend 6 of 30 evenly over 3 s."""
    budget = Driver(share=0.8, clock=clock)
    start, ours, sent_at = clock.now, 0, []
    while clock.now < start + 2.999:
        while budget.try_reserve() is None:
            others = int(6 * (clock.now - start) / 3)
            assert ours + others < 30  # never a 429
            ours += 1
            sent_at.append(clock.now - start)
            reset_ms = math.ceil((start + 3 - clock.now) * 1000)
            await budget.observe(response(left=30 - ours - others, reset_ms=reset_ms))
        clock.now += 0.01
    assert ours == 24
    assert max(sent_at) < 0.05  # all of it as soon as the window opened


async def test_leaves_other_apps_what_they_are_still_due(clock: Clock) -> None:
    budget = Driver(share=0.8, clock=clock)
    budget.try_reserve()
    # The other apps have spent far faster than their pace: 23 of 30 with a third of the window gone.
    await budget.observe(response(left=6, reset_ms=2000))
    assert budget.due(2000) == 4  # their 6 a window, for the two thirds still to come
    assert drain(budget) == 2  # 6 left, less the 4 they are due
    assert budget.try_reserve() == pytest.approx(2.0)  # nothing more before the reset...
    clock.now += 0.5
    await budget.observe(response(left=5, reset_ms=1500))  # ...unless a later answer shows they slowed down
    assert budget.room == 2 and budget.in_flight == 1
    assert drain(budget) == 1


async def test_another_client_of_the_store_spending_in_the_window_counts(clock: Clock) -> None:
    budget = Driver(share=0.8, clock=clock)
    budget.try_reserve()
    # The connect step's client spent 12 of this window before this budget's first request.
    await budget.observe(response(left=17, reset_ms=3000))
    assert drain(budget) == 11  # 12 + 1 + 11: the 24 of our share, not 24 more
    assert budget.try_reserve() == pytest.approx(3.0)


async def test_requests_in_flight_are_counted_before_their_response(clock: Clock) -> None:
    budget = Driver(share=1.0, clock=clock)
    budget.try_reserve()
    await budget.observe(response(left=5))
    assert drain(budget) == 5
    assert budget.in_flight == 5
    await budget.observe(response(left=4))  # one came back; four still out, the store says 4 left
    assert budget.try_reserve() is not None


async def test_new_window_after_reset_starts_with_a_probe(clock: Clock) -> None:
    budget = Driver(share=1.0, clock=clock)
    budget.try_reserve()
    await budget.observe(response(left=0, reset_ms=500))
    assert budget.try_reserve() == pytest.approx(0.5)
    clock.now += 0.5
    assert budget.try_reserve() is None  # the probe
    assert budget.try_reserve() is not None  # the rest wait for its headers
    await budget.observe(response(left=29, reset_ms=3000))
    assert budget.try_reserve() is None


async def test_a_late_response_from_an_old_window_is_ignored(clock: Clock) -> None:
    budget = Driver(share=1.0, clock=clock)
    budget.try_reserve()
    await budget.observe(response(left=25, reset_ms=3000))
    clock.now += 3.1
    budget.try_reserve()
    await budget.observe(response(left=28, reset_ms=2950))  # the new window
    await budget.observe(response(left=1, reset_ms=0))  # a straggler from the old one
    assert budget.left == 28


async def test_within_a_window_the_smaller_left_wins(clock: Clock) -> None:
    budget = Driver(clock=clock)
    budget.try_reserve()
    await budget.observe(response(left=20, reset_ms=3000))
    await budget.observe(response(left=22, reset_ms=2990))  # processed earlier, arrived later
    assert budget.left == 20


async def test_429_waits_for_the_longer_of_reset_and_retry_after(clock: Clock) -> None:
    budget = Driver(clock=clock)
    budget.try_reserve()
    assert await budget.observe(response(429, left=0, reset_ms=1500, retry_after="2")) == 2.0
    budget.try_reserve()
    assert await budget.observe(response(429, left=0, reset_ms=2500, retry_after="1")) == 2.5
    assert budget.throttled == 2
    # Without the headers it is the platform overloaded: the HTTP client's backoff handles it.
    assert await budget.observe(response(429, left=None)) is None


async def test_reservations_of_failed_requests_expire(clock: Clock) -> None:
    budget = Driver(stale_after=5, clock=clock)
    assert budget.try_reserve() is None  # this request dies without a response
    assert budget.try_reserve() is not None
    clock.now += 5.1
    assert budget.try_reserve() is None


def test_share_is_validated() -> None:
    with pytest.raises(ValueError):
        BigCommerceBudget(share=0)
    with pytest.raises(ValueError):
        BigCommerceBudget(share=1.5)


# ---- against the simulator -----------------------------------------------------------------------
TIGHT: dict[str, Any] = {"quota": 30, "window_ms": 3000, "other_apps_share": 0.3}


async def test_sim_enforces_the_quota_for_a_client_without_a_budget(make_sim: Callable[..., Any]) -> None:
    sim = await make_sim(50, **TIGHT)
    url = f"{sim.store_url}/v3/catalog/products?limit=1"
    async with aiohttp.ClientSession(headers={"X-Auth-Token": sim.access_token}) as session:
        responses = []
        for _ in range(32):
            async with session.get(url) as answer:
                responses.append((answer.status, dict(answer.headers)))
    statuses = [status for status, _ in responses]
    assert statuses[:20] == [200] * 20 and 429 in statuses
    throttled = next(headers for status, headers in responses if status == 429)
    assert throttled["X-Rate-Limit-Requests-Left"] == "0" and "X-Retry-After" in throttled
    assert sim.rate_limited == statuses.count(429)


async def test_fetch_under_a_shared_quota_never_draws_a_429(
    make_sim: Callable[..., Any], make_conn: Callable[..., Any], adapter: BigCommerceAdapter
) -> None:
    sim = await make_sim(3000, **TIGHT)
    conn = make_conn(sim, page_size=100, page_concurrency=4)

    await adapter.check_credentials(conn)
    total = await adapter.count_products(conn, FetchRequest())
    ids = [p["id"] async for page in adapter.fetch_products(conn, FetchRequest()) for p in page.items]

    assert total == 3000 and len(ids) == 3000 and ids == sorted(set(ids))
    assert sim.faults.api_requests > TIGHT["quota"]  # the fetch needed more than one window
    assert sim.rate_limited == 0
    budget = adapter.client(conn).budget
    assert isinstance(budget, BigCommerceBudget)
    assert budget.throttled == 0 and budget.waits > 0
