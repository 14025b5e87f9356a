"""The mapper: every shared fixture, generated GraphQL nodes, and the REST / GraphQL shapes agreeing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alana_shopify.catalog import to_rest
from alana_shopify.client import _data, is_throttled, throttle_status
from alana_shopify.fetch import normalize
from alana_shopify.mapper import map_product
from alana_shopify.queries import ProductQueries
from alana_shopify.simulator import ShopifySimulator
from alana_shopify.webhooks import parse

from gateway.adapter import ChangeKind, MappingContext
from gateway.errors import MappingError, StoreError
from gateway.model import Availability, ProductStatus

CTX = MappingContext(currency="USD", default_locale="en", extra={"locales": ["fr", "de"]})
Load = Callable[[str], Any]


def rest_shell(**fields: Any) -> dict[str, Any]:
    return {"id": 632910392, "title": "IPod Nano - 8GB", "updated_at": "2011-10-20T14:05:13-04:00", **fields}


# ---- every shared fixture ---------------------------------------------------------------------------
def test_every_fixture_file_is_understood(fixtures_dir: Path) -> None:
    """A new file in the fixtures folder fails here until a test knows what to do with it."""
    mapped = 0
    for path in sorted(fixtures_dir.iterdir()):
        if path.name == "SOURCES.md":
            continue
        if path.suffix == ".txt":
            headers = _headers_from(path.read_text())
            assert headers["X-Shopify-Topic"] == "products/create"
            continue
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "errors" in data:
            # GraphQL error bodies: THROTTLED is the Budget's business, the rest become StoreErrors.
            if is_throttled(data):
                assert throttle_status(data) is not None
            else:
                with pytest.raises(StoreError):
                    _data(data)
            continue
        if isinstance(data, list):
            products = data
        elif "product" in data:
            products = [data["product"]]
        elif "variant" in data or "variants" in data:
            products = [rest_shell(variants=data.get("variants") or [data["variant"]])]
        elif "image" in data or "images" in data:
            products = [rest_shell(images=data.get("images") or [data["image"]])]
        else:
            products = [data]
        for native in products:
            product = map_product(native, CTX)
            assert product.external_id == str(native["id"])
            mapped += 1
    assert mapped >= 8


def _headers_from(text: str) -> dict[str, str]:
    headers = {}
    for line in text.splitlines():
        if line.startswith("#") or ": " not in line:
            continue
        name, value = line.split(": ", 1)
        headers[name] = value
    return headers


def test_legacy_rest_product(load_fixture: Load) -> None:
    product = map_product(load_fixture("shopify_python_api_product.json")["product"], CTX)
    assert product.external_id == "632910392"
    assert product.title == "IPod Nano - 8GB"
    assert product.status == ProductStatus.ACTIVE  # no status in 2011 payloads; published_at is set
    assert product.handle == "ipod-nano" and product.vendor == "Apple" and product.product_type == "Cult Products"
    assert product.tags == ["Emotive", "Flash Memory", "MP3", "Music"]
    assert product.description is not None and product.description.startswith("<p>It's the small iPod")
    assert product.store_updated_at == datetime(2011, 10, 20, 18, 5, 13, tzinfo=UTC)
    assert [v.external_id for v in product.variants] == ["808950810", "49148385", "39072856", "457924702"]
    assert [v.inventory_quantity for v in product.variants] == [10, 20, 30, 40]
    assert all(v.price is not None and v.price.amount == Decimal("199.00") for v in product.variants)
    assert all(v.inventory_tracked and v.compare_at_price is None for v in product.variants)
    assert product.variants[0].options[0].model_dump() == {"name": "Title", "value": "Pink"}
    # The option lists a name only: its values come from the variants.
    assert [(a.name, a.values, a.kind) for a in product.attributes] == [
        ("Title", ["Pink", "Red", "Green", "Black"], "option")
    ]
    assert product.inventory_quantity == 100 and product.availability == Availability.IN_STOCK
    assert [i.url for i in product.images] == ["http://static.shopify.com/s/files/1/6909/3384/products/ipod-nano.png?0"]
    assert product.sku is not None and product.sku == "IPOD2008PINK"


def test_legacy_rest_product_list(load_fixture: Load) -> None:
    products = [map_product(p, CTX) for p in load_fixture("shopify_python_api_products.json")]
    assert [p.external_id for p in products] == ["1", "2", "3", "4"]
    assert all(len(p.variants) == 1 for p in products)


def test_documented_webhook_body(load_fixture: Load) -> None:
    product = map_product(load_fixture("shopify_dev_webhook_products_update_example.json"), CTX)
    assert product.external_id == "9554194432293"
    assert product.status == ProductStatus.ACTIVE  # "active" in lower case
    assert product.tags == ["cotton", "comfortable"]  # one comma-separated string
    assert product.store_updated_at == datetime(2025, 4, 22, 19, 30, tzinfo=UTC)
    assert product.price is not None and product.price.amount == Decimal("29.99")
    assert product.identifiers.sku == "TSHIRT-001"
    assert product.attributes == [] and product.variants[0].options == []
    assert product.availability == Availability.IN_STOCK and not product.inventory_tracked


def test_legacy_variants_and_images(load_fixture: Load) -> None:
    variants = load_fixture("shopify_python_api_variants.json")["variants"]
    variants[0]["inventory_quantity"] = 0  # policy "continue": sold out but still sellable
    product = map_product(rest_shell(variants=variants, options=[{"name": "Title"}]), CTX)
    assert product.variants[0].availability == Availability.BACKORDER
    assert product.availability == Availability.IN_STOCK  # the other colours are in stock
    single = map_product(rest_shell(variants=[load_fixture("shopify_python_api_variant.json")["variant"]]), CTX)
    assert single.identifiers.sku == "IPOD2008PINK"

    images = load_fixture("shopify_python_api_images.json")["images"]
    product = map_product(rest_shell(images=list(reversed(images))), CTX)
    assert [i.url.rsplit("/", 1)[-1] for i in product.images] == [
        "ipod-nano.png?v=1389993112",
        "ipod-nano-2.png?v=1389993112",
    ]  # ordered by position, not by list order
    assert [i.position for i in product.images] == [0, 1]  # Shopify's 1, 2: canonical positions count from 0


def test_webhook_headers_fixture_parses(fixtures_dir: Path, load_fixture: Load) -> None:
    headers = _headers_from((fixtures_dir / "shopify_webhook_headers.txt").read_text())
    body = json.dumps(load_fixture("shopify_dev_webhook_products_update_example.json")).encode()
    event = parse(headers, body)
    assert event is not None and event.kind == ChangeKind.REFRESH
    # Deduped on the signed body, not on X-Shopify-Webhook-Id (a replayer can change a header).
    assert event.delivery_id.startswith("sha256:") and event.topic == "products/create"
    assert event.external_id == "9554194432293"


# ---- generated GraphQL nodes -------------------------------------------------------------------------
def graphql_nodes(sim: ShopifySimulator) -> list[dict[str, Any]]:
    """Complete GraphQL product nodes from the simulator's schema (no HTTP, no cost limit)."""
    queries = ProductQueries(locales=("fr", "de"), nested_variants=250, nested_media=250)
    status, body = sim.run_graphql(queries.page, {"first": 250, "sortKey": "ID"}, None)
    assert status == 200 and "errors" not in body, body
    return [normalize(n) for n in body["data"]["products"]["nodes"]]


