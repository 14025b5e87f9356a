"""A simulated WooCommerce store: the wc/v3 endpoints the plugin uses, with WooCommerce's quirks.

Served under {store_url}/wp-json/wc/v3/:
    GET  /products                      page/per_page (1-100, else 400 rest_invalid_param), offset,
                                        orderby id|date|modified|title|include, order, status,
                                        include, modified_after/modified_before/after/before (+
                                        dates_are_gmt), X-WP-Total, X-WP-TotalPages, Link
    GET  /products/{id}                 404 woocommerce_rest_product_invalid_id
    GET  /products/{id}/variations      paged like /products; /variations/{vid} too
    `_fields` (WordPress's global parameter) limits product and variation responses to the named
    top-level fields.
    GET  /settings/general[/{id}]       woocommerce_currency and friends
    GET/POST /webhooks, GET/PUT/DELETE /webhooks/{id}   (DELETE needs force=true, as in core)

Auth: HTTP Basic, or `consumer_key`/`consumer_secret` query parameters (accepted over plain HTTP
here, unlike a real store, which wants OAuth1 there). Failures answer 401 in WooCommerce's error
shape {"code", "message", "data": {"status"}}: an unknown (or revoked) key runs as an anonymous
request, so it gets the endpoint's own refusal ("Sorry, you cannot list resources."); a known key with
the wrong secret gets "Consumer secret is invalid."; a `read` key writing gets "does not have write
permissions". Keys come from the constructor (`consumer_key`/`consumer_secret`, read_write) or from
key approval (sim_install.py: `/wc-auth/v1/authorize`).

Behaviour worth knowing when testing against it:
- Dates are stored in GMT; the site's local time is GMT-3, so `date_modified` differs from
  `date_modified_gmt`, and `modified_after` without `dates_are_gmt=true` compares local time.
- Every change advances a simulated clock by at least one second, so date_modified_gmt is strictly
  increasing across changes and `modified_after` never misses one made in the same wall-clock second.
- Deleting a product trashes it (status "trash"), as WooCommerce does without force=true: it leaves
  listings (status "any" excludes trash) but GET /products/{id} still returns it.
- Webhook deliveries carry every X-WC-Webhook-* header; the Delivery-ID is a hash of the webhook id
  and the current second, as in core, so it repeats within a second. Creating a hook sends the
  unsigned form-encoded ping `webhook_id=<id>`. Failed deliveries (no answer, or anything but
  200-302) are counted per hook as in core: on the 7th in a row the hook's status becomes `disabled`;
  a success resets the count; nothing is redelivered.
- FaultPlan.malformed_ids serve those products broken (a non-numeric regular price, or no name).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import urlsplit

from aiohttp import web

from alana_woocommerce.catalog import (
    API,
    CATEGORY_TERMS,
    TAG_TERMS,
    CatalogBuilder,
    apply_pricing,
    local_date,
    price_text,
    sync_variable_parent,
    wc_date,
)
from alana_woocommerce.sim_install import WooAuthSide, query_of
from gateway.simkit import Hook, ScreenError, Simulator

log = logging.getLogger(__name__)

PREFIX = "/wp-json/wc/v3"
USER_AGENT = "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)"
VALID_TOPIC = re.compile(r"^(product|order|coupon|customer)\.(created|updated|deleted|restored)$|^action\.\w+$")
ORDERBY = ("date", "id", "include", "title", "slug", "modified")
ALIASES = {"title": "name", "price": "regular_price", "barcode": "global_unique_id"}
#: woocommerce_max_webhook_delivery_failures: a hook is disabled when a failure finds more than this many.
MAX_DELIVERY_FAILURES = 5
#: What an anonymous request is told, by method (the REST controllers' permission checks).
ANONYMOUS = {
    "GET": ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources."),
    "POST": ("woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources."),
    "PUT": ("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource."),
    "DELETE": ("woocommerce_rest_cannot_delete", "Sorry, you are not allowed to delete this resource."),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WCError(Exception):
    """An error answered in WooCommerce's shape."""

    def __init__(self, status: int, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.data = data

    def response(self) -> web.Response:
        return web.json_response(
            {"code": self.code, "message": self.message, "data": {"status": self.status, **self.data}},
            status=self.status,
        )


class WooCommerceSimulator(Simulator):
    """A WooCommerce store with a seeded catalog; see the module docstring for what it serves.

    Options: currency ("USD"), big_variations (True or a count >= 101: one product with that many
    variations), variable_share (1/3), variation_range ((3, 10)), examples (True: include the official
    example products).
    """

    platform = "woocommerce"
    #: The create_product keywords of the conformance suite's simulator contract honoured here.
    conformance_fields = frozenset({"title", "price", "sku", "barcode", "variants", "bare", "private_text"})
    #: How the conformance suite drives this plugin, wherever it runs (`pytest --gateway-platform` too).
    conformance_options: ClassVar[dict[str, Any]] = {
        # 10 products a listing page, so the suite's catalog spans several pages and cursors get resumed.
        "connection_options": {"per_page": 10},
        "catalog_size": 40,
    }
    #: How the install-flow checks drive it: the gateway under test listens on http://127.0.0.1.
    install_conformance_options: ClassVar[dict[str, Any]] = {"insecure_callbacks": True}

    def __init__(self, products: int = 100, *, seed: int = 1, **options: Any) -> None:
        super().__init__(products, seed=seed, **options)
        self.currency = str(options.get("currency", "USD")).upper()
        big = options.get("big_variations", 0)
        self.builder = CatalogBuilder(
            seed,
            variable_share=float(options.get("variable_share", 1 / 3)),
            variation_range=_range(options.get("variation_range", (3, 10))),
            big_variations=(125 if big is True else int(big or 0)),
            examples=bool(options.get("examples", True)),
        )
        self.catalog = self.builder.build(products)
        self.products = self.catalog.products
        self.variations = self.catalog.variations
        self._clock = self.catalog.latest_modified
        token = hashlib.sha256(f"woo-sim-{seed}".encode()).hexdigest()
        self.consumer_key = f"ck_{token[:40]}"
        self.consumer_secret = f"cs_{token[24:64]}"
        self._salt = token.encode()
        # Serialized payloads by (id, _fields): built on first request, dropped when the item changes.
        self._cache: dict[tuple[int, str], bytes] = {}
        self._vcache: dict[tuple[int, str], bytes] = {}
        self._fields_seen: set[str] = {""}
        self._order_cache: dict[tuple[Any, ...], list[int]] = {}
        self._version = 0
        self._hook_meta: dict[str, dict[str, Any]] = {}
        self._next_hook = 1
        self.edits = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.auth = WooAuthSide(self, options)
        #: Whether the constructor's key still works (revoke_credentials deletes it).
        self.static_key_valid = True

    # ---- Simulator contract ------------------------------------------------------------------------
    def credentials(self) -> dict[str, str]:
        return {"consumer_key": self.consumer_key, "consumer_secret": self.consumer_secret}

    # ---- key approval (sim_install.py) ---------------------------------------------------------------
    async def connect_decision(self, authorize_url: str, approve: bool) -> str | None:
        if urlsplit(authorize_url).path != "/wc-auth/v1/authorize":
            raise ScreenError(f"not a WooCommerce authorize URL: {urlsplit(authorize_url).path}", status=404)
        return await self.auth.decide(query_of(authorize_url), approve)

    def revoke_credentials(self) -> None:
        """Every key is revoked (deleted in WooCommerce > Settings > Advanced > REST API)."""
        self.static_key_valid = False
        self.auth.revoke()

    def product_ids(self) -> list[str]:
        return [str(pid) for pid, p in self.products.items() if p.get("status") != "trash"]

    def create_product(self, **fields: Any) -> str:
        """Add a published product and fire product.created; returns its id.

        Besides raw wc/v3 product fields (name=, regular_price=, ...), the conformance keywords:
        title, price (regular price of the product or of every variation, no sale), sku, barcode (stored
        raw in global_unique_id), variants=N (a variable product with N published variations),
        bare=True (no description, images, SKU, barcode, brands, tags, categories, sale price or public
        meta) and private_text (stored in purchase_note and in a private "_" meta_data entry).
        """
        count = int(fields.pop("variants", fields.pop("variation_count", 0)) or 0)
        if count < 0:
            raise ValueError(f"variants must be at least 0, got {count}")
        bare = bool(fields.pop("bare", False))
        private_text = fields.pop("private_text", None)
        created = datetime.fromtimestamp(self._tick(), UTC)
        product, variations = self.builder.product(self.catalog, variation_count=count, created=created)
        product["status"] = "publish"
        for item in [product, *(variations or [])]:
            item["date_modified_gmt"] = item["date_created_gmt"] = wc_date(created)
            item["date_modified"] = item["date_created"] = local_date(created)
            if item is not product:
                item["status"] = "publish"  # every requested variation is visible
        self.products[product["id"]] = product
        if variations is not None:
            self.variations[product["id"]] = variations
        try:
            if bare:
                _strip_optional(product, variations or [])
            if private_text is not None:
                self._add_private_text(product, str(private_text))
            self._apply(product, fields)
            if "price" in fields or "regular_price" in fields:
                for item in variations or [product]:  # a price given is the price paid: no sale
                    _clear_sale(item)
            if variations:
                _spread_identifiers(product, variations, fields)
                sync_variable_parent(product, variations)
        except (ValueError, TypeError):
            del self.products[product["id"]]
            self.variations.pop(product["id"], None)
            raise
        self._changed(product["id"])
        self._fire("product.created", self._product_bytes(product["id"]))
        return str(product["id"])

    def update_product(self, external_id: str, **changes: Any) -> None:
        pid = self._existing(external_id)
        product = self.products[pid]
        moment = datetime.fromtimestamp(self._tick(), UTC)
        if changes:
            self._apply(product, changes)
        else:
            self._default_edit(product)
        product["date_modified_gmt"] = wc_date(moment)
        product["date_modified"] = local_date(moment)
        self._changed(pid)
        self._fire("product.updated", self._product_bytes(pid))

    def delete_product(self, external_id: str) -> None:
        pid = self._existing(external_id)
        product = self.products[pid]
        if product.get("status") == "trash":
            raise KeyError(f"product {external_id} is already deleted")
        product["status"] = "trash"
        moment = datetime.fromtimestamp(self._tick(), UTC)
        product["date_modified_gmt"] = wc_date(moment)
        product["date_modified"] = local_date(moment)
        self._changed(pid)
        self._fire("product.deleted", json.dumps({"id": pid}).encode())

    # ---- catalog changes ---------------------------------------------------------------------------
    def _existing(self, external_id: str) -> int:
        try:
            pid = int(external_id)
        except ValueError:
            raise KeyError(f"no product {external_id!r}") from None
        if pid not in self.products:
            raise KeyError(f"no product {external_id!r}")
        return pid

    def _tick(self) -> int:
        # Strictly increasing, so every change is visible to modified_after, even within one second.
        self._clock = max(int(time.time()), self._clock + 1)
        return self._clock

    def _changed(self, pid: int) -> None:
        for fields in self._fields_seen:
            self._cache.pop((pid, fields), None)
            for variation in self.variations.get(pid, ()):
                self._vcache.pop((variation["id"], fields), None)
        self._version += 1
        self._order_cache.clear()

    def _default_edit(self, product: dict[str, Any]) -> None:
        self.edits += 1
        base = re.sub(r" \(edit \d+\)$", "", product["name"])
        product["name"] = f"{base} (edit {self.edits})"
        variations = self.variations.get(product["id"])
        if variations:
            self._reprice(variations[0], "regular_price", _bump(variations[0].get("regular_price")))
            sync_variable_parent(product, variations)
        else:
            self._reprice(product, "regular_price", _bump(product.get("regular_price")))

    def _reprice(self, item: dict[str, Any], key: str, value: Any) -> None:
        item[key] = "" if value in (None, "") else str(value)
        apply_pricing(item, datetime.now(UTC))
        if item.get("type") == "variation":
            moment = datetime.fromtimestamp(self._clock, UTC)
            item["date_modified_gmt"] = wc_date(moment)
            item["date_modified"] = local_date(moment)

    def _add_private_text(self, product: dict[str, Any], text: str) -> None:
        """Text in every never-synced field: the purchase note and private ("_"-prefixed) meta."""
        product["purchase_note"] = text
        product["meta_data"] = [
            *product.get("meta_data", []),
            {"id": self.builder.take_id(self.catalog), "key": "_internal_note", "value": text},
        ]

    def _apply(self, product: dict[str, Any], changes: dict[str, Any]) -> None:
        unknown = [k for k in changes if ALIASES.get(k, k) not in product]
        if unknown:  # checked first, so a bad call changes nothing
            raise ValueError(f"unknown WooCommerce product field(s): {', '.join(map(repr, unknown))}")
        variations = self.variations.get(product["id"])
        for raw_key, value in changes.items():
            key = ALIASES.get(raw_key, raw_key)
            if key in ("regular_price", "sale_price"):
                for item in variations or [product]:
                    self._reprice(item, key, value)
            elif key in ("categories", "tags") and isinstance(value, list):
                pool = {t["name"]: t for t in (CATEGORY_TERMS if key == "categories" else TAG_TERMS)}
                product[key] = [
                    dict(pool.get(n, {"id": 900 + i, "name": n, "slug": _slug(n)})) if isinstance(n, str) else n
                    for i, n in enumerate(value)
                ]
            elif key == "images" and isinstance(value, list):
                product[key] = [
                    {"id": 9000 + i, "src": src, "name": "", "alt": ""} if isinstance(src, str) else src
                    for i, src in enumerate(value)
                ]
            elif key in product:
                product[key] = value
            else:
                raise ValueError(f"unknown WooCommerce product field {raw_key!r}")
        if "stock_quantity" in changes and product.get("manage_stock") is True and "stock_status" not in changes:
            quantity = int(product.get("stock_quantity") or 0)
            product["stock_status"] = (
                "instock" if quantity > 0 else "onbackorder" if product.get("backorders") != "no" else "outofstock"
            )
        if variations:
            sync_variable_parent(product, variations)

    # ---- serialization -----------------------------------------------------------------------------
    def _product_bytes(self, pid: int, fields: str = "") -> bytes:
        if str(pid) in self.faults.plan.malformed_ids:
            return _dumps(_only(_broken(self.products[pid]), fields))
        cached = self._cache.get((pid, fields))
        if cached is None:
            cached = self._cache[(pid, fields)] = _dumps(_only(self.products[pid], fields))
        return cached

    def _variation_bytes(self, variation: dict[str, Any], fields: str = "") -> bytes:
        cached = self._vcache.get((variation["id"], fields))
        if cached is None:
            cached = self._vcache[(variation["id"], fields)] = _dumps(_only(variation, fields))
        return cached

    # ---- HTTP ----------------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = super().build_app()
        app.middlewares.insert(0, self._track)
        return app

    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    def build_routes(self, app: web.Application) -> None:
        api = self._api
        app.router.add_get(f"{PREFIX}/products", api(self._list_products))
        app.router.add_get(PREFIX + r"/products/{id:\d+}", api(self._get_product))
        app.router.add_get(PREFIX + r"/products/{id:\d+}/variations", api(self._list_variations))
        app.router.add_get(PREFIX + r"/products/{id:\d+}/variations/{vid:\d+}", api(self._get_variation))
        app.router.add_get(f"{PREFIX}/settings/general", api(self._settings))
        app.router.add_get(PREFIX + "/settings/general/{setting}", api(self._setting))
        app.router.add_get(f"{PREFIX}/webhooks", api(self._list_hooks))
        app.router.add_post(f"{PREFIX}/webhooks", api(self._create_hook))
        app.router.add_get(PREFIX + r"/webhooks/{id:\d+}", api(self._get_hook))
        app.router.add_put(PREFIX + r"/webhooks/{id:\d+}", api(self._update_hook))
        app.router.add_delete(PREFIX + r"/webhooks/{id:\d+}", api(self._delete_hook))
        app.router.add_route("*", "/wp-json/{tail:.*}", self._no_route)
        self.auth.routes(app)

    def _api(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                self._authenticate(request)
                return await handler(request)
            except WCError as exc:
                return exc.response()

        return wrapped

    async def _no_route(self, request: web.Request) -> web.StreamResponse:
        return WCError(404, "rest_no_route", "No route was found matching the URL and request method.").response()

    def _authenticate(self, request: web.Request) -> None:
        key = secret = None
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                key = secret = ""
        elif "consumer_key" in request.query:
            key, secret = request.query.get("consumer_key", ""), request.query.get("consumer_secret", "")
        anonymous = WCError(401, *ANONYMOUS.get(request.method, ANONYMOUS["GET"]))
        if not key:
            raise anonymous
        if self.static_key_valid and hmac.compare_digest(key.encode(), self.consumer_key.encode()):
            expected, permissions = self.consumer_secret, "read_write"
        else:
            issued = self.auth.key(key)
            if issued is None:
                # WooCommerce finds no user for the key and runs the request anonymously.
                raise anonymous
            expected, permissions = issued.consumer_secret, issued.permissions
        if not hmac.compare_digest((secret or "").encode(), expected.encode()):
            raise WCError(401, "woocommerce_rest_authentication_error", "Consumer secret is invalid.")
        writing = request.method in ("POST", "PUT", "PATCH", "DELETE")
        if writing and permissions not in ("write", "read_write"):
            raise WCError(
                401, "woocommerce_rest_authentication_error", "The API key provided does not have write permissions."
            )
        if not writing and permissions not in ("read", "read_write"):
            raise WCError(
                401, "woocommerce_rest_authentication_error", "The API key provided does not have read permissions."
            )

    # ---- products ----------------------------------------------------------------------------------
    async def _list_products(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        per_page = _int_param(query, "per_page", 10, 1, 100)
        page = _int_param(query, "page", 1, 1)
        offset = _int_param(query, "offset", None, 0)
        orderby = query.get("orderby", "date")
        if orderby not in ORDERBY:
            raise _invalid("orderby", f"orderby is not one of {', '.join(ORDERBY)}.")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise _invalid("order", "order is not one of asc, desc.")
        ids = self._select(query, orderby, order)
        fields = self._fields(query)
        return self._paged(request, ids, per_page, page, offset, lambda pid: self._product_bytes(pid, fields))

    async def _get_product(self, request: web.Request) -> web.StreamResponse:
        pid = int(request.match_info["id"])
        if pid not in self.products:
            raise WCError(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
        return _json_bytes(self._product_bytes(pid, self._fields(request.query)))

    async def _list_variations(self, request: web.Request) -> web.StreamResponse:
        pid = int(request.match_info["id"])
        if pid not in self.products:
            raise WCError(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
        query = request.query
        per_page = _int_param(query, "per_page", 10, 1, 100)
        page = _int_param(query, "page", 1, 1)
        offset = _int_param(query, "offset", None, 0)
        orderby = query.get("orderby", "date")
        order = query.get("order", "desc")
        variations = list(self.variations.get(pid, ()))
        sort_key = _SORT_KEYS.get(orderby, _SORT_KEYS["date"])
        variations.sort(key=sort_key, reverse=(order == "desc"))
        by_id = {v["id"]: v for v in variations}
        fields = self._fields(query)
        return self._paged(
            request,
            [v["id"] for v in variations],
            per_page,
            page,
            offset,
            lambda vid: self._variation_bytes(by_id[vid], fields),
        )

    async def _get_variation(self, request: web.Request) -> web.StreamResponse:
        pid, vid = int(request.match_info["id"]), int(request.match_info["vid"])
        for variation in self.variations.get(pid, ()):
            if variation["id"] == vid:
                return _json_bytes(self._variation_bytes(variation, self._fields(request.query)))
        raise WCError(404, "woocommerce_rest_product_variation_invalid_id", "Invalid ID.")

    def _fields(self, query: Any) -> str:
        """The `_fields` parameter, normalized (WordPress's global response filter; "" = everything)."""
        fields = ",".join(sorted({f.strip() for f in query.get("_fields", "").split(",") if f.strip()}))
        self._fields_seen.add(fields)
        return fields

    def _select(self, query: Any, orderby: str, order: str) -> list[int]:
        include = [int(i) for i in re.split(r"[,\s]+", query.get("include", "")) if i.isdigit()]
        statuses = {s for s in query.get("status", "any").split(",") if s}
        gmt = query.get("dates_are_gmt", "false").lower() in ("1", "true")
        bounds = {name: _date_param(query, name) for name in ("modified_after", "modified_before", "after", "before")}
        cache_key = (tuple(include), tuple(sorted(statuses)), gmt, tuple(bounds.items()), orderby, order)
        cached = self._order_cache.get(cache_key)
        if cached is not None:
            return cached
        suffix = "_gmt" if gmt else ""
        pool = [self.products[i] for i in include if i in self.products] if include else self.products.values()
        chosen = []
        for product in pool:
            status = product.get("status")
            if "any" in statuses:
                if status == "trash":
                    continue
            elif status not in statuses:
                continue
            if not _in_bounds(product, bounds, suffix):
                continue
            chosen.append(product)
        if orderby == "include" and include:
            rank = {pid: n for n, pid in enumerate(include)}
            chosen.sort(key=lambda p: rank[p["id"]])
        else:
            chosen.sort(key=_SORT_KEYS.get(orderby, _SORT_KEYS["date"]), reverse=(order == "desc"))
        ids = [p["id"] for p in chosen]
        if len(self._order_cache) > 64:
            self._order_cache.clear()
        self._order_cache[cache_key] = ids
        return ids

    def _paged(
        self,
        request: web.Request,
        ids: list[int],
        per_page: int,
        page: int,
        offset: int | None,
        serialize: Callable[[int], bytes],
    ) -> web.Response:
        total = len(ids)
        pages = math.ceil(total / per_page) if total else 0
        if offset is None and page > 1 and page > pages and total > 0:
            raise WCError(
                400,
                "rest_post_invalid_page_number",
                "The page number requested is larger than the number of pages available.",
            )
        start = offset if offset is not None else (page - 1) * per_page
        body = b"[" + b",".join(serialize(i) for i in ids[start : start + per_page]) + b"]"
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        link = _link_header(request, page, pages)
        if link:
            headers["Link"] = link
        return web.Response(body=body, content_type="application/json", charset="utf-8", headers=headers)

    # ---- settings ----------------------------------------------------------------------------------
    def _settings_list(self) -> list[dict[str, Any]]:
        def setting(sid: str, label: str, value: str, kind: str = "text") -> dict[str, Any]:
            return {
                "id": sid,
                "label": label,
                "description": "",
                "type": kind,
                "default": "",
                "tip": "",
                "value": value,
                "group_id": "general",
                "_links": {"self": [{"href": f"{API}/settings/general/{sid}"}]},
            }

        return [
            setting("woocommerce_store_address", "Address line 1", "1 Simulated Way"),
            setting("woocommerce_store_city", "City", "Montréal"),
            setting("woocommerce_default_country", "Country and state", "CA:QC", "single_select_country"),
            setting("woocommerce_currency", "Currency", self.currency, "select"),
            setting("woocommerce_currency_pos", "Currency position", "left", "select"),
            setting("woocommerce_price_thousand_sep", "Thousand separator", ","),
            setting("woocommerce_price_decimal_sep", "Decimal separator", "."),
            setting("woocommerce_price_num_decimals", "Number of decimals", "2", "number"),
        ]

    async def _settings(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._settings_list())

    async def _setting(self, request: web.Request) -> web.StreamResponse:
        for setting in self._settings_list():
            if setting["id"] == request.match_info["setting"]:
                return web.json_response(setting)
        raise WCError(404, "rest_setting_setting_invalid", "Invalid setting.")

    # ---- webhooks ----------------------------------------------------------------------------------
    def _hook_json(self, hook_id: str) -> dict[str, Any]:
        hook, meta = self.hooks[hook_id], self._hook_meta[hook_id]
        resource, _, event = hook.topic.partition(".")
        return {
            "id": int(hook_id),
            "name": meta["name"],
            "status": meta["status"],
            "topic": hook.topic,
            "resource": resource,
            "event": event,
            "hooks": [],
            "delivery_url": hook.destination,
            "date_created": meta["date_created"],
            "date_created_gmt": meta["date_created_gmt"],
            "date_modified": meta["date_created"],
            "date_modified_gmt": meta["date_created_gmt"],
            "_links": {
                "self": [{"href": f"{API}/webhooks/{hook_id}"}],
                "collection": [{"href": f"{API}/webhooks"}],
            },
        }

    async def _list_hooks(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        per_page = _int_param(query, "per_page", 10, 1, 100)
        page = _int_param(query, "page", 1, 1)
        ids = sorted(self.hooks, key=int)
        total = len(ids)
        chunk = ids[(page - 1) * per_page : page * per_page]
        return web.json_response(
            [self._hook_json(h) for h in chunk],
            headers={
                "X-WP-Total": str(total),
                "X-WP-TotalPages": str(math.ceil(total / per_page) if total else 0),
            },
        )

    async def _create_hook(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            raise WCError(400, "rest_invalid_json", "Invalid JSON body passed.") from None
        if not isinstance(body, dict):
            raise WCError(400, "rest_invalid_json", "Invalid JSON body passed.")
        topic = str(body.get("topic") or "")
        if not VALID_TOPIC.match(topic):
            raise WCError(
                400,
                "woocommerce_rest_shop_webhook_invalid_topic",
                "Webhook topic is required and must be valid.",
            )
        url = str(body.get("delivery_url") or "")
        if not url.startswith(("http://", "https://")):
            raise WCError(
                400,
                "woocommerce_rest_shop_webhook_missing_delivery_url",
                "Webhook delivery URL must be a valid URL starting with http:// or https://.",
            )
        hook_id = str(self._next_hook)
        self._next_hook += 1
        now = datetime.now(UTC)
        self.hooks[hook_id] = Hook(id=hook_id, topic=topic, destination=url, secret=str(body.get("secret") or ""))
        self._hook_meta[hook_id] = {
            "name": str(body.get("name") or f"Webhook created on {now:%b %d, %Y @ %I:%M %p}"),
            "status": str(body.get("status") or "active"),
            "date_created": local_date(now),
            "date_created_gmt": wc_date(now),
            "failure_count": 0,
        }
        if self._hook_meta[hook_id]["status"] == "active":
            self._send(
                url,
                f"webhook_id={hook_id}".encode(),
                {"User-Agent": USER_AGENT, "Content-Type": "application/x-www-form-urlencoded"},
            )
        return web.json_response(self._hook_json(hook_id), status=201)

    def _hook_or_404(self, request: web.Request) -> str:
        hook_id = request.match_info["id"]
        if hook_id not in self.hooks:
            raise WCError(404, "woocommerce_rest_shop_webhook_invalid_id", "Invalid ID.")
        return hook_id

    async def _get_hook(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._hook_json(self._hook_or_404(request)))

    async def _update_hook(self, request: web.Request) -> web.StreamResponse:
        hook_id = self._hook_or_404(request)
        body = await request.json()
        hook, meta = self.hooks[hook_id], self._hook_meta[hook_id]
        if "status" in body:
            meta["status"] = str(body["status"])
        if "name" in body:
            meta["name"] = str(body["name"])
        if "secret" in body:
            hook.secret = str(body["secret"])
        if "delivery_url" in body:
            hook.destination = str(body["delivery_url"])
        if "topic" in body and VALID_TOPIC.match(str(body["topic"])):
            hook.topic = str(body["topic"])
        return web.json_response(self._hook_json(hook_id))

    async def _delete_hook(self, request: web.Request) -> web.StreamResponse:
        hook_id = self._hook_or_404(request)
        if request.query.get("force", "").lower() not in ("1", "true"):
            raise WCError(501, "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.")
        gone = self._hook_json(hook_id)
        del self.hooks[hook_id]
        del self._hook_meta[hook_id]
        return web.json_response(gone)

    def _fire(self, topic: str, body: bytes) -> None:
        resource, _, event = topic.partition(".")
        for hook in list(self.hooks.values()):
            if hook.topic != topic or self._hook_meta[hook.id]["status"] != "active":
                continue
            # wp_hash(webhook id . current second): the same for two deliveries within one second.
            delivery_id = hmac.new(self._salt, f"{hook.id}{int(time.time())}".encode(), hashlib.md5).hexdigest()
            signature = base64.b64encode(hmac.new(hook.secret.encode(), body, hashlib.sha256).digest()).decode()
            self._send(
                hook.destination,
                body,
                on_result=functools.partial(self._delivered, hook.id),
                headers={
                    "User-Agent": USER_AGENT,
                    "Content-Type": "application/json",
                    "X-WC-Webhook-Source": f"{self.store_url}/",
                    "X-WC-Webhook-Topic": topic,
                    "X-WC-Webhook-Resource": resource,
                    "X-WC-Webhook-Event": event,
                    "X-WC-Webhook-Signature": signature,
                    "X-WC-Webhook-ID": hook.id,
                    "X-WC-Webhook-Delivery-ID": delivery_id,
                },
            )

    def _send(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        on_result: Callable[[int | None], None] | None = None,
    ) -> None:
        try:
            self.deliver(url, body, headers, on_result=on_result)
        except RuntimeError:  # no running event loop: a change made outside the server's loop
            log.info("webhook delivery skipped: no running event loop")

    def _delivered(self, hook_id: str, status: int | None) -> None:
        """WC_Webhook::log_delivery / failed_delivery: count consecutive failures, disable on the 7th."""
        meta = self._hook_meta.get(hook_id)
        if meta is None:
            return
        if status is not None and 200 <= status < 303:
            meta["failure_count"] = 0
        elif meta.get("failure_count", 0) > MAX_DELIVERY_FAILURES:
            meta["status"] = "disabled"
        else:
            meta["failure_count"] = meta.get("failure_count", 0) + 1


# ---- helpers ----------------------------------------------------------------------------------------
_SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "id": lambda p: p["id"],
    "date": lambda p: (p.get("date_created_gmt") or "", p["id"]),
    "modified": lambda p: (p.get("date_modified_gmt") or "", p["id"]),
    "title": lambda p: (p.get("name") or "", p["id"]),
    "slug": lambda p: (p.get("slug") or "", p["id"]),
    "menu_order": lambda p: (p.get("menu_order") or 0, p["id"]),
}


def _range(value: Any) -> tuple[int, int]:
    low, high = value
    return int(low), int(high)


def _dumps(item: dict[str, Any]) -> bytes:
    return json.dumps(item, separators=(",", ":")).encode()


def _json_bytes(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def _only(item: dict[str, Any], fields: str) -> dict[str, Any]:
    if not fields:
        return item
    return {key: item[key] for key in fields.split(",") if key in item}


def _broken(product: dict[str, Any]) -> dict[str, Any]:
    broken = dict(product)
    if product["id"] % 2:
        broken.pop("name", None)
    else:
        broken["regular_price"] = "abc"
        broken["price"] = "abc"
    return broken


def _clear_sale(item: dict[str, Any]) -> None:
    item["sale_price"] = ""
    for key in ("date_on_sale_from", "date_on_sale_from_gmt", "date_on_sale_to", "date_on_sale_to_gmt"):
        item[key] = None
    apply_pricing(item, datetime.now(UTC))


def _strip_optional(product: dict[str, Any], variations: list[dict[str, Any]]) -> None:
    """Leave only what WooCommerce requires: no description, images, SKU, barcode, terms, sale or notes."""
    product.update(
        description="",
        short_description="",
        images=[],
        sku="",
        global_unique_id="",
        brands=[],
        tags=[],
        categories=[],
        purchase_note="",
        meta_data=[],
        attributes=[a for a in product.get("attributes", []) if a.get("variation")],
    )
    for item in variations:
        item.update(description="", image=None, sku="", global_unique_id="", meta_data=[])
    for item in variations or [product]:
        _clear_sale(item)


def _spread_identifiers(product: dict[str, Any], variations: list[dict[str, Any]], fields: dict[str, Any]) -> None:
    """A SKU or barcode given for a variable product: the single variation gets it, or each a numbered SKU."""
    if "sku" in fields:
        sku = product["sku"]
        for n, variation in enumerate(variations, start=1):
            variation["sku"] = sku if len(variations) == 1 or not sku else f"{sku}-{n}"
    barcode_key = next((k for k in ("barcode", "global_unique_id") if k in fields), None)
    if barcode_key is not None and len(variations) == 1:
        variations[0]["global_unique_id"] = product["global_unique_id"]


def _bump(price: Any) -> str:
    try:
        return price_text(Decimal(str(price or "0")) + 1)
    except InvalidOperation:
        return "1.00"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _invalid(name: str, message: str) -> WCError:
    return WCError(400, "rest_invalid_param", f"Invalid parameter(s): {name}", params={name: message})


def _int_param(query: Any, name: str, default: int | None, minimum: int, maximum: int | None = None) -> Any:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(name, f"{name} is not of type integer.") from None
    if value < minimum or (maximum is not None and value > maximum):
        span = f"between {minimum} (inclusive) and {maximum} (inclusive)" if maximum else f"at least {minimum}"
        raise _invalid(name, f"{name} must be {span}")
    return value


def _date_param(query: Any, name: str) -> str | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(name, f"Invalid date for {name}.") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat()


def _in_bounds(product: dict[str, Any], bounds: dict[str, str | None], suffix: str) -> bool:
    modified = product.get(f"date_modified{suffix}") or ""
    created = product.get(f"date_created{suffix}") or ""
    checks = (
        (bounds["modified_after"], modified, 1),
        (bounds["modified_before"], modified, -1),
        (bounds["after"], created, 1),
        (bounds["before"], created, -1),
    )
    for bound, value, sign in checks:
        if bound is None:
            continue
        if sign > 0 and not value > bound:
            return False
        if sign < 0 and not value < bound:
            return False
    return True


def _link_header(request: web.Request, page: int, pages: int) -> str:
    if pages <= 1:
        return ""
    params = {k: v for k, v in request.query.items() if k not in ("consumer_key", "consumer_secret", "offset")}
    links = []
    if page > 1:
        links.append(f'<{request.url.with_query({**params, "page": str(page - 1)})}>; rel="prev"')
    if page < pages:
        links.append(f'<{request.url.with_query({**params, "page": str(page + 1)})}>; rel="next"')
    return ", ".join(links)
