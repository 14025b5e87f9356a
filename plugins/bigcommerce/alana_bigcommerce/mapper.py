"""BigCommerce Catalog v3 product -> canonical Product. Pure: no I/O, everything comes in `native`.

`native` is a product as `GET /v3/catalog/products?include=variants,images,custom_fields` returns it
(or the `{"data": {...}, "meta": {}}` envelope of `GET /products/{id}`), plus what the client attached:
`_category_names` (names of `categories`, in order) and `_brand_name` (the name of `brand_id`).

The rules, where BigCommerce leaves a choice:

Prices (numbers in the API; converted with Decimal(str(n)), so 7.95 stays 7.95):
- An item with its own `price`: when 0 < `sale_price` < `price` the shopper pays the sale price and
  `price` is the compare-at; otherwise the shopper pays `price` and `retail_price` (the MSRP) is the
  compare-at when it is above it. A `sale_price` at or above `price` is no discount: ignored, warned.
- `calculated_price` is used only where it is what the shopper pays: for a variant whose own `price`
  is null (it inherits the product's, plus option adjustments). Such a variant keeps the product's
  compare-at shifted by the same adjustment. For products and priced variants it is not used, since it
  may carry customer-group or channel pricing (the spec: it "may or may not be equal to the price seen
  on the storefront").
- A variant with its own price uses only its own sale / retail price (inheriting the product's
  absolute sale price onto a differently priced variant would invent a price).

Stock (`inventory_tracking`):
- `none`: not tracked, quantities None. `product`: the product's `inventory_level`; variants share it
  (their own quantities are None, their availability the product's). `variant`: each variant's
  `inventory_level`, and the product's quantity is their sum.

Status and availability:
- `is_visible` false -> DRAFT (hidden from the storefront); otherwise ACTIVE. BigCommerce has no archive.
- `availability` `disabled` ("listed on the storefront, but cannot be purchased") -> OUT_OF_STOCK with
  status untouched: the product is still listed, so ARCHIVED would misreport it as gone.
- `preorder` -> PREORDER. `available` -> OUT_OF_STOCK when tracked with no stock left (for variant
  tracking: no variant left to buy), else IN_STOCK. A variant with `purchasing_disabled` is OUT_OF_STOCK.

Other fields: brand name -> vendor, category names -> categories, `type` (physical / digital) ->
product_type, `custom_url.url` -> handle (its slug: "/laundry-mug-150/" -> "laundry-mug-150"),
`search_keywords` -> tags (split on commas), custom fields -> attributes (values grouped by name),
option values -> "option" attributes and variant options, images by `sort_order` (then id),
`date_modified` -> store_updated_at.
A product without options has a single option-less base variant; it is the product itself, not a
variant, and is not listed. Barcodes: the UPC field is classified by shape (an EAN-13 typed there
becomes `ean`), GTIN and MPN are kept; invalid check digits are kept raw with a warning.
Never read: reviews_rating_sum, reviews_count, total_sold, view_count, cost_price.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from gateway.adapter import MappingContext
from gateway.errors import MappingError
from gateway.identifiers import classify_barcode
from gateway.model import (
    Attribute,
    Availability,
    Identifiers,
    Image,
    Money,
    OptionValue,
    Product,
    ProductStatus,
    Variant,
    slug,
)

CATEGORY_NAMES_KEY = "_category_names"
BRAND_NAME_KEY = "_brand_name"

_TRACKING = ("none", "product", "variant")
_AVAILABILITY = ("available", "disabled", "preorder")


def map_product(native: Mapping[str, Any], context: MappingContext) -> Product:
    """Map one BigCommerce product; MappingError when it cannot be mapped."""
    product = _unwrap(native)
    external_id = product.get("id")
    if isinstance(external_id, bool) or not isinstance(external_id, (int, str)) or str(external_id) == "":
        raise MappingError("the BigCommerce product has no id")
    external_id = str(external_id)
    try:
        return _Mapper(product, external_id, context.currency).product()
    except MappingError:
        raise
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        raise MappingError(
            f"product {external_id} does not fit the canonical model: {reason}", external_id=external_id
        ) from exc
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise MappingError(
            f"product {external_id} is malformed: {type(exc).__name__}: {exc}", external_id=external_id
        ) from exc


def _unwrap(native: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(native, Mapping):
        raise MappingError("a BigCommerce product must be a JSON object")
    data = native.get("data")
    if isinstance(data, Mapping) and "id" not in native:
        if "scope" in native:  # a webhook delivery: it names the product but does not carry it
            raise MappingError(
                f"a {native.get('scope')} webhook carries no product; fetch it by id",
                external_id=str(data.get("id", "")) or None,
                code="NOT_A_PRODUCT",
            )
        return data
    return native


def decimal(value: Any, field: str, external_id: str) -> Decimal | None:
    """A price from the API (number, numeric string or null) as an exact Decimal."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise _not_a_number(field, value, external_id)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise _not_a_number(field, value, external_id) from None
    if not amount.is_finite():
        raise _not_a_number(field, value, external_id)
    return amount


