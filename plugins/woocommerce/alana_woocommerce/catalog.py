"""A seeded, realistic WooCommerce catalog for the simulator (products and their variations).

Deterministic from the seed: the same seed always yields the same catalog, dates included (they are
laid out from a fixed base date, not from "now"). Payloads follow the wc/v3 product and variation
shapes of current core (docs/reference/PLATFORMS.md section B), including the fields the gateway must never sync
(ratings, total_sales, purchase_note, private meta_data) so the mapper's exclusions are exercised.

Generation is built for size: 10,000 products with their variations take well under two seconds, so
nothing here is serialized; the simulator serializes each product once, on first request.
"""

from __future__ import annotations

import gc
import json
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

#: The official example payloads, copied into the package (see examples/SOURCE.md).
EXAMPLES = Path(__file__).resolve().parent / "examples"

SITE = "https://woo.example.test"
API = f"{SITE}/wp-json/wc/v3"
#: The simulated site's timezone: local dates differ from the GMT ones, as on real stores.
SITE_OFFSET = timedelta(hours=-3)
#: Generated dates are naive UTC internally (cheaper to format); wc_date treats naive as UTC.
BASE_DATE = datetime(2024, 1, 1)
FIRST_GENERATED_ID = 1000

WC_DATE = "%Y-%m-%dT%H:%M:%S"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")

CATEGORIES = [
    (15, "Uncategorized"),
    (16, "Clothing"),
    (17, "T-shirts"),
    (18, "Hoodies"),
    (19, "Accessories"),
    (20, "Music"),
    (21, "Posters"),
    (22, "Food &amp; Drink"),
    (23, "Home &amp; Garden"),
    (24, "Décor"),
    (25, "Kitchen"),
    (26, "Books"),
    (27, "Toys"),
    (28, "Outdoor"),
    (29, "Shoes"),
    (30, "Électronique"),
]
TAGS = [
    (40, "new"),
    (41, "sale"),
    (42, "eco"),
    (43, "bestseller"),
    (44, "limited"),
    (45, "handmade"),
    (46, "gift"),
    (47, "summer"),
    (48, "winter"),
    (49, "vegan"),
    (50, "日本"),
]
BRANDS = [(60, "Acme"), (61, "Nordwind"), (62, "Café Lumière"), (63, "Studio Ōkami")]

ADJECTIVES = [
    "Classic",
    "Organic",
    "Vintage",
    "Premium",
    "Rustic",
    "Minimal",
    "Cozy",
    "Bold",
    "Bright",
    "Soft",
    "Crème",
    "Naïve",
    "Smörgås",
    "Über",
    "Jalapeño",
    "Ægir",
]
NOUNS = [
    "T-Shirt",
    "Hoodie",
    "Mug",
    "Poster",
    "Tote Bag",
    "Notebook",
    "Candle",
    "Beanie",
    "Scarf",
    "Cap",
    "Teapot",
    "Lamp",
    "Backpack",
    "Sneakers",
    "Socks",
    "Blanket",
    "Vinyl Single",
    "Album",
]
# Names as merchants type them: HTML entities and markup the REST API returns verbatim.
ODD_NAMES = [
    "Tom &amp; Jerry Tee",
    "<strong>Limited</strong> Edition Print",
    "日本茶 Teapot",
    "Ümlaut Übermug",
    "Crème brûlée Candle 🕯️",
    'Size 10" Vinyl',
    "Café <em>noir</em> Blend",
    "Ελληνικό Μέλι",
]
COLORS = [
    "Black",
    "White",
    "Red",
    "Green",
    "Blue",
    "Navy",
    "Grey",
    "Yellow",
    "Pink",
    "Orange",
    "Purple",
    "Brown",
]
SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
MATERIALS = ["Cotton", "Linen", "Wool", "Silk", "Bamboo", "Hemp"]
STATUSES = ["publish"] * 85 + ["draft"] * 6 + ["pending"] * 3 + ["private"] * 4 + ["future"] * 2

