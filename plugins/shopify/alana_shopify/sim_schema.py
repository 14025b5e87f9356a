"""The simulator's GraphQL Admin API: an SDL subset with Shopify's type and field names, and resolvers.

Only what the plugin (and a curious developer) needs is here, but what is here is spelled and shaped
like the real schema, so a query that works against the simulator works against a shop. Resolvers
read the simulator's catalog through `SimContext`; connections page with opaque cursors; connections
without `first`/`last` are refused outside bulk operations, as Shopify does.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    build_schema,
    get_named_type,
    validate,
    visit,
)

from alana_shopify import search
from alana_shopify.catalog import SimMedia, SimProduct, SimVariant

if TYPE_CHECKING:
    from alana_shopify.simulator import ShopifySimulator

SDL = """
schema { query: QueryRoot mutation: Mutation }

scalar DateTime
scalar URL
scalar HTML
scalar Money
scalar UnsignedInt64

interface Node { id: ID! }

enum CurrencyCode { USD EUR GBP CAD AUD CHF JPY }
enum CountPrecision { AT_LEAST EXACT }
enum ProductStatus { ACTIVE ARCHIVED DRAFT }
enum ProductSortKeys {
  CREATED_AT ID INVENTORY_TOTAL PRODUCT_TYPE PUBLISHED_AT RELEVANCE TITLE UPDATED_AT VENDOR
}
enum ProductVariantInventoryPolicy { CONTINUE DENY }
enum MediaContentType { EXTERNAL_VIDEO IMAGE MODEL_3D VIDEO }
enum MediaStatus { FAILED PROCESSING READY UPLOADED }
enum MediaPreviewImageStatus { FAILED PROCESSING READY UPLOADED }
enum BulkOperationStatus { CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }
enum BulkOperationErrorCode { ACCESS_DENIED INTERNAL_SERVER_ERROR TIMEOUT }
enum BulkOperationType { MUTATION QUERY }
enum BulkOperationUserErrorCode { INVALID OPERATION_IN_PROGRESS LIMIT_REACHED }
enum WebhookSubscriptionTopic {
  PRODUCTS_CREATE PRODUCTS_UPDATE PRODUCTS_DELETE INVENTORY_LEVELS_UPDATE BULK_OPERATIONS_FINISH
  APP_UNINSTALLED
}
enum WebhookSubscriptionFormat { JSON XML }

type Shop implements Node {
  id: ID!
  name: String!
  email: String!
  currencyCode: CurrencyCode!
  myshopifyDomain: String!
  ianaTimezone: String!
}

type ShopLocale { locale: String! name: String! primary: Boolean! published: Boolean! }

type Count { count: Int! precision: CountPrecision! }

type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }

type Image {
  id: ID
  url(transform: ImageTransformInput): URL!
  altText: String
  width: Int
  height: Int
}
input ImageTransformInput { maxWidth: Int maxHeight: Int }

type TaxonomyCategory implements Node { id: ID! name: String! fullName: String! isLeaf: Boolean! }

type ProductOptionValue implements Node { id: ID! name: String! hasVariants: Boolean! }
type ProductOption implements Node {
  id: ID!
  name: String!
  position: Int!
  values: [String!]!
  optionValues: [ProductOptionValue!]!
}

type SelectedOption { name: String! value: String! }

type Metafield implements Node { id: ID! namespace: String! key: String! value: String! type: String! }
type MetafieldEdge { cursor: String! node: Metafield! }
type MetafieldConnection { edges: [MetafieldEdge!]! nodes: [Metafield!]! pageInfo: PageInfo! }

type InventoryItem implements Node { id: ID! tracked: Boolean! sku: String }

type Translation {
  key: String!
  locale: String!
  value: String
  outdated: Boolean!
  updatedAt: DateTime
}

type Product implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  title: String!
  handle: String!
  description(truncateAt: Int): String!
  descriptionHtml: HTML!
  status: ProductStatus!
  vendor: String!
  productType: String!
  tags: [String!]!
  createdAt: DateTime!
  updatedAt: DateTime!
  publishedAt: DateTime
  totalInventory: Int!
  tracksInventory: Boolean!
  hasOnlyDefaultVariant: Boolean!
  isGiftCard: Boolean!
  onlineStoreUrl: URL
  category: TaxonomyCategory
  options(first: Int): [ProductOption!]!
  variants(
    first: Int, after: String, last: Int, before: String, reverse: Boolean = false
  ): ProductVariantConnection!
  variantsCount: Count
  media(first: Int, after: String, last: Int, before: String, reverse: Boolean = false): MediaConnection!
  mediaCount: Count
  translations(locale: String!, marketId: ID): [Translation!]!
  metafields(first: Int, after: String, last: Int, before: String, namespace: String): MetafieldConnection!
}

