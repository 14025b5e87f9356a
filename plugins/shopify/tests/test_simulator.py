"""The simulator itself: Shopify's response shapes, the search syntax, the catalog generator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from alana_shopify import search
from alana_shopify.adapter import ShopifyAdapter
from alana_shopify.catalog import Catalog
from alana_shopify.simulator import ShopifySimulator

from gateway.identifiers import classify_barcode


async def post(sim: ShopifySimulator, query: str, token: str | None = None, **variables: Any) -> tuple[int, Any]:
    url = f"{sim.store_url}/admin/api/2026-01/graphql.json"
    headers = {"X-Shopify-Access-Token": token or sim.access_token}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"query": query, "variables": variables}, headers=headers) as response:
            return response.status, await response.json()


def test_adapter_points_at_this_simulator(adapter: ShopifyAdapter) -> None:
    assert adapter.simulator() is ShopifySimulator and ShopifySimulator.platform == "shopify"
    assert [f.name for f in adapter.info.credential_fields] == ["access_token", "client_secret"]


async def test_unknown_field_gets_shopifys_validation_error(sim: ShopifySimulator) -> None:
    status, body = await post(sim, "query Products { products(first: 2) { nodes { id bogus } } }")
    assert status == 200 and set(body) == {"errors"}  # no data, no cost extension
    [error] = body["errors"]
    assert error["message"] == "Field 'bogus' doesn't exist on type 'Product'"
    assert error["path"] == ["query Products", "products", "nodes", "bogus"]
    assert error["extensions"] == {"code": "undefinedField", "typeName": "Product", "fieldName": "bogus"}
    assert error["locations"] == [{"line": 1, "column": 50}]


async def test_missing_page_size_matches_the_documented_error(sim: ShopifySimulator, load_fixture: Any) -> None:
    expected = load_fixture("shopify_api_js_graphql_error_response.json")
    status, body = await post(sim, "{\n  products { nodes { id } }\n}")
    assert status == 200 and body["data"] is None
    assert body["errors"] == expected["errors"]
    assert body["extensions"]["cost"]["requestedQueryCost"] == body["extensions"]["cost"]["actualQueryCost"]


async def test_executed_queries_carry_the_cost_extension(sim: ShopifySimulator) -> None:
    status, body = await post(sim, "{ products(first: 5) { nodes { id variants(first: 10) { nodes { id } } } } }")
    cost = body["extensions"]["cost"]
    assert status == 200 and cost["requestedQueryCost"] == 2 + 5 * (1 + 2 + 10)
    assert cost["actualQueryCost"] < cost["requestedQueryCost"]
    assert set(cost["throttleStatus"]) == {"maximumAvailable", "currentlyAvailable", "restoreRate"}


async def test_over_the_single_query_limit(sim: ShopifySimulator) -> None:
    _, body = await post(sim, "{ products(first: 250) { nodes { variants(first: 250) { nodes { id } } } } }")
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert body["extensions"]["cost"]["actualQueryCost"] is None


async def test_throttled_response_has_the_documented_shape(load_fixture: Any) -> None:
    expected = load_fixture("shopify_graphql_throttled_response.json")
    async with ShopifySimulator(3, bucket_size=1000, restore_rate=0.001, throttle_status=429) as shop:
        shop.bucket.take(shop.bucket.available() - 5)
        status, body = await post(shop, "{ products(first: 50) { nodes { id } } }")
    assert status == 429 and set(body) == set(expected)
    assert body["errors"] == expected["errors"]
    cost, documented = body["extensions"]["cost"], expected["extensions"]["cost"]
    assert set(cost) == set(documented) and cost["actualQueryCost"] is None and cost["requestedQueryCost"] == 52
    assert {k: type(v) for k, v in cost["throttleStatus"].items()} == {
        k: type(v) for k, v in documented["throttleStatus"].items()
    }


async def test_bad_token_is_a_401_with_shopifys_body(sim: ShopifySimulator) -> None:
    status, body = await post(sim, "{ shop { name } }", token="shpat_nope")
    assert status == 401 and "Invalid API key or access token" in body["errors"]


async def test_search_filter_and_sort(sim: ShopifySimulator) -> None:
    ids = sim.product_ids()[:2]
    query = "query($q: String) { products(first: 10, query: $q) { nodes { legacyResourceId } } }"
    _, body = await post(sim, query, q=f"id:{ids[0]} OR id:{ids[1]}")
    assert [n["legacyResourceId"] for n in body["data"]["products"]["nodes"]] == ids
    # An unquoted timestamp matches nothing, with a warning, exactly as Shopify does.
    _, body = await post(sim, query, q="updated_at:>=2025-01-01T00:00:00Z")
    assert body["data"]["products"]["nodes"] == [] and body["extensions"]["search"]
    _, body = await post(sim, query, q="updated_at:>='2025-01-01T00:00:00Z'")
    assert len(body["data"]["products"]["nodes"]) == 10 and "search" not in body["extensions"]
    sorted_query = "{ products(first: 250, sortKey: UPDATED_AT, reverse: true) { nodes { updatedAt } } }"
    _, body = await post(sim, sorted_query)
    stamps = [n["updatedAt"] for n in body["data"]["products"]["nodes"]]
    assert stamps == sorted(stamps, reverse=True) and len(stamps) == 120


def test_search_parser() -> None:
    parsed = search.parse("status:active,draft vendor:'Acme Apparel' OR tag:eco")
    assert len(parsed.groups) == 2 and [t.field for t in parsed.groups[0] if t] == ["status", "vendor"]
    assert search.parse("updated_at:<now").warnings == []
    assert search.parse("created_at:>2025-01-01T10:00:00Z").warnings


def test_catalog_is_deterministic_and_varied() -> None:
    big = Catalog(5000, seed=7, big_variants=True)
    again = Catalog(5000, seed=7, big_variants=True)
    assert [p.title for p in big.products.values()] == [p.title for p in again.products.values()]
    products = list(big.products.values())
    assert {p.status for p in products} == {"ACTIVE", "DRAFT", "ARCHIVED"}
    assert sum(len(p.variants) == 150 for p in products) == 1
    variants = [v for p in products for v in p.variants]
    assert any(v.title == "Default Title" for v in variants)
    assert any(v.compare_at is not None and v.compare_at > v.price for v in variants)
    assert any(v.quantity == 0 and v.policy == "DENY" for v in variants)
    assert any(v.quantity == 0 and v.policy == "CONTINUE" for v in variants)
    assert any(len(p.media) >= 4 and any(m.alt for m in p.media) for p in products)
    assert {loc for p in products for loc in p.translations} == {"fr", "de"}
    kinds = {(c.kind, c.warning is not None) for v in variants if v.barcode for c in [classify_barcode(v.barcode)]}
    assert {("upc", False), ("ean", False), ("isbn", False), ("upc", True), ("gtin", True)} <= kinds
    stamps = sorted(p.updated_at for p in products)
    assert len(set(stamps)) == len(stamps)


def test_every_change_moves_the_clock_forward() -> None:
    catalog = Catalog(5)
    first_id, second_id = list(catalog.products)[:2]
    before = catalog.now
    one = catalog.update(first_id).updated_at
    two = catalog.update(second_id, title="x").updated_at
    assert before < one < two and catalog.now == two
    with pytest.raises(ValueError):
        catalog.update(first_id, weight=3)


async def test_control_endpoints_drive_the_catalog(sim: ShopifySimulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim.base_url}/_sim/products", json={"title": "Via control"}) as response:
            created = (await response.json())["id"]
        async with session.post(f"{sim.base_url}/_sim/products/{created}/touch") as response:
            assert response.status == 200
        async with session.get(f"{sim.base_url}/_sim/products") as response:
            assert created in (await response.json())["ids"]
    product = sim.catalog.products[int(created)]
    assert product.title.startswith("Via control (edit") and product.updated_at == sim.catalog.now
    assert product.updated_at > datetime(2025, 6, 1, tzinfo=UTC)
