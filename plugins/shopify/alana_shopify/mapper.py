"""Map a Shopify product to the canonical model. Pure: no I/O.

Two shapes arrive here and map to the same canonical product:
- the GraphQL node (camelCase, `status` ACTIVE, `tags` a list, connections as `{"nodes": [...]}`,
  `{"edges": [{"node": ...}]}` or already a list, translations under `translations` or per-locale
  aliases `translations_<locale>`), with children stitched on by the client;
- the REST / webhook body (snake_case, `status` lowercase, `tags` one comma-separated string,
  variants with `option1..3`, an `images` list, `body_html`).
External ids are the numeric ids (`legacyResourceId` / REST `id`) as text in both, so a webhook and a
sync agree on which product they mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
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
    Translation,
    Variant,
)

#: Shopify's translation keys -> canonical translation fields.
TRANSLATED_FIELDS = {"title": "title", "body_html": "description"}
_DEFAULT_OPTION = ("Title", "Default Title")
_MEDIA_KEYS = ("media", "images")


def numeric_id(value: Any) -> str | None:
    """The numeric id of a REST id (int or text) or a GraphQL global id, as text."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("gid://"):
            text = text.rsplit("/", 1)[-1].split("?", 1)[0]
        return text if text.isdigit() else None
    return None


def external_id(native: Mapping[str, Any]) -> str:
    """The product's external id: `legacyResourceId`, else the numeric part of `id`."""
    found = numeric_id(native.get("legacyResourceId")) or numeric_id(native.get("id"))
    if found is None:
        raise MappingError(f"product has no usable id (id={native.get('id')!r})")
    return found


def nodes(value: Any) -> list[Mapping[str, Any]]:
    """The items of a connection in any of its shapes: a list, `{"nodes"}` or `{"edges": [{"node"}]}`."""
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    if isinstance(value, Mapping):
        if isinstance(value.get("nodes"), list):
            return [v for v in value["nodes"] if isinstance(v, Mapping)]
        if isinstance(value.get("edges"), list):
            return [e["node"] for e in value["edges"] if isinstance(e, Mapping) and isinstance(e.get("node"), Mapping)]
        return []
    raise MappingError(f"expected a list or a connection, got {type(value).__name__}")


def _first(native: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = native.get(key)
        if value is not None:
            return value
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def parse_datetime(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"{what} is missing")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise MappingError(f"{what} {value!r} is not a timestamp") from None


def parse_money(value: Any, currency: str, what: str) -> Money | None:
    """Money from a string ("59.00"), a number, or GraphQL's MoneyV2 `{amount, currencyCode}`."""
    if value is None or value == "":
        return None
    if isinstance(value, Mapping):
        currency = str(value.get("currencyCode") or currency)
        value = value.get("amount")
        if value is None:
            return None
    if isinstance(value, bool):
        raise MappingError(f"{what} {value!r} is not an amount")
    try:
        if isinstance(value, float):
            amount = Decimal(repr(value))
        elif isinstance(value, (int, Decimal)):
            amount = Decimal(value)
        elif isinstance(value, str):
            amount = Decimal(value.strip())
        else:
            raise InvalidOperation
    except InvalidOperation:
        raise MappingError(f"{what} {value!r} is not an amount") from None
    if not amount.is_finite():
        raise MappingError(f"{what} {value!r} is not an amount")
    return Money(amount=amount, currency=currency)


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Iterable):
        raise MappingError(f"tags {value!r} are neither a list nor text")
    tags: list[str] = []
    for item in items:
        text = _text(item)
        if text and text not in tags:
            tags.append(text)
    return tags


def _status(native: Mapping[str, Any], warnings: list[str]) -> ProductStatus:
    raw = native.get("status")
    if raw is None:
        # 2019-era REST payloads have no status: an unpublished product was a draft in all but name.
        if "published_at" in native and native.get("published_at") is None:
            return ProductStatus.DRAFT
        return ProductStatus.ACTIVE
    try:
        return ProductStatus(str(raw).upper())
    except ValueError:
        warnings.append(f"unknown product status {raw!r}, treated as ACTIVE")
        return ProductStatus.ACTIVE


def _option_names(native: Mapping[str, Any]) -> list[str]:
    options = [o for o in native.get("options") or [] if isinstance(o, Mapping)]
    options.sort(key=lambda o: o.get("position") or 0)
    return [str(o.get("name") or "") for o in options]