type ProductVariant implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  title: String!
  displayName: String!
  sku: String
  barcode: String
  price: Money!
  compareAtPrice: Money
  inventoryQuantity: Int
  inventoryPolicy: ProductVariantInventoryPolicy!
  position: Int!
  availableForSale: Boolean!
  taxable: Boolean!
  selectedOptions: [SelectedOption!]!
  inventoryItem: InventoryItem!
  product: Product!
  createdAt: DateTime!
  updatedAt: DateTime!
}

type MediaPreviewImage { image: Image status: MediaPreviewImageStatus! }
interface Media {
  id: ID!
  alt: String
  mediaContentType: MediaContentType!
  preview: MediaPreviewImage
  status: MediaStatus!
}
type MediaImage implements Media & Node {
  id: ID!
  alt: String
  mediaContentType: MediaContentType!
  preview: MediaPreviewImage
  status: MediaStatus!
  image: Image
}
type VideoSource { url: String! mimeType: String! }
type Video implements Media & Node {
  id: ID!
  alt: String
  mediaContentType: MediaContentType!
  preview: MediaPreviewImage
  status: MediaStatus!
  sources: [VideoSource!]!
}

type ProductEdge { cursor: String! node: Product! }
type ProductConnection { edges: [ProductEdge!]! nodes: [Product!]! pageInfo: PageInfo! }
type ProductVariantEdge { cursor: String! node: ProductVariant! }
type ProductVariantConnection { edges: [ProductVariantEdge!]! nodes: [ProductVariant!]! pageInfo: PageInfo! }
type MediaEdge { cursor: String! node: Media! }
type MediaConnection { edges: [MediaEdge!]! nodes: [Media!]! pageInfo: PageInfo! }

type BulkOperation implements Node {
  id: ID!
  status: BulkOperationStatus!
  errorCode: BulkOperationErrorCode
  createdAt: DateTime!
  completedAt: DateTime
  objectCount: UnsignedInt64!
  rootObjectCount: UnsignedInt64!
  fileSize: UnsignedInt64
  url: URL
  partialDataUrl: URL
  query: String!
  type: BulkOperationType!
}
type BulkOperationUserError { field: [String!] message: String! code: BulkOperationUserErrorCode }
type BulkOperationRunQueryPayload { bulkOperation: BulkOperation userErrors: [BulkOperationUserError!]! }
type BulkOperationCancelPayload { bulkOperation: BulkOperation userErrors: [UserError!]! }

type UserError { field: [String!] message: String! }
type WebhookHttpEndpoint { callbackUrl: URL! }
union WebhookSubscriptionEndpoint = WebhookHttpEndpoint
type WebhookSubscription implements Node {
  id: ID!
  topic: WebhookSubscriptionTopic!
  callbackUrl: URL!
  uri: String!
  format: WebhookSubscriptionFormat!
  includeFields: [String!]!
  endpoint: WebhookSubscriptionEndpoint!
  createdAt: DateTime!
  updatedAt: DateTime!
}
type WebhookSubscriptionEdge { cursor: String! node: WebhookSubscription! }
type WebhookSubscriptionConnection {
  edges: [WebhookSubscriptionEdge!]!
  nodes: [WebhookSubscription!]!
  pageInfo: PageInfo!
}
input WebhookSubscriptionInput {
  callbackUrl: URL
  uri: String
  format: WebhookSubscriptionFormat
  includeFields: [String!]
  metafieldNamespaces: [String!]
}
type WebhookSubscriptionCreatePayload { webhookSubscription: WebhookSubscription userErrors: [UserError!]! }
type WebhookSubscriptionDeletePayload { deletedWebhookSubscriptionId: ID userErrors: [UserError!]! }

