"""The mapper on every official example, on generated products, and on broken payloads."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alana_woocommerce.catalog import CatalogBuilder, gs1_check_digit
from alana_woocommerce.mapper import VARIATIONS_KEY, map_product, map_variation

from gateway.adapter import MappingContext
from gateway.errors import MappingError
from gateway.model import Availability, ProductStatus

#: The REST reference's examples, copied into the package with their sources (fixtures/SOURCES.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES = sorted(p.name for p in FIXTURES.glob("doc_example_*.json"))
USD = MappingContext(currency="USD")
NEVER_SYNCED = ("average_rating", "rating_count", "total_sales", "purchase_note", "meta_data", "reviews")


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def objects_in(data: Any) -> list[dict[str, Any]]:
    """Every product or variation in an example file (single object, list, or batch response)."""
    if isinstance(data, list):
        return [obj for item in data for obj in objects_in(item)]
    if isinstance(data, dict) and "id" not in data:
        return [obj for group in ("create", "update", "delete") for obj in objects_in(data.get(group, []))]
    return [data]


def is_variation(item: dict[str, Any]) -> bool:
    return "image" in item and "images" not in item


def gmt(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def simple(**overrides: Any) -> dict[str, Any]:
    """The official retrieve example with changes."""
    product: dict[str, Any] = load("doc_example_product_retrieve_response.json")
    product.update(overrides)
    return product


# ---- the official examples ------------------------------------------------------------------------
def test_every_example_file_is_covered() -> None:
    assert len(EXAMPLES) == 8, EXAMPLES


@pytest.mark.parametrize("name", EXAMPLES)
def test_official_example_maps(name: str) -> None:
    objects = objects_in(load(name))
    assert objects
    for native in objects:
        if is_variation(native):
            variant = map_variation(native, USD)
            assert variant.external_id == str(native["id"])
            assert variant.price is not None and variant.price.amount == Decimal(native["price"])
            assert variant.price.currency == "USD"
            assert [(o.name, o.value) for o in variant.options] == [
                (a["name"], a["option"]) for a in native["attributes"]
            ]
            image = native["image"]
            assert variant.image_url == (image["src"] if image["id"] else None)
            assert variant.inventory_tracked is False and variant.inventory_quantity is None
            continue
        product = map_product(native, USD)
        assert product.external_id == str(native["id"])
        assert product.title == native["name"]
        assert product.status is ProductStatus.ACTIVE
        assert product.handle == native["slug"]
        assert product.store_updated_at == gmt(native["date_modified_gmt"])
        assert product.store_created_at == gmt(native["date_created_gmt"])
        assert product.categories == [c["name"] for c in native["categories"]]
        assert [i.url for i in product.images] == [i["src"] for i in native["images"]]
        assert [i.position for i in product.images] == list(range(len(native["images"])))
        assert product.availability is Availability.IN_STOCK
        if native["price"]:
            assert product.price is not None and product.price.amount == Decimal(native["price"])
        else:
            assert product.price is None
        assert product.compare_at_price is None
        dumped = product.model_dump()
        assert not set(NEVER_SYNCED) & set(dumped)


def test_variable_example_with_its_variations() -> None:
    parent = load("doc_example_product_create_variable_response.json")
    variations = load("doc_example_variations_list_response.json")
    parent["variations"] = [v["id"] for v in variations]
    parent[VARIATIONS_KEY] = variations
    product = map_product(parent, USD)
    assert [(a.name, a.values, a.kind) for a in product.attributes] == [
        ("Color", ["Black", "Green"], "option"),
        ("Size", ["S", "M"], "option"),  # a custom (id 0) attribute is kept like a global one
    ]
    assert sorted(v.external_id for v in product.variants) == ["732", "733"]
    assert {v.title for v in product.variants} == {"Black", "Green"}
    assert product.price is not None and product.price.amount == Decimal("9.00")
    assert product.inventory_tracked is False and product.inventory_quantity is None


def test_variable_payload_without_its_variations_is_rejected() -> None:
    parent = load("doc_example_product_create_variable_response.json")
    parent["variations"] = [732, 733]
    with pytest.raises(MappingError) as caught:
        map_product(parent, USD)
    assert caught.value.code == "INCOMPLETE_PAYLOAD" and caught.value.external_id == "799"


def test_a_variation_is_not_a_product() -> None:
    variation = load("doc_example_variation_retrieve_response.json")
    variation.update(type="variation", parent_id=22, name="Ship Your Idea - Black")
    with pytest.raises(MappingError) as caught:
        map_product(variation, USD)
    assert caught.value.code == "NOT_A_PRODUCT"


# ---- prices -----------------------------------------------------------------------------------------
def test_prices_are_exact_decimals_in_the_currencys_minor_units() -> None:
    product = map_product(simple(price="19.95", regular_price="19.95"), MappingContext(currency="eur"))
    assert product.price is not None and str(product.price.amount) == "19.95"
    assert product.price.currency == "EUR"
    whole = map_product(simple(price="10", regular_price="10"), USD)
    assert whole.price is not None and str(whole.price.amount) == "10.00"
    number = map_product(simple(price=0.1, regular_price=0.1), USD)
    assert number.price is not None and str(number.price.amount) == "0.10"
    yen = map_product(simple(price="1500", regular_price="1500"), MappingContext(currency="JPY"))
    assert yen.price is not None and str(yen.price.amount) == "1500"
    dinar = map_product(simple(price="4.5", regular_price="4.5"), MappingContext(currency="KWD"))
    assert dinar.price is not None and str(dinar.price.amount) == "4.500"


def test_a_price_finer_than_the_currency_is_rounded_with_a_warning() -> None:
    # A store set to three decimals sells in EUR cents at checkout: the shopper pays 20.00.
    product = map_product(simple(price="19.995", regular_price="19.995"), MappingContext(currency="eur"))
    assert product.price is not None and str(product.price.amount) == "20.00"
    assert any("19.995" in w and "20.00" in w for w in product.warnings)


def test_running_sale_sets_compare_at_and_window() -> None:
    product = map_product(
        simple(
            price="15.50",
            regular_price="20.00",
            sale_price="15.50",
            on_sale=True,
            date_on_sale_from_gmt="2024-01-01T05:00:00",
            date_on_sale_to_gmt="2099-12-31T23:59:59",
            date_on_sale_from="2024-01-01T02:00:00",
            date_on_sale_to="2099-12-31T20:59:59",
        ),
        USD,
    )
    assert product.price is not None and product.price.amount == Decimal("15.50")
    assert product.compare_at_price is not None and product.compare_at_price.amount == Decimal("20.00")
    assert product.sale_starts_at == datetime(2024, 1, 1, 5, tzinfo=UTC)
    assert product.sale_ends_at == datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_scheduled_sale_keeps_regular_price_and_the_window() -> None:
    product = map_product(
        simple(
            price="20.00",
            regular_price="20.00",
            sale_price="12.00",
            on_sale=False,
            date_on_sale_from_gmt="2098-06-01T00:00:00",
            date_on_sale_to_gmt=None,
        ),
        USD,
    )
    assert product.price is not None and product.price.amount == Decimal("20.00")
    assert product.compare_at_price is None
    assert product.sale_starts_at == datetime(2098, 6, 1, tzinfo=UTC) and product.sale_ends_at is None


def test_sale_without_on_sale_flag_is_inferred() -> None:
    native = simple(price="8.00", regular_price="10.00", sale_price="8.00")
    del native["on_sale"]
    product = map_product(native, USD)
    assert product.price is not None and product.price.amount == Decimal("8.00")
    assert product.compare_at_price is not None and product.compare_at_price.amount == Decimal("10.00")


def test_empty_price_strings_mean_no_price() -> None:
    product = map_product(simple(price="", regular_price="", sale_price=""), USD)
    assert product.price is None and product.compare_at_price is None and product.sale_starts_at is None


# ---- broken payloads ------------------------------------------------------------------------------
def _without(key: str) -> dict[str, Any]:
    native = simple()
    del native[key]
    return native


@pytest.mark.parametrize(
    "native",
    [
        pytest.param(_without("id"), id="no-id"),
        pytest.param(simple(id="abc"), id="non-numeric-id"),
        pytest.param(simple(id=0), id="zero-id"),
        pytest.param(_without("name"), id="no-name"),
        pytest.param(simple(name=None), id="null-name"),
        pytest.param(simple(regular_price="abc", price="abc"), id="price-abc"),
        pytest.param(simple(sale_price="12,50", on_sale=True), id="sale-price-comma"),
        pytest.param(simple(price="NaN"), id="price-nan"),
        pytest.param(simple(price=True), id="price-bool"),
        pytest.param(simple(manage_stock=True, stock_quantity="lots"), id="quantity-text"),
        pytest.param(simple(date_modified_gmt=None, date_created_gmt=None), id="no-dates"),
    ],
)
def test_broken_payloads_raise_mapping_error(native: dict[str, Any]) -> None:
    with pytest.raises(MappingError):
        map_product(native, USD)


def test_broken_variation_fails_its_product() -> None:
    parent = load("doc_example_product_create_variable_response.json")
    variations = load("doc_example_variations_list_response.json")
    variations[1]["regular_price"] = "nine"
    parent[VARIATIONS_KEY] = variations
    with pytest.raises(MappingError) as caught:
        map_product(parent, USD)
    assert caught.value.external_id == "732"


def test_non_object_payload_raises() -> None:
    with pytest.raises(MappingError):
        map_product([], USD)  # type: ignore[arg-type]


# ---- stock --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stock_status", "expected"),
    [
        ("instock", Availability.IN_STOCK),
        ("outofstock", Availability.OUT_OF_STOCK),
        ("onbackorder", Availability.BACKORDER),
    ],
)
def test_stock_status(stock_status: str, expected: Availability) -> None:
    assert map_product(simple(stock_status=stock_status), USD).availability is expected


def test_unknown_stock_status_warns() -> None:
    product = map_product(simple(stock_status="preorderish"), USD)
    assert product.availability is Availability.IN_STOCK
    assert any("preorderish" in w for w in product.warnings)


def test_tracked_and_untracked_stock() -> None:
    tracked = map_product(simple(manage_stock=True, stock_quantity=7), USD)
    assert tracked.inventory_tracked is True and tracked.inventory_quantity == 7
    backordered = map_product(simple(manage_stock=True, stock_quantity=-2, stock_status="onbackorder"), USD)
    assert backordered.inventory_quantity == -2 and backordered.availability is Availability.BACKORDER
    untracked = map_product(simple(manage_stock=False, stock_quantity=None), USD)
    assert untracked.inventory_tracked is False and untracked.inventory_quantity is None


def _variable(parent_stock: tuple[bool, int | None], *variations: tuple[Any, int | None, str]) -> dict[str, Any]:
    parent: dict[str, Any] = load("doc_example_product_create_variable_response.json")
    parent["manage_stock"], parent["stock_quantity"] = parent_stock
    template = load("doc_example_variation_retrieve_response.json")
    attached = []
    for n, (manage, quantity, status) in enumerate(variations):
        var = copy.deepcopy(template)
        var.update(
            id=900 + n,
            manage_stock=manage,
            stock_quantity=quantity,
            status=status,
            menu_order=n,
            attributes=[{"id": 6, "name": "Color", "option": f"C{n}"}],
        )
        attached.append(var)
    parent["variations"] = [v["id"] for v in attached]
    parent[VARIATIONS_KEY] = attached
    return parent


def test_variable_stock_is_summed_without_counting_the_shared_pool_twice() -> None:
    native = _variable(
        (True, 10),
        (True, 3, "publish"),
        (True, 4, "publish"),
        ("parent", 10, "publish"),
        (True, 10, "publish"),
    )  # an older core's way of saying "parent"
    product = map_product(native, USD)
    assert product.inventory_tracked is True
    assert product.inventory_quantity == 10 + 3 + 4
    shared = [v for v in product.variants if v.external_id in ("902", "903")]
    assert all(v.inventory_tracked and v.inventory_quantity == 10 for v in shared)


def test_variable_stock_only_in_variations() -> None:
    product = map_product(_variable((False, None), (True, 5, "publish"), (True, 6, "publish")), USD)
    assert product.inventory_tracked is True and product.inventory_quantity == 11


def test_variable_stock_untracked() -> None:
    product = map_product(_variable((False, None), (False, None, "publish"), (False, None, "publish")), USD)
    assert product.inventory_tracked is False and product.inventory_quantity is None


def test_disabled_variations_are_not_variants() -> None:
    product = map_product(_variable((False, None), (True, 5, "publish"), (True, 6, "private")), USD)
    assert [v.external_id for v in product.variants] == ["900"]
    assert product.inventory_quantity == 5


# ---- identifiers, status, text --------------------------------------------------------------------
def _code(body: str) -> str:
    return body + gs1_check_digit(body)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (_code("03600029145"), "upc"),
        (_code("400638133393"), "ean"),
        (_code("978030640615"), "isbn"),
        (_code("9638507"), "gtin"),
        ("0-306-40615-2", "isbn"),
    ],
)
def test_global_unique_id_is_classified(raw: str, kind: str) -> None:
    product = map_product(simple(global_unique_id=raw, sku="SKU-1"), USD)
    assert getattr(product.identifiers, kind) == raw.replace("-", "")
    assert product.identifiers.sku == "SKU-1" and product.sku == "SKU-1"
    assert product.warnings == [] and product.identifiers.warnings == []


def test_invalid_barcode_is_kept_with_a_warning() -> None:
    bad = "036000291453"  # valid body, wrong check digit
    product = map_product(simple(global_unique_id=bad), USD)
    assert product.identifiers.upc == bad
    assert any(bad in w for w in product.warnings)
    garbage = map_product(simple(global_unique_id="N/A"), USD)
    assert garbage.identifiers.gtin == "N/A" and garbage.warnings


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("publish", ProductStatus.ACTIVE),
        ("draft", ProductStatus.DRAFT),
        ("pending", ProductStatus.DRAFT),
        ("private", ProductStatus.DRAFT),
        ("future", ProductStatus.DRAFT),
        ("trash", ProductStatus.ARCHIVED),
    ],
)
def test_status(status: str, expected: ProductStatus) -> None:
    assert map_product(simple(status=status), USD).status is expected


def test_html_and_unicode_are_kept_and_terms_unescaped() -> None:
    name = "<strong>Limited</strong> Édition 日本茶 &amp; 🕯️"
    product = map_product(
        simple(
            name=name,
            description="<p>«fait main»</p>",
            categories=[{"id": 1, "name": "Food &amp; Drink", "slug": "food-drink"}],
            tags=[{"id": 2, "name": "日本", "slug": "ri-ben"}],
        ),
        USD,
    )
    assert product.title == name
    assert product.description == "<p>«fait main»</p>"
    assert product.categories == ["Food & Drink"] and product.tags == ["日本"]


def test_meta_data_private_never_read_public_mpn_and_brand_used() -> None:
    product = map_product(
        simple(
            meta_data=[
                {"id": 1, "key": "_mpn", "value": "PRIVATE-1"},
                {"id": 2, "key": "mpn", "value": "MPN-77"},
                {"id": 3, "key": "_internal_note", "value": "secret margin"},
                {"id": 4, "key": "brand", "value": "Acme"},
                {"id": 5, "key": "seo_title", "value": "ignored"},
            ],
            brands=[],
        ),
        USD,
    )
    assert product.identifiers.mpn == "MPN-77" and product.vendor == "Acme"
    dumped = product.model_dump_json()
    assert "PRIVATE-1" not in dumped and "secret margin" not in dumped and "ignored" not in dumped
    branded = map_product(simple(brands=[{"id": 9, "name": "Nordwind", "slug": "nordwind"}]), USD)
    assert branded.vendor == "Nordwind"


# ---- generated catalog ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated() -> list[dict[str, Any]]:
    catalog = CatalogBuilder(11, big_variations=120).build(400)
    natives = []
    for pid, product in catalog.products.items():
        native = copy.deepcopy(product)
        if pid in catalog.variations:
            native[VARIATIONS_KEY] = copy.deepcopy(catalog.variations[pid])
        natives.append(native)
    return natives


def test_generated_catalog_maps_without_errors(generated: list[dict[str, Any]]) -> None:
    products = [map_product(native, USD) for native in generated]
    assert len(products) == 400
    by_id = {p.external_id: p for p in products}
    variable = [n for n in generated if n["type"] == "variable"]
    assert variable and max(len(n[VARIATIONS_KEY]) for n in variable) >= 120
    for native in variable:
        product = by_id[str(native["id"])]
        enabled = [v for v in native[VARIATIONS_KEY] if v["status"] != "private"]
        assert len(product.variants) == len(enabled)
        assert all(v.options for v in product.variants)
    statuses = {p.status for p in products}
    assert statuses == {ProductStatus.ACTIVE, ProductStatus.DRAFT}
    assert {p.availability for p in products} >= {
        Availability.IN_STOCK,
        Availability.OUT_OF_STOCK,
        Availability.BACKORDER,
    }


def test_generated_never_synced_fields_are_absent(generated: list[dict[str, Any]]) -> None:
    leaked = (
        "Internal: ship with the blue tape",
        "cost 3.10, margin thin",
        "_wpcom_is_markdown",
        "_supplier_ref",
    )
    assert any(n["purchase_note"] for n in generated)
    for native in generated:
        text = map_product(native, USD).model_dump_json()
        assert not any(secret in text for secret in leaked)
        assert "average_rating" not in text and "total_sales" not in text


def test_generated_identifiers_and_sales(generated: list[dict[str, Any]]) -> None:
    products = [map_product(native, USD) for native in generated]
    kinds = {k for p in products for k in ("upc", "ean", "isbn", "gtin") if getattr(p.identifiers, k)}
    assert kinds == {"upc", "ean", "isbn", "gtin"}
    assert any(p.warnings for p in products)  # the hand-typed invalid barcodes
    on_sale = [p for p in products if p.compare_at_price is not None]
    assert on_sale and all(
        p.price is not None and p.price.amount < p.compare_at_price.amount  # type: ignore[union-attr]
        for p in on_sale
    )
    assert any(p.sale_starts_at is not None for p in products)
