"""The leaky-bucket Budget (on a fake clock) and the query cost calculation. No server needed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from alana_shopify.client import QueryCost, ShopifyBudget, _data
from alana_shopify.cost import MAX_QUERY_COST, actual_cost, requested_cost
from alana_shopify.fetch import PagePlanner
from alana_shopify.queries import BULK_RUN, ProductQueries
from multidict import CIMultiDict

from gateway.errors import StoreAuthError, StoreHTTPError, StorePayloadError
from gateway.httpclient import Response
from gateway.ratebudget import Hold

Load = Callable[[str], Any]


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def response(body: Any, status: int = 200) -> Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status=status, headers=CIMultiDict(), body=raw)


def status_body(current: float, maximum: float = 1000.0, rate: float = 50.0, actual: float = 5) -> dict[str, Any]:
    return {
        "data": {},
        "extensions": {
            "cost": {
                "requestedQueryCost": 10,
                "actualQueryCost": actual,
                "throttleStatus": {"maximumAvailable": maximum, "currentlyAvailable": current, "restoreRate": rate},
            }
        },
    }


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def budget(fake: FakeTime) -> ShopifyBudget:
    return ShopifyBudget(clock=fake.clock, sleep=fake.sleep)


async def test_acquire_spends_without_waiting_while_the_bucket_holds_the_cost(
    budget: ShopifyBudget, fake: FakeTime
) -> None:
    await budget.acquire(400)
    await budget.acquire(600)
    assert fake.sleeps == [] and budget.available == pytest.approx(0)


async def test_acquire_waits_for_the_bucket_to_restore(budget: ShopifyBudget, fake: FakeTime) -> None:
    assert await budget.observe(response(status_body(current=100)), 10, await budget.acquire(10)) is None
    await budget.acquire(600)
    # 500 points missing at 50 points a second.
    assert sum(fake.sleeps) == pytest.approx(10.0)
    assert budget.waited == pytest.approx(10.0)


async def test_model_restores_over_time_and_caps_at_the_maximum(budget: ShopifyBudget, fake: FakeTime) -> None:
    await budget.observe(response(status_body(current=200, maximum=2000, rate=100)), 1, await budget.acquire(1))
    fake.now += 3
    assert budget.available == pytest.approx(500)
    fake.now += 1000
    assert budget.available == pytest.approx(2000)
    assert (budget.maximum, budget.restore_rate) == (2000, 100)


async def test_requests_in_flight_stay_reserved(budget: ShopifyBudget, fake: FakeTime) -> None:
    first = await budget.acquire(300)
    await budget.acquire(200)  # in flight: the store's next figure does not include it yet
    await budget.observe(response(status_body(current=900)), 300, first)
    assert budget.available == pytest.approx(700)  # 900 minus the 200 still in flight


async def test_answers_settled_meanwhile_count_against_an_older_figure(budget: ShopifyBudget) -> None:
    first = await budget.acquire(300)
    second = await budget.acquire(200)
    # The second answer comes back first, charged 50: the first answer's figure may predate that charge.
    await budget.observe(response(status_body(current=800, actual=50)), 200, second)
    await budget.observe(response(status_body(current=900)), 300, first)
    assert budget.available == pytest.approx(850)


async def test_a_refund_without_figures_is_still_learnt(budget: ShopifyBudget) -> None:
    hold = await budget.acquire(400)
    body = {"data": {}, "extensions": {"cost": {"requestedQueryCost": 400, "actualQueryCost": 30}}}
    await budget.observe(response(body), 400, hold)
    assert budget.available == pytest.approx(970)


async def test_waiters_are_served_in_turn(budget: ShopifyBudget, fake: FakeTime) -> None:
    bucket = budget.bucket
    await budget.acquire(1000)
    assert isinstance(await bucket.reserve(800, "big"), float)  # waits for 800 points
    fake.now += 4  # 200 restored: enough for a small request, but the big one asked first
    assert isinstance(await bucket.reserve(100, "small"), float)
    fake.now += 12  # 800 restored
    assert isinstance(await bucket.reserve(800, "big"), Hold)
    assert isinstance(await bucket.reserve(100, "small"), float)


async def test_throttled_fixture_becomes_a_retry_delay(budget: ShopifyBudget, load_fixture: Load) -> None:
    body = load_fixture("shopify_graphql_throttled_response.json")
    delay = await budget.observe(response(body), 752, await budget.acquire(752))
    # requested 752, available 666, restoring 50/s: wait until it can pay.
    assert delay == pytest.approx((752 - 666) / 50)
    assert budget.throttled == 1 and budget.maximum == 1000 and budget.restore_rate == 50


async def test_throttled_with_http_429_is_a_retry_too(budget: ShopifyBudget, load_fixture: Load) -> None:
    body = load_fixture("shopify_graphql_throttled_response.json")
    assert await budget.observe(response(body, status=429), 752, await budget.acquire(752)) is not None


async def test_other_answers_are_final(budget: ShopifyBudget, load_fixture: Load) -> None:
    answers = [
        response(load_fixture("shopify_api_js_graphql_error_response.json")),
        response(b"{truncated"),
        response({"errors": "[API] Invalid API key"}, status=401),
    ]
    for answer in answers:
        assert await budget.observe(answer, 2, await budget.acquire(2)) is None
    # Nothing said what they cost: the points they held stay spent.
    assert budget.available == pytest.approx(994)


def test_the_bucket_is_per_app() -> None:
    secret = "shpss_0123456789abcdef"
    one, same = (
        ShopifyBudget.for_credentials({"client_secret": secret}),
        ShopifyBudget.for_credentials({"client_secret": secret}),
    )
    other = ShopifyBudget.for_credentials({"client_secret": "shpss_fedcba9876543210"})
    assert one.name == same.name != other.name
    assert secret not in one.name and "shpss" not in one.name  # the key names the app, not its secret


def test_graphql_errors_become_store_errors(load_fixture: Load) -> None:
    with pytest.raises(StorePayloadError, match="you must provide one of first or last"):
        _data(load_fixture("shopify_api_js_graphql_error_response.json"))
    with pytest.raises(StoreAuthError):
        _data({"errors": [{"message": "Access denied", "extensions": {"code": "ACCESS_DENIED"}}]})
    with pytest.raises(StoreHTTPError):
        _data({"errors": [{"message": "boom", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]})
    with pytest.raises(StoreHTTPError):
        _data({"errors": "Not Found"})
    assert _data({"data": {"shop": {"name": "x"}}}) == {"shop": {"name": "x"}}


# ---- cost --------------------------------------------------------------------------------------------
NESTED = (
    "{ products(first: 10) { nodes { id variants(first: 5) { edges { node { id } } } } pageInfo { hasNextPage } } }"
)


def test_requested_cost_follows_the_documented_rules() -> None:
    assert requested_cost("{ shop { name } }") == 1
    # connection 2 + 10 x (product 1 + variants connection 2 + 5 x variant 1)
    assert requested_cost(NESTED) == 2 + 10 * (1 + 2 + 5)
    query = "query($f: Int!) { products(first: $f) { nodes { id } } }"
    assert requested_cost(query, {"f": 250}) == 252
    ids = "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Product { id category { name } } } }"
    assert requested_cost(ids, {"ids": ["a", "b", "c"]}) == 3 * (1 + 1)
    branches = '{ node(id: "x") { ... on Product { category { name } } ... on ProductVariant { id } } }'
    assert requested_cost(branches) == 1 + 1  # the costlier branch
    assert requested_cost(BULK_RUN, {"query": "{}", "groupObjects": True}) == 10


def test_actual_cost_charges_what_came_back() -> None:
    data = {
        "products": {
            "nodes": [{"id": "1", "variants": {"edges": [{"node": {"id": "v"}}] * 2}}] * 3,
            "pageInfo": {"hasNextPage": False},
        }
    }
    assert actual_cost(NESTED, data) == 2 + 3 * (1 + 2 + 2)
    assert actual_cost(NESTED, data) <= requested_cost(NESTED)


def test_actual_cost_counts_nodes_returned_not_first() -> None:
    # PLATFORMS.md A: `products(first: 250) { nodes { id } }` costs about 13 on a real shop.
    query = "{ products(first: 250) { nodes { id } pageInfo { hasNextPage } } }"
    data = {"products": {"nodes": [{"id": str(i)} for i in range(11)], "pageInfo": {"hasNextPage": False}}}
    assert (requested_cost(query), actual_cost(query, data)) == (252, 13)


def test_plain_objects_inside_returned_nodes_are_not_charged_again() -> None:
    # As in recorded real answers: a variant's selectedOptions / inventoryItem add nothing to the actual
    # cost (they do to the requested one); nested connections and objects outside nodes do count.
    query = """
    query($id: ID!) { product(id: $id) {
      category { name }
      translations(locale: "fr") { key value }
      variants(first: 5) { nodes { id selectedOptions { name value } inventoryItem { tracked } } }
      media(first: 5) { nodes { id ... on MediaImage { image { url } } } }
    } }
    """
    variant = {"id": "v", "selectedOptions": [{"name": "Size", "value": "M"}], "inventoryItem": {"tracked": True}}
    data = {
        "product": {
            "category": {"name": "Mugs"},
            "translations": [{"key": "title", "value": "Tasse"}],
            "variants": {"nodes": [variant] * 3},
            "media": {"nodes": [{"id": "m", "image": {"url": "u"}}]},
        }
    }
    assert requested_cost(query, {"id": "x"}) == 1 + 1 + 1 + (2 + 5 * 3) + (2 + 5 * 2)
    # product 1 + category 1 (outside any node) + translations list 0 + variants 2 + 3 + media 2 + 1
    assert actual_cost(query, data, {"id": "x"}) == 1 + 1 + (2 + 3) + (2 + 1)


@pytest.mark.parametrize("locales", [(), ("fr", "de"), ("fr", "de", "es", "it", "pt-BR")])
def test_product_pages_fit_the_single_query_limit(locales: tuple[str, ...]) -> None:
    queries = ProductQueries(locales=locales)
    fits = requested_cost(queries.page, {"first": queries.page_size})
    assert fits <= MAX_QUERY_COST < requested_cost(queries.page, {"first": queries.page_size + 1})
    ids = [f"gid://shopify/Product/{i}" for i in range(queries.ids_batch)]
    assert requested_cost(queries.by_ids, {"ids": ids}) <= MAX_QUERY_COST


# ---- page sizes ------------------------------------------------------------------------------------
def test_planner_asks_for_full_pages_until_the_end_is_near() -> None:
    queries = ProductQueries(locales=("fr", "de"))
    most, cost = queries.page_size, queries.page_cost
    planner = PagePlanner(cost, most, expected=1000)
    assert planner.size(available=2000) == most  # nothing learnt yet
    planner.learn(most, QueryCost(cost.requested(most), cost.overhead + 12 * most))
    assert planner.per_product == 12
    # Much left: wait for a full page however little the bucket holds.
    assert planner.size(available=0) == most
    # 20 left (~240 points): a page no bigger than the goal of one product's requested cost + the rest.
    planner.remaining = 20
    goal = cost.requested(1) + 19 * 12
    assert planner.size(available=0) == cost.fits(goal, most) < most
    # ...but never smaller than what the bucket pays right away, nor than one product.
    assert planner.size(available=cost.requested(most)) == most
    planner.remaining = 1
    assert planner.size(available=0) == 1


def test_planner_without_a_count_or_past_it_asks_for_full_pages() -> None:
    queries = ProductQueries()
    planner = PagePlanner(queries.page_cost, queries.page_size, expected=None)
    planner.learn(5, QueryCost(500, 60))
    assert planner.size(available=0) == queries.page_size
    grown = PagePlanner(queries.page_cost, queries.page_size, expected=3)
    assert grown.size(available=5000) == 3
    grown.learn(3, QueryCost(300, 40))
    assert grown.remaining is None and grown.size(available=0) == queries.page_size