def _not_a_number(field: str, value: Any, external_id: str) -> MappingError:
    return MappingError(f"product {external_id}: {field} is not a number ({value!r})", external_id=external_id)


def selling_prices(
    price: Decimal | None, sale: Decimal | None, retail: Decimal | None
) -> tuple[Decimal | None, Decimal | None, bool]:
    """(what the shopper pays, compare-at, whether a sale price was ignored) for an item with a price."""
    if price is None:
        return None, None, False
    if sale is not None and 0 < sale < price:
        return sale, price, False
    ignored = sale is not None and sale > 0
    if retail is not None and retail > price:
        return price, retail, ignored
    return price, None, ignored


class _Mapper:
    def __init__(self, native: Mapping[str, Any], external_id: str, currency: str) -> None:
        self.native = native
        self.id = external_id
        self.currency = currency
        self.warnings: list[str] = []

    def fail(self, message: str) -> MappingError:
        return MappingError(f"product {self.id}: {message}", external_id=self.id)

    def money(self, amount: Decimal | None) -> Money | None:
        return None if amount is None else Money(amount=amount, currency=self.currency)

    def text(self, key: str) -> str | None:
        value = self.native.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.fail(f"{key} is not text ({value!r})")
        return value

    # ---- the product -------------------------------------------------------------------------
    def product(self) -> Product:
        n = self.native
        title = n.get("name")
        if not isinstance(title, str) or not title.strip():
            raise self.fail("it has no name")
        updated = _datetime(n.get("date_modified"))
        if updated is None:
            raise self.fail(f"date_modified is missing or not a date ({n.get('date_modified')!r})")

        price = decimal(n.get("price"), "price", self.id)
        sale = decimal(n.get("sale_price"), "sale_price", self.id)
        retail = decimal(n.get("retail_price"), "retail_price", self.id)
        selling, compare_at, ignored = selling_prices(price, sale, retail)
        if ignored:
            self.warnings.append(f"sale_price {sale} is not below price {price}; not treated as a sale")

        tracking = n.get("inventory_tracking") or "none"
        if tracking not in _TRACKING:
            self.warnings.append(f"unknown inventory_tracking {tracking!r}; treated as not tracked")
            tracking = "none"
        availability_raw = n.get("availability") or "available"
        if availability_raw not in _AVAILABILITY:
            self.warnings.append(f"unknown availability {availability_raw!r}; treated as available")
            availability_raw = "available"

        raw_variants = n.get("variants") or []
        if not isinstance(raw_variants, list):
            raise self.fail("variants is not a list")
        with_options = [v for v in raw_variants if isinstance(v, Mapping) and v.get("option_values")]
        listed = with_options if with_options else []

        quantity: int | None = None
        if tracking == "product":
            quantity = _int(n.get("inventory_level"))
        elif tracking == "variant":
            quantity = sum(_int(v.get("inventory_level")) for v in raw_variants if isinstance(v, Mapping))

        product_availability = self._product_availability(availability_raw, tracking, quantity, listed)
        variants = [
            self.variant(v, i, tracking, availability_raw, product_availability, selling, compare_at)
            for i, v in enumerate(listed)
        ]

        identifiers = self.identifiers(self.text("sku"), n.get("upc"), n.get("gtin"), n.get("mpn"), "product")
        tags = _tags(n.get("search_keywords"))
        categories = [c for c in (n.get(CATEGORY_NAMES_KEY) or []) if isinstance(c, str) and c]
        category_ids = n.get("categories") or []
        unresolved = len(category_ids) - len(categories) if isinstance(category_ids, list) else 0
        if CATEGORY_NAMES_KEY in n and unresolved > 0:
            self.warnings.append(f"{unresolved} category name(s) could not be resolved")
        custom_url = n.get("custom_url")
        url = custom_url.get("url") if isinstance(custom_url, Mapping) else None
        handle = slug(url) if isinstance(url, str) else None

        return Product(
            external_id=self.id,
            status=ProductStatus.ACTIVE if n.get("is_visible", True) is not False else ProductStatus.DRAFT,
            availability=product_availability,
            title=title,
            description=self.text("description"),
            handle=handle or None,
            vendor=n.get(BRAND_NAME_KEY) or None,
            product_type=self.text("type"),
            images=self.images(n.get("images")),
            price=self.money(selling),
            compare_at_price=self.money(compare_at),
            inventory_quantity=quantity,
            inventory_tracked=tracking != "none",
            categories=categories,
            tags=tags,
            attributes=self.options(listed) + self.custom_fields(n.get("custom_fields")),
            variants=variants,
            identifiers=identifiers,
            store_updated_at=updated,
            store_created_at=_datetime(n.get("date_created")),
            warnings=self.warnings,
        )

    def _product_availability(
        self, raw: str, tracking: str, quantity: int | None, variants: Sequence[Mapping[str, Any]]
    ) -> Availability:
        if raw == "disabled":
            return Availability.OUT_OF_STOCK
        if raw == "preorder":
            return Availability.PREORDER
        if tracking == "product" and (quantity or 0) <= 0:
            return Availability.OUT_OF_STOCK
        if variants and all(
            v.get("purchasing_disabled") or (tracking == "variant" and _int(v.get("inventory_level")) <= 0)
            for v in variants
        ):
            return Availability.OUT_OF_STOCK
        if tracking == "variant" and not variants and (quantity or 0) <= 0:
            return Availability.OUT_OF_STOCK
        return Availability.IN_STOCK

    # ---- variants ----------------------------------------------------------------------------
    def variant(
        self,
        v: Mapping[str, Any],
        position: int,
        tracking: str,
        availability_raw: str,
        product_availability: Availability,
        product_price: Decimal | None,
        product_compare_at: Decimal | None,
    ) -> Variant:
        vid = v.get("id")
        if vid is None:
            raise self.fail(f"variant #{position + 1} has no id")
        where = f"variant {vid}"
        own = decimal(v.get("price"), f"{where} price", self.id)
        if own is not None:
            sale = decimal(v.get("sale_price"), f"{where} sale_price", self.id)
            retail = decimal(v.get("retail_price"), f"{where} retail_price", self.id)
            price, compare_at, ignored = selling_prices(own, sale, retail)
            if ignored:
                self.warnings.append(f"{where}: sale_price {sale} is not below price {own}; not a sale")
        else:
            calculated = decimal(v.get("calculated_price"), f"{where} calculated_price", self.id)
            price = calculated if calculated is not None else product_price
            compare_at = None
            if product_compare_at is not None and price is not None and product_price is not None:
                shifted = product_compare_at + (price - product_price)
                compare_at = shifted if shifted > price else None

        options = []
        for value in v.get("option_values") or []:
            if not isinstance(value, Mapping):
                raise self.fail(f"{where} has a malformed option value")
            name, label = value.get("option_display_name"), value.get("label")
            if not isinstance(name, str) or not isinstance(label, str):
                raise self.fail(f"{where} has an option value without a name or label")
            options.append(OptionValue(name=name, value=label))

        if tracking == "variant":
            quantity: int | None = _int(v.get("inventory_level"))
        else:
            quantity = None
        if availability_raw == "disabled" or v.get("purchasing_disabled"):
            availability = Availability.OUT_OF_STOCK
        elif availability_raw == "preorder":
            availability = Availability.PREORDER
        elif tracking == "variant":
            availability = Availability.IN_STOCK if (quantity or 0) > 0 else Availability.OUT_OF_STOCK
        elif tracking == "product":
            availability = product_availability
        else:
            availability = Availability.IN_STOCK

        sku = v.get("sku") or None
        upc, gtin = v.get("upc") or None, v.get("gtin") or None
        image_url = v.get("image_url") or None
        return Variant(
            external_id=str(vid),
            title=" / ".join(o.value for o in options) or (sku or ""),
            sku=sku,
            barcode=upc or gtin,
            identifiers=self.identifiers(sku, upc, gtin, v.get("mpn"), where),
            price=self.money(price),
            compare_at_price=self.money(compare_at),
            inventory_quantity=quantity,
            inventory_tracked=tracking == "variant",
            availability=availability,
            options=options,
            image_url=image_url,
            position=position,
        )

    # ---- attributes, images, identifiers -----------------------------------------------------
    @staticmethod
    def options(variants: Sequence[Mapping[str, Any]]) -> list[Attribute]:
        values: dict[str, list[str]] = {}
        for v in variants:
            for value in v.get("option_values") or []:
                labels = values.setdefault(value["option_display_name"], [])
                if value["label"] not in labels:
                    labels.append(value["label"])
        return [Attribute(name=name, values=labels, kind="option") for name, labels in values.items()]

    def custom_fields(self, raw: Any) -> list[Attribute]:
        if not raw:
            return []
        if not isinstance(raw, list):
            raise self.fail("custom_fields is not a list")
        grouped: dict[str, list[str]] = {}
        for field in raw:
            if not isinstance(field, Mapping) or not isinstance(field.get("name"), str):
                raise self.fail("a custom field has no name")
            value = field.get("value")
            values = grouped.setdefault(field["name"], [])
            if value not in (None, "") and str(value) not in values:
                values.append(str(value))
        return [Attribute(name=name, values=values) for name, values in grouped.items()]

    def images(self, raw: Any) -> list[Image]:
        if not raw:
            return []
        if not isinstance(raw, list):
            raise self.fail("images is not a list")
        usable = [
            i
            for i in raw
            if isinstance(i, Mapping) and (i.get("url_standard") or i.get("image_url") or i.get("url_zoom"))
        ]
        if len(usable) < len(raw):
            self.warnings.append(f"{len(raw) - len(usable)} image(s) without a URL were skipped")
        usable.sort(key=lambda i: (_int(i.get("sort_order")), _int(i.get("id"))))
        return [
            Image(
                url=i.get("url_standard") or i.get("image_url") or i["url_zoom"],
                alt=i.get("description") or None,
                position=position,
            )
            for position, i in enumerate(usable)
        ]

    def identifiers(self, sku: str | None, upc: Any, gtin: Any, mpn: Any, where: str) -> Identifiers:
        fields: dict[str, str | None] = {"sku": sku or None, "mpn": str(mpn).strip() if mpn else None}
        if gtin:
            fields["gtin"] = str(gtin).strip()
        if upc:
            raw = str(upc).strip()
            classified = classify_barcode(raw)
            shapeless = classified.kind == "gtin" and "shape" in (classified.warning or "")
            recognised = not shapeless
            if recognised and classified.kind != "upc" and not fields.get(classified.kind):
                fields[classified.kind] = classified.value
            else:
                fields["upc"] = raw
        identifiers = Identifiers(**fields)
        self.warnings.extend(f"{where}: {w}" for w in identifiers.warnings)
        return identifiers


def _int(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _tags(raw: Any) -> list[str]:
    if not isinstance(raw, str):
        return []
    tags: list[str] = []
    for part in raw.split(","):
        tag = part.strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags
