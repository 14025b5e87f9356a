"""The GraphQL documents the plugin sends, and the page sizes that keep them under the cost limit."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from alana_shopify.cost import MAX_QUERY_COST, requested_cost

SHOP = "query Shop { shop { name currencyCode } }"
CONTEXT = "query Context { shop { name currencyCode } shopLocales(published: true) { locale primary published } }"
COUNT = "query Count($query: String) { productsCount(query: $query, limit: null) { count precision } }"

PRODUCT_FIELDS = """
  id legacyResourceId title handle descriptionHtml status vendor productType tags
  createdAt updatedAt tracksInventory totalInventory
  options { name position values }
  category { name fullName }
"""
VARIANT_FIELDS = """
  id legacyResourceId title sku barcode price compareAtPrice inventoryQuantity inventoryPolicy position
  selectedOptions { name value }
  inventoryItem { tracked }
"""
MEDIA_FIELDS = """
  id mediaContentType
  ... on MediaImage { image { url altText } }
"""
PAGE_INFO = "pageInfo { hasNextPage endCursor }"

VARIANTS_PAGE = f"""
query ProductVariants($id: ID!, $first: Int!, $after: String) {{
  product(id: $id) {{ variants(first: $first, after: $after) {{ nodes {{ {VARIANT_FIELDS} }} {PAGE_INFO} }} }}
}}
"""
MEDIA_PAGE = f"""
query ProductMedia($id: ID!, $first: Int!, $after: String) {{
  product(id: $id) {{ media(first: $first, after: $after) {{ nodes {{ {MEDIA_FIELDS} }} {PAGE_INFO} }} }}
}}
"""
#: Follow-up pages for a product's variants / media: 250 is Shopify's page maximum and fits the limit.
NESTED_PAGE = 250


@dataclass(frozen=True)
class PageCost:
    """The requested cost of a paged document: `overhead + first * per_item`."""

    overhead: int
    per_item: int

    def requested(self, first: int) -> int:
        return self.overhead + first * self.per_item

    def fits(self, points: float, most: int) -> int:
        """The largest `first` (at most `most`, maybe 0) whose requested cost is within `points`."""
        if self.per_item <= 0:
            return most
        return max(0, min(most, int((points - self.overhead) // self.per_item)))


def page_cost(document: str, **variables: object) -> PageCost:
    """The requested cost of `document` as a function of its `$first`."""
    overhead = requested_cost(document, {**variables, "first": 0})
    return PageCost(overhead, requested_cost(document, {**variables, "first": 1}) - overhead)


BULK_RUN = """
mutation BulkRun($query: String!, $groupObjects: Boolean!) {
  bulkOperationRunQuery(query: $query, groupObjects: $groupObjects) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
"""
BULK_POLL = """
query BulkPoll($id: ID!) {
  node(id: $id) {
    ... on BulkOperation { id status errorCode objectCount rootObjectCount url partialDataUrl }
  }
}
"""
WEBHOOK_CREATE = """
mutation HookCreate($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id topic }
    userErrors { field message }
  }
}
"""
WEBHOOK_FIND = """
query HookFind($topics: [WebhookSubscriptionTopic!], $url: URL) {
  webhookSubscriptions(first: 50, topics: $topics, callbackUrl: $url) { nodes { id topic } }
}
"""
WEBHOOK_DELETE = """
mutation HookDelete($id: ID!) {
  webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { field message } }
}
"""


def translation_alias(locale: str) -> str:
    """A GraphQL alias for one locale's translations ("pt-BR" -> "translations_pt_BR")."""
    return "translations_" + re.sub(r"[^0-9A-Za-z_]", "_", locale)


def _translations(locales: Sequence[str]) -> str:
    return " ".join(
        f'{translation_alias(loc)}: translations(locale: "{loc}") {{ key locale value }}' for loc in locales
    )


@dataclass(frozen=True)
class ProductQueries:
    """Product documents for one shop's translation locales, with page sizes within the cost limit.

    Nested connections are requested `nested_variants` / `nested_media` at a time inside a product
    page; a product with more gets follow-up queries (VARIANTS_PAGE / MEDIA_PAGE), so the product page
    stays wide while no single query exceeds `max_cost`.
    """

    locales: tuple[str, ...] = ()
    nested_variants: int = 20
    nested_media: int = 10
    max_cost: int = MAX_QUERY_COST
    fragment: str = field(init=False)
    page: str = field(init=False)
    by_ids: str = field(init=False)
    page_size: int = field(init=False)
    ids_batch: int = field(init=False)
    #: The requested cost of a product page as a function of its size.
    page_cost: PageCost = field(init=False)

    def __post_init__(self) -> None:
        fragment = f"""
fragment ProductParts on Product {{
  {PRODUCT_FIELDS}
  {_translations(self.locales)}
  variants(first: {self.nested_variants}) {{ nodes {{ {VARIANT_FIELDS} }} {PAGE_INFO} }}
  media(first: {self.nested_media}) {{ nodes {{ {MEDIA_FIELDS} }} {PAGE_INFO} }}
}}
"""
        page = f"""
query Products($first: Int!, $after: String, $query: String, $sortKey: ProductSortKeys) {{
  products(first: $first, after: $after, query: $query, sortKey: $sortKey) {{
    nodes {{ ...ProductParts }}
    {PAGE_INFO}
  }}
}}
{fragment}"""
        by_ids = f"""
query ProductsByIds($ids: [ID!]!) {{ nodes(ids: $ids) {{ __typename ... on Product {{ ...ProductParts }} }} }}
{fragment}"""
        cost = page_cost(page)
        one = cost.per_item
        object.__setattr__(self, "page_cost", cost)
        object.__setattr__(self, "fragment", fragment)
        object.__setattr__(self, "page", page)
        object.__setattr__(self, "by_ids", by_ids)
        object.__setattr__(self, "page_size", max(1, min(250, (self.max_cost - 2) // max(one, 1))))
        object.__setattr__(self, "ids_batch", max(1, min(250, self.max_cost // max(one, 1))))

    def bulk(self) -> str:
        """The bulk-operation query: the same fields, connections unpaged (bulk queries take no first)."""
        return f"""
{{
  products {{
    edges {{
      node {{
        {PRODUCT_FIELDS}
        {_translations(self.locales)}
        variants {{ edges {{ node {{ {VARIANT_FIELDS} }} }} }}
        media {{ edges {{ node {{ {MEDIA_FIELDS} }} }} }}
      }}
    }}
  }}
}}
"""
