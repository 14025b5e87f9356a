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


# ---- the canonical shape ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "currency", "written"),
    [
        ("221.1", "USD", "221.10"),
        (221.1, "usd", "221.10"),
        ("77.72", "EUR", "77.72"),
        ("1000.0", "JPY", "1000"),
        ("1E+3", "KRW", "1000"),
        ("1.234", "KWD", "1.234"),
        ("1.2", "BHD", "1.200"),
        ("0.5", "CLF", "0.5000"),
        ("5", "XYZ", "5.00"),  # a code ISO 4217 does not list: two decimals
        ("-0.00", "USD", "0.00"),
    ],
)
def test_money_has_the_currencys_minor_units(amount: object, currency: str, written: str) -> None:
    money = Money.model_validate({"amount": amount, "currency": currency})
    assert str(money.amount) == written and money.model_dump(mode="json")["amount"] == written
    assert money.rounded_from is None


def test_an_amount_finer_than_its_currency_is_rounded_half_up_and_warned() -> None:
    shirt = product(
        price={"amount": "19.995", "currency": "USD"},
        variants=[Variant(external_id="v1", price=Money(amount="1000.5", currency="JPY"))],
    )
    assert shirt.price is not None and str(shirt.price.amount) == "20.00"
    assert str(shirt.variants[0].price.amount) == "1001"  # type: ignore[union-attr]
    assert shirt.warnings == [
        "price 19.995 has more decimals than USD has; rounded to 20.00",
        "variant v1 price 1000.5 has more decimals than JPY has; rounded to 1001",
    ]
    again = Product.model_validate(shirt.to_document())  # stored and read back: nothing added twice
    assert again.warnings == shirt.warnings and again.content_hash() == shirt.content_hash()
    with pytest.raises(ValidationError, match="too large"):
        Money(amount="1e40", currency="USD")


def test_timestamps_are_utc_to_the_millisecond() -> None:
    from datetime import timedelta, timezone

    paris = timezone(timedelta(hours=1))
    shirt = product(
        store_updated_at=datetime(2026, 1, 2, 4, 4, 5, 678999, tzinfo=paris),
        store_created_at="2026-01-02T03:04:05Z",
        sale_starts_at=datetime(2026, 1, 2, 3, 4, 5),  # naive: taken as UTC
        variants=[Variant(external_id="v1", sale_ends_at="2026-02-01T00:00:00.1234567+00:00")],
    )
    assert shirt.store_updated_at == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    document = shirt.to_document()
    assert document["store_updated_at"] == "2026-01-02T03:04:05.678Z"
    assert document["store_created_at"] == "2026-01-02T03:04:05.000Z"
    assert document["sale_starts_at"] == "2026-01-02T03:04:05.000Z"
    assert document["variants"][0]["sale_ends_at"] == "2026-02-01T00:00:00.123Z"
    assert shirt.variants[0].sale_ends_at is not None and shirt.variants[0].sale_ends_at.tzinfo == UTC


def test_positions_count_from_zero_in_the_shoppers_order() -> None:
    shirt = product(
        images=[{"url": "b", "position": 2}, {"url": "a", "position": 1}, {"url": "c", "position": 2}],
        variants=[Variant(external_id="v2", position=2), Variant(external_id="v1", position=1)],
    )
    assert [(i.url, i.position) for i in shirt.images] == [("a", 0), ("b", 1), ("c", 2)]
    assert [(v.external_id, v.position) for v in shirt.variants] == [("v1", 0), ("v2", 1)]
    lazy = product(variants=[Variant(external_id="x"), Variant(external_id="y")])  # no positions given
    assert [(v.external_id, v.position) for v in lazy.variants] == [("x", 0), ("y", 1)]


@pytest.mark.parametrize(
    ("given", "handle"),
    [
        ("/laundry-mug-150/", "laundry-mug-150"),
        ("/all/1l-le-parfait-jar/", "1l-le-parfait-jar"),
        ("classic-tee", "classic-tee"),
        ("/", None),
        ("", None),
        (None, None),
    ],
)
def test_the_handle_is_a_slug_without_slashes(given: str | None, handle: str | None) -> None:
    assert product(handle=given).handle == handle


def test_the_old_shape_and_the_new_one_hash_alike_once_read_by_the_model() -> None:
    """A document stored before the canonical shape reads back as the product a mapper makes now."""
    old = {
        "external_id": "1",
        "title": "Shirt",
        "handle": "/shirt/",
        "price": {"amount": "221.1", "currency": "USD"},
        "images": [{"url": "a", "alt": None, "position": 1}, {"url": "b", "alt": None, "position": 2}],
        "store_updated_at": "2026-01-01T00:00:00.123456Z",
    }
    new = product(
        handle="shirt",
        price=Money(amount="221.10", currency="USD"),
        images=[{"url": "a", "position": 0}, {"url": "b", "position": 1}],
        store_updated_at=datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC),
    )
    assert Product.model_validate(old).to_document() == new.to_document()