def test_generated_graphql_nodes_map() -> None:
    sim = ShopifySimulator(60, big_variants=True, max_query_cost=10**9, bucket_size=10**9)
    products = {p.external_id: p for p in (map_product(n, CTX) for n in graphql_nodes(sim))}
    assert len(products) == 60
    statuses = {p.status for p in products.values()}
    assert statuses == {ProductStatus.ACTIVE, ProductStatus.DRAFT, ProductStatus.ARCHIVED}
    availability = {p.availability for p in products.values()}
    assert {Availability.IN_STOCK, Availability.OUT_OF_STOCK, Availability.BACKORDER} <= availability
    big = next(p for p in products.values() if len(p.variants) == 150)
    assert len({v.external_id for v in big.variants}) == 150 and len(big.images) == 15
    assert {a.name for a in big.attributes} == {"Size", "Color"}
    on_sale = [p for p in products.values() if p.compare_at_price is not None]
    assert on_sale and all(p.price and p.compare_at_price.amount > p.price.amount for p in on_sale)
    kinds = {
        k
        for p in products.values()
        for v in p.variants
        for k in ("upc", "ean", "isbn", "gtin")
        if getattr(v.identifiers, k)
    }
    assert kinds == {"upc", "ean", "isbn", "gtin"}
    warned = [p for p in products.values() if p.warnings]
    assert warned and all("check digit" in w or "no recognised" in w for p in warned for w in p.warnings)
    default = next(p for p in products.values() if p.product_type == "Mugs")
    assert default.attributes == [] and default.variants[0].options == []
    translated = next(p for p in products.values() if {t.locale for t in p.translations} == {"fr", "de"})
    assert {t.field for t in translated.translations} == {"title", "description"}
    with_video = [p for p in products.values() if p.external_id in _video_ids(sim)]
    assert with_video and all("video" not in i.url for p in with_video for i in p.images)
    assert all(p.categories for p in products.values() if p.product_type != "Socks")


