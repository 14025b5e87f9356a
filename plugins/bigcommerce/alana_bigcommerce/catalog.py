"""A deterministic BigCommerce catalog for the simulator.

Products are generated lazily from (seed, product id), so a 20,000-product store starts at once and
only the products a test reads are ever built. Everything the mapper has to handle shows up somewhere:
inventory tracked by none / product / variant, availability available / preorder / disabled,
invisible products, sale and retail prices, products with many variants, variants that inherit their
price, custom fields, images whose sort_order is out of order, categories and brands, valid and
invalid UPC / GTIN / MPN values, and the two example payloads from BigCommerce's OpenAPI spec.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

#: The product from spec_example_get_product_response.json keeps its id, categories and brand.
SPEC_PRODUCT_ID = 174
#: The product whose variants are spec_example_product_variants_response.json.
SPEC_VARIANTS_PRODUCT_ID = 192

#: BigCommerce's platform limit: "Maximum SKUs per product: 600" (a POST past it is refused).
MAX_VARIANTS = 600
#: A third option for products with more variants than colours x sizes (its values are numbered).
STYLE_OPTION_ID = 223

#: Generated products were last modified at BASE_EPOCH + id * MODIFIED_STEP (deterministic, in the
#: past); edits made while the simulator runs get the simulated clock, which is never behind the wall.
BASE_EPOCH = int(datetime(2023, 1, 2, tzinfo=UTC).timestamp())
MODIFIED_STEP = 97

CATEGORY_NAMES = (
    "Shop All",
    "Kitchen",
    "Garden",
    "Bath",
    "Publications",
    "Utility",
    "Jars",
    "Storage",
    "Candles",
    "Tableware",
    "Glassware",
    "Linens",
    "Lighting",
    "Outdoor",
    "Tools",
    "Planters",
    "Seeds",
    "Soaps",
    "Towels",
    "Books",
    "Magazines",
    "Home",
    "Containers",
    "Decor",
    "Rugs",
    "Cushions",
    "Throws",
    "Baskets",
    "Mugs",
    "Bowls",
    "Plates",
    "Cutlery",
    "Cookware",
    "Bakeware",
    "Textiles",
    "Stationery",
    "Notebooks",
    "Pens",
    "Bags",
    "Gifts",
    "Sale",
    "New In",
    "Essentials",
    "Cleaning",
    "Laundry",
    "Kids",
    "Pets",
    "Travel",
    "Wellness",
    "Coffee",
    "Tea",
    "Pantry",
    "Spices",
    "Oils",
    "Vinegars",
    "Knives",
    "Boards",
    "Aprons",
    "Napkins",
    "Clearance",
)
BRAND_NAMES = (
    "Common Good",
    "OFS",
    "Sagaform",
    "Able Brewing",
    "Le Parfait",
    "Chemex",
    "Hario",
    "Kinto",
    "Iittala",
    "Fog Linen",
    "Hay",
    "Muuto",
    "Ferm Living",
    "Menu",
    "Stelton",
    "Normann",
    "Bodum",
    "Riedel",
    "Lodge",
    "Staub",
    "Opinel",
    "Victorinox",
    "Moleskine",
    "Leuchtturm",
    "Lamy",
    "Kaweco",
    "Baggu",
    "Herschel",
    "Rifle Paper",
    "Marimekko",
    "Aesop",
    "Le Labo",
    "Diptyque",
    "Byredo",
    "Mast",
    "Ritual",
    "Blue Bottle",
    "Stumptown",
    "Intelligentsia",
    "Counter Culture",
)
COLORS = ("Beige", "Grey", "Black", "White", "Red", "Blue", "Green", "Yellow", "Orange", "Pink")
SIZES = ("XS", "S", "M", "L", "XL", "XXL")
MATERIALS = ("Cotton", "Linen", "Wool", "Silk")
NOUNS = (
    "Jar",
    "Journal",
    "Mug",
    "Towel",
    "Bowl",
    "Candle",
    "Tote",
    "Apron",
    "Planter",
    "Vase",
    "Notebook",
    "Blanket",
    "Kettle",
    "Tray",
    "Basket",
)
ADJECTIVES = (
    "Orbit",
    "Classic",
    "Tiered",
    "Canvas",
    "Laundry",
    "Dustpan",
    "Chemex",
    "Able",
    "Sample",
    "Fog",
    "Smith",
    "Utility",
    "Oak",
    "Harbor",
    "Ember",
)
CUSTOM_FIELDS = (
    ("Material", ("Glass", "Ceramic", "Cotton", "Steel", "Oak")),
    ("Care", ("Hand wash", "Dishwasher safe", "Machine wash cold")),
    ("Origin", ("Portugal", "Japan", "France", "USA")),
    ("Feature", ("Recycled", "Handmade", "Fair trade")),
)


def iso(epoch: int) -> str:
    """BigCommerce's timestamp format: second precision with an explicit +00:00 offset."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def gs1_check(body: str) -> str:
    """The GS1 mod-10 check digit for the digits of a GTIN without its last digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def _barcode(rng: random.Random, length: int, valid: bool) -> str:
    body = "".join(str(rng.randrange(10)) for _ in range(length - 1))
    check = gs1_check(body)
    if not valid:
        check = str((int(check) + 1 + rng.randrange(8)) % 10)
    return body + check


def _price(rng: random.Random, low: float, high: float) -> float:
    # Prices are JSON numbers in BigCommerce's API: two decimals, served as floats.
    return round(rng.uniform(low, high), 2)


def _identifiers(rng: random.Random) -> dict[str, str]:
    roll = rng.random()
    upc = gtin = mpn = ""
    if roll < 0.45:
        upc = _barcode(rng, 12, valid=True)
    elif roll < 0.55:
        upc = _barcode(rng, 13, valid=True)  # an EAN-13 typed into the UPC field
    elif roll < 0.60:
        upc = _barcode(rng, 12, valid=False)
    elif roll < 0.62:
        upc = "N/A-" + str(rng.randrange(1000))
    if rng.random() < 0.25:
        gtin = _barcode(rng, 14, valid=rng.random() > 0.1)
    if rng.random() < 0.4:
        mpn = f"MPN-{rng.randrange(10**6):06d}"
    return {"upc": upc, "gtin": gtin, "mpn": mpn}


class Catalog:
    """The simulated store's catalog: products, categories and brands, keyed by integer id."""

    def __init__(self, products: int, seed: int) -> None:
        self.seed = seed
        ids = list(range(1, products + 1))
        if ids and SPEC_PRODUCT_ID not in ids:
            ids[-1] = SPEC_PRODUCT_ID
        self._ids = ids
        self._ids_stale = False
        self._alive = set(ids)
        self._built: dict[int, dict[str, Any]] = {}
        self._modified: dict[int, int] = {}
        if SPEC_PRODUCT_ID in self._alive:
            spec_modified = datetime.fromisoformat(_SPEC_PRODUCT["date_modified"])
            self._modified[SPEC_PRODUCT_ID] = int(spec_modified.timestamp())
        self.next_id = max([*ids, 0]) + 1
        self.categories = {i: _category(i) for i in range(1, len(CATEGORY_NAMES) + 1)}
        self.brands = {
            i: {
                "id": i,
                "name": name,
                "page_title": "",
                "meta_keywords": [],
                "meta_description": "",
                "image_url": "",
                "search_keywords": "",
                "custom_url": {"url": f"/brands/{name.lower().replace(' ', '-')}/", "is_customized": False},
            }
            for i, name in enumerate(BRAND_NAMES, start=1)
        }

    # ---- reading ----------------------------------------------------------------------------
    def ids(self) -> list[int]:
        """Ids of the products the store has now, ascending."""
        if self._ids_stale:
            self._ids = sorted(self._alive)
            self._ids_stale = False
        return self._ids

    def __contains__(self, product_id: object) -> bool:
        return product_id in self._alive

    def __len__(self) -> int:
        return len(self._alive)

    def modified_at(self, product_id: int) -> int:
        """date_modified as epoch seconds, without building the product."""
        stamp = self._modified.get(product_id)
        return BASE_EPOCH + product_id * MODIFIED_STEP if stamp is None else stamp

    def get(self, product_id: int) -> dict[str, Any]:
        """The full product (with variants, images and custom fields); built on first use."""
        if product_id not in self._alive:
            raise KeyError(product_id)
        product = self._built.get(product_id)
        if product is None:
            product = self._built[product_id] = self._generate(product_id)
        return product

    def iter_products(self) -> Iterator[dict[str, Any]]:
        for product_id in self.ids():
            yield self.get(product_id)

    # ---- writing ----------------------------------------------------------------------------
    def add(self, product: dict[str, Any]) -> int:
        product_id = int(product["id"])
        self.next_id = max(self.next_id, product_id + 1)
        self._built[product_id] = product
        self._modified[product_id] = int(datetime.fromisoformat(product["date_modified"]).timestamp())
        self._alive.add(product_id)
        self._ids_stale = True
        return product_id

    def remove(self, product_id: int) -> None:
        self._alive.discard(product_id)
        self._built.pop(product_id, None)
        self._ids_stale = True

    def touch(self, product_id: int, stamp: int) -> None:
        self.get(product_id)["date_modified"] = iso(stamp)
        self._modified[product_id] = stamp

    # ---- generation -------------------------------------------------------------------------
    def new_product(self, rng: random.Random, product_id: int) -> dict[str, Any]:
        """A generated product for `product_id` (used for created products too)."""
        return self._build(rng, product_id)

    def _generate(self, product_id: int) -> dict[str, Any]:
        if product_id == SPEC_PRODUCT_ID:
            return _spec_product()
        rng = random.Random(f"bigcommerce:{self.seed}:{product_id}")
        product = self._build(rng, product_id)
        if product_id == SPEC_VARIANTS_PRODUCT_ID:
            product["variants"] = _spec_variants()
            product["inventory_tracking"] = "variant"
            product["inventory_level"] = 0
            product["base_variant_id"] = None
        return product

    def _build(self, rng: random.Random, product_id: int) -> dict[str, Any]:
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {product_id}"
        price = _price(rng, 2, 400)
        sale = 0.0
        retail = 0.0
        roll = rng.random()
        if roll < 0.2:
            sale = round(price * rng.uniform(0.5, 0.9), 2)
        elif roll < 0.23:
            sale = round(price * 1.1, 2)  # a sale price above the price: not a discount
        if rng.random() < 0.3:
            retail = round(price * rng.uniform(1.1, 1.6), 2)
        has_options = rng.random() < 0.4
        tracking_roll = rng.random()
        if tracking_roll < 0.3:
            tracking = "none"
        elif tracking_roll < 0.65 or not has_options:
            tracking = "product"
        else:
            tracking = "variant"
        availability_roll = rng.random()
        availability = (
            "available" if availability_roll < 0.85 else "preorder" if availability_roll < 0.92 else "disabled"
        )
        ids = _identifiers(rng)
        sku = f"SKU-{product_id:06d}"
        calculated = sale if 0 < sale < price else price
        modified = BASE_EPOCH + product_id * MODIFIED_STEP
        categories = sorted(rng.sample(range(1, len(CATEGORY_NAMES) + 1), rng.randint(1, 3)))
        brand_id = rng.randint(1, len(BRAND_NAMES)) if rng.random() < 0.8 else 0
        base_variant_id = product_id * 1000
        if has_options:
            variants = _option_variants(rng, product_id, sku, price, calculated)
            base_variant: int | None = None
        else:
            variants = [_base_variant(product_id, sku, price, sale, retail, calculated, ids)]
            base_variant = base_variant_id
        level = rng.randint(0, 60) if rng.random() > 0.15 else 0
        if tracking == "variant":
            level = sum(v["inventory_level"] for v in variants)
        elif tracking == "product" and not has_options:
            variants[0]["inventory_level"] = level
        keywords = ", ".join(
            rng.sample(("gift", "eco", "glass", "cotton", "kitchen", "sale", "new"), rng.randint(0, 3))
        )
        return {
            "id": product_id,
            "name": name,
            "type": "physical" if rng.random() < 0.9 else "digital",
            "sku": sku,
            "description": f"<p>{name}: a sample product for the simulator.</p>",
            "weight": round(rng.uniform(0.1, 5), 2),
            "width": 0,
            "depth": 0,
            "height": 0,
            "price": price,
            "cost_price": round(price * 0.4, 2),
            "retail_price": retail,
            "sale_price": sale,
            "map_price": 0,
            "tax_class_id": 0,
            "product_tax_code": "",
            "calculated_price": calculated,
            "categories": categories,
            "brand_id": brand_id,
            "option_set_id": None,
            "option_set_display": "right",
            "inventory_level": level,
            "inventory_warning_level": 2,
            "inventory_tracking": tracking,
            "reviews_rating_sum": rng.randint(0, 50),
            "reviews_count": rng.randint(0, 12),
            "total_sold": rng.randint(0, 900),
            "fixed_cost_shipping_price": 0,
            "is_free_shipping": False,
            "is_visible": rng.random() > 0.1,
            "is_featured": rng.random() < 0.1,
            "related_products": [-1],
            "warranty": "",
            "bin_picking_number": "",
            "layout_file": "product.html",
            "upc": ids["upc"],
            "mpn": ids["mpn"],
            "gtin": ids["gtin"],
            "search_keywords": keywords,
            "availability": availability,
            "availability_description": "",
            "gift_wrapping_options_type": "any",
            "gift_wrapping_options_list": [],
            "sort_order": 0,
            "condition": "New",
            "is_condition_shown": False,
            "order_quantity_minimum": 0,
            "order_quantity_maximum": 0,
            "page_title": "",
            "meta_keywords": [],
            "meta_description": "",
            "date_created": iso(modified - 86400 * 30),
            "date_modified": iso(modified),
            "view_count": rng.randint(0, 5000),
            "preorder_release_date": None,
            "preorder_message": "",
            "is_preorder_only": False,
            "is_price_hidden": False,
            "price_hidden_label": "",
            "custom_url": {"url": f"/{name.lower().replace(' ', '-')}/", "is_customized": False},
            "base_variant_id": base_variant,
            "open_graph_type": "product",
            "open_graph_title": "",
            "open_graph_description": "",
            "open_graph_use_meta_description": True,
            "open_graph_use_product_name": True,
            "open_graph_use_image": True,
            "variants": variants,
            "images": _images(rng, product_id),
            "custom_fields": _custom_fields(rng, product_id),
        }