type QueryRoot {
  shop: Shop!
  shopLocales(published: Boolean): [ShopLocale!]!
  products(
    first: Int, after: String, last: Int, before: String, query: String, reverse: Boolean = false,
    sortKey: ProductSortKeys = ID
  ): ProductConnection!
  productsCount(query: String, limit: Int = 10000): Count
  product(id: ID!): Product
  productVariant(id: ID!): ProductVariant
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  currentBulkOperation(type: BulkOperationType = QUERY): BulkOperation
  webhookSubscriptions(
    first: Int, after: String, last: Int, before: String, topics: [WebhookSubscriptionTopic!],
    callbackUrl: URL, uri: String
  ): WebhookSubscriptionConnection!
}

type Mutation {
  bulkOperationRunQuery(query: String!, groupObjects: Boolean! = false): BulkOperationRunQueryPayload
  bulkOperationCancel(id: ID!): BulkOperationCancelPayload
  webhookSubscriptionCreate(
    topic: WebhookSubscriptionTopic!, webhookSubscription: WebhookSubscriptionInput!
  ): WebhookSubscriptionCreatePayload
  webhookSubscriptionDelete(id: ID!): WebhookSubscriptionDeletePayload
}
"""

MAX_PAGE = 250
_GID = re.compile(r"^gid://shopify/(\w+)/(\d+)$")


def build() -> GraphQLSchema:
    return build_schema(SDL)


def gid(kind: str, number: int | str) -> str:
    return f"gid://shopify/{kind}/{number}"


def parse_gid(value: str) -> tuple[str, int]:
    match = _GID.match(value or "")
    if match is None:
        raise GraphQLError(f"Invalid global id '{value}'")
    return match.group(1), int(match.group(2))


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


@dataclass
class SimContext:
    """Per-request state for resolvers."""

    sim: ShopifySimulator
    bulk: bool = False
    bulk_ids: Sequence[int] | None = None
    search: list[dict[str, Any]] = field(default_factory=list)
    malformed: frozenset[str] = frozenset()


# ---- connections --------------------------------------------------------------------------------
def _encode(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps({"last_value": key[0], "last_id": key[1]}).encode()).decode()


def _decode(cursor: str) -> tuple[Any, ...]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return (data["last_value"], data["last_id"])
    except (ValueError, KeyError, TypeError):
        raise GraphQLError(f"Invalid cursor '{cursor}'") from None


def connection(
    items: Sequence[Any],
    keys: Sequence[tuple[Any, int]],
    render: Callable[[Any], dict[str, Any]],
    args: dict[str, Any],
    ctx: SimContext,
) -> dict[str, Any]:
    """A connection over items ordered by `keys` (sort value, id), paged by first/after/last/before."""
    first, last = args.get("first"), args.get("last")
    if not ctx.bulk and first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    for name, size in (("first", first), ("last", last)):
        if size is not None and not 0 <= size <= MAX_PAGE:
            raise GraphQLError(f"The {name} argument must be between 0 and {MAX_PAGE}")
    reverse = bool(args.get("reverse"))
    order = sorted(range(len(items)), key=lambda i: keys[i], reverse=reverse)
    try:
        if args.get("after"):
            mark = _decode(args["after"])
            order = [i for i in order if (keys[i] < mark if reverse else keys[i] > mark)]
        if args.get("before"):
            mark = _decode(args["before"])
            order = [i for i in order if (keys[i] > mark if reverse else keys[i] < mark)]
    except TypeError:
        raise GraphQLError("Invalid cursor for this sort key") from None
    has_next = has_previous = False
    if first is not None:
        has_next = len(order) > first
        order = order[:first]
    if last is not None:
        has_previous = len(order) > last
        order = order[len(order) - last :] if last else []
    nodes = [render(items[i]) for i in order]
    cursors = [_encode(keys[i]) for i in order]
    return {
        "edges": [{"cursor": c, "node": n} for c, n in zip(cursors, nodes, strict=True)],
        "nodes": nodes,
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous or bool(args.get("after")),
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


# ---- views --------------------------------------------------------------------------------------
def _plain(html: str, limit: int | None) -> str:
    text = re.sub(r"<[^>]+>", "", html)
    return text[:limit] if limit else text


def product_view(p: SimProduct, ctx: SimContext) -> dict[str, Any]:
    default_only = p.options == [("Title", ["Default Title"])]
    broken = str(p.id) in ctx.malformed
    option_rows = [
        {
            "__typename": "ProductOption",
            "id": gid("ProductOption", p.id * 10 + i),
            "name": name,
            "position": i,
            "values": values,
            "optionValues": [
                {"id": gid("ProductOptionValue", p.id * 1000 + i * 100 + j), "name": v, "hasVariants": True}
                for j, v in enumerate(values)
            ],
        }
        for i, (name, values) in enumerate(p.options, start=1)
    ]
    return {
        "__typename": "Product",
        "id": gid("Product", p.id),
        "legacyResourceId": str(p.id),
        "title": p.title,
        "handle": p.handle,
        "description": lambda info, truncateAt=None: _plain(p.description_html, truncateAt),
        "descriptionHtml": p.description_html,
        "status": p.status,
        "vendor": p.vendor,
        "productType": p.product_type,
        "tags": list(p.tags),
        "createdAt": iso(p.created_at),
        "updatedAt": iso(p.updated_at),
        "publishedAt": iso(p.published_at),
        "totalInventory": p.total_inventory,
        "tracksInventory": p.tracks_inventory,
        "hasOnlyDefaultVariant": default_only,
        "isGiftCard": False,
        "onlineStoreUrl": f"https://{ctx.sim.shop_domain}/products/{p.handle}" if p.status == "ACTIVE" else None,
        "category": (
            {
                "id": gid("TaxonomyCategory", p.id % 97),
                "name": p.category[0],
                "fullName": p.category[1],
                "isLeaf": True,
            }
            if p.category
            else None
        ),
        "options": lambda info, first=None: option_rows[:first] if first is not None else option_rows,
        "variants": lambda info, **args: connection(
            p.variants,
            [(v.position, v.id) for v in p.variants],
            lambda v: variant_view(v, p, ctx, broken),
            args,
            ctx,
        ),
        "variantsCount": {"count": len(p.variants), "precision": "EXACT"},
        "media": lambda info, **args: connection(
            p.media, [(i, m.id) for i, m in enumerate(p.media)], media_view, args, ctx
        ),
        "mediaCount": {"count": len(p.media), "precision": "EXACT"},
        "metafields": lambda info, namespace=None, **args: connection(
            [m for m in p.metafields if namespace in (None, m[0])],
            [(i, i) for i, m in enumerate(p.metafields) if namespace in (None, m[0])],
            lambda m: {
                "id": gid("Metafield", p.id * 100 + p.metafields.index(m)),
                "namespace": m[0],
                "key": m[1],
                "value": m[2],
                "type": "single_line_text_field",
            },
            args,
            ctx,
        ),
        "translations": lambda info, locale, marketId=None: [
            {"key": key, "locale": locale, "value": value, "outdated": False, "updatedAt": iso(p.updated_at)}
            for key, value in p.translations.get(locale, {}).items()
        ],
    }


def variant_view(v: SimVariant, p: SimProduct, ctx: SimContext, broken: bool = False) -> dict[str, Any]:
    return {
        "__typename": "ProductVariant",
        "id": gid("ProductVariant", v.id),
        "legacyResourceId": str(v.id),
        "title": v.title,
        "displayName": f"{p.title} - {v.title}",
        "sku": v.sku,
        "barcode": v.barcode,
        # A malformed product (FaultPlan.malformed_ids) is served with a price that is no number.
        "price": "not-a-price" if broken else f"{v.price:.2f}",
        "compareAtPrice": f"{v.compare_at:.2f}" if v.compare_at is not None else None,
        "inventoryQuantity": v.quantity,
        "inventoryPolicy": v.policy,
        "position": v.position,
        "availableForSale": p.status == "ACTIVE" and (not v.tracked or v.quantity > 0 or v.policy == "CONTINUE"),
        "taxable": True,
        "selectedOptions": [{"name": n, "value": val} for n, val in v.options],
        "inventoryItem": {"id": gid("InventoryItem", v.id), "tracked": v.tracked, "sku": v.sku},
        "product": lambda info: product_view(p, ctx),
        "createdAt": iso(v.created_at),
        "updatedAt": iso(v.updated_at),
    }


def media_view(m: SimMedia) -> dict[str, Any]:
    image = {"id": gid("ImageSource", m.id), "url": m.url, "altText": m.alt, "width": 1200, "height": 1200}
    common = {"alt": m.alt, "status": "READY", "preview": {"image": image, "status": "READY"}}
    if m.kind == "IMAGE":
        return {
            "__typename": "MediaImage",
            "id": gid("MediaImage", m.id),
            "mediaContentType": "IMAGE",
            "image": image,
            **common,
        }
    return {
        "__typename": "Video",
        "id": gid("Video", m.id),
        "mediaContentType": "VIDEO",
        "sources": [{"url": m.url, "mimeType": "video/mp4"}],
        **common,
    }


# ---- root resolvers -------------------------------------------------------------------------------
_SORT: dict[str, Callable[[SimProduct], Any]] = {
    "ID": lambda p: p.id,
    "RELEVANCE": lambda p: p.id,
    "UPDATED_AT": lambda p: iso(p.updated_at),
    "CREATED_AT": lambda p: iso(p.created_at),
    "PUBLISHED_AT": lambda p: iso(p.published_at) or "",
    "TITLE": lambda p: p.title.lower(),
    "VENDOR": lambda p: p.vendor.lower(),
    "PRODUCT_TYPE": lambda p: p.product_type.lower(),
    "INVENTORY_TOTAL": lambda p: p.total_inventory,
}


def _ctx(info: Any) -> SimContext:
    ctx = info.context
    assert isinstance(ctx, SimContext)
    return ctx


def _matching(ctx: SimContext, query: str | None) -> list[SimProduct]:
    catalog = ctx.sim.catalog
    if ctx.bulk_ids is not None:
        candidates = [catalog.products[i] for i in ctx.bulk_ids if i in catalog.products]
    else:
        candidates = list(catalog.products.values())
    parsed = search.parse(query)
    if parsed.warnings:
        ctx.search.append({"path": ["products"], "query": query, "warnings": parsed.warnings})
    return [p for p in candidates if parsed.matches(p)]


def resolve_products(info: Any, **args: Any) -> dict[str, Any]:
    ctx = _ctx(info)
    products = _matching(ctx, args.get("query"))
    sort = _SORT[args.get("sortKey") or "ID"]
    keys = [(sort(p), p.id) for p in products]
    return connection(products, keys, lambda p: product_view(p, ctx), args, ctx)


def resolve_products_count(info: Any, query: str | None = None, limit: int | None = 10000) -> dict[str, Any]:
    count = len(_matching(_ctx(info), query))
    if limit is not None and count > limit:
        return {"count": limit, "precision": "AT_LEAST"}
    return {"count": count, "precision": "EXACT"}


def resolve_node(info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002 - GraphQL's argument name
    ctx = _ctx(info)
    kind, number = parse_gid(id)
    catalog = ctx.sim.catalog
    if kind == "Product":
        product = catalog.products.get(number)
        return product_view(product, ctx) if product else None
    if kind == "ProductVariant":
        for product in catalog.products.values():
            for variant in product.variants:
                if variant.id == number:
                    return variant_view(variant, product, ctx, str(product.id) in ctx.malformed)
        return None
    if kind == "BulkOperation":
        return ctx.sim.bulk_view(number)
    if kind == "WebhookSubscription":
        return ctx.sim.subscription_view(id)
    return None


def resolve_product(info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
    return resolve_node(info, id) if parse_gid(id)[0] == "Product" else None


def resolve_variant(info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
    return resolve_node(info, id) if parse_gid(id)[0] == "ProductVariant" else None


def resolve_nodes(info: Any, ids: list[str]) -> list[dict[str, Any] | None]:
    if len(ids) > MAX_PAGE:
        raise GraphQLError(f"The ids argument accepts at most {MAX_PAGE} ids")
    return [resolve_node(info, i) for i in ids]


def resolve_shop_locales(info: Any, published: bool | None = None) -> list[dict[str, Any]]:
    rows = _ctx(info).sim.shop_locales()
    return [r for r in rows if published is None or r["published"] == published]


def resolve_webhook_subscriptions(info: Any, **args: Any) -> dict[str, Any]:
    ctx = _ctx(info)
    rows = ctx.sim.subscription_rows(args.get("topics"), args.get("callbackUrl") or args.get("uri"))
    keys = [(int(r["id"].rsplit("/", 1)[-1]), int(r["id"].rsplit("/", 1)[-1])) for r in rows]
    return connection(rows, keys, lambda r: r, args, ctx)


def root_value() -> dict[str, Any]:
    return {
        "shop": lambda info: _ctx(info).sim.shop_view(),
        "shopLocales": resolve_shop_locales,
        "products": resolve_products,
        "productsCount": resolve_products_count,
        "product": resolve_product,
        "productVariant": resolve_variant,
        "node": resolve_node,
        "nodes": resolve_nodes,
        "currentBulkOperation": lambda info, type="QUERY": _ctx(info).sim.current_bulk_view(),
        "webhookSubscriptions": resolve_webhook_subscriptions,
        # mutations
        "bulkOperationRunQuery": lambda info, query, groupObjects=False: _ctx(info).sim.run_bulk_query(
            query, groupObjects
        ),
        "bulkOperationCancel": lambda info, id: _ctx(info).sim.cancel_bulk(id),
        "webhookSubscriptionCreate": lambda info, topic, webhookSubscription: _ctx(info).sim.create_subscription(
            topic, webhookSubscription
        ),
        "webhookSubscriptionDelete": lambda info, id: _ctx(info).sim.delete_subscription(id),
    }


# ---- static checks with Shopify's error shapes -----------------------------------------------------
@dataclass
class Inspection:
    undefined: list[dict[str, Any]] = field(default_factory=list)
    unpaged: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    max_connection_depth: int = 0


class _Inspector(Visitor):
    def __init__(self, type_info: TypeInfo, result: Inspection) -> None:
        super().__init__()
        self.type_info = type_info
        self.result = result
        self.path: list[str] = []
        self.stack: list[bool] = []
        self.depth = 0

    def enter_operation_definition(self, node: Any, *_: Any) -> None:
        self.path = [node.operation.value + (f" {node.name.value}" if node.name else "")]

    def enter_fragment_definition(self, node: Any, *_: Any) -> None:
        self.path = [f"fragment {node.name.value}"]

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        name = node.name.value
        self.path.append(name)
        definition = self.type_info.get_field_def()
        parent = self.type_info.get_parent_type()
        is_connection = False
        location = (
            {
                "line": node.loc.source.get_location(node.loc.start).line,
                "column": node.loc.source.get_location(node.loc.start).column,
            }
            if node.loc
            else None
        )
        if definition is None and not name.startswith("__"):
            self.result.undefined.append(
                {
                    "message": f"Field '{name}' doesn't exist on type '{getattr(parent, 'name', '?')}'",
                    "locations": [location] if location else [],
                    "path": list(self.path),
                    "extensions": {
                        "code": "undefinedField",
                        "typeName": getattr(parent, "name", "?"),
                        "fieldName": name,
                    },
                }
            )
        elif definition is not None:
            named = get_named_type(definition.type)
            is_connection = named is not None and named.name.endswith("Connection")
            if is_connection:
                self.depth += 1
                self.result.connections += 1
                self.result.max_connection_depth = max(self.result.max_connection_depth, self.depth)
                given = {a.name.value for a in node.arguments or ()}
                if "first" in definition.args and not given & {"first", "last"}:
                    self.result.unpaged.append(
                        {
                            "message": "you must provide one of first or last",
                            "locations": [location] if location else [],
                            "path": self.path[1:],
                        }
                    )
        self.stack.append(is_connection)

    def leave_field(self, node: FieldNode, *_: Any) -> None:
        self.path.pop()
        if self.stack.pop():
            self.depth -= 1


def inspect(schema: GraphQLSchema, document: DocumentNode) -> Inspection:
    result = Inspection()
    type_info = TypeInfo(schema)
    visit(document, TypeInfoVisitor(type_info, _Inspector(type_info, result)))
    return result


_UNKNOWN_ARGUMENT = re.compile(r"^Unknown argument '(\w+)' on field '(\w+)\.(\w+)'\.")


def validation_errors(schema: GraphQLSchema, document: DocumentNode, inspection: Inspection) -> list[dict[str, Any]]:
    """Validation failures in Shopify's (graphql-ruby's) wording; empty when the document is valid."""
    errors = list(inspection.undefined)
    for error in validate(schema, document):
        if error.message.startswith("Cannot query field"):
            continue  # reported above with Shopify's wording and path
        locations = [{"line": loc.line, "column": loc.column} for loc in error.locations or ()]
        match = _UNKNOWN_ARGUMENT.match(error.message)
        if match:
            argument, type_name, field_name = match.groups()
            errors.append(
                {
                    "message": f"Field '{field_name}' doesn't accept argument '{argument}'",
                    "locations": locations,
                    "extensions": {
                        "code": "argumentNotAccepted",
                        "name": field_name,
                        "typeName": "Field",
                        "argumentName": argument,
                    },
                }
            )
        else:
            errors.append({"message": error.message, "locations": locations})
    return errors
