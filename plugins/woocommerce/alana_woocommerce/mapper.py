"""WooCommerce product JSON (wc/v3, REST or webhook body) -> the canonical Product. Pure: no I/O.

Decisions worth knowing (docs/reference/BEHAVIOUR.md "What is synced" is the contract):

- Prices are Decimal from the store's strings; "" means no price. `price` is what the shopper pays:
  the sale price while WooCommerce reports `on_sale`, else the active `price` (falling back to the
  regular price); `compare_at_price` is the regular price while on sale. The sale window
  (`date_on_sale_from_gmt` / `_to_gmt`) is kept whenever a sale price is set, even for a sale that
  has not started, so Alana knows about scheduled sales.
- A variable product's variations must be attached under `VARIATIONS_KEY` (the client does this).
  Its price is the lowest variant price ("from" price); its stock is the parent's shared pool (when
  the parent manages stock) plus every variation that tracks its own stock. A variation whose
  `manage_stock` is "parent" (or true with the parent's exact quantity, as older cores print it)
  draws on that pool and is not counted twice.
- Disabled variations (status "private") are not variants: the shopper cannot buy them.
- Category and tag names are HTML-unescaped (WordPress stores "Food &amp; Drink"); product names and
  descriptions are kept verbatim, markup included.
- meta_data: keys starting "_" are private and never read. Of the public keys only "mpn" (and "brand"
  when the product has no brands taxonomy) are used; all other public meta is ignored, because plugins
  keep internal state there and the help page promises not to sync it.
- `global_unique_id` is sorted into UPC / EAN / ISBN / GTIN by shape; an invalid value is kept raw
  with a warning.
- `type` (simple / variable / grouped / external) is WooCommerce's structure, not a merchant product
  type, so `product_type` stays empty; `vendor` comes from the brands taxonomy.
- Never read: average_rating, rating_count, total_sales, purchase_note, reviews, private meta.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

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
)

#: Where the client attaches a variable product's variations in the native dict.
VARIATIONS_KEY = "_variations"

STATUS_MAP = {
    "publish": ProductStatus.ACTIVE,
    "draft": ProductStatus.DRAFT,
    "pending": ProductStatus.DRAFT,
    "private": ProductStatus.DRAFT,
    "future": ProductStatus.DRAFT,
    "trash": ProductStatus.ARCHIVED,
}
STOCK_MAP = {
    "instock": Availability.IN_STOCK,
    "outofstock": Availability.OUT_OF_STOCK,
    "onbackorder": Availability.BACKORDER,
}
#: Public meta_data keys that carry synced metadata; everything else in meta_data is ignored.
META_MPN_KEYS = ("mpn",)
META_BRAND_KEYS = ("brand",)


def map_product(native: Mapping[str, Any], context: MappingContext) -> Product:
    """Map one wc/v3 product (API or webhook body) to the canonical Product; MappingError if broken."""
    if not isinstance(native, Mapping):
        raise MappingError("the product payload is not a JSON object")
    external_id = _external_id(native)
    if native.get("type") == "variation":
        raise MappingError(
            "this payload is a variation, not a product; fetch its parent product instead",
            external_id=external_id,
            code="NOT_A_PRODUCT",
        )
    title = native.get("name")
    if not isinstance(title, str):
        raise MappingError("the product has no name", external_id=external_id)
    warnings: list[str] = []
    raw_variations = _variations_of(native, external_id)
    variants = [
        map_variation(v, context, parent=native, warnings=warnings)
        for v in raw_variations
        if v.get("status", "publish") != "private"
    ]
    variants.sort(key=lambda v: (v.position, _int_or_zero(v.external_id)))
    for index, variant in enumerate(variants):
        variant.position = index

    price, compare_at, sale_start, sale_end = _pricing(native, context, external_id, warnings)
    priced = [(v.price.amount, v) for v in variants if v.price is not None]
    if priced:
        # A variable product is sold "from" its cheapest variant.
        cheapest = min(priced, key=lambda pair: pair[0])[1]
        price, compare_at = cheapest.price, cheapest.compare_at_price
        sale_start, sale_end = cheapest.sale_starts_at, cheapest.sale_ends_at

    tracked, quantity = _product_inventory(native, raw_variations, external_id)
    identifiers = _identifiers(
        native.get("sku"),
        native.get("global_unique_id"),
        _public_meta(native, META_MPN_KEYS),
        warnings,
        external_id,
    )
    for variant in variants:
        for warning in variant.identifiers.warnings:
            _warn(warnings, f"variant {variant.external_id}: {warning}")

    try:
        return Product(
            external_id=external_id,
            status=_status(native.get("status"), warnings),
            availability=_availability(native.get("stock_status"), warnings, variants),
            title=title,
            description=_text(native.get("description")) or _text(native.get("short_description")),
            handle=_text(native.get("slug")),
            vendor=_vendor(native),
            product_type=None,
            images=_images(native.get("images")),
            price=price,
            compare_at_price=compare_at,
            sale_starts_at=sale_start,
            sale_ends_at=sale_end,
            inventory_quantity=quantity,
            inventory_tracked=tracked,
            categories=_term_names(native.get("categories")),
            tags=_term_names(native.get("tags")),
            attributes=_attributes(native.get("attributes")),
            variants=variants,
            identifiers=identifiers,
            store_updated_at=_updated_at(native, raw_variations, external_id, warnings),
            store_created_at=_date(native.get("date_created_gmt"), "date_created_gmt", external_id, warnings),
            warnings=warnings + [w for w in identifiers.warnings if w not in warnings],
        )
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise MappingError(f"the product could not be mapped: {exc}", external_id=external_id) from exc


def map_variation(
    native: Mapping[str, Any],
    context: MappingContext,
    *,
    parent: Mapping[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> Variant:
    """Map one wc/v3 variation to a Variant (the parent, when given, supplies inherited stock)."""
    if not isinstance(native, Mapping):
        raise MappingError("a variation payload is not a JSON object")
    variation_id = _external_id(native, what="variation")
    sink: list[str] = warnings if warnings is not None else []
    price, compare_at, sale_start, sale_end = _pricing(native, context, variation_id, sink)
    options = [
        OptionValue(name=str(a.get("name") or ""), value=str(a.get("option")))
        for a in _list(native.get("attributes"))
        if isinstance(a, Mapping) and a.get("option") not in (None, "")
    ]
    tracked, quantity = _variation_inventory(native, parent, variation_id)
    image = native.get("image")
    image_url = None
    # Image id 0 is WooCommerce's placeholder, not a picture of this variation.
    if isinstance(image, Mapping) and image.get("src") and image.get("id") != 0:
        image_url = str(image["src"])
    identifiers = _identifiers(native.get("sku"), native.get("global_unique_id"), None, [], variation_id)
    barcode = native.get("global_unique_id")
    return Variant(
        external_id=variation_id,
        title=" / ".join(o.value for o in options) or _text(native.get("name")) or "",
        sku=_text(native.get("sku")),
        barcode=barcode.strip() if isinstance(barcode, str) and barcode.strip() else None,
        identifiers=identifiers,
        price=price,
        compare_at_price=compare_at,
        sale_starts_at=sale_start,
        sale_ends_at=sale_end,
        inventory_quantity=quantity,
        inventory_tracked=tracked,
        availability=_availability(native.get("stock_status"), sink, []),
        options=options,
        image_url=image_url,
        position=_int_or_zero(native.get("menu_order")),
    )


# ---- pieces ---------------------------------------------------------------------------------------
def _external_id(native: Mapping[str, Any], what: str = "product") -> str:
    raw = native.get("id")
    if isinstance(raw, bool) or raw is None:
        raise MappingError(f"the {what} has no id")
    text = str(raw).strip()
    if not text.isdigit() or int(text) <= 0:
        raise MappingError(f"the {what} id {raw!r} is not a WooCommerce id")
    return str(int(text))


def _variations_of(native: Mapping[str, Any], external_id: str) -> list[Mapping[str, Any]]:
    attached = native.get(VARIATIONS_KEY)
    if attached is None:
        if native.get("type") == "variable" and _list(native.get("variations")):
            # Mapping without them would silently delete every variant of the product.
            raise MappingError(
                "a variable product arrived without its variations; fetch it by id",
                external_id=external_id,
                code="INCOMPLETE_PAYLOAD",
            )
        return []
    if not isinstance(attached, list):
        raise MappingError("attached variations are not a list", external_id=external_id)
    return [v for v in attached if isinstance(v, Mapping)]


def _decimal(value: Any, field: str, external_id: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise MappingError(f"{field} is not a number: {value!r}", external_id=external_id)
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise MappingError(f"{field} is not a number: {value!r}", external_id=external_id) from None
    if not number.is_finite():
        raise MappingError(f"{field} is not a number: {value!r}", external_id=external_id)
    return number


def _pricing(
    native: Mapping[str, Any], context: MappingContext, external_id: str, warnings: list[str]
) -> tuple[Money | None, Money | None, datetime | None, datetime | None]:
    regular = _decimal(native.get("regular_price"), "regular_price", external_id)
    sale = _decimal(native.get("sale_price"), "sale_price", external_id)
    active = _decimal(native.get("price"), "price", external_id)
    on_sale = native.get("on_sale")
    if not isinstance(on_sale, bool):
        on_sale = sale is not None and (regular is None or sale < regular)
    compare_at: Decimal | None = None
    if on_sale and (sale is not None or active is not None):
        price = sale if sale is not None else active
        if regular is not None and price is not None and regular > price:
            compare_at = regular
    else:
        price = active if active is not None else regular
    start = end = None
    if sale is not None:
        start = _date(native.get("date_on_sale_from_gmt"), "date_on_sale_from_gmt", external_id, warnings)
        end = _date(native.get("date_on_sale_to_gmt"), "date_on_sale_to_gmt", external_id, warnings)
    currency = context.currency
    return (
        Money(amount=price, currency=currency) if price is not None else None,
        Money(amount=compare_at, currency=currency) if compare_at is not None else None,
        start,
        end,
    )


def _quantity(value: Any, external_id: str) -> int | None:
    number = _decimal(value, "stock_quantity", external_id)
    return None if number is None else int(number)


def _product_inventory(
    native: Mapping[str, Any], variations: Sequence[Mapping[str, Any]], external_id: str
) -> tuple[bool, int | None]:
    parent_tracks = native.get("manage_stock") is True
    pool = _quantity(native.get("stock_quantity"), external_id) if parent_tracks else None
    own = [
        _quantity(v.get("stock_quantity"), external_id) or 0
        for v in variations
        if v.get("status", "publish") != "private" and _tracks_own_stock(v, native)
    ]
    if not parent_tracks and not own:
        return False, None
    return True, (pool or 0) + sum(own)


def _tracks_own_stock(variation: Mapping[str, Any], parent: Mapping[str, Any] | None) -> bool:
    manage = variation.get("manage_stock")
    if manage != True:  # noqa: E712 - "parent" and False both mean no own stock
        return False
    # Older cores print `true` for stock managed by the parent and show the parent's quantity.
    return not (
        parent is not None
        and parent.get("manage_stock") is True
        and variation.get("stock_quantity") == parent.get("stock_quantity")
    )


def _variation_inventory(
    native: Mapping[str, Any], parent: Mapping[str, Any] | None, external_id: str
) -> tuple[bool, int | None]:
    manage = native.get("manage_stock")
    if manage is True or manage == "parent":
        quantity = native.get("stock_quantity")
        if quantity is None and parent is not None and manage == "parent":
            quantity = parent.get("stock_quantity")
        return True, _quantity(quantity, external_id)
    return False, None


def _identifiers(sku: Any, barcode: Any, mpn: str | None, warnings: list[str], external_id: str) -> Identifiers:
    fields: dict[str, Any] = {"sku": _text(sku), "mpn": mpn}
    own_warnings: list[str] = []
    if isinstance(barcode, str | int) and not isinstance(barcode, bool) and str(barcode).strip():
        classified = classify_barcode(str(barcode))
        fields[classified.kind] = classified.value
        if classified.warning:
            own_warnings.append(classified.warning)
            _warn(warnings, classified.warning)
    try:
        return Identifiers(**fields, warnings=own_warnings)
    except ValueError as exc:
        raise MappingError(f"identifiers could not be mapped: {exc}", external_id=external_id) from exc


def _status(raw: Any, warnings: list[str]) -> ProductStatus:
    status = STATUS_MAP.get(str(raw)) if raw is not None else ProductStatus.ACTIVE
    if status is None:
        _warn(warnings, f"unknown WooCommerce status {raw!r}; treated as draft")
        return ProductStatus.DRAFT
    return status


def _availability(raw: Any, warnings: list[str], variants: Sequence[Variant]) -> Availability:
    if raw is None and variants:
        states = {v.availability for v in variants}
        for state in (Availability.IN_STOCK, Availability.BACKORDER):
            if state in states:
                return state
        return Availability.OUT_OF_STOCK
    if raw is None:
        return Availability.IN_STOCK
    availability = STOCK_MAP.get(str(raw))
    if availability is None:
        _warn(warnings, f"unknown stock status {raw!r}; treated as in stock")
        return Availability.IN_STOCK
    return availability


def _images(raw: Any) -> list[Image]:
    images = []
    for index, image in enumerate(_list(raw)):
        if not isinstance(image, Mapping) or not image.get("src"):
            continue
        position = image.get("position")
        images.append(
            Image(
                url=str(image["src"]),
                alt=_text(image.get("alt")),
                position=position if isinstance(position, int) and not isinstance(position, bool) else index,
            )
        )
    images.sort(key=lambda i: i.position)
    return images


def _term_names(raw: Any) -> list[str]:
    names = []
    for term in _list(raw):
        name = term.get("name") if isinstance(term, Mapping) else term
        if isinstance(name, str) and name.strip():
            text = html.unescape(name)
            if text not in names:
                names.append(text)
    return names


def _attributes(raw: Any) -> list[Attribute]:
    attributes = []
    items = [a for a in _list(raw) if isinstance(a, Mapping) and a.get("name")]
    items.sort(key=lambda a: _int_or_zero(a.get("position")))
    for attr in items:
        options = [str(o) for o in _list(attr.get("options")) if o not in (None, "")]
        attributes.append(
            Attribute(
                name=str(attr["name"]),
                values=options,
                kind="option" if attr.get("variation") is True else "attribute",
            )
        )
    return attributes


def _public_meta(native: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for entry in _list(native.get("meta_data")):
        if not isinstance(entry, Mapping):
            continue
        key = entry.get("key")
        # Private meta ("_" prefix) is never read, whatever it is called.
        if isinstance(key, str) and not key.startswith("_") and key.lower() in keys:
            value = entry.get("value")
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                return str(value).strip()
    return None


def _vendor(native: Mapping[str, Any]) -> str | None:
    names = _term_names(native.get("brands"))
    if names:
        return names[0]
    return _public_meta(native, META_BRAND_KEYS)


def _updated_at(
    native: Mapping[str, Any], variations: Sequence[Mapping[str, Any]], external_id: str, warnings: list[str]
) -> datetime:
    """The product's last change: its own date, or a later variation's (a variant-only edit may not
    touch the parent's date)."""
    moment = None
    for field in ("date_modified_gmt", "date_created_gmt"):
        moment = _date(native.get(field), field, external_id, warnings)
        if moment is not None:
            break
    if moment is None:
        raise MappingError("the product has no modification date (date_modified_gmt)", external_id=external_id)
    for variation in variations:
        changed = _date(variation.get("date_modified_gmt"), "date_modified_gmt", external_id, warnings)
        if changed is not None and changed > moment:
            moment = changed
    return moment


def _date(raw: Any, field: str, external_id: str, warnings: list[str]) -> datetime | None:
    """A WooCommerce *_gmt date ("2017-03-23T20:01:14", no offset) as an aware UTC datetime."""
    if raw in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        _warn(warnings, f"{field} {raw!r} is not a date; ignored")
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int_or_zero(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _warn(warnings: list[str], message: str) -> None:
    if message not in warnings:
        warnings.append(message)
