"""The WooCommerce REST API v3 client: auth, stable paging, variations, webhooks CRUD.

Auth. Over HTTPS the consumer key and secret go as HTTP Basic, as WooCommerce documents. Over plain
HTTP they go as the `consumer_key` / `consumer_secret` query parameters. A real store only accepts
OAuth 1.0a one-legged signatures over plain HTTP (docs/reference/PLATFORMS.md B); the gateway does not sign OAuth1,
because production stores are HTTPS and the only plain-HTTP store it talks to is the local simulator,
which takes query keys. The connection option `query_string_auth=True` (or `auth="query"`) forces
query keys over HTTPS too, for servers whose PHP setup strips the Authorization header (common on
CGI/FastCGI hosts). Query-string secrets never reach an error message: errors name the path only.

Paging. WooCommerce pages by number over a live table, so a product deleted (or, in SINCE mode,
re-modified) ahead of the reader shifts every later product one place left and page N+1 silently
skips one. The client therefore reads by `offset` and anchors each request on the last product it
returned: it asks for the window starting at that product, checks it is still there, and looks
further back when the list has shifted. A cursor is that anchor (`offset`, last id, and in SINCE mode
its date_modified_gmt), so a resumed run continues exactly after the last page it saw. The cost is
one repeated product per request. Full runs order by id ascending (new products append at the end);
SINCE runs by modified ascending, with `modified_after` + `dates_are_gmt=true`.

Variations. A variable product's variations are fetched concurrently (a semaphore bounds them, on top
of the HttpClient's per-integration limit), every page of them, and attached to the product under
mapper.VARIATIONS_KEY while the next listing page is already being fetched.

Payload size. WooCommerce products are large (every shipping, tax and download field), and a full
run reads tens of thousands of them: listings and variations are requested with WordPress's global
`_fields` parameter naming only what the mapper reads, which roughly halves the bytes and lets
current cores skip computing the rest. A side effect worth having: ratings, sales figures and
purchase notes never leave the store. Webhook bodies still arrive whole; the mapper ignores the rest.

Rate limits. WooCommerce core sends no budget headers; hosts and WAFs in front of it answer 429 or
503 with Retry-After, which the shared HttpClient honours. The adapter's budget (`PauseBudget`) makes
that pause store-wide: once the store asks one request to wait, every client of the store, on every
process, waits as long before its next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from alana_woocommerce.mapper import VARIATIONS_KEY
from gateway.adapter import FetchMode, FetchRequest, Page
from gateway.errors import StoreAuthError, StoreError, StoreHTTPError, StorePayloadError
from gateway.httpclient import HttpClient, Response

log = logging.getLogger(__name__)

API_PATH = "wp-json/wc/v3"
MAX_PER_PAGE = 100
DEFAULT_VARIATION_CONCURRENCY = 8
#: How often a body that is not JSON (cut short by a proxy, say) is fetched again before giving up.
PAYLOAD_ATTEMPTS = 3
#: Realignment steps allowed per page before accepting the window as it is.
MAX_REALIGN = 12

Key = tuple[str, int]

#: What the mapper reads from a product (mapper.py) plus what paging needs; see "Payload size".
PRODUCT_FIELDS = ",".join(
    (
        "id",
        "name",
        "slug",
        "type",
        "status",
        "description",
        "short_description",
        "sku",
        "global_unique_id",
        "price",
        "regular_price",
        "sale_price",
        "on_sale",
        "date_on_sale_from_gmt",
        "date_on_sale_to_gmt",
        "manage_stock",
        "stock_quantity",
        "stock_status",
        "categories",
        "tags",
        "brands",
        "images",
        "attributes",
        "variations",
        "meta_data",
        "date_created_gmt",
        "date_modified_gmt",
    )
)
VARIATION_FIELDS = ",".join(
    (
        "id",
        "type",
        "parent_id",
        "name",
        "status",
        "sku",
        "global_unique_id",
        "price",
        "regular_price",
        "sale_price",
        "on_sale",
        "date_on_sale_from_gmt",
        "date_on_sale_to_gmt",
        "manage_stock",
        "stock_quantity",
        "stock_status",
        "image",
        "attributes",
        "menu_order",
        "date_modified_gmt",
    )
)


def api_prefix(store_url: str) -> str:
    """The path prefix, relative to the store URL, of the wc/v3 API."""
    return "" if store_url.rstrip("/").endswith("/" + API_PATH) else API_PATH


def use_query_auth(store_url: str, options: Mapping[str, Any]) -> bool:
    """Whether credentials travel as query parameters (plain HTTP, or forced by an option)."""
    mode = options.get("auth")
    if options.get("query_string_auth") or mode == "query":
        return True
    if mode == "basic":
        return False
    return not store_url.lower().startswith("https://")


@dataclass
class Position:
    """Where a listing walk stands: the last product returned (`anchor`) and its index (`offset`)."""

    offset: int = 0
    anchor: Key | None = None
    anchor_id: int | None = None

    def encode(self) -> str:
        data: dict[str, Any] = {"o": self.offset}
        if self.anchor is not None:
            data["m"], data["id"] = self.anchor
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, cursor: str | None) -> Position:
        if not cursor:
            return cls()
        try:
            data = json.loads(cursor)
            offset = int(data["o"])
            if "id" not in data:
                return cls(offset=offset)
            anchor_id = int(data["id"])
            return cls(offset=offset, anchor=(str(data.get("m", "")), anchor_id), anchor_id=anchor_id)
        except (ValueError, KeyError, TypeError):
            # An unreadable cursor restarts the walk: re-reading products is harmless, skipping is not.
            log.warning("unreadable WooCommerce cursor; starting the fetch over")
            return cls()


class WooClient:
    """wc/v3 calls for one connection, over the connection's shared HttpClient."""

    def __init__(
        self,
        http: HttpClient,
        *,
        prefix: str = API_PATH,
        query_credentials: Mapping[str, str] | None = None,
        per_page: int = MAX_PER_PAGE,
        variation_concurrency: int = DEFAULT_VARIATION_CONCURRENCY,
    ) -> None:
        self.http = http
        self.prefix = prefix
        self._query_credentials = dict(query_credentials or {})
        # At least 2: each window repeats the anchor, so a window of one would never move on.
        self.per_page = max(2, min(MAX_PER_PAGE, per_page))
        self._variation_limit = asyncio.Semaphore(max(1, variation_concurrency))

    # ---- plumbing --------------------------------------------------------------------------------
    def path(self, resource: str) -> str:
        return f"{self.prefix}/{resource}" if self.prefix else resource

    def _params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        return {**(params or {}), **self._query_credentials}

    async def request(
        self,
        method: str,
        resource: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        allow: tuple[int, ...] = (),
    ) -> tuple[Response, Any]:
        """Send a request; return the response and its parsed JSON (None for an allowed error status)."""
        path = self.path(resource)
        for attempt in range(PAYLOAD_ATTEMPTS):
            response = await self.http.request(
                method, path, params=self._params(params), json_body=json_body, allow=allow
            )
            if response.status in allow and response.status >= 300:
                return response, None
            data = _loads(response.body)
            if data is not _NOT_JSON:
                return response, data
            if method != "GET" or attempt == PAYLOAD_ATTEMPTS - 1:
                snippet = response.body[:80].decode("utf-8", "replace")
                raise StorePayloadError(
                    f"the store answered {method} {path} with a body that is not JSON: {snippet!r}",
                    status=response.status,
                )
            log.info("store body was not JSON; fetching again", extra={"path": path, "attempt": attempt + 1})
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(
        self, resource: str, params: Mapping[str, Any] | None = None, allow: tuple[int, ...] = ()
    ) -> tuple[Response, Any]:
        return await self.request("GET", resource, params=params, allow=allow)

    # ---- store facts -----------------------------------------------------------------------------
    async def check(self) -> None:
        """One cheap authenticated call (401/403 raise StoreAuthError in the HttpClient)."""
        response, data = await self.get("products", {"per_page": 1, "_fields": "id"}, allow=(404,))
        if response.status == 404 or not isinstance(data, list):
            raise StoreHTTPError(
                "no WooCommerce REST API (wc/v3) answers at this store URL; check the URL and that "
                "WordPress permalinks are not set to 'Plain'",
                status=response.status,
                field="store_url",
            )

    async def currency(self) -> str | None:
        """The store currency from /settings/general, or None when the store will not say.

        A key whose user may not read settings gets 403 (WordPress answers 401 only to requests it could
        not authenticate): a 401 means the credentials no longer work, and raises StoreAuthError.
        """
        try:
            response, data = await self.get("settings/general", allow=(403, 404))
        except StoreAuthError:
            raise
        except StoreError as exc:
            log.info("store settings unavailable: %s", type(exc).__name__)
            return None
        if not isinstance(data, list):
            return None
        for setting in data:
            if isinstance(setting, Mapping) and setting.get("id") == "woocommerce_currency":
                value = setting.get("value")
                if isinstance(value, str) and len(value.strip()) == 3:
                    return value.strip().upper()
        return None

    async def count(self, request: FetchRequest) -> int | None:
        if request.mode is FetchMode.IDS:
            return len(_unique(request.ids))
        params = {**self._filters(request), "per_page": 1, "_fields": "id"}
        response, _ = await self.get("products", params)
        return _int_header(response, "X-WP-Total")

    # ---- products ----------------------------------------------------------------------------------
    def _filters(self, request: FetchRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"status": "any", "orderby": "id", "order": "asc", "_fields": PRODUCT_FIELDS}
        if request.mode is FetchMode.SINCE:
            since = request.since or datetime.fromtimestamp(0, UTC)
            since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
            params.update(
                orderby="modified",
                # Whole seconds, rounded down: WooCommerce dates have no fractions, and "after" is strict.
                modified_after=since.replace(tzinfo=None, microsecond=0).isoformat(),
                dates_are_gmt=True,
            )
        return params

    async def list_products(self, params: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
        response, data = await self.get("products", params)
        if not isinstance(data, list):
            raise StorePayloadError("the product listing is not a JSON array", status=response.status)
        return [item for item in data if isinstance(item, dict)], _int_header(response, "X-WP-Total")

    async def fetch(self, request: FetchRequest) -> AsyncIterator[Page]:
        """Pages of native products (variations attached) for a FetchRequest; see the module doc."""
        if request.mode is FetchMode.IDS:
            async for page in self._fetch_ids(request):
                yield page
            return
        filters = self._filters(request)
        key = _since_key if request.mode is FetchMode.SINCE else _id_key
        position = Position.decode(request.cursor)
        pending: asyncio.Future[_Window] | None = asyncio.ensure_future(self._window(filters, position, key))
        yielded = False
        try:
            while pending is not None:
                window = await pending
                pending = None
                if not window.done:
                    # The next listing page is fetched while this page's variations are.
                    pending = asyncio.ensure_future(self._window(filters, window.position, key))
                items, gone = await self.attach_variations(window.items)
                if gone:
                    log.info("products vanished while their variations were read", extra={"count": len(gone)})
                if items or (window.done and not yielded):
                    yielded = True
                    yield Page(
                        items=items,
                        cursor=None if window.done else window.position.encode(),
                        total=window.total,
                    )
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def _window(
        self, filters: Mapping[str, Any], position: Position, key: Callable[[dict[str, Any]], Key]
    ) -> _Window:
        """The next listing window after `position`, realigned if the list shifted under us."""
        anchor = position.anchor
        offset = position.offset if anchor is not None else 0
        step = 1
        items: list[dict[str, Any]] = []
        total: int | None = None
        for _ in range(MAX_REALIGN):
            items, total = await self.list_products({**filters, "offset": offset, "per_page": self.per_page})
            if anchor is None:
                break
            if _anchor_index(items, position, key) is not None or offset == 0 or (items and key(items[0]) <= anchor):
                break
            # Products before the anchor went away (or the anchor itself did): look further back.
            offset = max(0, offset - step)
            step *= 4
        start = _after_anchor(items, position, key)
        done = len(items) < self.per_page
        fresh = items[start:]
        if fresh:
            last = fresh[-1]
            next_position = Position(offset + len(items) - 1, key(last), _int_id(last))
        else:
            next_position = Position(offset + max(len(items) - 1, 0), anchor, position.anchor_id)
        return _Window(items=fresh, position=next_position, done=done, total=total)

    async def _fetch_ids(self, request: FetchRequest) -> AsyncIterator[Page]:
        ids = _unique(request.ids)
        try:
            start = int(json.loads(request.cursor)["i"]) if request.cursor else 0
        except (ValueError, KeyError, TypeError):
            start = 0
        for chunk_start in range(start, len(ids), self.per_page):
            chunk = ids[chunk_start : chunk_start + self.per_page]
            numeric = [i for i in chunk if i.isdigit() and int(i) > 0]
            missing = [i for i in chunk if i not in numeric]
            items: list[dict[str, Any]] = []
            if numeric:
                items, _ = await self.list_products(
                    {
                        "include": ",".join(str(int(i)) for i in numeric),
                        "per_page": self.per_page,
                        "status": "any",
                        "orderby": "include",
                        "_fields": PRODUCT_FIELDS,
                    }
                )
            found = {str(item.get("id")) for item in items}
            missing += [i for i in numeric if str(int(i)) not in found]
            items, gone = await self.attach_variations(items)
            missing += [i for i in numeric if str(int(i)) in gone]
            end = chunk_start + self.per_page
            yield Page(
                items=items,
                cursor=json.dumps({"i": end}) if end < len(ids) else None,
                total=len(ids),
                missing_ids=missing,
            )

    # ---- variations --------------------------------------------------------------------------------
    async def attach_variations(self, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
        """Attach every variable product's variations; drop (and name) products that vanished meanwhile."""
        variable = [item for item in items if item.get("type") == "variable" and _int_id(item) is not None]
        results = await _all(self.variations(_int_id(item) or 0) for item in variable)
        gone: set[str] = set()
        for item, variations in zip(variable, results, strict=True):
            if variations is None:
                gone.add(str(item.get("id")))
            else:
                item[VARIATIONS_KEY] = variations
        return [item for item in items if str(item.get("id")) not in gone], gone

    async def variations(self, product_id: int) -> list[dict[str, Any]] | None:
        """All variations of a product (every page, fetched concurrently); None if the product is gone."""
        first = await self._variation_page(product_id, 1)
        if first is None:
            return None
        found, pages = first
        if pages > 1:
            rest = await _all(self._variation_page(product_id, n) for n in range(2, pages + 1))
            for page in rest:
                if page is not None:
                    found.extend(page[0])
        seen: set[Any] = set()
        unique = []
        for variation in found:
            if variation.get("id") not in seen:
                seen.add(variation.get("id"))
                unique.append(variation)
        return unique

    async def _variation_page(self, product_id: int, page: int) -> tuple[list[dict[str, Any]], int] | None:
        params = {"per_page": MAX_PER_PAGE, "page": page, "orderby": "id", "order": "asc", "_fields": VARIATION_FIELDS}
        async with self._variation_limit:
            response, data = await self.get(f"products/{product_id}/variations", params, allow=(404,))
        if response.status == 404:
            return None
        if not isinstance(data, list):
            raise StorePayloadError("a variations listing is not a JSON array", status=response.status)
        pages = _int_header(response, "X-WP-TotalPages") or 1
        return [v for v in data if isinstance(v, dict)], pages

    # ---- webhooks ----------------------------------------------------------------------------------
    async def list_webhooks(self) -> list[dict[str, Any]]:
        hooks: list[dict[str, Any]] = []
        page = 1
        while True:
            response, data = await self.get("webhooks", {"per_page": MAX_PER_PAGE, "page": page})
            batch = [h for h in data if isinstance(h, dict)] if isinstance(data, list) else []
            hooks.extend(batch)
            pages = _int_header(response, "X-WP-TotalPages") or 1
            if page >= pages or len(batch) < MAX_PER_PAGE:
                return hooks
            page += 1

    async def create_webhook(self, *, name: str, topic: str, delivery_url: str, secret: str) -> str:
        response, data = await self.request(
            "POST",
            "webhooks",
            json_body={
                "name": name,
                "topic": topic,
                "delivery_url": delivery_url,
                "secret": secret,
                "status": "active",
            },
        )
        if not isinstance(data, Mapping) or not data.get("id"):
            raise StorePayloadError("the store did not return the created webhook", status=response.status)
        return str(data["id"])

    async def delete_webhook(self, hook_id: str) -> bool:
        """Delete a webhook for good (they cannot be trashed); False when it was already gone."""
        response, _ = await self.request("DELETE", f"webhooks/{hook_id}", params={"force": True}, allow=(404, 410))
        return response.status < 300


@dataclass
class _Window:
    items: list[dict[str, Any]]
    position: Position
    done: bool
    total: int | None


_NOT_JSON = object()
T = TypeVar("T")


async def _all(coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """asyncio.gather that cancels the siblings when one fails (no orphan requests left running)."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        pass
    # PHP notices printed before the JSON are a classic of WordPress hosting: skip to the JSON.
    starts = [i for i in (body.find(b"\n["), body.find(b"\n{"), body.find(b"[{"), body.find(b'{"')) if i > 0]
    if starts:
        with contextlib.suppress(ValueError):
            return json.loads(body[min(starts) :])
    return _NOT_JSON


def _int_header(response: Response, name: str) -> int | None:
    raw = response.headers.get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _int_id(item: Mapping[str, Any]) -> int | None:
    raw = item.get("id")
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    return None


def _id_key(item: dict[str, Any]) -> Key:
    return ("", _int_id(item) or 0)


def _since_key(item: dict[str, Any]) -> Key:
    modified = item.get("date_modified_gmt")
    return (modified if isinstance(modified, str) else "", _int_id(item) or 0)


def _after_anchor(items: list[dict[str, Any]], position: Position, key: Callable[[dict[str, Any]], Key]) -> int:
    """Index of the first item after the anchor: right after the anchor itself when it is there (robust
    to the store ordering equal dates its own way), else the first item whose sort key is greater."""
    anchor = position.anchor
    if anchor is None:
        return 0
    found = _anchor_index(items, position, key)
    if found is not None:
        return found + 1
    return next((i for i, item in enumerate(items) if key(item) > anchor), len(items))


def _anchor_index(items: list[dict[str, Any]], position: Position, key: Callable[[dict[str, Any]], Key]) -> int | None:
    """Where the anchor product sits in `items`, unchanged (a re-modified anchor has moved in SINCE order)."""
    for index, item in enumerate(items):
        if item.get("id") == position.anchor_id and key(item) == position.anchor:
            return index
    return None


def _unique(ids: tuple[str, ...] | list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for raw in ids:
        value = str(raw).strip()
        if value and value not in seen:
            seen.add(value)
            out.append(value)
    return out


__all__ = ["WooClient", "Position", "api_prefix", "use_query_auth"]
