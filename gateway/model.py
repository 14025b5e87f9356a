"""The canonical product: what every platform's product becomes inside the gateway.

It holds everything the help page promises to sync (docs/reference/BEHAVIOUR.md "What is synced") and nothing it
promises not to: there is no field for reviews, ratings, sales figures, internal notes or private
metadata, so a mapper cannot leak them even by accident (`extra="forbid"`).

One shape, whatever the platform (the model normalises it, so a plugin cannot get it wrong):
- money is a decimal string with exactly the currency's ISO 4217 minor units: "221.10" USD, "1000"
  JPY, "1.234" KWD (`minor_units`; a code not in the table has 2). An amount with more decimals than
  its currency has is rounded half-up to the minor unit, and the product says so in `warnings`;
- timestamps are UTC at millisecond precision, written "2026-01-02T03:04:05.678Z";
- image and variant positions are 0, 1, ... n-1 in the order the shopper sees them;
- the handle is the platform's slug: no slashes ("/laundry-mug-150/" is "laundry-mug-150").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from gateway.identifiers import validate_identifier


class ProductStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DRAFT = "DRAFT"
    ARCHIVED = "ARCHIVED"


class Availability(StrEnum):
    IN_STOCK = "IN_STOCK"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    BACKORDER = "BACKORDER"
    PREORDER = "PREORDER"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, str_strip_whitespace=False)


# ---- timestamps ------------------------------------------------------------------------------------
def millis_utc(value: datetime) -> datetime:
    """`value` in UTC, cut to whole milliseconds (a naive value is taken as UTC).

    Cut, not rounded: MongoDB keeps milliseconds by cutting, so a stored time reads back equal.
    """
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def format_timestamp(value: datetime) -> str:
    """The canonical text of a timestamp: "2026-01-02T03:04:05.678Z" (UTC, always three decimals)."""
    moment = millis_utc(value)
    return f"{moment.replace(microsecond=0, tzinfo=None).isoformat()}.{moment.microsecond // 1000:03d}Z"


#: A datetime field of the canonical model: UTC, millisecond precision, canonical text in JSON.
Timestamp = Annotated[
    datetime, AfterValidator(millis_utc), PlainSerializer(format_timestamp, return_type=str, when_used="json")
]


# ---- money -------------------------------------------------------------------------------------------
#: ISO 4217 minor units of the currencies that do not have 2 (the list of codes, amendment 178).
#: Funds and precious metals without minor units ("N.A.") are left to the default.
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV"), 0
    ),
    **dict.fromkeys(("XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
DEFAULT_MINOR_UNITS = 2
_QUANTA = {units: Decimal(1).scaleb(-units) for units in range(5)}


def minor_units(currency: str) -> int:
    """Decimal places of `currency` (ISO 4217); 2 for a code the table does not know."""
    return MINOR_UNITS.get(currency.upper(), DEFAULT_MINOR_UNITS)


class Money(_Model):
    """An exact amount in a currency. Never a float: amounts arrive as strings or decimals.

    The amount always has exactly the currency's minor units (see the module docstring).
    """

    amount: Decimal
    currency: str = Field(min_length=3, max_length=3)
    #: The store's amount when it had more decimals than the currency allows (and was rounded). Not
    #: part of the money's document: a field rather than a private attribute, which would cost every
    #: amount of every product a call into Python when it is built.
    rounded_from: Decimal | None = Field(default=None, exclude=True, repr=False)

    @field_validator("amount", mode="before")
    @classmethod
    def _no_floats(cls, value: Any) -> Any:
        # A float has already lost precision; go through its shortest repr, which is what the
        # store printed in its JSON.
        if isinstance(value, float):
            return Decimal(repr(value))
        return value

    @field_validator("amount")
    @classmethod
    def _finite(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("amount must be a finite number")
        return value

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _in_minor_units(self) -> Money:
        quantum = _QUANTA[minor_units(self.currency)]
        try:
            exact = self.amount.quantize(quantum, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            raise ValueError(f"amount {self.amount} is too large for an amount in {self.currency}") from None
        if exact != self.amount:
            self.rounded_from = self.amount
        # "-0.00" is a price of nothing, not a negative one.
        self.amount = exact.copy_abs() if exact.is_zero() else exact
        return self


class Image(_Model):
    url: str
    alt: str | None = None
    #: 0 for the first image the shopper sees.
    position: int = 0


class Translation(_Model):
    """One translated field, e.g. locale "fr", field "title"."""

    locale: str
    field: str
    value: str


class Attribute(_Model):
    """A typed attribute: colors, sizes, materials, or any other option or custom field."""

    name: str
    values: list[str] = Field(default_factory=list)
    #: "option" for variant-defining options, "attribute" for descriptive ones.
    kind: str = "attribute"


class OptionValue(_Model):
    name: str
    value: str


class Identifiers(_Model):
    """Identifiers as the store holds them. Invalid check digits are kept and warned about."""

    sku: str | None = None
    upc: str | None = None
    gtin: str | None = None
    ean: str | None = None
    isbn: str | None = None
    mpn: str | None = None
    warnings: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_digits(self) -> Identifiers:
        for kind in ("upc", "gtin", "ean", "isbn"):
            value = getattr(self, kind)
            if value:
                warning = validate_identifier(kind, value)
                if warning and warning not in self.warnings:
                    self.warnings.append(warning)
        return self


class Variant(_Model):
    external_id: str
    title: str = ""
    sku: str | None = None
    barcode: str | None = None
    identifiers: Identifiers = Field(default_factory=Identifiers)
    price: Money | None = None
    compare_at_price: Money | None = None
    sale_starts_at: Timestamp | None = None
    sale_ends_at: Timestamp | None = None
    inventory_quantity: int | None = None
    inventory_tracked: bool = False
    availability: Availability = Availability.IN_STOCK
    options: list[OptionValue] = Field(default_factory=list)
    image_url: str | None = None
    #: 0 for the first variant the shopper sees.
    position: int = 0


class Product(_Model):
    """A store's product in canonical form: the store version, before any Alana edit."""

    external_id: str
    status: ProductStatus = ProductStatus.ACTIVE
    availability: Availability = Availability.IN_STOCK
    title: str
    description: str | None = None
    handle: str | None = None
    vendor: str | None = None
    product_type: str | None = None
    translations: list[Translation] = Field(default_factory=list)
    images: list[Image] = Field(default_factory=list)
    price: Money | None = None
    compare_at_price: Money | None = None
    sale_starts_at: Timestamp | None = None
    sale_ends_at: Timestamp | None = None
    inventory_quantity: int | None = None
    inventory_tracked: bool = False
    categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    attributes: list[Attribute] = Field(default_factory=list)
    variants: list[Variant] = Field(default_factory=list)
    identifiers: Identifiers = Field(default_factory=Identifiers)
    store_updated_at: Timestamp
    store_created_at: Timestamp | None = None
    #: Non-fatal mapping problems (an invalid barcode kept as raw text, an unknown status...).
    warnings: list[str] = Field(default_factory=list)

    @field_validator("handle")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        return slug(value)

    @model_validator(mode="after")
    def _canonical(self) -> Product:
        self.images = in_position_order(self.images)
        self.variants = in_position_order(self.variants)
        for where, money in self._monies():
            if money.rounded_from is not None:
                warning = (
                    f"{where} {money.rounded_from} has more decimals than {money.currency} has; "
                    f"rounded to {money.amount}"
                )
                if warning not in self.warnings:
                    self.warnings.append(warning)
        return self

    def _monies(self) -> list[tuple[str, Money]]:
        found = [(name.replace("_", " "), getattr(self, name)) for name in ("price", "compare_at_price")]
        for variant in self.variants:
            found += [(f"variant {variant.external_id} price", variant.price)]
            found += [(f"variant {variant.external_id} compare-at price", variant.compare_at_price)]
        return [(where, money) for where, money in found if money is not None]

    @property
    def sku(self) -> str | None:
        return self.identifiers.sku or next((v.sku for v in self.variants if v.sku), None)

    def content_hash(self) -> str:
        """A stable hash of the store version; see `content_hash`."""
        return content_hash(self)

    def to_document(self) -> dict[str, Any]:
        """The JSON-safe form stored in MongoDB (decimals as strings, datetimes as ISO text)."""
        return self.model_dump(mode="json")


