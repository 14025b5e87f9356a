"""The BigCommerce API client: the rate-limit Budget, product paging, and category / brand names.

BigCommerce meters requests per store, not per app: `X-Rate-Limit-Requests-Quota` requests per
`X-Rate-Limit-Time-Window-Ms`, shared by every app the merchant installed, with
`X-Rate-Limit-Requests-Left` and `X-Rate-Limit-Time-Reset-Ms` on every response. `BigCommerceBudget`
turns those headers into a decision before each request, so a sync slows down instead of being
throttled and never takes the whole window from the merchant's other apps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.errors import StorePayloadError
from gateway.httpclient import Budget, HttpClient, Response
from gateway.ratebudget import Hold, LocalRateState, RateState, SharedWindow, Waker, WindowReading

log = logging.getLogger(__name__)

PRODUCT_INCLUDE = "variants,images,custom_fields"
MAX_LIMIT = 250
PAYLOAD_RETRIES = 2


class BigCommerceBudget(Budget):
    """Spend up to `share` of each rate-limit window as soon as it opens, never more than the store has left.

    The store's window is a fixed allowance, not a refilling bucket: requests spread over the window
    finish no sooner than the same requests sent at its start, and what a window leaves unused is lost.
    So the budget does not pace: it spends its share at once and then waits for the reset. The model is
    a `SharedWindow` (gateway/ratebudget.py, which spells out the rules) in the store's shared rate
    state: the quota is the store's, shared by every app the merchant installed, so every client of the
    store (a run, a webhook batch, a connect check, on any process, for any integration of the store)
    counts against one window and one share, refreshed from the X-Rate-Limit-* headers of every answer.
    Before anything is known, and again once the known window has reset, one request goes out alone as a
    probe. A request goes out while our requests stay within `share * quota` and the store's `Left`, less
    what the other apps are still due (their part of the quota, spent evenly over the window) and less our
    requests in flight, leaves room for it; when the other apps spend faster, we give way instead of
    taking their part or drawing a 429. A 429 carrying the headers waits for the reset (the longer of
    Reset-Ms and X-Retry-After); one without them is the platform overloaded, left to the HTTP client's
    backoff. With honest headers this never draws a 429. `clock` is injectable for tests.
    """

    def __init__(
        self,
        share: float = 0.8,
        *,
        stale_after: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("quota_share must be in (0, 1]")
        self.share = share
        self.stale_after = stale_after
        self.clock = clock
        self._waker = Waker()
        self.throttled = 0
        self.waits = 0

    def local_state(self) -> RateState:
        return LocalRateState(self.clock)

    @property
    def window(self) -> SharedWindow:
        return self.shared.window("bigcommerce", share=self.share, stale_after=self.stale_after)

    async def acquire(self, cost: float = 1.0) -> Hold:
        window = self.window
        waiter = uuid.uuid4().hex
        while True:
            result = await window.reserve(cost, waiter)
            if isinstance(result, Hold):
                return result
            self.waits += 1
            # Until an answer says otherwise (one in this process wakes us), nothing opens before the reset.
            await self._waker.nap(min(result, self.shared.poll))

    async def abandon(self, cost: float = 1.0, ticket: Any = None) -> None:
        if isinstance(ticket, Hold):
            await self.window.release(ticket)
        self._waker.wake()

    async def observe(self, response: Response, cost: float = 1.0, ticket: Any = None) -> float | None:
        hold = ticket if isinstance(ticket, Hold) else None
        reading = window_reading(response.headers)
        throttled = response.status == 429 and reading is not None
        await self.window.settle(hold, reading, throttled=throttled)
        self._waker.wake()
        if not throttled or reading is None:
            # Without usable headers (an overloaded platform's 429, a proxy error) there is nothing to learn.
            return None
        self.throttled += 1
        retry_after = 0.0
        with contextlib.suppress(KeyError, ValueError):
            retry_after = float(response.headers["X-Retry-After"])
        return max(reading.reset_ms / 1000, retry_after)


def window_reading(headers: Mapping[str, str]) -> WindowReading | None:
    """The X-Rate-Limit-* figures of an answer; None when any is missing or unreadable."""
    try:
        return WindowReading(
            quota=int(headers["X-Rate-Limit-Requests-Quota"]),
            window_ms=int(headers["X-Rate-Limit-Time-Window-Ms"]),
            reset_ms=int(headers["X-Rate-Limit-Time-Reset-Ms"]),
            left=int(headers["X-Rate-Limit-Requests-Left"]),
        )
    except (KeyError, ValueError):
        return None


# ---- the API ---------------------------------------------------------------------------------
@dataclass
class ListPage:
    """One page of a v3 collection with its pagination meta."""

    items: list[dict[str, Any]]
    total: int
    total_pages: int
    page: int


@dataclass
class NameCache:
    """Category and brand names resolved during one run (lives in conn.state)."""

    categories: dict[int, str | None] = field(default_factory=dict)
    brands: dict[int, str | None] = field(default_factory=dict)
    complete: bool = False


def store_root(store_url: str) -> str:
    """`https://api.bigcommerce.com/stores/{hash}` from what the merchant pasted (with or without /v3)."""
    root = store_url.strip().rstrip("/")
    for suffix in ("/v3", "/v2"):
        if root.endswith(suffix):
            root = root[: -len(suffix)]
    return root


def iso_utc(moment: datetime) -> str:
    """A datetime as BigCommerce's date filters take it (whole seconds, rounded down: never later)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BigCommerceAPI:
    """The calls the adapter makes, over the connection's HttpClient."""

    def __init__(self, http: HttpClient, store_url: str, *, page_size: int = MAX_LIMIT, concurrency: int = 4):
        self.http = http
        self.root = store_root(store_url)
        self.page_size = max(1, min(MAX_LIMIT, page_size))
        self.concurrency = max(1, concurrency)

    def v3(self, path: str) -> str:
        return f"{self.root}/v3/{path.lstrip('/')}"

    async def get(self, path: str, params: Mapping[str, Any] | None = None, allow: tuple[int, ...] = ()) -> Response:
        return await self.http.request("GET", self.v3(path), params=params, allow=allow)

    async def list_page(self, path: str, params: Mapping[str, Any], page: int) -> ListPage:
        # A body cut short in transit arrives as a 200 the HTTP layer does not retry; a GET is safe
        # to ask again.
        for attempt in range(PAYLOAD_RETRIES + 1):
            response = await self.get(path, {**params, "page": page})
            try:
                body = response.json()
            except StorePayloadError:
                if attempt == PAYLOAD_RETRIES:
                    raise
                log.info("BigCommerce sent an unreadable body; asking again", extra={"path": path})
                continue
            break
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise StorePayloadError(f"BigCommerce answered {path} without a data list", status=response.status)
        pagination = (body.get("meta") or {}).get("pagination") or {}
        items = [item for item in body["data"] if isinstance(item, dict)]
        total = int(pagination.get("total", len(items)))
        total_pages = int(pagination.get("total_pages", page))
        return ListPage(items, total, total_pages, int(pagination.get("current_page", page)))

    async def count(self, params: Mapping[str, Any]) -> int:
        page = await self.list_page("catalog/products", {**params, "limit": 1, "include_fields": "id"}, 1)
        return page.total

    # ---- products: page numbers, fetched ahead concurrently ----------------------------------
    async def id_extent(self, params: Mapping[str, Any] | None = None) -> tuple[int, int]:
        """How many products match `params` and the highest id among them (0 if none), in one small request."""
        query = {**(params or {}), "sort": "id", "direction": "desc", "limit": 1, "include_fields": "id"}
        page = await self.list_page("catalog/products", query, 1)
        return page.total, max((int(item["id"]) for item in page.items), default=0)

    async def max_product_id(self) -> int:
        """The highest product id the store has (0 for an empty store), in one small request."""
        return (await self.id_extent())[1]

    async def product_pages(
        self, filters: Mapping[str, Any], after_id: int | None = None
    ) -> AsyncIterator[tuple[ListPage, str | None]]:
        """Yield (page, cursor after it) in id order over the products matching `filters`.

        Once the first page gives the number of pages, later pages are fetched up to `concurrency`
        ahead by page number. Page numbers shift when the listing changes under us (a product deleted
        before the page moves everything up one place, and one product would be skipped); the listing
        then reports a different total, so when a page's total differs from the first's, what was
        prefetched is dropped and the rest is walked by id (`id:greater`) from the last product
        yielded, which cannot skip. The cursor is "after:<last id yielded>" for the same reason: a page
        number would not mean the same page when a later attempt resumes.
        """
        base: dict[str, Any] = {
            **filters,
            "include": PRODUCT_INCLUDE,
            "limit": self.page_size,
            "sort": "id",
            "direction": "asc",
        }
        if after_id is not None:
            base["id:greater"] = after_id
        first = await self.list_page("catalog/products", base, 1)
        baseline = first.total
        last_id = _last_id(first.items, after_id)
        if not first.items or first.total_pages <= 1:
            yield first, None
            return
        yield first, f"after:{last_id}"
        pending: dict[int, asyncio.Task[ListPage]] = {}
        next_page = 2
        try:
            for number in range(2, first.total_pages + 1):
                while next_page <= first.total_pages and len(pending) < self.concurrency:
                    fetch = self.list_page("catalog/products", base, next_page)
                    pending[next_page] = asyncio.ensure_future(fetch)
                    next_page += 1
                page = await pending.pop(number)
                if page.total != baseline:
                    log.info(
                        "BigCommerce listing changed during the fetch; continuing by id",
                        extra={"from_total": baseline, "to_total": page.total},
                    )
                    break
                last_id = _last_id(page.items, last_id)
                yield page, (f"after:{last_id}" if number < first.total_pages else None)
            else:
                return
        finally:
            for task in pending.values():
                task.cancel()
            if pending:
                await asyncio.gather(*pending.values(), return_exceptions=True)
        async for item in self._keyset(base, last_id or 0, baseline):
            yield item

    async def _keyset(
        self, base: Mapping[str, Any], after_id: int, total: int
    ) -> AsyncIterator[tuple[ListPage, str | None]]:
        while True:
            page = await self.list_page("catalog/products", {**base, "id:greater": after_id}, 1)
            page.total = total
            after_id = _last_id(page.items, after_id) or after_id
            more = page.total_pages > 1
            yield page, (f"after:{after_id}" if more else None)
            if not more:
                return

    async def products_by_ids(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """The products among `ids` (at most MAX_LIMIT), in one request."""
        params = {"id:in": ",".join(str(i) for i in ids), "include": PRODUCT_INCLUDE, "limit": MAX_LIMIT}
        return (await self.list_page("catalog/products", params, 1)).items

    # ---- names -------------------------------------------------------------------------------
    async def load_all_names(self, cache: NameCache) -> None:
        """Page through every category and brand (a full run sees most of them anyway)."""
        for path, target in (("catalog/categories", cache.categories), ("catalog/brands", cache.brands)):
            page_number, pages = 1, 1
            while page_number <= pages:
                page = await self.list_page(path, {"limit": MAX_LIMIT}, page_number)
                for row in page.items:
                    target[int(row["id"])] = str(row.get("name") or "") or None
                pages = page.total_pages
                page_number += 1
        cache.complete = True

    async def resolve_names(self, cache: NameCache, products: Iterable[Mapping[str, Any]]) -> None:
        """Fetch the names of categories and brands these products use that the cache lacks."""
        wanted_categories: set[int] = set()
        wanted_brands: set[int] = set()
        for product in products:
            for cid in product.get("categories") or []:
                if isinstance(cid, int) and cid not in cache.categories:
                    wanted_categories.add(cid)
            bid = product.get("brand_id")
            if isinstance(bid, int) and bid > 0 and bid not in cache.brands:
                wanted_brands.add(bid)
        for path, wanted, target in (
            ("catalog/categories", wanted_categories, cache.categories),
            ("catalog/brands", wanted_brands, cache.brands),
        ):
            ordered = sorted(wanted)
            for start in range(0, len(ordered), MAX_LIMIT):
                chunk = ordered[start : start + MAX_LIMIT]
                page = await self.list_page(path, {"id:in": ",".join(map(str, chunk)), "limit": MAX_LIMIT}, 1)
                for row in page.items:
                    target[int(row["id"])] = str(row.get("name") or "") or None
                for missing in set(chunk) - set(target):
                    target[missing] = None  # deleted: do not ask again this run


def attach_names(product: dict[str, Any], cache: NameCache) -> dict[str, Any]:
    """Put the resolved names on the native product for the (pure) mapper."""
    names = [cache.categories.get(cid) for cid in product.get("categories") or [] if isinstance(cid, int)]
    product["_category_names"] = [n for n in names if n]
    bid = product.get("brand_id")
    product["_brand_name"] = cache.brands.get(bid) if isinstance(bid, int) and bid > 0 else None
    return product


def _last_id(items: Sequence[Mapping[str, Any]], default: int | None) -> int | None:
    ids = [item["id"] for item in items if isinstance(item.get("id"), int)]
    return max(ids) if ids else default
