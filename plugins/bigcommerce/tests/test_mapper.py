"""The mapper on BigCommerce's own spec examples, on hand-made edge cases and on the generated catalog."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from alana_bigcommerce.catalog import Catalog
from alana_bigcommerce.mapper import map_product, selling_prices

from gateway.adapter import MappingContext
from gateway.errors import MappingError
from gateway.model import Availability, ProductStatus

USD = MappingContext(currency="USD")
JPY = MappingContext(currency="JPY")


def with_names(
    product: dict[str, Any], categories: list[str] | None = None, brand: str | None = None
) -> dict[str, Any]:
    return {**product, "_category_names": categories or [], "_brand_name": brand}


# ---- the spec examples ---------------------------------------------------------------------------
def test_spec_product_maps_every_synced_field(spec_product: dict[str, Any]) -> None:
    product = map_product(with_names(spec_product, ["Jars", "Kitchen"], "Le Parfait"), USD)

    assert product.external_id == "174"
    assert product.title == "1L Le Parfait Jar"
    assert product.description is not None and product.description.startswith("<p><span>Lorem ipsum")
    assert product.status is ProductStatus.ACTIVE
    assert product.availability is Availability.IN_STOCK
    # price 7.95, sale 0, retail 10: no sale, the MSRP is the compare-at.
    assert product.price is not None and product.price.amount == Decimal("7.95")
    assert str(product.price.amount) == "7.95"
    assert product.price.currency == "USD"
    assert product.compare_at_price is not None and product.compare_at_price.amount == Decimal("10")
    assert str(product.compare_at_price.amount) == "10.00"  # the API's number 10, in cents
    # inventory_tracking "none": not tracked, no quantity.
    assert product.inventory_tracked is False
    assert product.inventory_quantity is None
    assert product.handle == "1l-le-parfait-jar"  # custom_url "/all/1l-le-parfait-jar/": its slug
    assert product.tags == ["jar", "glass"]
    assert product.vendor == "Le Parfait"
    assert product.categories == ["Jars", "Kitchen"]
    assert product.product_type == "physical"
    assert product.identifiers.sku is None and product.identifiers.upc is None
    assert product.variants == []  # no options: the base variant is the product itself
    assert product.store_updated_at == datetime(2018, 9, 5, 20, 42, 7, tzinfo=UTC)
    assert product.store_created_at == datetime(2018, 8, 15, 14, 48, 46, tzinfo=UTC)
    assert product.warnings == []


def test_single_product_envelope_is_accepted(fixture_json: Callable[[str], Any]) -> None:
    envelope = fixture_json("spec_example_get_product_response.json")
    assert map_product(envelope, USD).external_id == "174"


def test_fields_never_synced_do_not_reach_the_product(spec_product: dict[str, Any]) -> None:
    baseline = map_product(spec_product, USD)
    noisy = {
        **spec_product,
        "reviews_rating_sum": 49,
        "reviews_count": 11,
        "total_sold": 9000,
        "view_count": 123456,
        "cost_price": 3.5,
    }
    mapped = map_product(noisy, USD)
    assert mapped.content_hash() == baseline.content_hash()
    text = str(mapped.to_document())
    assert "123456" not in text and "9000" not in text


def test_spec_variants_map_prices_options_and_stock(
    spec_product: dict[str, Any], spec_variants: list[dict[str, Any]]
) -> None:
    native = {**spec_product, "id": 192, "inventory_tracking": "variant", "variants": spec_variants}
    product = map_product(native, USD)

    assert [v.external_id for v in product.variants] == ["382", "383", "384"]
    beige, grey, black = product.variants
    # price 10, sale 8 -> pays 8, compare-at 10; price 25, sale 20 -> 20 / 25.
    assert beige.price is not None and beige.price.amount == Decimal("8")
    assert beige.compare_at_price is not None and beige.compare_at_price.amount == Decimal("10")
    assert grey.price is not None and grey.price.amount == Decimal("20")
    assert grey.compare_at_price is not None and grey.compare_at_price.amount == Decimal("25")
    assert [o.model_dump() for o in beige.options] == [{"name": "Color", "value": "Beige"}]
    assert beige.title == "Beige" and beige.sku == "SMIT" and black.sku == "SMIT-2"
    option = next(a for a in product.attributes if a.kind == "option")
    assert option.name == "Color" and option.values == ["Beige", "Grey", "Black"]
    # Tracked by variant, every variant at 0: all out of stock, and so is the product.
    assert all(v.inventory_tracked and v.inventory_quantity == 0 for v in product.variants)
    assert all(v.availability is Availability.OUT_OF_STOCK for v in product.variants)
    assert product.inventory_tracked and product.inventory_quantity == 0
    assert product.availability is Availability.OUT_OF_STOCK


# ---- prices --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("price", "sale", "retail", "pays", "compare_at", "ignored"),
    [
        ("20", "15", "0", "15", "20", False),  # on sale: the price is the compare-at
        ("20", "15", "30", "15", "20", False),  # a sale wins over the MSRP
        ("20", "0", "30", "20", "30", False),  # no sale: the MSRP is the compare-at
        ("20", "0", "10", "20", None, False),  # an MSRP below the price is no compare-at
        ("20", "25", "0", "20", None, True),  # a "sale" above the price is ignored (and warned)
        ("20", "20", "0", "20", None, True),
        ("20", None, None, "20", None, False),
    ],
)
def test_selling_price_rule(
    price: str, sale: str | None, retail: str | None, pays: str, compare_at: str | None, ignored: bool
) -> None:
    def dec(value: str | None) -> Decimal | None:
        return None if value is None else Decimal(value)

    assert selling_prices(dec(price), dec(sale), dec(retail)) == (dec(pays), dec(compare_at), ignored)


def test_prices_are_exact_decimals_from_json_numbers(spec_product: dict[str, Any]) -> None:
    # A float the store printed with noise is still an amount in cents, and the product says it was rounded.
    product = map_product({**spec_product, "price": 19.99, "sale_price": 0.1 + 0.2, "retail_price": 0}, USD)
    assert product.price is not None and str(product.price.amount) == "0.30"
    assert any("0.30000000000000004" in w for w in product.warnings)
    product = map_product({**spec_product, "price": 19.99, "sale_price": 0, "retail_price": 0}, USD)
    assert product.price is not None and str(product.price.amount) == "19.99"
    # The API's numbers carry no trailing zeros; the canonical amount has the currency's minor units.
    product = map_product({**spec_product, "price": 221.1, "sale_price": 0, "retail_price": 250}, USD)
    assert product.price is not None and str(product.price.amount) == "221.10"
    assert product.compare_at_price is not None and str(product.compare_at_price.amount) == "250.00"
    product = map_product({**spec_product, "price": 1500, "sale_price": 0, "retail_price": 0}, JPY)
    assert product.price is not None and str(product.price.amount) == "1500"
    assert map_product(spec_product, MappingContext(currency="eur")).price.currency == "EUR"  # type: ignore[union-attr]


def test_sale_price_not_below_price_is_warned(spec_product: dict[str, Any]) -> None:
    product = map_product({**spec_product, "price": 10, "sale_price": 12, "retail_price": 0}, USD)
    assert product.price is not None and product.price.amount == Decimal("10")
    assert product.compare_at_price is None
    assert any("sale_price 12 is not below price 10" in w for w in product.warnings)


def test_variant_without_own_price_pays_calculated_price(
    spec_product: dict[str, Any], spec_variants: list[dict[str, Any]]
) -> None:
    inherited = copy.deepcopy(spec_variants[0])
    inherited.update(price=None, sale_price=None, retail_price=None, calculated_price=17.5)
    native = {**spec_product, "price": 20, "sale_price": 16, "retail_price": 0, "variants": [inherited]}
    variant = map_product(native, USD).variants[0]
    # The product pays 16 (compare-at 20); this variant's storefront price is 17.5, i.e. +1.5 on the
    # product, so its compare-at is the product's shifted by the same 1.5.
    assert variant.price is not None and variant.price.amount == Decimal("17.5")
    assert variant.compare_at_price is not None and variant.compare_at_price.amount == Decimal("21.5")


# ---- stock and status ----------------------------------------------------------------------------
def test_inventory_tracked_by_product(spec_product: dict[str, Any], spec_variants: list[dict[str, Any]]) -> None:
    in_stock = map_product({**spec_product, "inventory_tracking": "product", "inventory_level": 12}, USD)
    assert (in_stock.inventory_tracked, in_stock.inventory_quantity) == (True, 12)
    assert in_stock.availability is Availability.IN_STOCK
    sold_out = map_product({**spec_product, "inventory_tracking": "product", "inventory_level": 0}, USD)
    assert sold_out.availability is Availability.OUT_OF_STOCK
    with_variants = map_product(
        {**spec_product, "inventory_tracking": "product", "inventory_level": 5, "variants": spec_variants}, USD
    )
    # Variants share the product's stock: no quantity of their own, the product's availability.
    assert all(v.inventory_quantity is None and not v.inventory_tracked for v in with_variants.variants)
    assert all(v.availability is Availability.IN_STOCK for v in with_variants.variants)


def test_inventory_tracked_by_variant_sums(spec_product: dict[str, Any], spec_variants: list[dict[str, Any]]) -> None:
    variants = copy.deepcopy(spec_variants)
    for variant, level in zip(variants, (3, 0, 4), strict=True):
        variant["inventory_level"] = level
    product = map_product({**spec_product, "inventory_tracking": "variant", "variants": variants}, USD)
    assert product.inventory_quantity == 7
    assert product.availability is Availability.IN_STOCK
    assert [v.availability for v in product.variants] == [
        Availability.IN_STOCK,
        Availability.OUT_OF_STOCK,
        Availability.IN_STOCK,
    ]


@pytest.mark.parametrize(
    ("changes", "status", "availability"),
    [
        ({"is_visible": False}, ProductStatus.DRAFT, Availability.IN_STOCK),
        ({"availability": "disabled"}, ProductStatus.ACTIVE, Availability.OUT_OF_STOCK),
        (
            {"availability": "preorder", "inventory_tracking": "product", "inventory_level": 0},
            ProductStatus.ACTIVE,
            Availability.PREORDER,
        ),
        ({"is_visible": False, "availability": "preorder"}, ProductStatus.DRAFT, Availability.PREORDER),
    ],
)
def test_visibility_and_availability(
    spec_product: dict[str, Any], changes: dict[str, Any], status: ProductStatus, availability: Availability
) -> None:
    product = map_product({**spec_product, **changes}, USD)
    assert (product.status, product.availability) == (status, availability)


def test_purchasing_disabled_variant_is_out_of_stock(
    spec_product: dict[str, Any], spec_variants: list[dict[str, Any]]
) -> None:
    variants = copy.deepcopy(spec_variants)
    variants[1]["purchasing_disabled"] = True
    product = map_product({**spec_product, "variants": variants}, USD)
    assert [v.availability for v in product.variants] == [
        Availability.IN_STOCK,
        Availability.OUT_OF_STOCK,
        Availability.IN_STOCK,
    ]


# ---- images, attributes, identifiers -------------------------------------------------------------
def test_images_follow_sort_order_with_alt_text(spec_product: dict[str, Any]) -> None:
    images = [
        {"id": 3, "sort_order": 2, "url_standard": "https://cdn/3.jpg", "description": ""},
        {"id": 1, "sort_order": 0, "url_standard": "https://cdn/1.jpg", "description": "Front"},
        {"id": 2, "sort_order": 1, "url_standard": "", "image_url": "https://cdn/2-original.jpg"},
    ]
    product = map_product({**spec_product, "images": images}, USD)
    assert [(i.url, i.alt, i.position) for i in product.images] == [
        ("https://cdn/1.jpg", "Front", 0),
        ("https://cdn/2-original.jpg", None, 1),
        ("https://cdn/3.jpg", None, 2),
    ]


def test_custom_fields_become_attributes_grouped_by_name(spec_product: dict[str, Any]) -> None:
    fields = [
        {"id": 1, "name": "Material", "value": "Glass"},
        {"id": 2, "name": "Care", "value": "Hand wash"},
        {"id": 3, "name": "Material", "value": "Steel"},
    ]
    product = map_product({**spec_product, "custom_fields": fields}, USD)
    assert [(a.name, a.values, a.kind) for a in product.attributes] == [
        ("Material", ["Glass", "Steel"], "attribute"),
        ("Care", ["Hand wash"], "attribute"),
    ]


def test_barcodes_are_classified_and_invalid_ones_kept_with_a_warning(
    spec_product: dict[str, Any], spec_variants: list[dict[str, Any]]
) -> None:
    variants = copy.deepcopy(spec_variants)
    variants[0].update(upc="036000291452")  # a valid UPC-A
    variants[1].update(upc="4006381333931", gtin="00012345678905")  # an EAN-13 in the UPC field
    variants[2].update(upc="036000291453", mpn="MPN-1")  # a wrong check digit
    native = {
        **spec_product,
        "sku": "JAR-1",
        "upc": "N/A-17",
        "gtin": "12345678901232",
        "mpn": "LP-1L",
        "variants": variants,
    }
    product = map_product(native, USD)

    assert product.identifiers.sku == "JAR-1" and product.identifiers.mpn == "LP-1L"
    assert product.identifiers.upc == "N/A-17"  # unrecognisable: kept raw, warned
    assert product.identifiers.gtin == "12345678901232"  # wrong check digit: kept, warned
    assert len(product.identifiers.warnings) == 2
    first, second, third = product.variants
    assert first.identifiers.upc == "036000291452" and first.identifiers.warnings == []
    assert first.barcode == "036000291452"
    assert second.identifiers.ean == "4006381333931" and second.identifiers.upc is None
    assert second.identifiers.gtin == "00012345678905" and second.identifiers.warnings == []
    assert third.identifiers.upc == "036000291453" and third.identifiers.mpn == "MPN-1"
    assert third.identifiers.warnings == ["UPC '036000291453' has an invalid check digit"]
    assert any(w.startswith("variant 384: UPC") for w in product.warnings)


def test_unresolved_category_names_are_warned(spec_product: dict[str, Any]) -> None:
    product = map_product(with_names(spec_product, ["Jars"]), USD)  # two category ids, one name
    assert product.categories == ["Jars"]
    assert any("category name" in w for w in product.warnings)


# ---- failures ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"price": "abc"}, "price is not a number"),
        ({"name": None}, "has no name"),
        ({"name": "   "}, "has no name"),
        ({"date_modified": None}, "date_modified"),
        ({"date_modified": "yesterday"}, "date_modified"),
        ({"variants": "many"}, "variants is not a list"),
        ({"variants": [{"id": 1, "option_values": [{"label": "Red"}]}]}, "option value"),
        ({"custom_fields": [{"value": "x"}]}, "custom field"),
        ({"sale_price": {"amount": 3}}, "sale_price is not a number"),
    ],
)
def test_bad_payloads_raise_mapping_error(spec_product: dict[str, Any], changes: dict[str, Any], message: str) -> None:
    with pytest.raises(MappingError, match=message) as caught:
        map_product({**spec_product, **changes}, USD)
    assert caught.value.external_id == "174"


def test_payloads_that_are_not_products_raise_mapping_error() -> None:
    with pytest.raises(MappingError):
        map_product({"name": "no id"}, USD)
    webhook = {
        "scope": "store/product/updated",
        "store_id": "1",
        "data": {"type": "product", "id": 205},
        "hash": "a833",
        "created_at": 1561479233,
        "producer": "stores/abc",
    }
    with pytest.raises(MappingError, match="fetch it by id") as caught:
        map_product(webhook, USD)
    assert caught.value.external_id == "205"


# ---- the generated catalog -----------------------------------------------------------------------
def test_generated_catalog_maps_without_errors_and_has_the_variety() -> None:
    catalog = Catalog(600, seed=11)
    products = [map_product(with_names(p, ["x"], "y"), USD) for p in catalog.iter_products()]

    assert len(products) == 600
    assert Counter(p.status for p in products).keys() == {ProductStatus.ACTIVE, ProductStatus.DRAFT}
    assert set(Counter(p.availability for p in products)) == {
        Availability.IN_STOCK,
        Availability.OUT_OF_STOCK,
        Availability.PREORDER,
    }
    assert any(p.compare_at_price and p.price and p.compare_at_price.amount > p.price.amount for p in products)
    assert any(len(p.variants) > 20 for p in products)
    assert any(not p.inventory_tracked for p in products) and any(p.inventory_tracked for p in products)
    assert any(p.identifiers.ean for p in products)
    assert any("invalid check digit" in w for p in products for w in p.warnings)
    assert any(a.kind == "attribute" for p in products for a in p.attributes)
    # Every price is an exact two-decimal amount.
    cents = Decimal("0.01")
    assert all(p.price is None or p.price.amount == p.price.amount.quantize(cents) for p in products)


def test_mapping_is_deterministic() -> None:
    first = [map_product(p, USD).content_hash() for p in Catalog(50, seed=3).iter_products()]
    second = [map_product(p, USD).content_hash() for p in Catalog(50, seed=3).iter_products()]
    assert first == second and len(set(first)) == 50
