"""The canonical product: what every platform's product becomes inside the gateway.

It holds everything the help page promises to sync (docs/reference/BEHAVIOUR.md "What is synced") and nothing it
promises not to: there is no field for reviews, ratings, sales figures, internal notes or private
metadata, so a mapper cannot leak them even by accident (`extra="forbid"`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class Money(_Model):
    """An exact amount in a currency. Never a float: amounts arrive as strings or decimals."""

    amount: Decimal
    currency: str = Field(min_length=3, max_length=3)

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


class Image(_Model):
    url: str
    alt: str | None = None
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
    sale_starts_at: datetime | None = None
    sale_ends_at: datetime | None = None
    inventory_quantity: int | None = None
    inventory_tracked: bool = False
    availability: Availability = Availability.IN_STOCK
    options: list[OptionValue] = Field(default_factory=list)
    image_url: str | None = None
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
    sale_starts_at: datetime | None = None
    sale_ends_at: datetime | None = None
    inventory_quantity: int | None = None
    inventory_tracked: bool = False
    categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    attributes: list[Attribute] = Field(default_factory=list)
    variants: list[Variant] = Field(default_factory=list)
    identifiers: Identifiers = Field(default_factory=Identifiers)
    store_updated_at: datetime
    store_created_at: datetime | None = None
    #: Non-fatal mapping problems (an invalid barcode kept as raw text, an unknown status...).
    warnings: list[str] = Field(default_factory=list)

    @field_validator("store_updated_at", "store_created_at", "sale_starts_at", "sale_ends_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def sku(self) -> str | None:
        return self.identifiers.sku or next((v.sku for v in self.variants if v.sku), None)

    def content_hash(self) -> str:
        """A stable hash of the store version; see `content_hash`."""
        return content_hash(self)

    def to_document(self) -> dict[str, Any]:
        """The JSON-safe form stored in MongoDB (decimals as strings, datetimes as ISO text)."""
        return self.model_dump(mode="json")


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
