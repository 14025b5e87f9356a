"""The adapter against a running simulator: credentials, full / incremental / by-id fetches, faults."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from alana_bigcommerce.adapter import BigCommerceAdapter

from gateway.adapter import FetchMode, FetchRequest, Page
from gateway.errors import MappingError, StoreAuthError

Factory = Callable[..., Any]


async def collect(adapter: BigCommerceAdapter, conn: Any, request: FetchRequest) -> list[Page]:
    return [page async for page in adapter.fetch_products(conn, request)]


def pages_of(adapter: BigCommerceAdapter, conn: Any, request: FetchRequest) -> AsyncGenerator[Page, None]:
    """fetch_products as the async generator it is (closable, so its prefetch tasks are cancelled)."""
    return cast(AsyncGenerator[Page, None], adapter.fetch_products(conn, request))


def ids_of(pages: list[Page]) -> list[int]:
    return [item["id"] for page in pages for item in page.items]


# ---- credentials and store facts -----------------------------------------------------------------
async def test_good_credentials_pass(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, api_calls: Callable[..., int]
) -> None:
    sim = await make_sim(20)
    await adapter.check_credentials(make_conn(sim))
    assert api_calls(sim, "/catalog/products") == 1


async def test_bad_token_is_a_store_auth_error(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter
) -> None:
    sim = await make_sim(20)
    with pytest.raises(StoreAuthError) as caught:
        await adapter.check_credentials(make_conn(sim, credentials={"access_token": "wrong"}))
    assert caught.value.status == 401
    assert "wrong" not in str(caught.value)


async def test_unknown_store_hash_is_a_store_auth_error(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter
) -> None:
    sim = await make_sim(20)
    with pytest.raises(StoreAuthError, match="store hash"):
        await adapter.check_credentials(make_conn(sim, store_url=f"{sim.base_url}/stores/nosuchstore"))


async def test_store_url_pasted_with_v3_still_works(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter
) -> None:
    sim = await make_sim(20)
    conn = make_conn(sim, store_url=sim.store_url + "/v3/")
    await adapter.check_credentials(conn)
    assert await adapter.count_products(conn, FetchRequest()) == 20


async def test_mapping_context_currency(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, api_calls: Callable[..., int]
) -> None:
    sim = await make_sim(5, currency="CAD", seed=901)
    assert (await adapter.mapping_context(make_conn(sim))).currency == "CAD"
    assert api_calls(sim, "/v2/store") == 1
    # Webhook batches ask for a context each time: the store is not asked again for a while.
    assert (await adapter.mapping_context(make_conn(sim))).currency == "CAD"
    assert api_calls(sim, "/v2/store") == 1
    # An explicit option wins, and costs no call.
    assert (await adapter.mapping_context(make_conn(sim, currency="eur"))).currency == "EUR"
    assert api_calls(sim, "/v2/store") == 1


# ---- full fetch ----------------------------------------------------------------------------------
async def test_full_fetch_yields_everything_in_order_with_names(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, api_calls: Callable[..., int]
) -> None:
    sim = await make_sim(1200)
    conn = make_conn(sim, page_size=100)

    assert await adapter.count_products(conn, FetchRequest()) == 1200
    pages = await collect(adapter, conn, FetchRequest())

    assert ids_of(pages) == [int(i) for i in sim.product_ids()]
    assert [p.cursor for p in pages] == [f"after:{n * 100}" for n in range(1, 12)] + [None]
    assert all(p.total == 1200 and len(p.items) == 100 for p in pages)
    # The count's request also gave the highest id that bounds the listing: one request, then the pages.
    assert api_calls(sim, "/catalog/products") == 1 + 12
    # Category and brand names: a couple of calls for the whole run, not one per product or page.
    assert api_calls(sim, "/catalog/categories") <= 2 and api_calls(sim, "/catalog/brands") <= 2
    spec = next(item for page in pages for item in page.items if item["id"] == 174)
    categories = sim.catalog.categories
    assert spec["_category_names"] == [categories[23]["name"], categories[21]["name"]]
    assert spec["_brand_name"] == sim.catalog.brands[36]["name"]
    items = [item for page in pages for item in page.items]
    assert all(len(item["_category_names"]) == len(item["categories"]) for item in items)
    assert all(isinstance(item["variants"], list) and "images" in item for item in items)

    context = await adapter.mapping_context(conn)
    products = [adapter.map_product(item, context) for item in items]
    assert {p.external_id for p in products} == set(sim.product_ids())
    assert all(p.vendor for p, item in zip(products, items, strict=True) if item["brand_id"])
    # The count's highest id is taken once: a fetch without a fresh count asks for its own.
    assert ids_of(await collect(adapter, conn, FetchRequest())) == ids_of(pages)
    assert api_calls(sim, "/catalog/products") == 2 * (1 + 12)


async def test_fetch_resumes_after_a_cursor(make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter) -> None:
    sim = await make_sim(450)
    conn = make_conn(sim, page_size=100)
    everything = ids_of(await collect(adapter, conn, FetchRequest()))

    first_two = []
    async with contextlib.aclosing(pages_of(adapter, conn, FetchRequest())) as attempt:
        async for page in attempt:  # the first attempt dies after two pages
            first_two.append(page)
            if len(first_two) == 2:
                break
    cursor = first_two[-1].cursor
    assert cursor is not None
    # A product before the cursor is deleted between the attempts: the resumed fetch is unaffected.
    sim.delete_product(str(everything[10]))
    resumed = await collect(adapter, conn, FetchRequest(cursor=cursor))
    assert ids_of(first_two) + ids_of(resumed) == everything
    assert resumed[-1].cursor is None
    assert first_two[0].total == 450 and all(page.total is None for page in resumed)
    # A cursor that is not ours restarts the fetch rather than failing it.
    assert ids_of(await collect(adapter, conn, FetchRequest(cursor="3"))) == [int(i) for i in sim.product_ids()]


async def test_listing_that_shifts_during_the_fetch_skips_nothing(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter
) -> None:
    sim = await make_sim(1000)
    conn = make_conn(sim, page_size=100, page_concurrency=3)
    async with contextlib.aclosing(pages_of(adapter, conn, FetchRequest())) as pages:
        first = await anext(pages)
        # Deleting a product on a page already read moves every later product up one place: page 2
        # by number would now start at what was the 102nd product, and the 101st would be skipped.
        sim.delete_product("50")
        new_id = int(sim.create_product())
        rest = [page async for page in pages]

    seen = ids_of([first, *rest])
    assert len(seen) == len(set(seen))
    assert 101 in seen
    # A full run reads the catalog as of its start; the new product comes by webhook or the next run.
    assert set(seen) == ({int(i) for i in sim.product_ids()} | {50}) - {new_id}


async def test_empty_store(make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter) -> None:
    sim = await make_sim(1)
    sim.delete_product(sim.product_ids()[0])
    pages = await collect(adapter, make_conn(sim), FetchRequest())
    assert [(p.items, p.cursor) for p in pages] == [([], None)]


# ---- incremental ---------------------------------------------------------------------------------
async def test_since_returns_just_the_changed_products(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter
) -> None:
    sim = await make_sim(800)
    since = datetime.now(UTC) - timedelta(seconds=1)
    sim.update_product("12")
    sim.update_product("345", price="9.99")
    created = sim.create_product(title="Brand new")
    sim.update_variant_inventory("12", level=3)  # variant-only: does not move date_modified
    conn = make_conn(sim)

    request = FetchRequest(mode=FetchMode.SINCE, since=since)
    pages = await collect(adapter, conn, request)

    assert ids_of(pages) == [12, 345, int(created)]
    assert await adapter.count_products(conn, request) == 3
    assert pages[0].total == 3
    changed = {item["id"]: item for item in pages[0].items}
    assert changed[345]["price"] == 9.99
    assert changed[int(created)]["name"] == "Brand new"


# ---- by ids --------------------------------------------------------------------------------------
async def test_ids_fetch_is_one_request_and_reports_missing_ids(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, api_calls: Callable[..., int]
) -> None:
    sim = await make_sim(300)
    sim.delete_product("40")
    conn = make_conn(sim)
    request = FetchRequest(mode=FetchMode.IDS, ids=("7", "40", "174", "7", "99999", "not-an-id"))

    assert await adapter.count_products(conn, request) == 5
    pages = await collect(adapter, conn, request)

    assert api_calls(sim, "/catalog/products") == 1
    assert len(pages) == 1
    assert sorted(ids_of(pages)) == [7, 174]
    assert sorted(pages[0].missing_ids) == ["40", "99999", "not-an-id"]
    assert pages[0].cursor is None
    assert all("_category_names" in item and "variants" in item for item in pages[0].items)


async def test_ids_fetch_of_many_ids_is_chunked(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, api_calls: Callable[..., int]
) -> None:
    sim = await make_sim(600)
    ids = tuple(str(i) for i in range(1, 601))
    pages = await collect(adapter, make_conn(sim), FetchRequest(mode=FetchMode.IDS, ids=ids))
    assert [p.cursor for p in pages] == ["1", "2", None]
    assert sorted(ids_of(pages)) == sorted(int(i) for i in sim.product_ids())
    assert api_calls(sim, "/catalog/products") == 3


# ---- faults --------------------------------------------------------------------------------------
async def test_429_500_and_truncated_bodies_still_fetch_everything(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter
) -> None:
    sim = await make_sim(700)
    sim.faults.set(every_nth_429=3, retry_after=0.01, burst_500=2, truncate_next=2)
    conn = make_conn(sim, page_size=100)
    client = adapter.client(conn)
    client.backoff_base = 0.01  # keep the retries quick

    ids = ids_of(await collect(adapter, conn, FetchRequest()))

    assert sorted(ids) == [int(i) for i in sim.product_ids()]
    assert sim.faults.injected_429 > 0 and sim.faults.injected_500 == 2
    assert sim.faults.plan.truncate_next == 0
    assert client.retries >= 4


async def test_malformed_products_fail_alone(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter
) -> None:
    sim = await make_sim(120)
    sim.faults.set(malformed_ids=["15", "16"])
    conn = make_conn(sim)
    context = await adapter.mapping_context(conn)
    failed: dict[str, str] = {}
    mapped = 0
    for page in await collect(adapter, conn, FetchRequest()):
        for item in page.items:
            try:
                adapter.map_product(item, context)
                mapped += 1
            except MappingError as exc:
                failed[str(exc.external_id)] = exc.message
    assert mapped == 118
    assert set(failed) == {"15", "16"}
    assert "price" in failed["15"] and "name" in failed["16"]
