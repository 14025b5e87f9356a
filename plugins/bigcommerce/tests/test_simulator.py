"""The simulator speaks BigCommerce: envelope, paging, filters, errors, rate-limit headers, hooks."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from alana_bigcommerce.adapter import BigCommerceAdapter
from alana_bigcommerce.catalog import Catalog, iso
from alana_bigcommerce.simulator import BigCommerceSimulator

from gateway.plugins import load_plugins

Factory = Callable[..., Any]


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def get(
    session: aiohttp.ClientSession, sim: BigCommerceSimulator, path: str, token: str | None = None, **params: Any
) -> tuple[int, dict[str, str], Any]:
    headers = {"X-Auth-Token": sim.access_token if token is None else token, "Accept": "application/json"}
    async with session.get(f"{sim.store_url}/{path}", params=params, headers=headers) as response:
        return response.status, dict(response.headers), await response.json()


async def test_products_envelope_paging_and_include(make_sim: Factory, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(120)
    status, headers, body = await get(
        session, sim, "v3/catalog/products", page="2", limit="50", include="variants,images"
    )
    assert status == 200
    assert [p["id"] for p in body["data"]] == list(range(51, 101))
    pagination = body["meta"]["pagination"]
    assert {k: pagination[k] for k in ("total", "count", "per_page", "current_page", "total_pages")} == {
        "total": 120,
        "count": 50,
        "per_page": 50,
        "current_page": 2,
        "total_pages": 3,
    }
    assert "page=3" in pagination["links"]["next"] and "page=1" in pagination["links"]["previous"]
    first = body["data"][0]
    assert "variants" in first and "images" in first and "custom_fields" not in first
    for name in (
        "X-Rate-Limit-Requests-Left",
        "X-Rate-Limit-Time-Reset-Ms",
        "X-Rate-Limit-Requests-Quota",
        "X-Rate-Limit-Time-Window-Ms",
    ):
        assert name in headers

    _, _, clamped = await get(session, sim, "v3/catalog/products", limit="1000")
    assert clamped["meta"]["pagination"]["per_page"] == 250
    _, _, default = await get(session, sim, "v3/catalog/products")
    assert default["meta"]["pagination"]["per_page"] == 50


async def test_filters_and_sorting(make_sim: Factory, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(300)
    _, _, by_ids = await get(session, sim, "v3/catalog/products", **{"id:in": "3,5,999"})
    assert [p["id"] for p in by_ids["data"]] == [3, 5]
    _, _, greater = await get(session, sim, "v3/catalog/products", **{"id:greater": "295"})
    assert [p["id"] for p in greater["data"]] == [296, 297, 298, 299, 300]
    sim.update_product("17")
    stamp = sim.catalog.modified_at(17)
    _, _, since = await get(session, sim, "v3/catalog/products", **{"date_modified:min": iso(stamp)})
    assert [p["id"] for p in since["data"]] == [17]
    _, _, newest = await get(session, sim, "v3/catalog/products", sort="date_modified", direction="desc", limit="2")
    assert newest["data"][0]["id"] == 17
    status, _, bad = await get(session, sim, "v3/catalog/products", sort="nonsense")
    assert status == 422 and bad["status"] == 422


async def test_errors_have_bigcommerce_shape(make_sim: Factory, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(10)
    status, _, body = await get(session, sim, "v3/catalog/products", token="nope")
    assert status == 401 and body["status"] == 401 and body["title"].startswith("Unauthorized")
    assert body["type"].startswith("https://developer.bigcommerce.com")
    status, _, body = await get(session, sim, "v3/catalog/products/9999")
    assert status == 404 and body["title"] == "The requested product was not found."
    status, _, body = await get(session, sim, "v3/catalog/products/174", include="variants")
    assert status == 200 and body["meta"] == {} and body["data"]["name"] == "1L Le Parfait Jar"
    status, _, body = await get(session, sim, "v2/store")
    assert status == 200 and body["currency"] == "USD"


async def test_quota_runs_out_with_429_and_headers(make_sim: Factory, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(10, quota=3, window_ms=60_000)
    answers = [await get(session, sim, "v3/catalog/products", limit="1") for _ in range(4)]
    assert [a[0] for a in answers] == [200, 200, 200, 429]
    assert [a[1]["X-Rate-Limit-Requests-Left"] for a in answers] == ["2", "1", "0", "0"]
    assert int(answers[3][1]["X-Rate-Limit-Time-Reset-Ms"]) > 50_000
    assert answers[3][1]["X-Retry-After"] == "60"
    assert sim.rate_limited == 1


async def test_other_apps_spend_part_of_the_window(make_sim: Factory, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(10, quota=100, window_ms=10_000, other_apps_share=0.5)
    now = [1000.0]
    sim.clock = lambda: now[0]

    async def left() -> int:
        _, headers, _ = await get(session, sim, "v3/catalog/products", limit="1")
        return int(headers["X-Rate-Limit-Requests-Left"])

    assert await left() == 99
    now[0] += 5.0  # half the window: the other apps have spent half their share (25)
    assert await left() == 100 - 2 - 25
    now[0] += 5.0  # a new window
    assert await left() == 99


async def test_hooks_crud(make_sim: Factory, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(5)
    url = f"{sim.store_url}/v3/hooks"
    headers = {"X-Auth-Token": sim.access_token}
    hook = {
        "scope": "store/product/updated",
        "destination": "https://example.test/h",
        "is_active": True,
        "headers": {"X-Custom": "1"},
    }
    async with session.post(url, json=hook, headers=headers) as response:
        created = (await response.json())["data"]
    assert created["scope"] == "store/product/updated" and created["headers"] == {"X-Custom": "1"}
    async with session.post(url, json=hook, headers=headers) as response:
        assert response.status == 422  # one hook per scope and destination
    async with session.post(url, json={**hook, "scope": "store/nope"}, headers=headers) as response:
        assert response.status == 422
    async with session.put(f"{url}/{created['id']}", json={"is_active": False}, headers=headers) as response:
        assert (await response.json())["data"]["is_active"] is False
    async with session.get(url, headers=headers) as response:
        assert [h["id"] for h in (await response.json())["data"]] == [created["id"]]
    async with session.delete(f"{url}/{created['id']}", headers=headers) as response:
        assert response.status == 200
    async with session.delete(f"{url}/{created['id']}", headers=headers) as response:
        body = await response.json()
        assert response.status == 404 and body["title"] == f"Webhook with id [{created['id']}] not found"


async def test_control_endpoints(make_sim: Factory, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(200)
    async with session.post(f"{sim.base_url}/_sim/products/3/touch") as response:
        assert response.status == 200
    assert sim.catalog.get(3)["name"].endswith("edit 1")
    variant = sim.catalog.get(192)["variants"][1]
    async with session.post(
        f"{sim.base_url}/_sim/products/192/variants/{variant['id']}/inventory", json={"level": 4}
    ) as response:
        assert (await response.json())["variant_id"] == variant["id"]
    assert variant["inventory_level"] == 4
    async with session.get(f"{sim.base_url}/_sim/stats") as response:
        assert (await response.json())["requests"] == 0  # control endpoints are not API requests


def test_catalog_is_deterministic_and_varied() -> None:
    assert Catalog(200, seed=5).get(77) == Catalog(200, seed=5).get(77)
    assert Catalog(200, seed=5).get(77) != Catalog(200, seed=6).get(77)
    products = list(Catalog(2000, seed=5).iter_products())
    assert Counter(p["inventory_tracking"] for p in products).keys() == {"none", "product", "variant"}
    assert Counter(p["availability"] for p in products).keys() == {"available", "preorder", "disabled"}
    assert any(not p["is_visible"] for p in products)
    assert any(0 < p["sale_price"] < p["price"] for p in products)
    assert any(p["sale_price"] > p["price"] for p in products)
    assert any(p["retail_price"] > p["price"] for p in products)
    assert any(len(p["variants"]) >= 27 for p in products)
    assert any(v["price"] is None for p in products for v in p["variants"])
    assert any(p["custom_fields"] for p in products)
    assert any([i["sort_order"] for i in p["images"]] != sorted(i["sort_order"] for i in p["images"]) for p in products)
    assert any(p["brand_id"] == 0 for p in products) and any(len(p["categories"]) > 1 for p in products)
    assert any(p["upc"] and not p["upc"].isdigit() for p in products)
    assert any(len(p["upc"]) == 13 for p in products) and any(p["gtin"] for p in products)
    spec = Catalog(2000, seed=5).get(174)
    assert spec["name"] == "1L Le Parfait Jar" and spec["date_modified"] == "2018-09-05T20:42:07+00:00"
    assert [v["sku"] for v in Catalog(2000, seed=5).get(192)["variants"]] == ["SMIT", "SMIT-1", "SMIT-2"]


def test_small_catalogs_still_hold_the_spec_product() -> None:
    assert Catalog(3, seed=1).ids() == [1, 2, 174]


async def test_large_store_pages_to_the_end(make_sim: Factory, session: aiohttp.ClientSession) -> None:
    sim = await make_sim(20_000)
    _, _, last = await get(
        session, sim, "v3/catalog/products", page="80", limit="250", include="variants,images,custom_fields"
    )
    _, _, since = await get(session, sim, "v3/catalog/products", **{"date_modified:min": "2024-01-01T00:00:00Z"})
    assert [p["id"] for p in last["data"]][-1] == 20_000
    assert since["meta"]["pagination"]["total"] == 0


async def test_generic_field_names_edit_the_bigcommerce_fields(make_sim: Factory) -> None:
    sim = await make_sim(10)
    sim.update_product("4", title="Renamed", price="12.50", tags=["a", "b"], quantity=7)
    product = sim.catalog.get(4)
    assert (product["name"], product["price"], product["search_keywords"]) == ("Renamed", 12.5, "a, b")
    assert product["inventory_level"] == 7


async def test_date_modified_strictly_increases_per_change(make_sim: Factory) -> None:
    sim = await make_sim(10)
    for product_id in ("1", "2", "1", "3"):
        sim.update_product(product_id)
    created = sim.create_product()
    stamps = [sim.catalog.modified_at(i) for i in (2, 1, 3, int(created))]
    assert stamps == sorted(set(stamps))
    assert stamps[0] >= int(time.time())


# ---- registration ----------------------------------------------------------------------------------
def test_plugin_registers_the_adapter_and_its_simulator() -> None:
    registry = load_plugins(allowlist=["bigcommerce"])
    adapter = registry.adapter("bigcommerce")
    assert isinstance(adapter, BigCommerceAdapter)
    assert adapter.simulator() is BigCommerceSimulator
    assert [f.name for f in adapter.info.credential_fields] == ["access_token", "client_secret"]
    assert BigCommerceSimulator.platform == "bigcommerce"


@pytest.mark.parametrize("products", [0, 1])
async def test_tiny_stores_start(make_sim: Factory, products: int) -> None:
    sim = await make_sim(products)
    assert len(sim.product_ids()) == products
    assert sim.store_url.startswith(sim.base_url + "/stores/")
