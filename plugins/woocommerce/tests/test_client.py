"""The client against the running simulator: auth, paging, SINCE, IDS, variations, faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alana_woocommerce.adapter import WooCommerceAdapter
from alana_woocommerce.mapper import VARIATIONS_KEY

from gateway.adapter import Connection, FetchMode, FetchRequest, MappingContext, Page
from gateway.errors import MappingError, StoreAuthError, StoreHTTPError
from gateway.model import Product
from gateway.testing.kit import local_http


async def collect(adapter: WooCommerceAdapter, conn: Connection, request: FetchRequest) -> list[Page]:
    return [page async for page in adapter.fetch_products(conn, request)]


def ids_of(pages: list[Page]) -> list[str]:
    return [str(item["id"]) for page in pages for item in page.items]


def api_calls(sim: Any, fragment: str) -> int:
    return sum(1 for path in sim.faults.paths if fragment in path.split("?")[0])


# ---- credentials and store facts --------------------------------------------------------------------
async def test_credentials_good_with_query_keys(make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(5)
    await adapter.check_credentials(make_conn(sim))
    assert any("consumer_key=" in path for path in sim.faults.paths)


async def test_credentials_good_with_basic_auth(make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(5)
    conn = make_conn(sim, auth="basic")
    await adapter.check_credentials(conn)
    assert not any("consumer_secret" in path for path in sim.faults.paths)


@pytest.mark.parametrize("auth", ["query", "basic"])
async def test_credentials_bad(make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter, auth: str) -> None:
    sim = await make_sim(5)
    conn = make_conn(sim, {"consumer_key": sim.consumer_key, "consumer_secret": "cs_wrong"}, auth=auth)
    with pytest.raises(StoreAuthError) as caught:
        await adapter.check_credentials(conn)
    assert "cs_wrong" not in str(caught.value) and sim.consumer_key not in str(caught.value)


async def test_missing_credentials(make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(1)
    with pytest.raises(StoreAuthError):
        await adapter.check_credentials(make_conn(sim, {"consumer_key": "", "consumer_secret": ""}))


async def test_wrong_store_url_names_the_problem(make_sim: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(1)
    conn = Connection("t", sim.store_url + "/not-wordpress", sim.credentials(), http_factory=local_http)
    try:
        with pytest.raises(StoreHTTPError) as caught:
            await adapter.check_credentials(conn)
    finally:
        await conn.close()
    assert caught.value.field == "store_url"


async def test_mapping_context_reads_the_currency(make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(1, currency="GBP")
    assert await adapter.mapping_context(make_conn(sim)) == MappingContext(currency="GBP")


async def test_mapping_context_falls_back_to_usd(make_sim: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(1, currency="GBP")
    conn = Connection("t", sim.store_url + "/elsewhere", sim.credentials(), http_factory=local_http)
    try:
        assert (await adapter.mapping_context(conn)).currency == "USD"
    finally:
        await conn.close()


# ---- full walks ---------------------------------------------------------------------------------------
async def test_full_fetch_returns_the_whole_catalog(make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(250)
    conn = make_conn(sim)
    assert await adapter.count_products(conn, FetchRequest()) == len(sim.product_ids())
    pages = await collect(adapter, conn, FetchRequest())
    ids = ids_of(pages)
    assert sorted(ids, key=int) == sorted(sim.product_ids(), key=int)
    assert len(ids) == len(set(ids))
    assert len(pages) == 3 and [p.cursor is None for p in pages] == [False, False, True]
    assert all(p.total == len(sim.product_ids()) for p in pages)
    for item in (i for p in pages for i in p.items if i["type"] == "variable"):
        assert sorted(v["id"] for v in item[VARIATIONS_KEY]) == sorted(item["variations"])
    variable = sum(1 for i in sim.products.values() if i["type"] == "variable" and i["status"] != "trash")
    assert api_calls(sim, "/variations") == variable  # one request each: no more, no less


async def test_trimmed_payloads_map_exactly_like_full_ones(
    make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(150, big_variations=110)
    pages = await collect(adapter, make_conn(sim), FetchRequest())
    items = [i for p in pages for i in p.items]
    # Only the fields the mapper reads travel (`_fields`): never-synced ones are not even fetched.
    assert not any({"total_sales", "average_rating", "purchase_note", "price_html"} & set(i) for i in items)
    context = MappingContext(currency="USD")
    for item in items:
        full = dict(sim.products[item["id"]])
        if item["id"] in sim.variations:
            full[VARIATIONS_KEY] = sim.variations[item["id"]]
        assert adapter.map_product(item, context) == adapter.map_product(full, context)


async def test_resume_from_a_cursor_continues_after_that_page(
    make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(230)
    first_pages = []
    async for page in adapter.fetch_products(make_conn(sim), FetchRequest()):
        first_pages.append(page)
        break  # the worker died here
    resumed = await collect(adapter, make_conn(sim), FetchRequest(cursor=first_pages[0].cursor))
    ids = ids_of(first_pages) + ids_of(resumed)
    assert sorted(ids, key=int) == sorted(sim.product_ids(), key=int) and len(ids) == len(set(ids))


async def test_deletes_during_a_walk_skip_nothing(make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(300)
    conn = make_conn(sim, per_page=50)
    before = sim.product_ids()
    seen: list[str] = []
    deleted: list[str] = []
    async for page in adapter.fetch_products(conn, FetchRequest()):
        seen += [str(i["id"]) for i in page.items]
        # Products already read vanish: every later product shifts left by that many places.
        for victim in seen[-12:-5]:
            if victim not in deleted:
                sim.delete_product(victim)
                deleted.append(victim)
    assert deleted
    assert set(before) <= set(seen)
    assert len(seen) == len(set(seen))


async def test_big_variable_product_loses_no_variation(
    make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(30, big_variations=130)
    big_id, big = max(sim.variations.items(), key=lambda kv: len(kv[1]))
    assert len(big) == 130
    pages = await collect(adapter, make_conn(sim), FetchRequest(mode=FetchMode.IDS, ids=(str(big_id),)))
    (item,) = [i for p in pages for i in p.items]
    assert sorted(v["id"] for v in item[VARIATIONS_KEY]) == sorted(v["id"] for v in big)
    assert api_calls(sim, f"/products/{big_id}/variations") == 2
    product = adapter.map_product(item, MappingContext())
    enabled = [v for v in big if v["status"] != "private"]
    assert len(product.variants) == len(enabled)


async def test_variations_are_fetched_concurrently(make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(60, variable_share=0.9)
    sim.faults.set(slow_ms=15)
    await collect(adapter, make_conn(sim, concurrency=8), FetchRequest())
    # Several variation requests in flight at once (a serial N+1 crawl would never exceed 2: the
    # prefetched listing page plus one variation request).
    assert sim.max_in_flight >= 4


# ---- SINCE and IDS ----------------------------------------------------------------------------------------
async def test_since_returns_just_the_changed_products(
    make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(400)
    since = datetime.now(UTC) - timedelta(seconds=1)
    changed = sim.product_ids()[10:15]
    for pid in changed:
        sim.update_product(pid)
    variable = next(pid for pid in sim.product_ids() if sim.products[int(pid)]["type"] == "variable")
    sim.update_product(variable)
    conn = make_conn(sim)
    request = FetchRequest(mode=FetchMode.SINCE, since=since)
    assert await adapter.count_products(conn, request) == 6
    before = sim.faults.api_requests
    pages = await collect(adapter, conn, request)
    assert sorted(ids_of(pages)) == sorted([*changed, variable])
    assert len(pages) == 1 and pages[0].total == 6
    variable_count = sum(1 for i in pages[0].items if i["type"] == "variable")
    assert variable_count >= 1
    # One listing page, plus one variations request per variable product.
    assert sim.faults.api_requests - before == 1 + variable_count
    # Changes come oldest first, so the newest date is the next run's cursor.
    dates = [i["date_modified_gmt"] for i in pages[0].items]
    assert dates == sorted(dates) and len(set(dates)) == 6
    mapped = [adapter.map_product(i, MappingContext()) for i in pages[0].items]
    assert all(p.store_updated_at >= since.replace(microsecond=0) for p in mapped)


async def test_since_walk_survives_products_modified_during_it(
    make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(120)
    since = datetime.now(UTC) - timedelta(seconds=1)
    for pid in sim.product_ids()[:80]:
        sim.update_product(pid, sku=f"EDIT-{pid}")
    expected = set(sim.product_ids()[:80])
    seen: list[str] = []
    async for page in adapter.fetch_products(make_conn(sim, per_page=20), FetchRequest(FetchMode.SINCE, since)):
        seen += [str(i["id"]) for i in page.items]
        # Re-edit products already read: they jump to the end of the modified-order listing.
        for pid in seen[:3]:
            sim.update_product(pid, sku=f"AGAIN-{pid}")
    assert expected <= set(seen)


async def test_ids_reports_missing_products(make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(50)
    present = sim.product_ids()[3:6]
    gone = sim.product_ids()[7]
    sim.delete_product(gone)
    ids = (*present, gone, "999999", "not-an-id")
    conn = make_conn(sim)
    request = FetchRequest(mode=FetchMode.IDS, ids=ids)
    assert await adapter.count_products(conn, request) == len(ids)
    pages = await collect(adapter, conn, request)
    assert sorted(ids_of(pages)) == sorted(present)
    assert sorted(m for p in pages for m in p.missing_ids) == sorted([gone, "999999", "not-an-id"])


async def test_ids_in_chunks_resume_by_cursor(make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(260)
    wanted = tuple(sim.product_ids()[:230])
    conn = make_conn(sim)
    pages = await collect(adapter, conn, FetchRequest(mode=FetchMode.IDS, ids=wanted))
    assert [len(p.items) for p in pages] == [100, 100, 30]
    resumed = await collect(adapter, conn, FetchRequest(mode=FetchMode.IDS, ids=wanted, cursor=pages[0].cursor))
    assert ids_of(resumed) == ids_of(pages[1:])


# ---- faults ---------------------------------------------------------------------------------------------
async def test_throttling_and_server_errors_still_return_everything(
    make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(250)
    sim.faults.set(every_nth_429=5, burst_500=4, retry_after=0.001)
    pages = await collect(adapter, make_conn(sim), FetchRequest())
    assert sorted(ids_of(pages), key=int) == sorted(sim.product_ids(), key=int)
    assert sim.faults.injected_429 > 0 and sim.faults.injected_500 == 4


async def test_truncated_bodies_are_fetched_again(make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(150)
    sim.faults.set(truncate_next=2)
    pages = await collect(adapter, make_conn(sim), FetchRequest())
    assert sorted(ids_of(pages), key=int) == sorted(sim.product_ids(), key=int)
    assert sim.faults.plan.truncate_next == 0


async def test_malformed_products_fail_alone(make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter) -> None:
    sim = await make_sim(120, examples=False)
    simple = [pid for pid in sim.product_ids() if sim.products[int(pid)]["type"] == "simple"]
    # An odd id is served without its name, an even one with a non-numeric price: one of each.
    broken = [next(p for p in simple if int(p) % 2), next(p for p in simple if not int(p) % 2)]
    sim.faults.set(malformed_ids=broken)
    pages = await collect(adapter, make_conn(sim), FetchRequest())
    mapped: list[Product] = []
    failed: list[str] = []
    context = MappingContext()
    for item in (i for p in pages for i in p.items):
        try:
            mapped.append(adapter.map_product(item, context))
        except MappingError as exc:
            failed.append(exc.external_id or "")
    assert sorted(failed) == sorted(broken)
    assert len(mapped) == len(sim.product_ids()) - 2


async def test_credentials_revoked_mid_walk_fail_the_fetch(
    make_sim: Any, make_conn: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(300)
    pages = adapter.fetch_products(make_conn(sim), FetchRequest())
    first = await anext(pages)
    assert first.cursor is not None
    sim.consumer_secret = "cs_rotated_by_the_merchant"
    with pytest.raises(StoreAuthError):
        async for _ in pages:
            pass
    await pages.aclose()  # type: ignore[attr-defined]
