"""The canonical model: exact money, identifiers with check digits, a stable content hash."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.identifiers import classify_barcode, gs1_check_digit_ok, isbn10_ok
from gateway.model import Attribute, Identifiers, Money, Product, Variant

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def product(**fields: object) -> Product:
    base: dict[str, object] = {"external_id": "1", "title": "Shirt", "store_updated_at": NOW}
    base.update(fields)
    return Product.model_validate(base)


def test_money_is_exact_and_never_a_float() -> None:
    assert Money(amount="19.99", currency="usd").amount == Decimal("19.99")
    assert Money(amount=0.1, currency="EUR").amount == Decimal("0.1")
    assert product(price={"amount": "19.99", "currency": "USD"}).to_document()["price"]["amount"] == "19.99"


def test_never_synced_fields_have_no_place_in_the_model() -> None:
    for field in ("reviews", "average_rating", "total_sales", "purchase_note", "meta_data"):
        with pytest.raises(ValidationError):
            product(**{field: 1})


@pytest.mark.parametrize(
    ("raw", "kind", "warned"),
    [
        ("036000291452", "upc", False),
        ("036000291453", "upc", True),
        ("4006381333931", "ean", False),
        ("9780306406157", "isbn", False),
        ("0-306-40615-2", "isbn", False),
        ("0306406153", "isbn", True),
        ("12345670", "gtin", False),
        ("ABC-123", "gtin", True),
    ],
)
def test_barcodes_are_classified_and_invalid_ones_kept(raw: str, kind: str, warned: bool) -> None:
    found = classify_barcode(raw)
    assert found.kind == kind
    assert (found.warning is not None) == warned
    assert found.value  # never dropped


def test_invalid_identifiers_are_kept_with_a_warning() -> None:
    ids = Identifiers(upc="036000291453", ean="4006381333931")
    assert ids.upc == "036000291453"
    assert len(ids.warnings) == 1 and "UPC" in ids.warnings[0]
    assert gs1_check_digit_ok("4006381333931") and isbn10_ok("030640615X") is False


def test_hash_ignores_key_order_number_format_and_unordered_lists() -> None:
    a = product(
        tags=["a", "b"],
        categories=["x", "y"],
        price={"amount": "29.90", "currency": "USD"},
        attributes=[Attribute(name="Color", values=["Red"]), Attribute(name="Size", values=["M"])],
    )
    b = product(
        tags=["b", "a"],
        categories=["y", "x"],
        price={"currency": "USD", "amount": 29.9},
        attributes=[Attribute(name="Size", values=["M"]), Attribute(name="Color", values=["Red"])],
    )
    assert a.content_hash() == b.content_hash()


def test_hash_changes_with_content_but_not_with_timestamps() -> None:
    a = product(variants=[Variant(external_id="v1", inventory_quantity=3)])
    assert a.content_hash() != product(variants=[Variant(external_id="v1", inventory_quantity=4)]).content_hash()
    assert a.content_hash() != product(title="Shirt!", variants=a.variants).content_hash()
    bumped = a.model_copy(update={"store_updated_at": datetime(2027, 1, 1, tzinfo=UTC)})
    assert bumped.content_hash() == a.content_hash()
    # Image order is what the shopper sees: it counts.
    one = product(images=[{"url": "a", "position": 0}, {"url": "b", "position": 1}])
    two = product(images=[{"url": "b", "position": 0}, {"url": "a", "position": 1}])
    assert one.content_hash() != two.content_hash()


@given(st.lists(st.text(min_size=1, max_size=8), max_size=6, unique=True), st.randoms())
def test_hash_is_independent_of_tag_order(tags: list[str], rnd: object) -> None:
    shuffled = list(tags)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert product(tags=tags).content_hash() == product(tags=shuffled).content_hash()
