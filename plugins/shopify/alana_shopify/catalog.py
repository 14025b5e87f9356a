"""The simulated shop's catalog: a deterministic generator, edits on a simulated clock, REST rendering.

The generator covers what the mapper must handle: multiple options and default-variant products
("Default Title"), one product with 150 variants (`big_variants`), drafts and archived products,
sales (compare-at prices), zero stock (denied and backordered), untracked stock, several images with
and without alt text plus a video, fr/de translations, UPC / EAN / ISBN barcodes (some with a bad
check digit, some not barcodes at all). It is plain dataclasses and builds 5,000 products in well
under a second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

BASE_TIME = datetime(2025, 6, 1, tzinfo=UTC)
#: The shop's own timezone: REST bodies carry local offsets, GraphQL carries UTC.
SHOP_TZ = timezone(timedelta(hours=-5))
PRODUCT_ID_BASE = 7_100_000_000_000
VARIANT_ID_BASE = 44_000_000_000_000
MEDIA_ID_BASE = 33_000_000_000_000
BIG_PRODUCT_INDEX = 2
#: What Catalog.create (and ShopifySimulator.create_product) accepts.
CREATE_KEYWORDS = frozenset(
    {
        "title",
        "price",
        "sku",
        "barcode",
        "variants",
        "bare",
        "private_text",
        "description",
        "vendor",
        "product_type",
        "status",
        "tags",
        "handle",
        "inventory_quantity",
    }
)

COLORS = [
    "Red",
    "Blue",
    "Green",
    "Black",
    "White",
    "Navy",
    "Olive",
    "Sand",
    "Grey",
    "Pink",
    "Teal",
    "Coral",
    "Plum",
    "Gold",
    "Ivory",
]
SIZES = ["XS", "S", "M", "L", "XL", "XXL", "3XL", "4XL", "5XL", "6XL"]
MATERIALS = ["Cotton", "Linen"]
ADJECTIVES = [
    "Classic",
    "Everyday",
    "Organic",
    "Vintage",
    "Urban",
    "Alpine",
    "Coastal",
    "Studio",
    "Heritage",
    "Nordic",
]
VENDORS = ["Acme Apparel", "Northwind", "Blue Heron Press", "Kettle & Co", "Lumen Goods"]
TAGS = ["new", "summer", "bestseller", "eco", "gift", "limited", "sale", "staff-pick"]

#: Product kinds: (product type, category (name, full name), option names, option values).
KINDS: list[tuple[str, tuple[str, str] | None, list[str], list[list[str]]]] = [
    ("Mugs", ("Mugs", "Home & Garden > Kitchen & Dining > Tableware > Drinkware > Mugs"), [], []),
    (
        "T-Shirts",
        ("T-Shirts", "Apparel & Accessories > Clothing > Clothing Tops > T-Shirts"),
        ["Size"],
        [SIZES[1:5]],
    ),
    (
        "Hoodies",
        ("Hoodies", "Apparel & Accessories > Clothing > Activewear > Hoodies"),
        ["Size", "Color"],
        [SIZES[1:4], COLORS[:3]],
    ),
    (
        "Shirts",
        ("Shirts", "Apparel & Accessories > Clothing > Clothing Tops > Shirts"),
        ["Size", "Color", "Material"],
        [SIZES[2:4], COLORS[3:5], MATERIALS],
    ),
    ("Books", ("Books", "Media > Books > Print Books"), [], []),
    ("Socks", None, ["Color"], [COLORS[5:8]]),
]

FR = {
    "Classic": "Classique",
    "Everyday": "Quotidien",
    "Organic": "Bio",
    "Vintage": "Rétro",
    "Urban": "Urbain",
    "Alpine": "Alpin",
    "Coastal": "Côtier",
    "Studio": "Atelier",
    "Heritage": "Patrimoine",
    "Nordic": "Nordique",
}
DE = {
    "Classic": "Klassisch",
    "Everyday": "Alltag",
    "Organic": "Bio",
    "Vintage": "Vintage",
    "Urban": "Urban",
    "Alpine": "Alpen",
    "Coastal": "Küsten",
    "Studio": "Studio",
    "Heritage": "Erbe",
    "Nordic": "Nordisch",
}


def gs1_check(body: str) -> str:
    """The GS1 mod-10 check digit for `body` (all digits but the check digit)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