def _video_ids(sim: ShopifySimulator) -> set[str]:
    return {str(p.id) for p in sim.catalog.products.values() if any(m.kind == "VIDEO" for m in p.media)}


def test_rest_and_graphql_shapes_agree() -> None:
    """A webhook body and a sync of the same product map to the same product (REST carries no
    translations or category, so those two are left out of the comparison)."""
    sim = ShopifySimulator(60, big_variants=True, max_query_cost=10**9, bucket_size=10**9)
    for node in graphql_nodes(sim):
        from_graphql = map_product(node, CTX)
        from_rest = map_product(to_rest(sim.catalog.products[int(from_graphql.external_id)]), CTX)
        leave_out = {"translations", "categories"}
        assert from_rest.model_dump(exclude=leave_out) == from_graphql.model_dump(exclude=leave_out)
        assert from_rest.model_copy(update={"translations": [], "categories": []}).content_hash() == (
            from_graphql.model_copy(update={"translations": [], "categories": []}).content_hash()
        )


# ---- rules ---------------------------------------------------------------------------------------------
def gql(**fields: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": "gid://shopify/Product/42",
        "legacyResourceId": "42",
        "title": "Mug",
        "status": "ACTIVE",
        "tags": ["a"],
        "updatedAt": "2026-01-02T03:04:05Z",
        "variants": {"nodes": [variant()]},
    }
    node.update(fields)
    return node


def variant(**fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "gid://shopify/ProductVariant/7",
        "title": "Default Title",
        "price": "59.00",
        "compareAtPrice": None,
        "inventoryQuantity": 5,
        "inventoryPolicy": "DENY",
        "inventoryItem": {"tracked": True},
        "selectedOptions": [{"name": "Title", "value": "Default Title"}],
    }
    row.update(fields)
    return row


@pytest.mark.parametrize(
    ("price", "expected", "currency"),
    [
        ("59.00", "59.00", "USD"),
        ({"amount": "59.00", "currencyCode": "EUR"}, "59.00", "EUR"),
        (59.9, "59.90", "USD"),
        (60, "60.00", "USD"),
        ("77.7", "77.70", "USD"),
        ({"amount": "1000.0", "currencyCode": "JPY"}, "1000", "JPY"),  # what Shopify prints for yen
        ({"amount": "1.2", "currencyCode": "BHD"}, "1.200", "BHD"),
    ],
)
def test_money_shapes(price: Any, expected: str, currency: str) -> None:
    """Every shape arrives as the exact amount with the currency's minor units ("77.70", "1000" yen)."""
    product = map_product(gql(variants={"nodes": [variant(price=price, compareAtPrice=price)]}), CTX)
    assert product.price is not None and product.price.currency == currency
    assert str(product.price.amount) == expected and product.to_document()["price"]["amount"] == expected
    assert product.compare_at_price is not None and str(product.compare_at_price.amount) == expected


@pytest.mark.parametrize(
    ("quantity", "policy", "tracked", "expected"),
    [
        (0, "DENY", True, Availability.OUT_OF_STOCK),
        (-3, "CONTINUE", True, Availability.BACKORDER),
        (0, "DENY", False, Availability.IN_STOCK),
        (4, "DENY", True, Availability.IN_STOCK),
    ],
)
def test_availability(quantity: int, policy: str, tracked: bool, expected: Availability) -> None:
    node = gql(
        variants={
            "edges": [
                {
                    "node": variant(
                        inventoryQuantity=quantity, inventoryPolicy=policy, inventoryItem={"tracked": tracked}
                    )
                }
            ]
        }
    )
    product = map_product(node, CTX)
    assert product.availability == expected and product.variants[0].availability == expected
    assert product.inventory_tracked is tracked


