"""Paginated product reads: pages of products, completed nested connections, reads by id.

A product page asks for a few variants and media per product (so the page fits the cost limit); a
product whose nested connection has more pages gets follow-up queries until nothing is left out, so a
product with 150 variants arrives with all 150. Natives keep the GraphQL node shape with each
connection replaced by `{"nodes": [...everything...]}` and the per-locale translation aliases merged
into one `translations` list.

Page sizes follow the cost bucket (`PagePlanner`): Shopify charges a page's requested cost up front
and refunds most of it, so while much is left a page asks for as many products as the single-query
limit allows (the bucket then hovers around one page's requested cost, which costs no time), and
towards the end pages shrink with what is left (its cost learnt from the refunds), so the bucket
runs down to about one product's requested cost instead of finishing a full page's requested cost
above empty. Follow-up pages ask for no more than the bucket pays right away.

The reader measures what it reads (`sample()`: products, actual cost with follow-ups, requests and
their time): the adapter reads a first page, then chooses paginated queries or a bulk operation for
the rest from it (cost.choose_read).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alana_shopify.client import QueryCost, ShopifyGraphQL
from alana_shopify.cost import ReadSample
from alana_shopify.mapper import numeric_id
from alana_shopify.queries import COUNT, MEDIA_PAGE, NESTED_PAGE, VARIANTS_PAGE, PageCost, ProductQueries, page_cost
from gateway.errors import StorePayloadError

_NESTED = {"variants": VARIANTS_PAGE, "media": MEDIA_PAGE}
_NESTED_COST = {key: page_cost(document, id="", after=None) for key, document in _NESTED.items()}
#: A follow-up page asks for at least this many variants / media, however low the bucket is.
MIN_NESTED_PAGE = 50


def product_gid(external_id: str) -> str:
    return f"gid://shopify/Product/{external_id}"


def normalize(node: dict[str, Any]) -> dict[str, Any]:
    """Merge per-locale translation aliases into `translations` and drop page bookkeeping."""
    translations: list[Any] = list(node.get("translations") or [])
    for key in [k for k in node if k.startswith("translations_")]:
        value = node.pop(key)
        if isinstance(value, list):
            translations.extend(value)
    node["translations"] = translations
    for key in _NESTED:
        value = node.get(key)
        if isinstance(value, dict):
            value.pop("pageInfo", None)
    return node


@dataclass
class ProductPage:
    nodes: list[dict[str, Any]]
    end_cursor: str | None
    has_next: bool


class PagePlanner:
    """Chooses each product page's size from the bucket, what is left, and the refunds seen so far."""

    def __init__(self, cost: PageCost, most: int, expected: int | None = None) -> None:
        self.cost = cost
        self.most = max(1, most)
        #: Products still to come, when the caller knows (a count before a fresh read).
        self.remaining = expected if expected is not None and expected > 0 else None
        self.charged = 0.0
        self.products = 0

    @property
    def per_product(self) -> float | None:
        """The actual cost of one product on a page so far, None before the first page."""
        return self.charged / self.products if self.products else None

    def size(self, available: float | None) -> int:
        """The next page's `first`, given the points the bucket holds now (None: unknown).

        What is left costs about `remaining * per_product`; the read ends soonest when the bucket is
        down to one product's requested cost just as the last product is asked for, so the goal is
        that plus the rest's actual cost. A page is as big as the higher of the goal and what the
        bucket holds now pays for: the most while much is left (the bucket hovering near a full page's
        requested cost is no loss until the end), then smaller and smaller pages, sent without
        refilling the bucket any further than the rest needs.
        """
        most = min(self.most, self.remaining) if self.remaining is not None else self.most
        per_product = self.per_product
        if self.remaining is None or per_product is None:
            return most
        goal = self.cost.requested(1) + (self.remaining - 1) * per_product
        return max(1, self.cost.fits(max(goal, available or 0.0), most))

    def learn(self, returned: int, cost: QueryCost) -> None:
        """Account for a page of `returned` products that was charged `cost`.

        Follow-up pages are left out of the estimate: they are rare and lumpy (one product with 150
        variants), and guessing the rest too dear would refill the bucket for nothing, while guessing
        it too cheap only shrinks pages a little early.
        """
        if self.remaining is not None:
            self.remaining -= returned
            if self.remaining <= 0:
                self.remaining = None  # more than counted: the shop grew meanwhile; size as usual
        if cost.actual is not None and returned > 0:
            self.charged += max(0.0, cost.actual - self.cost.overhead)
            self.products += returned


