"""Paginated product reads: pages of products, completed nested connections, reads by id.

A product page asks for a few variants and media per product (so the page fits the cost limit); a
product whose nested connection has more pages gets follow-up queries until nothing is left out, so a
product with 150 variants arrives with all 150. Natives keep the GraphQL node shape with each
connection replaced by `{"nodes": [...everything...]}` and the per-locale translation aliases merged
into one `translations` list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from alana_shopify.client import ShopifyGraphQL
from alana_shopify.mapper import numeric_id
from alana_shopify.queries import COUNT, MEDIA_PAGE, NESTED_PAGE, VARIANTS_PAGE, ProductQueries
from gateway.errors import StorePayloadError

_NESTED = {"variants": VARIANTS_PAGE, "media": MEDIA_PAGE}


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


class ProductReader:
    """Reads products through the GraphQL API for one shop."""

    def __init__(self, gql: ShopifyGraphQL, queries: ProductQueries) -> None:
        self.gql = gql
        self.queries = queries

    async def count(self, query: str | None) -> int | None:
        data = await self.gql.execute(COUNT, {"query": query})
        count = (data.get("productsCount") or {}).get("count")
        return int(count) if isinstance(count, int) else None

    async def pages(self, *, query: str | None, sort_key: str, after: str | None) -> AsyncIterator[ProductPage]:
        """GraphQL pages of complete products, from after `after` to the end."""
        while True:
            data = await self.gql.execute(
                self.queries.page,
                {"first": self.queries.page_size, "after": after, "query": query, "sortKey": sort_key},
            )
            connection = data.get("products")
            if not isinstance(connection, dict) or not isinstance(connection.get("nodes"), list):
                raise StorePayloadError("Shopify answered a products query without products")
            info = connection.get("pageInfo") or {}
            nodes = [await self.complete(n) for n in connection["nodes"] if isinstance(n, dict)]
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
                data = await self.gql.execute(document, {"id": node["id"], "first": NESTED_PAGE, "after": after})
                product = data.get("product")
                if not isinstance(product, dict):
                    break  # deleted between the page and the follow-up: the next sync notices
                page = product.get(key) or {}
                items.extend(n for n in page.get("nodes") or [] if isinstance(n, dict))
                info = page.get("pageInfo") or {}
                after = info.get("endCursor")
                more = bool(info.get("hasNextPage")) and after is not None
        return normalize(node)