# Sale windows laid out on fixed dates so the catalog does not depend on when it is generated:
# one ended, one running until far in the future, one that has not started yet.
SALE_WINDOWS = [
    (None, None),
    ("2023-11-20T00:00:00", "2023-11-30T23:59:59"),
    ("2024-01-01T00:00:00", "2099-12-31T23:59:59"),
    ("2098-06-01T00:00:00", "2098-06-30T23:59:59"),
]


def wc_date(moment: datetime) -> str:
    """A WooCommerce date string (no offset) for a moment; naive moments are taken as UTC already."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat()


def local_date(moment: datetime) -> str:
    """The site-local twin of a GMT date."""
    return wc_date(moment + SITE_OFFSET)


def gs1_check_digit(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def _slug(text: str) -> str:
    return _NOT_SLUG.sub("-", text.lower()).strip("-") or "product"


def sale_active(sale_price: str, start: str | None, end: str | None, now: datetime | str) -> bool:
    """WooCommerce's `is_on_sale`: a sale price, and now inside the (optional) window."""
    if sale_price == "":
        return False
    stamp = now if isinstance(now, str) else wc_date(now)
    if start and stamp < start:
        return False
    return not (end and stamp > end)


def price_text(amount: Decimal) -> str:
    return f"{amount:.2f}"


def apply_pricing(item: dict[str, Any], now: datetime | str) -> None:
    """Recompute the read-only `price`, `on_sale` and `price_html` from regular/sale prices."""
    on_sale = sale_active(
        item.get("sale_price") or "", item.get("date_on_sale_from_gmt"), item.get("date_on_sale_to_gmt"), now
    )
    item["on_sale"] = on_sale
    item["price"] = item["sale_price"] if on_sale else item.get("regular_price", "")
    if "price_html" in item:
        item["price_html"] = _price_html(item["price"])
    item["purchasable"] = item["price"] != ""


def _price_html(price: str) -> str:
    if not price:
        return ""
    return (
        '<span class="woocommerce-Price-amount amount"><bdi><span class="woocommerce-Price-currencySymbol">'
        f"&#36;</span>{price}</bdi></span>"
    )


def load_examples() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The documentation's example products (retrieve, create-variable, batch-created) and variations.

    The example variations belong to product 22 in the docs, which has no example; they are attached
    to the variable example product 799 here so the catalog carries one complete official variable
    product.
    """
    products: dict[int, dict[str, Any]] = {}
    for name in ("product_retrieve_response.json", "product_create_variable_response.json"):
        item = json.loads((EXAMPLES / name).read_text())
        products[item["id"]] = item
    batch = json.loads((EXAMPLES / "products_batch_response.json").read_text())
    for item in batch.get("create", []):
        products.setdefault(item["id"], item)
    variations: dict[int, dict[str, Any]] = {}
    for var in json.loads((EXAMPLES / "variations_list_response.json").read_text()):
        variations[var["id"]] = var
    vbatch = json.loads((EXAMPLES / "variations_batch_response.json").read_text())
    for var in vbatch.get("create", []):
        variations.setdefault(var["id"], var)
    ordered = [products[k] for k in sorted(products)]
    return ordered, [variations[k] for k in sorted(variations)]


@dataclass
class Catalog:
    """Products by id (insertion order = id order) and each variable product's variations."""

    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    variations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    next_id: int = FIRST_GENERATED_ID
    #: The latest date_modified_gmt in the catalog, as epoch seconds (the simulated clock starts here).
    latest_modified: int = 0