def strip_optional(product: dict[str, Any]) -> None:
    """Empty what BigCommerce does not require (it requires name, type, weight and price): description,
    SKU, UPC / MPN / GTIN, categories, brand, search keywords, images, custom fields, sale and retail
    price. The variants are left to `set_variants`."""
    product.update(
        description="",
        sku="",
        upc="",
        mpn="",
        gtin="",
        categories=[],
        brand_id=0,
        search_keywords="",
        images=[],
        custom_fields=[],
        retail_price=0,
        sale_price=0,
        calculated_price=product["price"],
    )


def set_variants(product: dict[str, Any], count: int, rng: random.Random) -> None:
    """Give `product` exactly `count` variants defined by options (distinct ids and option values), or
    for 0 make it a product without options: one base variant carrying the product's own fields."""
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_VARIANTS:
        raise ValueError(
            f"variants must be a count from 0 to {MAX_VARIANTS} (BigCommerce's limit per product), not {count!r}"
        )
    product_id, sku = product["id"], product.get("sku") or ""
    if count == 0:
        ids = {key: product.get(key) or "" for key in ("upc", "gtin", "mpn")}
        base = _base_variant(
            product_id,
            sku,
            product["price"],
            product.get("sale_price") or 0,
            product.get("retail_price") or 0,
            product["calculated_price"],
            ids,
        )
        if product.get("inventory_tracking") == "variant":
            product["inventory_tracking"] = "product"  # a product without options tracks its own stock
        base["inventory_level"] = product.get("inventory_level") or 0
        product.update(variants=[base], base_variant_id=base["id"])
        return
    variants = []
    for n in range(count):
        color, size, style = COLORS[n % len(COLORS)], SIZES[n // len(COLORS) % len(SIZES)], n // 60 + 1
        variant = _variant(product_id, product_id * 1000 + n + 1, f"{sku}-{n + 1}" if sku else "")
        values = [_option_value(220, "Color", COLORS, color)]
        if count > len(COLORS):
            values.append(_option_value(221, "Size", SIZES, size))
        if count > len(COLORS) * len(SIZES):
            values.append(
                {
                    "id": STYLE_OPTION_ID * 100 + style,
                    "label": f"Style {style}",
                    "option_id": STYLE_OPTION_ID,
                    "option_display_name": "Style",
                }
            )
        # Each inherits the product's price (price null, calculated_price the product's).
        variant.update(
            option_values=values, calculated_price=product["calculated_price"], inventory_level=rng.randint(0, 25)
        )
        variants.append(variant)
    product.update(variants=variants, base_variant_id=None)
    if product.get("inventory_tracking") == "variant":
        product["inventory_level"] = sum(v["inventory_level"] for v in variants)


def _category(category_id: int) -> dict[str, Any]:
    name = CATEGORY_NAMES[category_id - 1]
    return {
        "id": category_id,
        "parent_id": 0 if category_id <= 10 else (category_id % 10) + 1,
        "name": name,
        "description": "",
        "views": 0,
        "sort_order": category_id,
        "page_title": "",
        "search_keywords": "",
        "meta_keywords": [],
        "meta_description": "",
        "layout_file": "category.html",
        "is_visible": True,
        "default_product_sort": "use_store_settings",
        "image_url": "",
        "custom_url": {"url": f"/{name.lower().replace(' ', '-')}/", "is_customized": False},
    }


def _variant(product_id: int, variant_id: int, sku: str) -> dict[str, Any]:
    return {
        "id": variant_id,
        "product_id": product_id,
        "sku": sku,
        "sku_id": variant_id + 7,
        "price": None,
        "calculated_price": 0.0,
        "sale_price": None,
        "retail_price": None,
        "map_price": None,
        "weight": None,
        "calculated_weight": 1,
        "width": None,
        "height": None,
        "depth": None,
        "is_free_shipping": False,
        "fixed_cost_shipping_price": None,
        "purchasing_disabled": False,
        "purchasing_disabled_message": "",
        "image_url": "",
        "cost_price": None,
        "upc": "",
        "mpn": "",
        "gtin": "",
        "inventory_level": 0,
        "inventory_warning_level": 0,
        "bin_picking_number": "",
        "option_values": [],
    }


def _base_variant(
    product_id: int, sku: str, price: float, sale: float, retail: float, calculated: float, ids: dict[str, str]
) -> dict[str, Any]:
    variant = _variant(product_id, product_id * 1000, sku)
    variant.update(price=price, sale_price=sale, retail_price=retail, calculated_price=calculated, **ids)
    return variant


def _option_variants(
    rng: random.Random, product_id: int, sku: str, price: float, calculated: float
) -> list[dict[str, Any]]:
    many = rng.random() < 0.06
    colors = rng.sample(COLORS, rng.randint(3, 5) if many else rng.randint(1, 3))
    sizes = rng.sample(SIZES, rng.randint(3, 5) if many else rng.randint(1, 3))
    materials: list[str | None] = list(rng.sample(MATERIALS, rng.randint(2, 3))) if many else [None]
    variants: list[dict[str, Any]] = []
    for color in colors:
        for size in sizes:
            for material in materials:
                n = len(variants) + 1
                variant = _variant(product_id, product_id * 1000 + n, f"{sku}-{n}")
                values = [_option_value(220, "Color", COLORS, color), _option_value(221, "Size", SIZES, size)]
                if material is not None:
                    values.append(_option_value(222, "Material", MATERIALS, material))
                variant["option_values"] = values
                if rng.random() < 0.5:
                    # Inherits the product's price: price is null, calculated_price carries the
                    # product's price plus the size adjustment.
                    variant["calculated_price"] = round(calculated + SIZES.index(size) * 1.5, 2)
                else:
                    own = _price(rng, price * 0.8, price * 1.3)
                    variant["price"] = own
                    variant["sale_price"] = round(own * 0.8, 2) if rng.random() < 0.25 else None
                    variant["retail_price"] = round(own * 1.2, 2) if rng.random() < 0.2 else None
                    sale = variant["sale_price"]
                    variant["calculated_price"] = sale if sale and sale < own else own
                variant["inventory_level"] = rng.randint(0, 25)
                variant["purchasing_disabled"] = rng.random() < 0.05
                variant.update(_identifiers(rng))
                if rng.random() < 0.2:
                    variant["image_url"] = f"https://cdn.example.test/p/{product_id}/v{n}.jpg"
                variants.append(variant)
    return variants


def _option_value(option_id: int, display: str, labels: tuple[str, ...], label: str) -> dict[str, Any]:
    return {
        "id": option_id * 100 + labels.index(label),
        "label": label,
        "option_id": option_id,
        "option_display_name": display,
    }


def _images(rng: random.Random, product_id: int) -> list[dict[str, Any]]:
    count = rng.choice((0, 1, 1, 2, 3, 5))
    orders = list(range(count))
    rng.shuffle(orders)  # listed in id order, shown in sort_order: the two differ on purpose
    images = []
    for k, order in enumerate(orders):
        base = f"https://cdn.example.test/s-sim/products/{product_id}/images/{product_id * 100 + k}"
        images.append(
            {
                "id": product_id * 100 + k,
                "product_id": product_id,
                "is_thumbnail": order == 0,
                "sort_order": order,
                "description": f"View {order + 1}" if rng.random() < 0.6 else "",
                "image_file": f"{product_id}_{k}.jpg",
                "url_zoom": f"{base}/1280w.jpg",
                "url_standard": f"{base}/500x659.jpg",
                "url_thumbnail": f"{base}/100x100.jpg",
                "url_tiny": f"{base}/44x44.jpg",
                "date_modified": iso(BASE_EPOCH + product_id * MODIFIED_STEP),
            }
        )
    return images


def _custom_fields(rng: random.Random, product_id: int) -> list[dict[str, Any]]:
    fields = []
    for k, (name, values) in enumerate(rng.sample(CUSTOM_FIELDS, rng.randint(0, 3))):
        fields.append({"id": product_id * 10 + k, "name": name, "value": rng.choice(values)})
    return fields


# Copied from BigCommerce's OpenAPI spec examples (fixtures/bigcommerce/spec_example_*.json).
_SPEC_PRODUCT: dict[str, Any] = {
    "id": 174,
    "name": "1L Le Parfait Jar",
    "type": "physical",
    "sku": "",
    "description": "<p><span>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</span></p>",
    "weight": 1,
    "width": 0,
    "depth": 0,
    "height": 0,
    "price": 7.95,
    "cost_price": 0,
    "retail_price": 10,
    "sale_price": 0,
    "map_price": 0,
    "tax_class_id": 0,
    "product_tax_code": "",
    "calculated_price": 7.95,
    "categories": [23, 21],
    "brand_id": 36,
    "option_set_id": 55,
    "option_set_display": "right",
    "inventory_level": 0,
    "inventory_warning_level": 0,
    "inventory_tracking": "none",
    "reviews_rating_sum": 0,
    "reviews_count": 0,
    "total_sold": 7,
    "fixed_cost_shipping_price": 0,
    "is_free_shipping": False,
    "is_visible": True,
    "is_featured": False,
    "related_products": [-1],
    "warranty": "",
    "bin_picking_number": "",
    "layout_file": "product.html",
    "upc": "",
    "mpn": "",
    "gtin": "",
    "search_keywords": "jar, glass",
    "availability": "available",
    "availability_description": "",
    "gift_wrapping_options_type": "any",
    "gift_wrapping_options_list": [],
    "sort_order": 0,
    "condition": "New",
    "is_condition_shown": False,
    "order_quantity_minimum": 0,
    "order_quantity_maximum": 0,
    "page_title": "",
    "meta_keywords": [],
    "meta_description": "",
    "date_created": "2018-08-15T14:48:46+00:00",
    "date_modified": "2018-09-05T20:42:07+00:00",
    "view_count": 10,
    "preorder_release_date": "2018-09-05T20:42:07+00:00",
    "preorder_message": "",
    "is_preorder_only": False,
    "is_price_hidden": False,
    "price_hidden_label": "",
    "custom_url": {"url": "/all/1l-le-parfait-jar/", "is_customized": True},
    "base_variant_id": 345,
    "open_graph_type": "product",
    "open_graph_title": "",
    "open_graph_description": "",
    "open_graph_use_meta_description": True,
    "open_graph_use_product_name": True,
    "open_graph_use_image": True,
}


def _spec_product() -> dict[str, Any]:
    product = copy.deepcopy(_SPEC_PRODUCT)
    base = _variant(174, 345, "")
    base.update(price=7.95, calculated_price=7.95, sale_price=0, retail_price=10)
    product["variants"] = [base]
    product["images"] = []
    product["custom_fields"] = []
    return product


def _spec_variants() -> list[dict[str, Any]]:
    variants = []
    for variant_id, sku_id, sku, price, sale, cost, label, value_id in (
        (382, 348, "SMIT", 10, 8, 0, "Beige", 174),
        (383, 349, "SMIT-1", 25, 20, 25, "Grey", 175),
        (384, 350, "SMIT-2", 25, 20, 25, "Black", 176),
    ):
        variant = _variant(192, variant_id, sku)
        variant.update(
            sku_id=sku_id,
            price=price,
            calculated_price=price,
            sale_price=sale,
            retail_price=price,
            cost_price=cost,
            option_values=[{"id": value_id, "label": label, "option_id": 220, "option_display_name": "Color"}],
        )
        variants.append(variant)
    return variants