@pytest.mark.parametrize(
    ("barcode", "kind", "warned"),
    [
        ("036000291452", "upc", False),
        ("4006381333931", "ean", False),
        ("9780306406157", "isbn", False),
        ("036000291453", "upc", True),
        ("N/A", "gtin", True),
    ],
)
def test_barcodes_classified_and_kept(barcode: str, kind: str, warned: bool) -> None:
    product = map_product(gql(variants=[variant(barcode=barcode, sku="S-1")]), CTX)
    identifiers = product.variants[0].identifiers
    assert getattr(identifiers, kind) is not None  # kept even when its check digit is wrong
    assert bool(identifiers.warnings) is warned and bool(product.warnings) is warned
    assert product.identifiers.sku == "S-1"


def test_status_values() -> None:
    assert map_product(gql(status="DRAFT"), CTX).status == ProductStatus.DRAFT
    assert map_product(gql(status="archived"), CTX).status == ProductStatus.ARCHIVED
    odd = map_product(gql(status="UNLISTED"), CTX)
    assert odd.status == ProductStatus.ACTIVE and any("UNLISTED" in w for w in odd.warnings)


def test_options_translations_media_and_category() -> None:
    node = gql(
        options=[{"name": "Size", "position": 1, "values": ["S", "M"]}],
        variants={
            "nodes": [
                variant(selectedOptions=[{"name": "Size", "value": "S"}]),
                variant(
                    id="gid://shopify/ProductVariant/8", selectedOptions=[{"name": "Size", "value": "M"}], price="61.00"
                ),
            ]
        },
        media={
            "nodes": [
                {
                    "id": "gid://shopify/MediaImage/1",
                    "mediaContentType": "IMAGE",
                    "image": {"url": "https://cdn/1.jpg", "altText": "front"},
                },
                {"id": "gid://shopify/Video/2", "mediaContentType": "VIDEO"},
                {"id": "gid://shopify/MediaImage/3", "mediaContentType": "IMAGE", "image": None},
                {
                    "id": "gid://shopify/MediaImage/4",
                    "mediaContentType": "IMAGE",
                    "image": {"url": "https://cdn/4.jpg"},
                },
            ]
        },
        translations_fr=[
            {"key": "title", "locale": "fr", "value": "Tasse"},
            {"key": "body_html", "locale": "fr", "value": "<p>Une tasse</p>"},
        ],
        translations=[{"key": "title", "locale": "de", "value": "Becher"}],
        category={"name": "Mugs", "fullName": "Home > Mugs"},
        productType="Kitchen",
    )
    product = map_product(node, CTX)
    assert [(a.name, a.values) for a in product.attributes] == [("Size", ["S", "M"])]
    assert [o.value for v in product.variants for o in v.options] == ["S", "M"]
    assert product.price is not None and product.price.amount == Decimal("59.00")  # the "from" price
    assert [(i.url, i.alt, i.position) for i in product.images] == [
        ("https://cdn/1.jpg", "front", 0),
        ("https://cdn/4.jpg", None, 1),
    ]
    assert {(t.locale, t.field, t.value) for t in product.translations} == {
        ("fr", "title", "Tasse"),
        ("fr", "description", "<p>Une tasse</p>"),
        ("de", "title", "Becher"),
    }
    assert product.categories == ["Mugs"] and product.product_type == "Kitchen"
    assert product.inventory_quantity == 10


def test_private_fields_never_mapped() -> None:
    node = gql(metafields=[{"key": "cost", "value": "3.00"}], note="internal", reviews=[{"rating": 5}], totalSales=99)
    assert "internal" not in json.dumps(map_product(node, CTX).to_document())


@pytest.mark.parametrize(
    "native",
    [
        gql(title=None),
        gql(title="  "),
        gql(updatedAt=None),
        gql(updatedAt="yesterday"),
        gql(variants={"nodes": [variant(price="abc")]}),
        gql(variants={"nodes": [variant(inventoryQuantity="many")]}),
        gql(variants="oops"),
        gql(variants=[variant(id=None)]),
        {"id": "not-a-gid", "title": "x", "updatedAt": "2026-01-01T00:00:00Z"},
    ],
)
def test_bad_payloads_raise_mapping_error(native: dict[str, Any]) -> None:
    with pytest.raises(MappingError) as caught:
        map_product(native, CTX)
    if native.get("legacyResourceId"):
        assert caught.value.external_id == "42"


def test_not_a_mapping_raises_mapping_error() -> None:
    with pytest.raises(MappingError):
        map_product(["not", "a", "product"], CTX)  # type: ignore[arg-type, unused-ignore]