class CatalogBuilder:
    """Generates products from one seeded random stream; `build` makes the initial catalog."""

    def __init__(
        self,
        seed: int = 1,
        *,
        variable_share: float = 1 / 3,
        variation_range: tuple[int, int] = (3, 10),
        big_variations: int = 0,
        examples: bool = True,
    ) -> None:
        self.random = random.Random(seed)
        self.variable_share = variable_share
        self.variation_range = variation_range
        self.big_variations = big_variations
        self.examples = examples
        self.now = wc_date(datetime.now(UTC))

    # ---- whole catalog ---------------------------------------------------------------------------
    def build(self, count: int) -> Catalog:
        # Hundreds of thousands of small dicts: the cyclic GC would rescan them over and over.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._build(count)
        finally:
            if enabled:
                gc.enable()

    def _build(self, count: int) -> Catalog:
        catalog = Catalog()
        remaining = count
        if self.examples and remaining > 0:
            example_products, example_variations = load_examples()
            for item in example_products[:remaining]:
                item = json.loads(json.dumps(item))
                catalog.products[item["id"]] = item
                if item["type"] == "variable":
                    variations = [self._adopt_example_variation(v, item) for v in example_variations]
                    catalog.variations[item["id"]] = variations
                    item["variations"] = [v["id"] for v in variations]
                    item["price"] = min((v["price"] for v in variations), key=Decimal, default="")
                catalog.latest_modified = max(catalog.latest_modified, epoch(item["date_modified_gmt"]))
            remaining -= min(remaining, len(example_products))
        big_at = self.random.randrange(remaining) if self.big_variations and remaining else -1
        for index in range(remaining):
            variation_count = 0
            if index == big_at:
                variation_count = max(self.big_variations, 101)
            elif self.random.random() < self.variable_share:
                variation_count = self.random.randint(*self.variation_range)
            product, generated = self.product(catalog, variation_count=variation_count)
            catalog.products[product["id"]] = product
            if generated is not None:
                catalog.variations[product["id"]] = generated
            catalog.latest_modified = max(catalog.latest_modified, epoch(product["date_modified_gmt"]))
        return catalog

    def _adopt_example_variation(self, var: dict[str, Any], parent: dict[str, Any]) -> dict[str, Any]:
        var = json.loads(json.dumps(var))
        var.setdefault("type", "variation")
        var["parent_id"] = parent["id"]
        var.setdefault("name", f"{parent['name']} - {var['attributes'][0]['option']}")
        links = var.get("_links", {})
        links["up"] = [{"href": f"{API}/products/{parent['id']}"}]
        return var

    # ---- one product -----------------------------------------------------------------------------
    def take_id(self, catalog: Catalog) -> int:
        """The next post id (products, variations, images and meta entries share WordPress's id space)."""
        value = catalog.next_id
        # Variations, images and other posts share WordPress's id space, so product ids have gaps.
        catalog.next_id += 1
        return value

    def product(
        self,
        catalog: Catalog,
        *,
        variation_count: int = 0,
        created: datetime | None = None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
        """One generated product (and its variations when variable)."""
        rnd = self.random
        pid = self.take_id(catalog)
        if created is None:
            created = BASE_DATE + timedelta(seconds=rnd.randrange(0, 300 * 86400))
            modified = created + timedelta(seconds=rnd.randrange(0, 60 * 86400))
        else:
            modified = created
        name = rnd.choice(ODD_NAMES) if rnd.random() < 0.08 else f"{rnd.choice(ADJECTIVES)} {rnd.choice(NOUNS)}"
        slug = f"{_slug(name)}-{pid}"
        if rnd.random() < 0.5:
            name = f"{name} {pid}"
        variable = variation_count > 0
        sku = "" if rnd.random() < 0.1 else f"WC-{pid}"
        regular, sale, window = self._prices()
        manage_stock, quantity, stock_status, backorders = self._stock()
        images = self._images(catalog, slug, rnd.randint(0, 4), created)
        categories = [dict(term) for term in rnd.sample(CATEGORY_TERMS, rnd.randint(1, 3))]
        tags = [dict(term) for term in rnd.sample(TAG_TERMS, rnd.randint(0, 4))]
        product: dict[str, Any] = {
            "id": pid,
            "name": name,
            "slug": slug,
            "permalink": f"{SITE}/product/{slug}/",
            "date_created": local_date(created),
            "date_created_gmt": wc_date(created),
            "date_modified": local_date(modified),
            "date_modified_gmt": wc_date(modified),
            "type": "variable" if variable else "simple",
            "status": rnd.choice(STATUSES),
            "featured": rnd.random() < 0.05,
            "catalog_visibility": "visible",
            "description": self._description(name),
            "short_description": f"<p>{name}, in short.</p>\n" if rnd.random() < 0.6 else "",
            "sku": sku,
            "price": "",
            "regular_price": "" if variable else regular,
            "sale_price": "" if variable else sale,
            "date_on_sale_from": None,
            "date_on_sale_from_gmt": None,
            "date_on_sale_to": None,
            "date_on_sale_to_gmt": None,
            "price_html": "",
            "on_sale": False,
            "purchasable": True,
            "total_sales": rnd.randint(0, 5000),
            "virtual": False,
            "downloadable": False,
            "downloads": [],
            "download_limit": -1,
            "download_expiry": -1,
            "external_url": "",
            "button_text": "",
            "tax_status": "taxable",
            "tax_class": "",
            "manage_stock": manage_stock,
            "stock_quantity": quantity,
            "stock_status": stock_status,
            "backorders": backorders,
            "backorders_allowed": backorders != "no",
            "backordered": stock_status == "onbackorder",
            "low_stock_amount": None,
            "sold_individually": False,
            "weight": f"{rnd.randint(1, 50) / 10}",
            "dimensions": {"length": "", "width": "", "height": ""},
            "shipping_required": True,
            "shipping_taxable": True,
            "shipping_class": "",
            "shipping_class_id": 0,
            "reviews_allowed": True,
            "average_rating": f"{rnd.randint(0, 500) / 100:.2f}",
            "rating_count": rnd.randint(0, 300),
            "related_ids": [],
            "upsell_ids": [],
            "cross_sell_ids": [],
            "parent_id": 0,
            "purchase_note": "Internal: ship with the blue tape." if rnd.random() < 0.2 else "",
            "categories": categories,
            "tags": tags,
            "brands": [dict(rnd.choice(BRAND_TERMS))] if rnd.random() < 0.3 else [],
            "images": images,
            "attributes": [],
            "default_attributes": [],
            "variations": [],
            "grouped_products": [],
            "menu_order": 0,
            "has_options": variable,
            "post_password": "",
            "global_unique_id": "" if variable else self._barcode(),
            "meta_data": self._meta(catalog),
            "_links": {
                "self": [{"href": f"{API}/products/{pid}"}],
                "collection": [{"href": f"{API}/products"}],
            },
        }
        if not variable and sale and window != (None, None):
            self._set_window(product, window)
        if not variable:
            product["attributes"] = self._descriptive_attributes()
            apply_pricing(product, self.now)
            return product, None
        variations = self._make_variations(catalog, product, variation_count, created, modified)
        return product, variations

    # ---- parts -------------------------------------------------------------------------------------
    def _prices(self) -> tuple[str, str, tuple[str | None, str | None]]:
        rnd = self.random
        cents = rnd.randint(199, 49999)
        style = rnd.random()
        amount = Decimal(cents) / 100
        if style < 0.1:
            regular = str(int(amount))  # "10": merchants often type whole prices
        elif style < 0.15:
            regular = f"{amount:.3f}"  # some stores run three decimals
        else:
            regular = price_text(amount)
        sale = ""
        window: tuple[str | None, str | None] = (None, None)
        if rnd.random() < 0.25:
            sale = price_text(
                (Decimal(regular) * Decimal(rnd.choice(["0.5", "0.7", "0.8", "0.9"]))).quantize(Decimal("0.01"))
            )
            window = rnd.choice(SALE_WINDOWS)
        return regular, sale, window

    def _set_window(self, item: dict[str, Any], window: tuple[str | None, str | None]) -> None:
        start, end = window
        item["date_on_sale_from_gmt"] = start
        item["date_on_sale_to_gmt"] = end
        item["date_on_sale_from"] = local_date(_parse(start)) if start else None
        item["date_on_sale_to"] = local_date(_parse(end)) if end else None

    def _stock(self) -> tuple[bool, int | None, str, str]:
        rnd = self.random
        if rnd.random() < 0.6:
            quantity = rnd.choice([0, 0, 1, 3, 12, 40, 150, 480]) if rnd.random() < 0.5 else rnd.randint(0, 500)
            backorders = rnd.choice(["no", "no", "no", "notify", "yes"])
            if quantity > 0:
                return True, quantity, "instock", backorders
            return True, quantity, ("onbackorder" if backorders != "no" else "outofstock"), backorders
        status = rnd.choice(["instock"] * 8 + ["outofstock", "onbackorder"])
        return False, None, status, "no"

    def _images(self, catalog: Catalog, slug: str, count: int, created: datetime) -> list[dict[str, Any]]:
        images = []
        for n in range(count):
            image_id = self.take_id(catalog)
            stamp = created - timedelta(minutes=5 - n)
            images.append(
                {
                    "id": image_id,
                    "date_created": local_date(stamp),
                    "date_created_gmt": wc_date(stamp),
                    "date_modified": local_date(stamp),
                    "date_modified_gmt": wc_date(stamp),
                    "src": f"{SITE}/wp-content/uploads/2024/05/{slug}-{n + 1}.jpg",
                    "name": f"{slug}-{n + 1}",
                    "alt": "" if self.random.random() < 0.4 else f"{slug.replace('-', ' ')} view {n + 1}",
                }
            )
        return images

    def _description(self, name: str) -> str:
        rnd = self.random
        roll = rnd.random()
        if roll < 0.1:
            return ""
        if roll < 0.2:
            return f"<p>{name} — «fait main» à Montréal. 100% coton.</p>\n<ul><li>Lavable</li></ul>\n"
        return (
            "<p>Pellentesque habitant morbi tristique senectus et netus et malesuada fames ac turpis "
            f"egestas. {name} is made to last.</p>\n"
        )

    def _barcode(self) -> str:
        rnd = self.random
        roll = rnd.random()
        if roll < 0.45:
            return ""
        digits = f"{rnd.randrange(10**12):012d}"
        if roll < 0.6:
            return digits[:11] + gs1_check_digit(digits[:11])  # UPC-A
        if roll < 0.75:
            body = "4" + digits[1:12]
            return body + gs1_check_digit(body)  # EAN-13
        if roll < 0.85:
            body = "978" + digits[:9]
            return body + gs1_check_digit(body)  # ISBN-13
        if roll < 0.9:
            body = digits[:7]
            return body + gs1_check_digit(body)  # GTIN-8
        if roll < 0.96:
            body = digits[:11]
            wrong = str((int(gs1_check_digit(body)) + 1) % 10)
            return body + wrong  # a hand-typed UPC with a bad check digit
        return rnd.choice(["N/A", "12345", "see box"])

    def _meta(self, catalog: Catalog) -> list[dict[str, Any]]:
        rnd = self.random
        meta: list[dict[str, Any]] = []
        if rnd.random() < 0.5:
            meta.append({"id": self.take_id(catalog), "key": "_wpcom_is_markdown", "value": "1"})
        if rnd.random() < 0.2:
            meta.append(
                {
                    "id": self.take_id(catalog),
                    "key": "_internal_cost_note",
                    "value": "cost 3.10, margin thin",
                }
            )
        if rnd.random() < 0.15:
            meta.append({"id": self.take_id(catalog), "key": "mpn", "value": f"MPN-{rnd.randint(10000, 99999)}"})
        return meta

    def _descriptive_attributes(self) -> list[dict[str, Any]]:
        rnd = self.random
        attributes: list[dict[str, Any]] = []
        if rnd.random() < 0.4:
            attributes.append(
                {
                    "id": 3,
                    "name": "Material",
                    "slug": "pa_material",
                    "position": 0,
                    "visible": True,
                    "variation": False,
                    "options": rnd.sample(MATERIALS, rnd.randint(1, 2)),
                }
            )
        if rnd.random() < 0.2:
            attributes.append(
                {
                    "id": 0,
                    "name": "Care",
                    "slug": "care",
                    "position": 1,
                    "visible": True,
                    "variation": False,
                    "options": ["Machine wash 30°C"],
                }
            )
        return attributes

    def _axes(self, count: int) -> list[tuple[dict[str, Any], list[str]]]:
        """Variation attributes with enough options for `count` combinations."""
        rnd = self.random
        if count <= len(COLORS) and rnd.random() < 0.35:
            return [(self._axis(1, "Color", "pa_color", 0), rnd.sample(COLORS, count))]
        sizes = rnd.sample(SIZES, min(len(SIZES), max(2, (count + 2) // 3)))
        colors_needed = -(-count // len(sizes))
        if colors_needed <= len(COLORS):
            return [
                (self._axis(1, "Color", "pa_color", 0), rnd.sample(COLORS, colors_needed)),
                (self._axis(0, "Size", "size", 1), sizes),
            ]
        materials_needed = -(-count // (len(SIZES) * len(COLORS)))
        return [
            (self._axis(1, "Color", "pa_color", 0), list(COLORS)),
            (self._axis(0, "Size", "size", 1), list(SIZES)),
            (
                self._axis(3, "Material", "pa_material", 2),
                MATERIALS[:materials_needed] + [f"Blend {n}" for n in range(max(0, materials_needed - len(MATERIALS)))],
            ),
        ]

    @staticmethod
    def _axis(attr_id: int, name: str, slug: str, position: int) -> dict[str, Any]:
        return {
            "id": attr_id,
            "name": name,
            "slug": slug,
            "position": position,
            "visible": True,
            "variation": True,
            "options": [],
        }

    def _make_variations(
        self, catalog: Catalog, product: dict[str, Any], count: int, created: datetime, modified: datetime
    ) -> list[dict[str, Any]]:
        rnd = self.random
        axes = self._axes(count)
        combos: list[list[str]] = [[]]
        for _, options in axes:
            combos = [c + [o] for c in combos for o in options]
        combos = combos[:count]
        used: list[set[str]] = [set() for _ in axes]
        for combo in combos:
            for i, value in enumerate(combo):
                used[i].add(value)
        product_attributes = []
        for i, (axis, options) in enumerate(axes):
            axis["options"] = [o for o in options if o in used[i]]
            product_attributes.append(axis)
        product_attributes.extend(
            a for a in self._descriptive_attributes() if a["name"] not in {ax["name"] for ax, _ in axes}
        )
        product["attributes"] = product_attributes
        product["default_attributes"] = [
            {"id": ax["id"], "name": ax["name"], "option": ax["options"][0]} for ax, _ in axes
        ]
        parent_manages = product["manage_stock"]
        base_regular, _, _ = self._prices()
        variations: list[dict[str, Any]] = []
        created_gmt, created_local = wc_date(created), local_date(created)
        permalink = f"{product['permalink']}?attribute_pa_color="
        for n, combo in enumerate(combos):
            vid = self.take_id(catalog)
            regular = base_regular if rnd.random() < 0.7 else self._prices()[0]
            sale = ""
            if rnd.random() < 0.2:
                sale = price_text((Decimal(regular) * Decimal("0.8")).quantize(Decimal("0.01")))
            if parent_manages and rnd.random() < 0.6:
                manage: bool | str = "parent"
                quantity = product["stock_quantity"]
                stock_status = product["stock_status"]
                backorders = product["backorders"]
            else:
                manage, quantity, stock_status, backorders = self._stock()
            vmod = modified + timedelta(seconds=n)
            image = None
            if rnd.random() < 0.5:
                image_id = self.take_id(catalog)
                image = {
                    "id": image_id,
                    "date_created": created_local,
                    "date_created_gmt": created_gmt,
                    "date_modified": created_local,
                    "date_modified_gmt": created_gmt,
                    "src": f"{SITE}/wp-content/uploads/2024/05/{product['slug']}-v{n + 1}.jpg",
                    "name": f"{product['slug']}-v{n + 1}",
                    "alt": "",
                }
            attributes = [
                {"id": ax["id"], "name": ax["name"], "slug": ax["slug"], "option": value}
                for (ax, _), value in zip(axes, combo, strict=True)
            ]
            variation: dict[str, Any] = {
                "id": vid,
                "type": "variation",
                "parent_id": product["id"],
                "name": f"{product['name']} - {', '.join(combo)}",
                "date_created": created_local,
                "date_created_gmt": created_gmt,
                "date_modified": local_date(vmod),
                "date_modified_gmt": wc_date(vmod),
                "description": "",
                "permalink": permalink + combo[0].lower().replace(" ", "-"),
                "sku": f"{product['sku']}-{n + 1}" if product["sku"] else "",
                "global_unique_id": self._barcode() if rnd.random() < 0.5 else "",
                "price": "",
                "regular_price": regular,
                "sale_price": sale,
                "date_on_sale_from": None,
                "date_on_sale_from_gmt": None,
                "date_on_sale_to": None,
                "date_on_sale_to_gmt": None,
                "on_sale": False,
                "status": "private" if rnd.random() < 0.05 else "publish",
                "purchasable": True,
                "virtual": False,
                "downloadable": False,
                "downloads": [],
                "download_limit": -1,
                "download_expiry": -1,
                "tax_status": "taxable",
                "tax_class": "",
                "manage_stock": manage,
                "stock_quantity": quantity,
                "stock_status": stock_status,
                "backorders": backorders,
                "backorders_allowed": backorders != "no",
                "backordered": stock_status == "onbackorder",
                "low_stock_amount": None,
                "weight": "",
                "dimensions": {"length": "", "width": "", "height": ""},
                "shipping_class": "",
                "shipping_class_id": 0,
                "image": image,
                "attributes": attributes,
                "menu_order": n,
                "meta_data": [{"id": self.take_id(catalog), "key": "_supplier_ref", "value": f"S{vid}"}]
                if rnd.random() < 0.1
                else [],
                "_links": {
                    "self": [{"href": f"{API}/products/{product['id']}/variations/{vid}"}],
                    "collection": [{"href": f"{API}/products/{product['id']}/variations"}],
                    "up": [{"href": f"{API}/products/{product['id']}"}],
                },
            }
            if sale and rnd.random() < 0.5:
                self._set_window(variation, rnd.choice(SALE_WINDOWS))
            apply_pricing(variation, self.now)
            variations.append(variation)
        sync_variable_parent(product, variations)
        # Saving variations touches the parent too.
        latest = modified + timedelta(seconds=len(combos) - 1)
        product["date_modified_gmt"] = wc_date(latest)
        product["date_modified"] = local_date(latest)
        return variations


def sync_variable_parent(product: dict[str, Any], variations: list[dict[str, Any]]) -> None:
    """What WooCommerce's variable-product sync does: price range, on_sale and stock status from children."""
    visible = [v for v in variations if v.get("status") != "private"]
    product["variations"] = [v["id"] for v in variations]
    prices = [Decimal(v["price"]) for v in visible if v.get("price")]
    product["price"] = price_text(min(prices)) if prices else ""
    product["price_html"] = _price_html(product["price"])
    product["on_sale"] = any(v.get("on_sale") for v in visible)
    statuses = {v.get("stock_status") for v in visible}
    if "instock" in statuses:
        product["stock_status"] = "instock"
    elif "onbackorder" in statuses:
        product["stock_status"] = "onbackorder"
    elif statuses:
        product["stock_status"] = "outofstock"


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def epoch(text: str) -> int:
    """Epoch seconds of a WooCommerce GMT date string."""
    return int(_parse(text).replace(tzinfo=UTC).timestamp())


def _terms(pairs: list[tuple[int, str]]) -> list[dict[str, Any]]:
    return [{"id": tid, "name": name, "slug": _slug(name)} for tid, name in pairs]


CATEGORY_TERMS = _terms(CATEGORIES)
TAG_TERMS = _terms(TAGS)
BRAND_TERMS = _terms(BRANDS)
