"""The simulator itself: a realistic, deterministic catalog and WooCommerce's API behaviour."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from alana_woocommerce.adapter import WooCommerceAdapter
from alana_woocommerce.catalog import Catalog, CatalogBuilder
from alana_woocommerce.simulator import WooCommerceSimulator

API = "/wp-json/wc/v3"


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    session: aiohttp.ClientSession,
    sim: WooCommerceSimulator,
    method: str,
    path: str,
    *,
    auth: bool = True,
    **params: Any,
) -> tuple[int, Any, Any]:
    query = {**(sim.credentials() if auth else {}), **{k: str(v) for k, v in params.items()}}
    async with session.request(method, f"{sim.store_url}{API}{path}", params=query) as response:
        return response.status, await response.json(), response.headers


# ---- the catalog ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_catalog() -> Catalog:
    return CatalogBuilder(5, big_variations=125).build(10_000)


def test_ten_thousand_products_generate(big_catalog: Catalog) -> None:
    # How fast is `make bench`'s business (the sync benchmark builds this catalog); here: it is complete.
    assert len(big_catalog.products) == 10_000
    assert len(set(big_catalog.products)) == 10_000


def test_catalog_variety(big_catalog: Catalog) -> None:
    catalog = big_catalog
    products = list(catalog.products.values())
    types = Counter(p["type"] for p in products)
    assert 0.28 < types["variable"] / len(products) < 0.39
    sizes = sorted(len(v) for v in catalog.variations.values())
    assert sizes[0] >= 2 and sizes[-1] == 125 and 3 <= sizes[len(sizes) // 2] <= 10
    assert {p["status"] for p in products} >= {"publish", "draft", "pending", "private"}
    assert {p["stock_status"] for p in products} == {"instock", "outofstock", "onbackorder"}
    assert any(p["manage_stock"] is False for p in products) and any(p["manage_stock"] for p in products)
    assert any(p["on_sale"] and p["date_on_sale_to_gmt"] for p in products)
    assert any(p["sale_price"] and not p["on_sale"] for p in products)  # a sale scheduled for later
    assert any("&amp;" in p["name"] or "<" in p["name"] for p in products)
    assert any(not p["name"].isascii() for p in products)
    assert any(len(p["images"]) > 1 for p in products) and any(not p["images"] for p in products)
    codes = [p["global_unique_id"] for p in products if p.get("global_unique_id")]
    assert {len(c) for c in codes} >= {8, 12, 13} and any(not c.isdigit() for c in codes)
    variations = [v for vs in catalog.variations.values() for v in vs]
    assert any(v["manage_stock"] == "parent" for v in variations)
    assert all(v["attributes"] and v["parent_id"] in catalog.products for v in variations)


def test_catalog_is_deterministic() -> None:
    first = CatalogBuilder(3).build(300)
    again = CatalogBuilder(3).build(300)
    other = CatalogBuilder(4).build(300)
    assert json.dumps(first.products) == json.dumps(again.products)
    assert json.dumps(first.variations) == json.dumps(again.variations)
    assert json.dumps(first.products) != json.dumps(other.products)


def test_official_examples_are_in_the_catalog() -> None:
    sim = WooCommerceSimulator(10)
    assert {"794", "799", "801", "804"} <= set(sim.product_ids())
    assert [v["id"] for v in sim.variations[799]] == [732, 733, 735, 736]
    assert len(sim.product_ids()) == 10
    assert len(WooCommerceSimulator(3).product_ids()) == 3


def test_adapter_names_its_simulator() -> None:
    assert WooCommerceAdapter.simulator() is WooCommerceSimulator
    assert WooCommerceSimulator.platform == "woocommerce"


# ---- API behaviour --------------------------------------------------------------------------------------
async def test_auth_failures_use_woocommerce_error_shape(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(3)
    status, body, _ = await call(http, sim, "GET", "/products", auth=False)
    assert status == 401 and body == {
        "code": "woocommerce_rest_cannot_view",
        "message": "Sorry, you cannot list resources.",
        "data": {"status": 401},
    }
    status, body, _ = await call(
        http, sim, "GET", "/products", auth=False, consumer_key=sim.consumer_key, consumer_secret="cs_nope"
    )
    assert status == 401 and body["code"] == "woocommerce_rest_authentication_error"
    token = base64.b64encode(f"{sim.consumer_key}:{sim.consumer_secret}".encode()).decode()
    async with http.get(f"{sim.store_url}{API}/products", headers={"Authorization": f"Basic {token}"}) as response:
        assert response.status == 200


async def test_listing_headers_and_limits(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(45)
    status, body, headers = await call(http, sim, "GET", "/products", per_page=20, page=2)
    assert status == 200 and len(body) == 20
    assert headers["X-WP-Total"] == "45" and headers["X-WP-TotalPages"] == "3"
    assert 'rel="next"' in headers["Link"] and 'rel="prev"' in headers["Link"]
    assert "consumer_secret" not in headers["Link"]
    status, body, _ = await call(http, sim, "GET", "/products", per_page=101)
    assert status == 400 and body["code"] == "rest_invalid_param" and "per_page" in body["data"]["params"]
    status, body, _ = await call(http, sim, "GET", "/products", per_page=20, page=9)
    assert status == 400 and body["code"] == "rest_post_invalid_page_number"
    status, body, _ = await call(http, sim, "GET", "/products", orderby="popularity-ish")
    assert status == 400 and body["code"] == "rest_invalid_param"


async def test_ordering_filters_and_include(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(60, examples=False)
    _, by_id, _ = await call(http, sim, "GET", "/products", per_page=100, orderby="id", order="asc")
    ids = [p["id"] for p in by_id]
    assert ids == sorted(ids) and len(ids) == 60
    _, by_modified, _ = await call(http, sim, "GET", "/products", per_page=100, orderby="modified", order="desc")
    dates = [p["date_modified_gmt"] for p in by_modified]
    assert dates == sorted(dates, reverse=True)
    _, drafts, _ = await call(http, sim, "GET", "/products", per_page=100, status="draft")
    assert drafts and all(p["status"] == "draft" for p in drafts)
    wanted = [ids[5], ids[2], ids[40]]
    _, included, _ = await call(http, sim, "GET", "/products", include=",".join(map(str, wanted)), orderby="include")
    assert [p["id"] for p in included] == wanted


async def test_modified_after_compares_gmt_or_local_time(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(50, examples=False)
    newest = max(p["date_modified_gmt"] for p in sim.products.values())
    newest_product = next(p for p in sim.products.values() if p["date_modified_gmt"] == newest)
    # One hour before the newest GMT date: with GMT dates only the newest products match; compared with
    # local dates (GMT-3), nothing is that late.
    from datetime import datetime, timedelta

    bound = (datetime.fromisoformat(newest) - timedelta(hours=1)).isoformat()
    _, gmt, _ = await call(http, sim, "GET", "/products", per_page=100, modified_after=bound, dates_are_gmt="true")
    _, local, _ = await call(http, sim, "GET", "/products", per_page=100, modified_after=bound)
    assert newest_product["id"] in [p["id"] for p in gmt]
    assert local == []
    _, none, _ = await call(http, sim, "GET", "/products", modified_after="yesterday-ish")
    assert none["code"] == "rest_invalid_param"


async def test_single_product_variations_and_errors(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(30, big_variations=True)
    status, body, _ = await call(http, sim, "GET", "/products/123456789")
    assert status == 404 and body["code"] == "woocommerce_rest_product_invalid_id"
    status, body, _ = await call(http, sim, "GET", "/nope")
    assert status == 404 and body["code"] == "rest_no_route"
    big_id = max(sim.variations, key=lambda k: len(sim.variations[k]))
    status, page1, headers = await call(
        http, sim, "GET", f"/products/{big_id}/variations", per_page=100, orderby="id", order="asc"
    )
    assert status == 200 and len(page1) == 100 and headers["X-WP-TotalPages"] == "2"
    assert [v["id"] for v in page1] == sorted(v["id"] for v in page1)
    vid = page1[0]["id"]
    status, one, _ = await call(http, sim, "GET", f"/products/{big_id}/variations/{vid}")
    assert status == 200 and one["parent_id"] == big_id
    status, settings, _ = await call(http, sim, "GET", "/settings/general")
    assert {"id": "woocommerce_currency", "value": "USD"}.items() <= next(
        s for s in settings if s["id"] == "woocommerce_currency"
    ).items()


async def test_changes_tick_a_strictly_increasing_clock(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(10, examples=False)
    pid = next(p for p in sim.product_ids() if sim.products[int(p)]["type"] == "simple")
    stamps = []
    for price in ("10.00", "11.00", "12.00"):
        sim.update_product(pid, price=price)
        stamps.append(sim.products[int(pid)]["date_modified_gmt"])
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    _, body, _ = await call(http, sim, "GET", f"/products/{pid}")
    assert body["regular_price"] == "12.00" and body["date_modified_gmt"] == stamps[-1]
    assert body["date_modified"] != body["date_modified_gmt"]  # local time is GMT-3


async def test_delete_trashes_and_control_endpoints(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(10, examples=False)
    pid = sim.product_ids()[1]
    async with http.post(
        f"{sim.store_url}/_sim/products/{pid}/touch", json={"title": "Touched", "price": "9.99"}
    ) as response:
        assert response.status == 200
    assert sim.products[int(pid)]["name"] == "Touched" and sim.products[int(pid)]["regular_price"] == "9.99"
    async with http.delete(f"{sim.store_url}/_sim/products/{pid}") as response:
        assert response.status == 200
    assert pid not in sim.product_ids()
    status, body, _ = await call(http, sim, "GET", f"/products/{pid}")
    assert status == 200 and body["status"] == "trash"
    _, listing, _ = await call(http, sim, "GET", "/products", per_page=100)
    assert int(pid) not in [p["id"] for p in listing]
    with pytest.raises(ValueError):
        sim.update_product(sim.product_ids()[0], colour_of_the_sky="blue")


async def test_webhook_delete_needs_force(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(2)
    sim.deliver_webhooks = False
    status, hook, _ = await call(http, sim, "POST", "/webhooks")
    assert status == 400  # no body: no topic
    query = sim.credentials()
    async with http.post(
        f"{sim.store_url}{API}/webhooks",
        params=query,
        json={"topic": "product.updated", "delivery_url": "http://127.0.0.1:9/hook"},
    ) as response:
        assert response.status == 201
        hook = await response.json()
    assert "secret" not in hook and hook["resource"] == "product" and hook["event"] == "updated"
    status, body, _ = await call(http, sim, "DELETE", f"/webhooks/{hook['id']}")
    assert status == 501 and body["code"] == "woocommerce_rest_trash_not_supported"
    status, _, _ = await call(http, sim, "DELETE", f"/webhooks/{hook['id']}", force="true")
    assert status == 200 and sim.hooks == {}