class ProductReader:
    """Reads products through the GraphQL API for one shop."""

    def __init__(self, gql: ShopifyGraphQL, queries: ProductQueries) -> None:
        self.gql = gql
        self.queries = queries
        # What the product pages read so far measured (see `sample`).
        self._products = 0
        self._cost = 0.0
        self._requests = 0
        self._seconds = 0.0

    def _available(self) -> float | None:
        budget = self.gql.budget
        return budget.available if budget is not None else None

    def sample(self) -> ReadSample:
        """What the product pages read so far cost: products, actual cost (follow-ups included),
        requests and their time (waits for the bucket left out)."""
        return ReadSample(self._products, self._cost, self._requests, self._seconds)

    async def _measured(self, document: str, variables: Mapping[str, Any]) -> tuple[dict[str, Any], QueryCost]:
        budget = self.gql.budget
        waited = budget.waited if budget is not None else 0.0
        started = time.monotonic()
        data, cost = await self.gql.execute_costed(document, variables)
        elapsed = time.monotonic() - started - ((budget.waited - waited) if budget is not None else 0.0)
        self._requests += 1
        self._seconds += max(0.0, elapsed)
        self._cost += cost.actual or 0.0
        return data, cost

    async def count(self, query: str | None) -> int | None:
        data = await self.gql.execute(COUNT, {"query": query})
        count = (data.get("productsCount") or {}).get("count")
        return int(count) if isinstance(count, int) else None

    async def pages(
        self,
        *,
        query: str | None,
        sort_key: str,
        after: str | None,
        expected: int | None = None,
        first_page: int | None = None,
    ) -> AsyncGenerator[ProductPage]:
        """GraphQL pages of complete products, from after `after` to the end (`expected` of them, if known);
        the first page holds at most `first_page` products, when given."""
        planner = PagePlanner(self.queries.page_cost, self.queries.page_size, expected)
        limit = first_page
        while True:
            first = planner.size(self._available())
            if limit is not None:
                first, limit = max(1, min(first, limit)), None
            data, cost = await self._measured(
                self.queries.page,
                {"first": first, "after": after, "query": query, "sortKey": sort_key},
            )
            connection = data.get("products")
            if not isinstance(connection, dict) or not isinstance(connection.get("nodes"), list):
                raise StorePayloadError("Shopify answered a products query without products")
            info = connection.get("pageInfo") or {}
            nodes = [await self.complete(n) for n in connection["nodes"] if isinstance(n, dict)]
            self._products += len(nodes)
            planner.learn(len(nodes), cost)
            after = info.get("endCursor") or after
            has_next = bool(info.get("hasNextPage"))
            yield ProductPage(nodes, after, has_next)
            if not has_next:
                return

    async def by_ids(self, ids: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """Complete products for external ids, and the ids the shop does not have (any more)."""
        found: list[dict[str, Any]] = []
        missing = [i for i in ids if numeric_id(i) is None]  # a malformed id names no product
        wanted = [i for i in ids if numeric_id(i) is not None]
        for start in range(0, len(wanted), self.queries.ids_batch):
            batch = wanted[start : start + self.queries.ids_batch]
            data = await self.gql.execute(self.queries.by_ids, {"ids": [product_gid(i) for i in batch]})
            results = data.get("nodes")
            if not isinstance(results, list) or len(results) != len(batch):
                raise StorePayloadError("Shopify answered a nodes query with the wrong number of nodes")
            for external_id, node in zip(batch, results, strict=True):
                if isinstance(node, dict) and node.get("__typename", "Product") == "Product" and node.get("id"):
                    node.pop("__typename", None)
                    found.append(await self.complete(node))
                else:
                    missing.append(external_id)
        return found, missing

    async def complete(self, node: dict[str, Any]) -> dict[str, Any]:
        """Fetch the rest of every nested connection that has more pages, then normalize."""
        for key, document in _NESTED.items():
            connection = node.get(key)
            if not isinstance(connection, dict):
                continue
            info = connection.get("pageInfo") or {}
            items = connection.setdefault("nodes", [])
            after = info.get("endCursor")
            more = bool(info.get("hasNextPage"))
            while more:
                first = NESTED_PAGE
                available = self._available()
                if available is not None:
                    # No bigger than the bucket pays right away (the refund is most of it anyway).
                    first = max(MIN_NESTED_PAGE, _NESTED_COST[key].fits(available, NESTED_PAGE))
                data, _ = await self._measured(document, {"id": node["id"], "first": first, "after": after})
                product = data.get("product")
                if not isinstance(product, dict):
                    break  # deleted between the page and the follow-up: the next sync notices
                page = product.get(key) or {}
                items.extend(n for n in page.get("nodes") or [] if isinstance(n, dict))
                info = page.get("pageInfo") or {}
                after = info.get("endCursor")
                more = bool(info.get("hasNextPage")) and after is not None
        return normalize(node)