@dataclass
class SimVariant:
    id: int
    title: str
    sku: str | None
    barcode: str | None
    price: Decimal
    compare_at: Decimal | None
    quantity: int
    policy: str  # DENY | CONTINUE
    tracked: bool
    options: list[tuple[str, str]]
    position: int
    created_at: datetime
    updated_at: datetime


@dataclass
class SimMedia:
    id: int
    kind: str  # IMAGE | VIDEO
    url: str
    alt: str | None
    position: int


@dataclass
class SimProduct:
    id: int
    title: str
    handle: str
    description_html: str
    vendor: str
    product_type: str
    status: str  # ACTIVE | DRAFT | ARCHIVED
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    category: tuple[str, str] | None
    options: list[tuple[str, list[str]]]
    variants: list[SimVariant] = field(default_factory=list)
    media: list[SimMedia] = field(default_factory=list)
    #: locale -> {translation key ("title", "body_html") -> value}
    translations: dict[str, dict[str, str]] = field(default_factory=dict)
    #: (namespace, key, value) metafields
    metafields: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def tracks_inventory(self) -> bool:
        return any(v.tracked for v in self.variants)

    @property
    def total_inventory(self) -> int:
        return sum(v.quantity for v in self.variants if v.tracked)


def _money(cents: int) -> Decimal:
    return Decimal(cents) / Decimal(100)


