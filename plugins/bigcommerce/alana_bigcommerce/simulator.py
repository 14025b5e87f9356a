"""A simulated BigCommerce store: the Catalog v3 API, webhooks and the store's rate limit.

What it imitates, and where it simplifies:
- `{store_url}` is `{base_url}/stores/{store_hash}` like the real `https://api.bigcommerce.com/stores/{hash}`;
  `/v3/catalog/products` (include, include_fields, limit <= 250, page, id:in, id:greater/min/max,
  date_modified:min/max, is_visible, sort, direction), `/v3/catalog/products/{id}` and its
  `/variants`, `/v3/catalog/categories`, `/v3/catalog/brands`, `/v3/hooks` CRUD, and `/v2/store`.
- Auth is `X-Auth-Token`; a wrong token gets BigCommerce's 401 body (JSON, or with `plain_401` the
  text/plain body the OpenAPI spec declares), a wrong store hash a 404. The API accepts the store API
  account's token (`access_token`) and every live token the app was issued (sim_install.py: the
  single-click install, `oauth2/token`, signed load / uninstall / remove_user callbacks).
- A delivery that fails is retried on `hook_retry_schedule` (BigCommerce's 60 s ... 24 h, about 48 h in
  all; compress it in tests); when the last retry fails too the hook is deactivated (`is_active: false`).
- Every API response carries the X-Rate-Limit-* headers. The store has `quota` requests per `window_ms`
  (defaults 150 / 30000, the Standard plan); `other_apps_share` of each window is spent by simulated
  other apps, evenly over the window. A request past the quota is answered 429 with the headers and
  `X-Retry-After`, and counted in `rate_limited`.
- Catalog edits made through create/update/delete_product move `date_modified` on a simulated clock
  that never runs behind the wall clock and strictly increases per change (second precision, like
  BigCommerce). Variant-only edits (`update_variant`, `update_variant_inventory`) do not move it and
  fire `store/sku/*` events, as on the real platform.
- Deliveries carry the headers given at hook registration and BigCommerce's payload
  `{scope, store_id, data, hash, created_at, producer}`. `hash` is a SHA-1 over the payload.
- `create_product` honours the conformance suite's keywords (`conformance_fields`; see its docstring).
  Product metafields, BigCommerce's private metadata, are served at `/v3/catalog/products/{id}/metafields`
  (never inline: the listing's `include` has no metafields).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from aiohttp import web

from alana_bigcommerce.catalog import Catalog, iso, set_variants, strip_optional
from alana_bigcommerce.sim_install import APP_EVENTS, BigCommerceAppSide
from gateway.simkit import Hook, Simulator

STATUS_DOCS = "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes"

PRODUCT_SCOPES = (
    "store/product/created",
    "store/product/updated",
    "store/product/deleted",
    "store/product/inventory/updated",
    "store/product/inventory/order/updated",
)
SKU_SCOPES = (
    "store/sku/created",
    "store/sku/updated",
    "store/sku/deleted",
    "store/sku/inventory/updated",
    "store/sku/inventory/order/updated",
)
KNOWN_SCOPES = frozenset({*PRODUCT_SCOPES, *SKU_SCOPES, "store/product/*", "store/sku/*"})
SORTABLE = ("id", "name", "sku", "price", "date_modified", "inventory_level", "calculated_price")
#: Generic field names a test or the demo may use, and the BigCommerce field they edit.
ALIASES = {"title": "name", "quantity": "inventory_level", "inventory": "inventory_level", "body_html": "description"}
#: create_product keywords of the simulator contract that are not product fields.
CONTRACT_KEYWORDS = ("bare", "variants", "barcode", "private_text")
#: Where private_text goes besides the bin picking numbers: an app-only product metafield.
PRIVATE_NAMESPACE, PRIVATE_KEY = "alana_internal", "internal_note"
#: BigCommerce's retries of a failing delivery, in seconds; the hook is deactivated after the last.
HOOK_RETRIES = (60.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 50400.0, 86400.0)
UNAUTHORIZED = (
    "Unauthorized - the v3 Auth client ID or token in the request are not a valid combination for this store."
)


@dataclass
class BigCommerceHook(Hook):
    is_active: bool = True
    created_at: int = 0
    updated_at: int = 0


class BadRequest(Exception):
    """A request the real API would refuse with 422."""


def error(status: int, title: str, **errors: str) -> web.Response:
    body: dict[str, Any] = {"status": status, "title": title, "type": STATUS_DOCS}
    if errors:
        body["errors"] = errors
    return web.json_response(body, status=status)


class BigCommerceSimulator(Simulator):
    """A BigCommerce store on 127.0.0.1. Options: quota, window_ms, other_apps_share, currency,
    store_hash, access_token."""

    platform = "bigcommerce"
    app_events = APP_EVENTS
    #: create_product keywords of the simulator contract this simulator honours (gateway.testing.conformance).
    conformance_fields: ClassVar[frozenset[str]] = frozenset(
        {"title", "price", "sku", "barcode", "variants", "bare", "private_text"}
    )
    #: How the conformance suite drives this simulator (ConformanceOptions fields), wherever it runs.
    conformance_options: ClassVar[dict[str, Any]] = {
        # A quota the suite cannot exhaust (the Standard plan's 150 per 30 s would pace it at 4 req/s).
        "simulator_options": {"quota": 2000, "window_ms": 1000},
        # Pages of 10 products, so the suite's catalog spans several pages.
        "connection_options": {"page_size": 10},
        # Deliveries carry the secret header set at registration; BigCommerce signs no body.
        "webhook_body_signed": False,
    }
    #: How the install-flow checks drive it: retries without waiting, so a failing hook deactivates at once.
    install_conformance_options: ClassVar[dict[str, Any]] = {"hook_retry_schedule": [0.0] * 3}

    def __init__(self, products: int = 100, *, seed: int = 1, **options: Any) -> None:
        super().__init__(products, seed=seed, **options)
        digest = hashlib.sha256(f"bigcommerce-sim:{seed}".encode()).hexdigest()
        self.store_hash: str = options.get("store_hash") or f"s{digest[:9]}"
        self.store_id = str(1_000_000 + seed)
        self.access_token: str = options.get("access_token") or digest[16:48]
        # As long as a real app secret (HS256 wants 32 bytes or more).
        self.client_secret: str = hashlib.sha256(f"bigcommerce-sim-secret:{seed}".encode()).hexdigest()[:48]
        self.currency: str = options.get("currency", "USD")
        self.quota = int(options.get("quota", 150))
        self.window_ms = int(options.get("window_ms", 30_000))
        self.other_apps_share = float(options.get("other_apps_share", 0.0))
        self.catalog = Catalog(products, seed)
        #: 429s answered because the quota was spent (injected faults are counted by `faults`).
        self.rate_limited = 0
        self.peak_used = 0
        #: The rate-limit window's clock (tests may replace it).
        self.clock: Callable[[], float] = time.monotonic
        self._window_start: float | None = None
        self._used = 0
        self._others_used = 0
        self._last_stamp = 0
        self._hook_ids = 0
        self._edits = 0
        #: Product metafields by product id (only products created with private_text have any).
        self.metafields: dict[int, list[dict[str, Any]]] = {}
        self.hook_retry_schedule: tuple[float, ...] = tuple(options.get("hook_retry_schedule", HOOK_RETRIES))
        self.plain_401 = bool(options.get("plain_401", False))
        self.app = BigCommerceAppSide(self, options)

    # ---- Simulator contract ------------------------------------------------------------------
    @property
    def store_url(self) -> str:
        return f"{self.base_url}/stores/{self.store_hash}"

    def credentials(self) -> dict[str, str]:
        return {"access_token": self.access_token, "client_secret": self.client_secret}

    # ---- install flow (sim_install.py) -------------------------------------------------------
    def app_credentials(self) -> dict[str, str]:
        return {"client_id": self.app.client_id, "client_secret": self.client_secret}

    async def connect_decision(self, authorize_url: str, approve: bool) -> str | None:
        return self.app.decide(self.app.owns(authorize_url), approve)

    async def app_event(self, event: str, **params: Any) -> str | None:
        return self.app.event(event, **params)

    def revoke_credentials(self) -> None:
        self.app.revoke()

    def product_ids(self) -> list[str]:
        return [str(i) for i in self.catalog.ids()]

    def create_product(self, **fields: Any) -> str:
        """Add a generated product, edited by `fields` (BigCommerce field names or ALIASES), and fire
        store/product/created. The simulator contract's keywords:

        - `title`, `price`: the name; the regular price of the product and of every variant (no sale
          or retail price).
        - `sku`: the product's SKU and its base variant's (option variants get `{sku}-{n}`). BigCommerce
          itself refuses a duplicate SKU; the simulator takes one, so the suite can check that identity
          never rests on a SKU.
        - `barcode`: the UPC field of the product and of its base variant, as given (a bad check digit
          too); the GTIN field is cleared.
        - `variants=N`: exactly N variants defined by options (Color, Size, Style), all purchasable,
          with distinct ids and option values, and no base variant of their own; 0 makes a product
          without options. Without it, `sku`, `barcode` and `bare` make a product without options.
        - `bare=True`: only what BigCommerce requires (name, type, weight, price): no description, SKU,
          UPC / MPN / GTIN, categories, brand, search keywords, images, custom fields, sale or retail price.
        - `private_text`: kept where BigCommerce keeps internal data, which is never synced: the bin
          picking number of the product and of each variant, and an app-only product metafield.
        """
        fields = dict(fields)
        bare = bool(fields.pop("bare", False))
        count = fields.pop("variants", None)
        barcode = fields.pop("barcode", None)
        private_text = fields.pop("private_text", None)
        if count is None and (bare or barcode is not None or "sku" in fields):
            count = 0
        product_id = self.catalog.next_id
        rng = random.Random(f"bigcommerce-created:{self.seed}:{product_id}")
        product = self.catalog.new_product(rng, product_id)
        stamp = self._tick()
        product["date_created"] = product["date_modified"] = iso(stamp)
        if bare:
            strip_optional(product)
        if count is not None:
            set_variants(product, count, rng)
        self._apply(product, fields)
        self._apply_contract(product, fields, barcode, private_text)
        if private_text is not None:
            self.metafields[product_id] = [_metafield(product_id, str(private_text), iso(stamp))]
        self.catalog.add(product)
        self._fire("store/product/created", {"type": "product", "id": product_id}, stamp)
        return str(product_id)

    @staticmethod
    def _apply_contract(product: dict[str, Any], fields: dict[str, Any], barcode: Any, private_text: Any) -> None:
        """What the contract's keywords mean beyond the product's own field (see create_product)."""
        base_id = product.get("base_variant_id")
        variants: list[dict[str, Any]] = product.get("variants") or []
        if "sku" in fields:
            sku = str(fields["sku"] or "")
            for n, variant in enumerate(variants, start=1):
                variant["sku"] = sku if variant["id"] == base_id or not sku else f"{sku}-{n}"
        if "price" in fields:
            price = product["price"]
            product.update(sale_price=0, retail_price=0, calculated_price=price)
            for variant in variants:
                variant.update(price=price, sale_price=None, retail_price=None, calculated_price=price)
        if barcode is not None:
            product.update(upc=str(barcode), gtin="")
            for variant in variants:
                if variant["id"] == base_id:
                    variant.update(upc=str(barcode), gtin="")
        if private_text is not None:
            product["bin_picking_number"] = str(private_text)
            for variant in variants:
                variant["bin_picking_number"] = str(private_text)

    def update_product(self, external_id: str, **changes: Any) -> None:
        product_id = int(external_id)
        product = self.catalog.get(product_id)
        if not changes:
            name = str(product["name"]).split(" · edit ")[0]
            self._edits += 1
            changes = {"name": f"{name} · edit {self._edits}", "price": round(float(product["price"]) + 1, 2)}
        self._apply(product, changes)
        stamp = self._tick()
        self.catalog.touch(product_id, stamp)
        self._fire("store/product/updated", {"type": "product", "id": product_id}, stamp)
        if "inventory_level" in product and any(ALIASES.get(k, k) == "inventory_level" for k in changes):
            inventory = {"product_id": product_id, "method": "absolute", "value": product["inventory_level"]}
            self._fire(
                "store/product/inventory/updated", {"type": "product", "id": product_id, "inventory": inventory}, stamp
            )

    def delete_product(self, external_id: str) -> None:
        product_id = int(external_id)
        if product_id not in self.catalog:
            raise KeyError(external_id)
        self.catalog.remove(product_id)
        self.metafields.pop(product_id, None)
        self._fire("store/product/deleted", {"type": "product", "id": product_id}, self._tick())

    # ---- variant-only edits (no date_modified change, store/sku/* events) ---------------------
    def update_variant_inventory(self, external_id: str, variant_id: int | None = None, level: int = 0) -> int:
        """Set one variant's stock like an inventory adjustment; return the variant id."""
        product = self.catalog.get(int(external_id))
        variant = self._variant(product, variant_id)
        variant["inventory_level"] = int(level)
        if product.get("inventory_tracking") == "variant":
            product["inventory_level"] = sum(int(v.get("inventory_level") or 0) for v in product["variants"])
        inventory = {
            "product_id": product["id"],
            "method": "absolute",
            "value": int(level),
            "variant_id": variant["id"],
        }
        self._fire(
            "store/sku/inventory/updated",
            {"type": "sku", "id": variant["sku_id"], "inventory": inventory},
            self._tick(),
        )
        return int(variant["id"])

    def update_variant(self, external_id: str, variant_id: int | None = None, **changes: Any) -> int:
        """Edit one variant's fields (price, sku...); return the variant id."""
        product = self.catalog.get(int(external_id))
        variant = self._variant(product, variant_id)
        for key, value in changes.items():
            variant[key] = value
        if "price" in changes or "sale_price" in changes:
            own = variant.get("price")
            sale = variant.get("sale_price")
            if own is not None:
                variant["calculated_price"] = sale if sale and 0 < sale < own else own
        sku = {"product_id": product["id"], "variant_id": variant["id"]}
        self._fire("store/sku/updated", {"type": "sku", "id": variant["sku_id"], "sku": sku}, self._tick())
        return int(variant["id"])

    @staticmethod
    def _variant(product: dict[str, Any], variant_id: int | None) -> dict[str, Any]:
        variant: dict[str, Any]
        for variant in product["variants"]:
            if variant_id is None or variant["id"] == variant_id:
                return variant
        raise KeyError(variant_id)

    # ---- clock, edits, deliveries ------------------------------------------------------------
    def _tick(self) -> int:
        """The simulated clock: whole seconds, never behind the wall clock, +1 s per change."""
        self._last_stamp = max(math.ceil(time.time()), self._last_stamp + 1)
        return self._last_stamp

    @staticmethod
    def _apply(product: dict[str, Any], fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            key = ALIASES.get(key, key)
            if key in CONTRACT_KEYWORDS:
                raise ValueError(f"{key}= is a create_product keyword; it cannot edit a product")
            if key == "tags":  # BigCommerce keeps tag-like keywords in one comma-separated field
                key, value = "search_keywords", value if isinstance(value, str) else ", ".join(value)
            if key in ("price", "sale_price", "retail_price") and value is not None:
                value = float(value)
            if key == "inventory_level":
                value = int(value)
            product[key] = value
        price = float(product.get("price") or 0)
        sale = float(product.get("sale_price") or 0)
        product["calculated_price"] = sale if 0 < sale < price else price
        base_id = product.get("base_variant_id")
        for variant in product.get("variants") or []:
            if variant["id"] == base_id:
                variant.update(
                    price=product["price"],
                    sale_price=product.get("sale_price"),
                    calculated_price=product["calculated_price"],
                )
                if product.get("inventory_tracking") == "product":
                    variant["inventory_level"] = product.get("inventory_level", 0)

    def _fire(self, scope: str, data: dict[str, Any], stamp: int) -> None:
        payload: dict[str, Any] = {
            "scope": scope,
            "store_id": self.store_id,
            "data": data,
            "created_at": stamp,
            "producer": f"stores/{self.store_hash}",
        }
        payload["hash"] = hashlib.sha1(json.dumps(payload, sort_keys=True).encode(), usedforsecurity=False).hexdigest()
        body = json.dumps(payload).encode()
        for hook in list(self.hooks.values()):
            if isinstance(hook, BigCommerceHook) and not hook.is_active:
                continue
            if _scope_matches(hook.topic, scope):
                self.deliver_with_retries(
                    hook.destination,
                    body,
                    {"Content-Type": "application/json", **hook.headers},
                    schedule=self.hook_retry_schedule,
                    on_give_up=functools.partial(self._deactivate, hook.id),
                )

    def _deactivate(self, hook_id: str) -> None:
        """What BigCommerce does after the last retry of a delivery failed."""
        hook = self.hooks.get(hook_id)
        if isinstance(hook, BigCommerceHook):
            hook.is_active = False
            hook.updated_at = int(time.time())

    # ---- rate limit --------------------------------------------------------------------------
    def _spend(self) -> tuple[bool, dict[str, str]]:
        now = self.clock()
        window = self.window_ms / 1000
        if self._window_start is None or now >= self._window_start + window:
            self._window_start, self._used, self._others_used = now, 0, 0
        elapsed = now - self._window_start
        others_target = int(self.other_apps_share * self.quota * elapsed / window)
        self._others_used = max(self._others_used, min(others_target, self.quota - self._used))
        left = self.quota - self._used - self._others_used
        allowed = left > 0
        if allowed:
            self._used += 1
            left -= 1
            self.peak_used = max(self.peak_used, self._used + self._others_used)
        else:
            self.rate_limited += 1
        reset_ms = max(1, math.ceil((self._window_start + window - now) * 1000))
        headers = {
            "X-Rate-Limit-Time-Window-Ms": str(self.window_ms),
            "X-Rate-Limit-Time-Reset-Ms": str(reset_ms),
            "X-Rate-Limit-Requests-Quota": str(self.quota),
            "X-Rate-Limit-Requests-Left": str(max(0, left)),
        }
        if not allowed:
            headers["X-Retry-After"] = str(math.ceil(reset_ms / 1000))
        return allowed, headers

    @web.middleware
    async def _api_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith("/stores/"):
            return await handler(request)
        if request.match_info.get("store_hash") != self.store_hash:
            return error(404, "Store not found")
        if not self.app.accepts(request.headers.get("X-Auth-Token")):
            if self.plain_401:
                return web.Response(status=401, text=UNAUTHORIZED, content_type="text/plain")
            return error(401, UNAUTHORIZED)
        allowed, headers = self._spend()
        if not allowed:
            response: web.StreamResponse = error(429, "Too many requests")
        else:
            try:
                response = await handler(request)
            except BadRequest as exc:
                response = error(422, "JSON data is missing or invalid", query=str(exc))
        response.headers.update(headers)
        return response

    # ---- routes ------------------------------------------------------------------------------
    def build_routes(self, app: web.Application) -> None:
        app.middlewares.append(self._api_middleware)
        self.app.routes(app)
        v3 = "/stores/{store_hash}/v3"
        app.router.add_get(v3 + "/catalog/products", self._list_products)
        app.router.add_get(v3 + "/catalog/products/{id}", self._get_product)
        app.router.add_get(v3 + "/catalog/products/{id}/variants", self._list_variants)
        app.router.add_get(v3 + "/catalog/products/{id}/metafields", self._list_metafields)
        app.router.add_get(v3 + "/catalog/categories", self._list_categories)
        app.router.add_get(v3 + "/catalog/brands", self._list_brands)
        app.router.add_get(v3 + "/hooks", self._list_hooks)
        app.router.add_post(v3 + "/hooks", self._create_hook)
        app.router.add_get(v3 + "/hooks/{id}", self._get_hook)
        app.router.add_put(v3 + "/hooks/{id}", self._update_hook)
        app.router.add_delete(v3 + "/hooks/{id}", self._delete_hook)
        app.router.add_get("/stores/{store_hash}/v2/store", self._store_info)
        app.router.add_post("/_sim/products/{id}/variants/{variant_id}/inventory", self._control_inventory)

    async def _list_products(self, request: web.Request) -> web.Response:
        query = request.query
        include = set(filter(None, query.get("include", "").split(",")))
        fields = set(filter(None, query.get("include_fields", "").split(",")))
        ids = self._filter_products(query)
        page_ids, meta = _paginate(ids, query)
        data = [self._serve(self.catalog.get(i), include, fields) for i in page_ids]
        return web.json_response({"data": data, "meta": meta})

    def _filter_products(self, query: Any) -> list[int]:
        catalog = self.catalog
        ids: Iterable[int] = catalog.ids()
        if "id:in" in query:
            wanted = {_int(v, "id:in") for v in query["id:in"].split(",") if v.strip()}
            ids = [i for i in ids if i in wanted]
        low = max([_int(query[k], k) + (k == "id:greater") for k in ("id:greater", "id:min") if k in query], default=-1)
        high = min([_int(query[k], k) - (k == "id:less") for k in ("id:less", "id:max") if k in query], default=2**63)
        if low >= 0 or high < 2**63:
            ids = [i for i in ids if low <= i <= high]
        if "date_modified:min" in query:
            since = _epoch(query["date_modified:min"])
            ids = [i for i in ids if catalog.modified_at(i) >= since]
        if "date_modified:max" in query:
            until = _epoch(query["date_modified:max"])
            ids = [i for i in ids if catalog.modified_at(i) <= until]
        if "is_visible" in query:
            visible = query["is_visible"] in ("true", "1")
            ids = [i for i in ids if bool(catalog.get(i).get("is_visible")) == visible]
        ids = list(ids)
        sort = query.get("sort", "id")
        if sort not in SORTABLE:
            raise BadRequest(f"sort must be one of {', '.join(SORTABLE)}")
        if sort == "date_modified":
            ids.sort(key=lambda i: (catalog.modified_at(i), i))
        elif sort != "id":
            ids.sort(key=lambda i: (catalog.get(i).get(sort) or 0, i))
        if query.get("direction", "asc") == "desc":
            ids.reverse()
        return ids

    def _serve(self, product: dict[str, Any], include: set[str], fields: set[str]) -> dict[str, Any]:
        out = {k: v for k, v in product.items() if k not in ("variants", "images", "custom_fields") or k in include}
        if fields:
            out = {k: v for k, v in out.items() if k == "id" or k in fields or k in include}
        if str(product["id"]) in self.faults.plan.malformed_ids:
            if product["id"] % 2:
                out["price"] = "abc"
            else:
                out.pop("name", None)
        return out

    async def _get_product(self, request: web.Request) -> web.Response:
        product_id = _int(request.match_info["id"], "id")
        if product_id not in self.catalog:
            return error(404, "The requested product was not found.")
        include = set(filter(None, request.query.get("include", "").split(",")))
        fields = set(filter(None, request.query.get("include_fields", "").split(",")))
        return web.json_response({"data": self._serve(self.catalog.get(product_id), include, fields), "meta": {}})

    async def _list_variants(self, request: web.Request) -> web.Response:
        product_id = _int(request.match_info["id"], "id")
        if product_id not in self.catalog:
            return error(404, "The requested product was not found.")
        variants = self.catalog.get(product_id)["variants"]
        page, meta = _paginate(list(range(len(variants))), request.query)
        return web.json_response({"data": [variants[i] for i in page], "meta": meta})

    async def _list_metafields(self, request: web.Request) -> web.Response:
        product_id = _int(request.match_info["id"], "id")
        if product_id not in self.catalog:
            return error(404, "The requested product was not found.")
        metafields = self.metafields.get(product_id, [])
        page, meta = _paginate(list(range(len(metafields))), request.query)
        return web.json_response({"data": [metafields[i] for i in page], "meta": meta})

    async def _list_categories(self, request: web.Request) -> web.Response:
        return _list_by_id(self.catalog.categories, request.query)

    async def _list_brands(self, request: web.Request) -> web.Response:
        return _list_by_id(self.catalog.brands, request.query)

    async def _store_info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "id": self.store_hash,
                "domain": f"{self.store_hash}.example.test",
                "secure_url": self.base_url,
                "name": "Simulated BigCommerce Store",
                "currency": self.currency,
                "currency_symbol": "$",
                "language": "en",
                "plan_name": "Standard",
                "plan_level": "Standard",
                "status": "live",
            }
        )

    # ---- hooks -------------------------------------------------------------------------------
    def _hook_json(self, hook: Hook) -> dict[str, Any]:
        meta = hook if isinstance(hook, BigCommerceHook) else BigCommerceHook(hook.id, hook.topic, "")
        return {
            "id": int(hook.id),
            "client_id": "sim-client",
            "store_hash": self.store_hash,
            "scope": hook.topic,
            "destination": hook.destination,
            "headers": hook.headers or None,
            "is_active": meta.is_active,
            "created_at": meta.created_at,
            "updated_at": meta.updated_at,
        }

    async def _list_hooks(self, request: web.Request) -> web.Response:
        query = request.query
        hooks = [
            h
            for h in self.hooks.values()
            if ("scope" not in query or h.topic == query["scope"])
            and ("destination" not in query or h.destination == query["destination"])
        ]
        keys = list(range(len(hooks)))
        page, meta = _paginate(keys, query)
        return web.json_response({"data": [self._hook_json(hooks[i]) for i in page], "meta": meta})

    async def _create_hook(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        scope, destination = body.get("scope"), body.get("destination")
        if scope not in KNOWN_SCOPES:
            return error(422, "JSON data is missing or invalid", scope="error.path.invalid")
        if not isinstance(destination, str) or not destination:
            return error(422, "JSON data is missing or invalid", destination="error.path.missing")
        if any(h.topic == scope and h.destination == destination for h in self.hooks.values()):
            return error(
                422,
                "JSON data is missing or invalid",
                destination="a webhook for this scope and destination already exists",
            )
        self._hook_ids += 1
        now = int(time.time())
        hook = BigCommerceHook(
            str(self._hook_ids),
            scope,
            destination,
            headers=dict(body.get("headers") or {}),
            is_active=bool(body.get("is_active", True)),
            created_at=now,
            updated_at=now,
        )
        self.hooks[hook.id] = hook
        return web.json_response({"data": self._hook_json(hook), "meta": {}})

    def _find_hook(self, request: web.Request) -> BigCommerceHook | web.Response:
        hook = self.hooks.get(request.match_info["id"])
        if not isinstance(hook, BigCommerceHook):
            return error(404, f"Webhook with id [{request.match_info['id']}] not found")
        return hook

    async def _get_hook(self, request: web.Request) -> web.Response:
        hook = self._find_hook(request)
        if isinstance(hook, web.Response):
            return hook
        return web.json_response({"data": self._hook_json(hook), "meta": {}})

    async def _update_hook(self, request: web.Request) -> web.Response:
        hook = self._find_hook(request)
        if isinstance(hook, web.Response):
            return hook
        body = await _json_object(request)
        if "headers" in body:
            hook.headers = dict(body["headers"] or {})
        if "is_active" in body:
            hook.is_active = bool(body["is_active"])
        if "destination" in body:
            hook.destination = str(body["destination"])
        if "scope" in body:
            hook.topic = str(body["scope"])
        hook.updated_at = int(time.time())
        return web.json_response({"data": self._hook_json(hook), "meta": {}})

    async def _delete_hook(self, request: web.Request) -> web.Response:
        hook = self._find_hook(request)
        if isinstance(hook, web.Response):
            return hook
        del self.hooks[hook.id]
        return web.json_response({"data": self._hook_json(hook), "meta": {}})

    async def _control_inventory(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        variant = self.update_variant_inventory(
            request.match_info["id"], int(request.match_info["variant_id"]), int(body.get("level", 0))
        )
        return web.json_response({"ok": True, "variant_id": variant})


# ---- helpers ---------------------------------------------------------------------------------
def _scope_matches(registered: str, scope: str) -> bool:
    if registered.endswith("/*"):
        return scope.startswith(registered[:-1])
    return registered == scope


def _metafield(product_id: int, value: str, stamp: str) -> dict[str, Any]:
    """A product metafield only the app that wrote it can read (permission_set app_only)."""
    return {
        "id": product_id * 10,
        "key": PRIVATE_KEY,
        "value": value,
        "namespace": PRIVATE_NAMESPACE,
        "permission_set": "app_only",
        "resource_type": "product",
        "resource_id": product_id,
        "description": "",
        "owner_client_id": "sim-client",
        "date_created": stamp,
        "date_modified": stamp,
    }


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None


def _epoch(raw: str) -> float:
    """A date filter value; a date without a time gets the current time, as BigCommerce does."""
    try:
        if len(raw) == 10:
            day = datetime.fromisoformat(raw).date()
            return datetime.combine(day, datetime.now(UTC).timetz()).timestamp()
        parsed = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        raise BadRequest(f"{raw!r} is not a date") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _paginate(items: list[int], query: Any) -> tuple[list[int], dict[str, Any]]:
    limit = min(250, max(1, _int(query.get("limit", "50"), "limit")))
    page = max(1, _int(query.get("page", "1"), "page"))
    total = len(items)
    pages = math.ceil(total / limit)
    chunk = items[(page - 1) * limit : page * limit]

    def link(number: int) -> str:
        params = {k: v for k, v in query.items() if k not in ("page", "limit")}
        return "?" + urlencode({**params, "page": number, "limit": limit}, safe=":,")

    links = {"current": link(page)}
    if page > 1:
        links["previous"] = link(page - 1)
    if page < pages:
        links["next"] = link(page + 1)
    meta = {
        "pagination": {
            "total": total,
            "count": len(chunk),
            "per_page": limit,
            "current_page": page,
            "total_pages": pages,
            "links": links,
        }
    }
    return chunk, meta


def _list_by_id(rows: dict[int, dict[str, Any]], query: Any) -> web.Response:
    ids = sorted(rows)
    if "id:in" in query:
        wanted = {_int(v, "id:in") for v in query["id:in"].split(",") if v.strip()}
        ids = [i for i in ids if i in wanted]
    page, meta = _paginate(ids, query)
    return web.json_response({"data": [rows[i] for i in page], "meta": meta})


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body