def slug(handle: str | None) -> str | None:
    """The slug of a handle or storefront path: "/shoes/laundry-mug-150/" -> "laundry-mug-150"."""
    if handle is None:
        return None
    text = handle.strip().strip("/")
    if "/" in text:
        text = text.rsplit("/", 1)[-1]
    return text or None


class _Positioned(Protocol):
    position: int


_P = TypeVar("_P", bound=_Positioned)


def in_position_order(items: Sequence[_P]) -> list[_P]:
    """`items` sorted by their position (ties keep their order), renumbered 0..n-1."""
    if all(item.position == index for index, item in enumerate(items)):
        return list(items)
    ordered = sorted(enumerate(items), key=lambda pair: (pair[1].position, pair[0]))
    for index, (_, item) in enumerate(ordered):
        item.position = index
    return [item for _, item in ordered]


# Fields left out of the hash: timestamps alone are not trusted (platforms bump them without real
# edits, docs/reference/BEHAVIOUR.md "Change detection").
_UNHASHED = {"store_updated_at", "store_created_at"}
# Lists whose order carries no meaning: sorted before hashing. Images and variant options keep
# their order (image position and option order are what the shopper sees).
_UNORDERED = ("tags", "categories", "attributes", "translations", "variants")


def _normalised_money(data: dict[str, Any]) -> dict[str, Any]:
    # "29.90", "29.9" and "2.99E+1" are one price: hash one spelling, keep the store's in the model.
    result = dict(data)
    for key in ("price", "compare_at_price"):
        money = data.get(key)
        if money:
            result[key] = {**money, "amount": format(Decimal(money["amount"]).normalize(), "f")}
    return result


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def hash_document(document: dict[str, Any]) -> str:
    """The content hash of a product already dumped with `Product.to_document()` (left unchanged).

    The engine dumps each product once and hashes and stores that same document.
    """
    data = _normalised_money({k: v for k, v in document.items() if k not in _UNHASHED})
    if data.get("variants"):
        data["variants"] = [_normalised_money(v) for v in data["variants"]]
    for key in _UNORDERED:
        items = data.get(key)
        if items and len(items) > 1:
            data[key] = sorted(items, key=_sort_key)
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def content_hash(product: Product) -> str:
    """SHA-256 over a canonical form of the store version.

    Key order, the way a number is written (29.9 and "29.90" are the same price) and the order of
    lists whose order means nothing (tags, categories, attributes, translations, variants) do not
    change it. Serialisation is pydantic's (Rust); only the unordered lists are sorted in Python:
    this runs for every product of every run.
    """
    return hash_document(product.to_document())


#: The fields Alana may edit (overlays). Product attribute name -> canonical field.
EDITABLE_FIELDS = ("title", "description", "tags", "attributes")