class Catalog:
    """The shop's products, keyed by numeric id, with a simulated clock for `updatedAt`."""

    def __init__(
        self,
        products: int,
        *,
        seed: int = 1,
        big_variants: bool = False,
        locales: tuple[str, ...] = ("fr", "de"),
    ) -> None:
        self.rng = random.Random(seed)
        self.locales = locales
        self.products: dict[int, SimProduct] = {}
        self._next_product = PRODUCT_ID_BASE
        self._next_variant = VARIANT_ID_BASE
        self._next_media = MEDIA_ID_BASE
        for index in range(products):
            created = BASE_TIME + timedelta(seconds=10 * index)
            product = self._generate(index, created, big=big_variants and index == BIG_PRODUCT_INDEX)
            self.products[product.id] = product
        self.now = BASE_TIME + timedelta(seconds=10 * products + 10)

    # ---- clock ------------------------------------------------------------------------------------
    def tick(self) -> datetime:
        """Advance the clock one second: every change gets a strictly later `updatedAt`."""
        self.now += timedelta(seconds=1)
        return self.now

    # ---- generation -------------------------------------------------------------------------------
    def _ids(self, kind: str) -> int:
        if kind == "product":
            self._next_product += 1
            return self._next_product
        if kind == "variant":
            self._next_variant += 1
            return self._next_variant
        self._next_media += 1
        return self._next_media

    def _barcode(self, index: int, position: int, kind: str) -> str | None:
        if index % 31 == 30:
            return "N/A-" + str(index)  # what people type when the field is required
        if kind == "Socks":
            return None
        if kind == "Books":
            body = f"978{index:09d}"[:12]
        elif kind == "Mugs":
            body = f"40{index:07d}{position:03d}"
        else:
            body = f"0{index:07d}{position:03d}"[:11]
        check = gs1_check(body)
        if index % 19 == 18:
            check = str((int(check) + 1) % 10)  # a hand-typed barcode with a wrong check digit
        return body + check

    def _generate(self, index: int, created: datetime, *, big: bool) -> SimProduct:
        rng = self.rng
        kind, category, names, values = KINDS[index % len(KINDS)]
        if big:
            kind, category, names, values = "Hoodies", KINDS[2][1], ["Size", "Color"], [SIZES, COLORS]
        adjective = ADJECTIVES[index % len(ADJECTIVES)]
        noun = kind[:-1] if kind.endswith("s") else kind
        title = f"{adjective} {noun} {index + 1}"
        status = "DRAFT" if index % 17 == 16 else "ARCHIVED" if index % 23 == 22 else "ACTIVE"
        updated = created + timedelta(seconds=rng.randrange(10))
        product = SimProduct(
            id=self._ids("product"),
            title=title,
            handle=f"{adjective.lower()}-{noun.lower()}-{index + 1}",
            description_html=f"<p>The {adjective.lower()} {noun.lower()}, number {index + 1}.</p>",
            vendor=VENDORS[index % len(VENDORS)],
            product_type=kind,
            status=status,
            tags=sorted(rng.sample(TAGS, k=index % 4)),
            created_at=created,
            updated_at=updated,
            published_at=created if status == "ACTIVE" else None,
            category=category,
            options=[(n, list(v)) for n, v in zip(names, values, strict=True)] or [("Title", ["Default Title"])],
        )
        combos: list[list[tuple[str, str]]] = [[]]
        for name, option_values in zip(names, values, strict=True):
            combos = [c + [(name, v)] for c in combos for v in option_values]
        base = rng.randrange(500, 20000)
        on_sale = index % 5 == 1
        sold_out = index % 11 == 10
        backorder = index % 22 == 21
        untracked = index % 13 == 12
        for position, combo in enumerate(combos, start=1):
            price = base + 100 * (position % 3)
            product.variants.append(
                SimVariant(
                    id=self._ids("variant"),
                    title=" / ".join(v for _, v in combo) or "Default Title",
                    sku=f"SKU-{index + 1}-{position}" if index % 9 != 8 else None,
                    barcode=self._barcode(index, position, kind),
                    price=_money(price),
                    compare_at=_money(price * 5 // 4) if on_sale else None,
                    quantity=0 if sold_out else rng.randrange(1, 60),
                    policy="CONTINUE" if backorder else "DENY",
                    tracked=not untracked,
                    options=combo or [("Title", "Default Title")],
                    position=position,
                    created_at=created,
                    updated_at=updated,
                )
            )
        images = 15 if big else index % 5
        for position in range(1, images + 1):
            alt = None if position == 3 else f"{title} – view {position}"
            product.media.append(
                SimMedia(
                    self._ids("media"),
                    "IMAGE",
                    f"https://cdn.shopify.sim/products/{product.id}/{position}.jpg",
                    alt,
                    position,
                )
            )
        if index % 29 == 7:
            product.media.insert(
                1, SimMedia(self._ids("media"), "VIDEO", "https://cdn.shopify.sim/video.mp4", "A video", 0)
            )
        for locale, words in (("fr", FR), ("de", DE)):
            if locale not in self.locales or (locale == "fr" and index % 7 == 6) or (locale == "de" and index % 3 == 2):
                continue
            product.translations[locale] = {
                "title": f"{words[adjective]} {noun} {index + 1}",
                "body_html": f"<p>{words[adjective]} {noun.lower()} ({locale}) {index + 1}.</p>",
            }
        return product

    # ---- edits ------------------------------------------------------------------------------------
    def create(self, **fields: Any) -> SimProduct:
        """Add a product. Keywords: title, price, sku, barcode, variants (a count), bare (only what
        Shopify requires), private_text (kept in a private metafield), and the plain text fields."""
        unknown = set(fields) - CREATE_KEYWORDS
        if unknown:
            raise ValueError(f"the simulator cannot create a product with {sorted(unknown)}")
        now = self.tick()
        bare = bool(fields.get("bare"))
        product_id = self._ids("product")
        title = str(fields.get("title") or f"New product {len(self.products) + 1}")
        price = Decimal(str(fields.get("price", "19.99")))
        count = int(fields.get("variants", 1))
        styles = [f"Style {n}" for n in range(1, count + 1)]
        product = SimProduct(
            id=product_id,
            title=title,
            handle=str(fields.get("handle") or f"new-product-{product_id}"),
            description_html="" if bare else str(fields.get("description", "<p>Freshly added.</p>")),
            vendor="" if bare else str(fields.get("vendor", VENDORS[0])),
            product_type="" if bare else str(fields.get("product_type", "Mugs")),
            status=str(fields.get("status", "ACTIVE")).upper(),
            tags=[] if bare else _tag_list(fields.get("tags", [])),
            created_at=now,
            updated_at=now,
            published_at=now,
            category=None,
            options=[("Style", styles)] if count > 1 else [("Title", ["Default Title"])],
        )
        sku = None if bare else fields.get("sku")
        for position, style in enumerate(styles if count > 1 else ["Default Title"], start=1):
            product.variants.append(
                SimVariant(
                    id=self._ids("variant"),
                    title=style,
                    sku=(f"{sku}-{position}" if count > 1 else sku) if sku else None,
                    barcode=None if bare else fields.get("barcode"),
                    price=price,
                    compare_at=None,
                    quantity=int(fields.get("inventory_quantity", 10)),
                    policy="DENY",
                    tracked=True,
                    options=[("Style" if count > 1 else "Title", style)],
                    position=position,
                    created_at=now,
                    updated_at=now,
                )
            )
        if fields.get("private_text"):
            # Private metadata: readable through the API, never part of what the gateway syncs.
            product.metafields.append(("alana_private", "_internal_note", str(fields["private_text"])))
        self.products[product.id] = product
        return product

    def update(self, product_id: int, **changes: Any) -> SimProduct:
        product = self.products[product_id]
        now = self.tick()
        if not changes:
            changes = {
                "title": f"{product.title.split(' (edit')[0]} (edit {now:%H%M%S})",
                "price": str(product.variants[0].price + 1 if product.variants else Decimal("1.00")),
            }
        for key, value in changes.items():
            if key == "title":
                product.title = str(value)
            elif key in ("description", "body_html"):
                product.description_html = str(value)
            elif key == "status":
                product.status = str(value).upper()
            elif key == "tags":
                product.tags = _tag_list(value)
            elif key == "vendor":
                product.vendor = str(value)
            elif key in ("price", "compare_at_price", "inventory_quantity", "barcode", "sku"):
                for variant in product.variants:
                    _set_variant(variant, key, value, now)
            else:
                raise ValueError(f"the simulator cannot change {key!r}")
        product.updated_at = now
        return product

    def delete(self, product_id: int) -> SimProduct:
        return self.products.pop(product_id)


def _tag_list(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(t).strip() for t in items if str(t).strip()]


def _set_variant(variant: SimVariant, key: str, value: Any, now: datetime) -> None:
    if key == "price":
        variant.price = Decimal(str(value))
    elif key == "compare_at_price":
        variant.compare_at = Decimal(str(value)) if value is not None else None
    elif key == "inventory_quantity":
        variant.quantity = int(value)
    elif key == "barcode":
        variant.barcode = value
    else:
        variant.sku = value
    variant.updated_at = now


# ---- REST rendering (webhook bodies) -------------------------------------------------------------
def rest_time(moment: datetime | None) -> str | None:
    return moment.astimezone(SHOP_TZ).isoformat() if moment is not None else None


def to_rest(product: SimProduct, *, broken: bool = False) -> dict[str, Any]:
    """The product as a REST / webhook body: snake_case, lowercase status, tags as one string."""
    images = [m for m in product.media if m.kind == "IMAGE"]
    names = [name for name, _ in product.options]
    rest_images = [
        {
            "id": m.id,
            "product_id": product.id,
            "position": i,
            "src": m.url,
            "alt": m.alt,
            "width": 1200,
            "height": 1200,
            "admin_graphql_api_id": f"gid://shopify/MediaImage/{m.id}",
        }
        for i, m in enumerate(images, start=1)
    ]
    variants = []
    for variant in product.variants:
        chosen = dict(variant.options)
        row: dict[str, Any] = {
            "id": variant.id,
            "product_id": product.id,
            "title": variant.title,
            "price": "not-a-price" if broken else f"{variant.price:.2f}",
            "compare_at_price": f"{variant.compare_at:.2f}" if variant.compare_at is not None else None,
            "sku": variant.sku,
            "barcode": variant.barcode,
            "position": variant.position,
            "inventory_policy": variant.policy.lower(),
            "inventory_management": "shopify" if variant.tracked else None,
            "inventory_quantity": variant.quantity,
            "created_at": rest_time(variant.created_at),
            "updated_at": rest_time(variant.updated_at),
            "taxable": True,
            "image_id": None,
            "admin_graphql_api_id": f"gid://shopify/ProductVariant/{variant.id}",
        }
        for slot in range(3):
            row[f"option{slot + 1}"] = chosen.get(names[slot]) if slot < len(names) else None
        variants.append(row)
    return {
        "id": product.id,
        "admin_graphql_api_id": f"gid://shopify/Product/{product.id}",
        "title": product.title,
        "body_html": product.description_html,
        "vendor": product.vendor,
        "product_type": product.product_type,
        "handle": product.handle,
        "status": product.status.lower(),
        "tags": ", ".join(product.tags),
        "created_at": rest_time(product.created_at),
        "updated_at": rest_time(product.updated_at),
        "published_at": rest_time(product.published_at),
        "template_suffix": None,
        "published_scope": "global",
        "variants": variants,
        "options": [
            {
                "id": product.id * 10 + i,
                "product_id": product.id,
                "name": name,
                "position": i,
                "values": values,
            }
            for i, (name, values) in enumerate(product.options, start=1)
        ],
        "images": rest_images,
        "image": rest_images[0] if rest_images else None,
    }