def _attributes(native: Mapping[str, Any], variants: Sequence[Variant]) -> list[Attribute]:
    attributes: list[Attribute] = []
    options = [o for o in native.get("options") or [] if isinstance(o, Mapping)]
    options.sort(key=lambda o: o.get("position") or 0)
    for option in options:
        name = _text(option.get("name"))
        if name is None:
            continue
        values = [str(v) for v in option.get("values") or [] if v is not None]
        if not values:
            values = [str(v.get("name")) for v in option.get("optionValues") or [] if isinstance(v, Mapping)]
        if not values:
            # Old REST payloads list option names only; the values live on the variants.
            for variant in variants:
                for chosen in variant.options:
                    if chosen.name == name and chosen.value not in values:
                        values.append(chosen.value)
        if (name, tuple(values)) in ((_DEFAULT_OPTION[0], (_DEFAULT_OPTION[1],)), (_DEFAULT_OPTION[0], ())):
            continue  # Shopify's placeholder option for a product without options
        attributes.append(Attribute(name=name, values=values, kind="option"))
    return attributes


def _selected_options(variant: Mapping[str, Any], names: Sequence[str]) -> list[OptionValue]:
    chosen: list[OptionValue] = []
    selected = variant.get("selectedOptions")
    if isinstance(selected, list):
        for item in selected:
            if isinstance(item, Mapping) and item.get("name") is not None and item.get("value") is not None:
                chosen.append(OptionValue(name=str(item["name"]), value=str(item["value"])))
    else:
        for index in range(3):
            value = variant.get(f"option{index + 1}")
            if value is None:
                continue
            name = names[index] if index < len(names) and names[index] else f"Option {index + 1}"
            chosen.append(OptionValue(name=name, value=str(value)))
    return [c for c in chosen if (c.name, c.value) != _DEFAULT_OPTION]


def _variant_availability(tracked: bool, quantity: int | None, policy: str | None) -> Availability:
    if not tracked or quantity is None or quantity > 0:
        return Availability.IN_STOCK
    if (policy or "").upper() == "CONTINUE":
        return Availability.BACKORDER
    return Availability.OUT_OF_STOCK


def _tracked(variant: Mapping[str, Any], product_tracks: bool | None) -> bool:
    item = variant.get("inventoryItem")
    if isinstance(item, Mapping) and item.get("tracked") is not None:
        return bool(item["tracked"])
    if "inventory_management" in variant:
        return variant.get("inventory_management") is not None
    return bool(product_tracks)


def _identifiers(sku: str | None, barcode: str | None) -> Identifiers:
    if not barcode:
        return Identifiers(sku=sku)
    found = classify_barcode(barcode)
    identifiers = Identifiers(sku=sku, **{found.kind: found.value})
    if found.warning and not identifiers.warnings:
        identifiers.warnings.append(found.warning)
    return identifiers


def _quantity(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise MappingError(f"{what} {value!r} is not a whole number")
    try:
        return int(value)
    except ValueError:
        raise MappingError(f"{what} {value!r} is not a whole number") from None


def _variant(
    raw: Mapping[str, Any],
    index: int,
    names: Sequence[str],
    context: MappingContext,
    product_tracks: bool | None,
    image_urls: Mapping[str, str],
) -> Variant:
    variant_id = numeric_id(raw.get("legacyResourceId")) or numeric_id(raw.get("id"))
    if variant_id is None:
        raise MappingError(f"variant {index + 1} has no usable id")
    sku = _text(raw.get("sku"))
    barcode = _text(raw.get("barcode"))
    tracked = _tracked(raw, product_tracks)
    quantity = _quantity(_first(raw, "inventoryQuantity", "inventory_quantity"), f"variant {variant_id} stock")
    policy = _first(raw, "inventoryPolicy", "inventory_policy")
    image = raw.get("image")
    image_url = None
    if isinstance(image, Mapping):
        image_url = _text(_first(image, "url", "src"))
    elif raw.get("image_id") is not None:
        image_url = image_urls.get(str(raw["image_id"]))
    position = raw.get("position")
    return Variant(
        external_id=variant_id,
        title=str(raw.get("title") or ""),
        sku=sku,
        barcode=barcode,
        identifiers=_identifiers(sku, barcode),
        price=parse_money(raw.get("price"), context.currency, f"variant {variant_id} price"),
        compare_at_price=parse_money(
            _first(raw, "compareAtPrice", "compare_at_price"),
            context.currency,
            f"variant {variant_id} compare-at",
        ),
        inventory_quantity=quantity,
        inventory_tracked=tracked,
        availability=_variant_availability(tracked, quantity, str(policy) if policy is not None else None),
        options=_selected_options(raw, names),
        image_url=image_url,
        # Shopify counts variants from 1; the canonical position counts from 0.
        position=position - 1 if isinstance(position, int) and not isinstance(position, bool) else index,
    )


def _images(native: Mapping[str, Any]) -> tuple[list[Image], dict[str, str]]:
    """Images in the order the shopper sees them, and REST image id -> url (for variant images)."""
    images: list[Image] = []
    by_id: dict[str, str] = {}
    for key in _MEDIA_KEYS:
        items = list(nodes(native.get(key)))
        if not items:
            continue
        if all(isinstance(i.get("position"), int) for i in items):
            items.sort(key=lambda i: i["position"])
        for item in items:
            if item.get("mediaContentType") not in (None, "IMAGE"):
                continue  # videos and 3D models are no product images
            image = item.get("image")
            if not isinstance(image, Mapping):
                preview = item.get("preview")
                image = preview.get("image") if isinstance(preview, Mapping) else None
            source = image if isinstance(image, Mapping) else item
            url = _text(_first(source, "url", "src", "originalSrc"))
            if url is None:
                continue  # media still processing has no image yet
            alt = _text(_first(source, "altText", "alt")) or _text(item.get("alt"))
            images.append(Image(url=url, alt=alt, position=len(images)))
            if item.get("id") is not None:
                by_id[str(item["id"])] = url
        break  # `media` supersedes the legacy `images` when both are present
    return images, by_id


def _translations(native: Mapping[str, Any]) -> list[Translation]:
    entries: list[Any] = list(native.get("translations") or [])
    for key, value in native.items():
        if key.startswith("translations_") and isinstance(value, list):
            entries.extend(value)
    found: dict[tuple[str, str], Translation] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        locale, name, text = entry.get("locale"), entry.get("key"), entry.get("value")
        if not locale or not name or text is None or str(text) == "":
            continue
        field = TRANSLATED_FIELDS.get(str(name), str(name))
        found[(str(locale), field)] = Translation(locale=str(locale), field=field, value=str(text))
    return list(found.values())


def _categories(native: Mapping[str, Any]) -> list[str]:
    category = native.get("category")
    if isinstance(category, Mapping):
        name = _text(_first(category, "name", "full_name", "fullName"))
        return [name] if name else []
    return []


def _product_availability(variants: Sequence[Variant], native: Mapping[str, Any]) -> Availability:
    if variants:
        kinds = {v.availability for v in variants}
        for candidate in (Availability.IN_STOCK, Availability.BACKORDER):
            if candidate in kinds:
                return candidate
        return Availability.OUT_OF_STOCK
    total = native.get("totalInventory")
    if native.get("tracksInventory") and isinstance(total, int) and total <= 0:
        return Availability.OUT_OF_STOCK
    return Availability.IN_STOCK


def map_product(native: Mapping[str, Any], context: MappingContext) -> Product:
    """Map one product in either shape; MappingError when it cannot be mapped."""
    if not isinstance(native, Mapping):
        raise MappingError(f"a product must be an object, got {type(native).__name__}")
    product_id = external_id(native)
    try:
        return _map(native, context, product_id)
    except MappingError as exc:
        if exc.external_id is None:
            exc.external_id = product_id
        raise
    except (ValueError, TypeError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
        raise MappingError(f"product {product_id} could not be mapped: {exc}", external_id=product_id) from exc


def _map(native: Mapping[str, Any], context: MappingContext, product_id: str) -> Product:
    warnings: list[str] = []
    title = _text(native.get("title"))
    if title is None:
        raise MappingError(f"product {product_id} has no title", external_id=product_id)
    images, image_urls = _images(native)
    names = _option_names(native)
    tracks = native.get("tracksInventory")
    variants = [
        _variant(raw, i, names, context, tracks if isinstance(tracks, bool) else None, image_urls)
        for i, raw in enumerate(nodes(native.get("variants")))
    ]
    for variant in variants:
        warnings.extend(f"variant {variant.external_id}: {w}" for w in variant.identifiers.warnings)
    priced = [v for v in variants if v.price is not None]
    # The product's price is its "from" price: the cheapest variant, with that variant's compare-at.
    cheapest = min(priced, key=lambda v: v.price.amount if v.price else Decimal(0)) if priced else None
    quantities = [v.inventory_quantity for v in variants if v.inventory_quantity is not None]
    total = native.get("totalInventory")
    return Product(
        external_id=product_id,
        status=_status(native, warnings),
        availability=_product_availability(variants, native),
        title=title,
        description=_text(_first(native, "descriptionHtml", "body_html")),
        handle=_text(native.get("handle")),
        vendor=_text(native.get("vendor")),
        product_type=_text(_first(native, "productType", "product_type")),
        translations=_translations(native),
        images=images,
        price=cheapest.price if cheapest else None,
        compare_at_price=cheapest.compare_at_price if cheapest else None,
        inventory_quantity=sum(quantities) if quantities else (total if isinstance(total, int) else None),
        inventory_tracked=any(v.inventory_tracked for v in variants) or bool(tracks),
        categories=_categories(native),
        tags=_tags(native.get("tags")),
        attributes=_attributes(native, variants),
        variants=variants,
        identifiers=variants[0].identifiers.model_copy(deep=True) if len(variants) == 1 else Identifiers(),
        store_updated_at=parse_datetime(_first(native, "updatedAt", "updated_at"), "updated_at"),
        store_created_at=(
            parse_datetime(created, "created_at")
            if (created := _first(native, "createdAt", "created_at")) is not None
            else None
        ),
        warnings=warnings,
    )
