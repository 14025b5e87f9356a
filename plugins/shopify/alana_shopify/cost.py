"""Shopify's calculated query cost, for a GraphQL document and for the data it returned.

Shopify charges a query its *requested* cost up front (the bucket must hold it, and it may not exceed
the single-query limit) and refunds the difference to the *actual* cost afterwards. The documented
rules, which the client uses to plan and the simulator uses to charge:

- scalars and enums cost 0, an object 1;
- a connection costs 2 plus `first`/`last` times the cost of one node (the node object 1 plus its
  own selection);
- `nodes(ids: [...])` costs one node per id;
- where a selection branches on the concrete type (`... on MediaImage`), the costliest branch counts;
- a mutation field costs 10.

The *actual* cost is "based on the results returned" and real shops charge far less than the
requested worst case (docs/reference/PLATFORMS.md A). What `actual_cost` charges follows recorded real answers:

- a connection costs 2 plus 1 for each node it returned (not per `first`), plus what the node's own
  nested connections returned: `products(first: 250) { nodes { id } }` costs 2 + the products
  returned (13 for 11 products);
- plain objects and lists of them inside a returned node (a variant's `selectedOptions` and
  `inventoryItem`, a product's `translations`, `options`, `category`, a media's `image`) are not
  charged again;
- outside nodes an object costs 1 (`shop`, `product(id:)`), a list of objects nothing by itself.

This reproduces a recorded `productCreate` exactly (requested 18, actual 14: 10 + product 1 +
`variants` 2 + the one variant, its `selectedOptions` free) and stays at or somewhat above the other
recorded reads (twelve aliased `variants` connections with 32 variants and some `inventoryItem`s on
one product cost 51, where this charges 57), so a client planning against the simulator is never
more optimistic than a real shop allows.

Planning with the requested cost is what keeps a client from ever being throttled; the refund is
what it learns page by page.

The last section turns cost into time: whether the rest of a full read is faster through paginated
queries (paid from the bucket) or through a bulk operation (a fixed overhead), `choose_read`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    value_from_ast_untyped,
)

MUTATION_COST = 10
CONNECTION_COST = 2
OBJECT_COST = 1
#: Shopify's single-query limit on the requested cost.
MAX_QUERY_COST = 1000

_WRAPPERS = frozenset({"pageInfo"})


class _Walker:
    def __init__(self, document: DocumentNode, variables: Mapping[str, Any] | None) -> None:
        self.variables = dict(variables or {})
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def args(self, field: FieldNode) -> dict[str, Any]:
        return {a.name.value: value_from_ast_untyped(a.value, self.variables) for a in field.arguments or ()}

    def size(self, field: FieldNode) -> int | None:
        """The page size of a connection field, None when the field is no connection."""
        args = self.args(field)
        for name in ("first", "last"):
            if isinstance(args.get(name), int):
                return int(args[name])
        return None

    # ---- requested ------------------------------------------------------------------------------
    def requested(self, selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        total = 0
        branches: list[int] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.requested_field(selection)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    total += self.requested(fragment.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                branches.append(self.requested(selection.selection_set))
        return total + max(branches, default=0)

    def requested_field(self, field: FieldNode) -> int:
        if field.selection_set is None or field.name.value.startswith("__"):
            return 0
        size = self.size(field)
        if size is not None:
            return CONNECTION_COST + size * self.requested_node(field.selection_set)
        ids = self.args(field).get("ids")
        if isinstance(ids, list):
            return len(ids) * (OBJECT_COST + self.requested(field.selection_set))
        return OBJECT_COST + self.requested(field.selection_set)

    def requested_node(self, connection: SelectionSetNode) -> int:
        """The cost of one node of a connection: the costlier of its `nodes` and `edges` selections."""
        best = 0
        for selection in connection.selections:
            if not isinstance(selection, FieldNode) or selection.name.value in _WRAPPERS:
                continue
            if selection.name.value == "nodes":
                best = max(best, OBJECT_COST + self.requested(selection.selection_set))
            elif selection.name.value == "edges" and selection.selection_set is not None:
                for inner in selection.selection_set.selections:
                    if isinstance(inner, FieldNode) and inner.name.value == "node":
                        best = max(best, OBJECT_COST + self.requested(inner.selection_set))
        return best

    # ---- actual ---------------------------------------------------------------------------------
    def actual(self, selection_set: SelectionSetNode | None, data: Any, in_node: bool = False) -> int:
        """What `data` cost; `in_node` inside a returned connection node, whose plain objects are free."""
        if selection_set is None or not isinstance(data, Mapping):
            return 0
        total = 0
        branches: list[int] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                total += self.actual_field(selection, data.get(key), in_node)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    total += self.actual(fragment.selection_set, data, in_node)
            elif isinstance(selection, InlineFragmentNode):
                branches.append(self.actual(selection.selection_set, data, in_node))
        return total + max(branches, default=0)

    def actual_field(self, field: FieldNode, value: Any, in_node: bool) -> int:
        if field.selection_set is None or value is None or field.name.value.startswith("__"):
            return 0
        if self.size(field) is not None and isinstance(value, Mapping):
            return CONNECTION_COST + self.actual_nodes(field.selection_set, value)
        if isinstance(value, list):
            if isinstance(self.args(field).get("ids"), list):
                # nodes(ids:): each node found is a node like a connection's.
                return sum(OBJECT_COST + self.actual(field.selection_set, v, True) for v in value if v is not None)
            # A list of plain objects: free by itself; connections inside its items still count.
            return sum(self.actual(field.selection_set, v, in_node) for v in value)
        own = 0 if in_node else OBJECT_COST
        return own + self.actual(field.selection_set, value, in_node)

    def actual_nodes(self, connection: SelectionSetNode, value: Mapping[str, Any]) -> int:
        """The nodes a connection returned: 1 each plus their nested connections."""
        best = 0
        for selection in connection.selections:
            if not isinstance(selection, FieldNode):
                continue
            key = (selection.alias or selection.name).value
            items = value.get(key)
            if not isinstance(items, list):
                continue
            if selection.name.value == "nodes":
                cost = sum(OBJECT_COST + self.actual(selection.selection_set, n, True) for n in items)
                best = max(best, cost)
            elif selection.name.value == "edges" and selection.selection_set is not None:
                for inner in selection.selection_set.selections:
                    if isinstance(inner, FieldNode) and inner.name.value == "node":
                        node_key = (inner.alias or inner.name).value
                        cost = sum(
                            OBJECT_COST + self.actual(inner.selection_set, e.get(node_key), True)
                            for e in items
                            if isinstance(e, Mapping)
                        )
                        best = max(best, cost)
        return best


def _operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        return next((o for o in operations if o.name and o.name.value == operation_name), None)
    return operations[0] if len(operations) == 1 else None


def requested_cost(
    document: DocumentNode | str,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> int:
    """The requested (worst-case) cost of running `document` with `variables`."""
    doc = parse(document) if isinstance(document, str) else document
    operation = _operation(doc, operation_name)
    if operation is None:
        return 0
    if operation.operation == OperationType.MUTATION:
        return MUTATION_COST * sum(isinstance(s, FieldNode) for s in operation.selection_set.selections)
    return _Walker(doc, variables).requested(operation.selection_set)


def actual_cost(
    document: DocumentNode | str,
    data: Mapping[str, Any] | None,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> int:
    """The cost of what a query actually returned (connections charged for the nodes they hold, see above)."""
    doc = parse(document) if isinstance(document, str) else document
    operation = _operation(doc, operation_name)
    if operation is None:
        return 0
    if operation.operation == OperationType.MUTATION:
        return requested_cost(doc, variables, operation_name)
    return _Walker(doc, variables).actual(operation.selection_set, data or {})


# ---- bulk operation or paginated queries --------------------------------------------------------------
# A full read goes through a bulk operation when paginated queries would take longer than a bulk
# operation's fixed overhead. Paginated queries are paid from the bucket: the rest of the catalog
# costs about `remaining x cost per product` (measured on the first products, their follow-up pages
# included), the bucket pays what it holds at once and restores the rest at its restore rate, and
# each request costs a round trip too. A bulk operation is not paid from the bucket but has a fixed
# overhead: starting it (Shopify queues and runs it), polling until it ends, and the download's round
# trip. Reading and mapping the products costs the same either way, so it is left out of both.

#: What Shopify takes to pick up and finish a small bulk operation, by default (seconds).
BULK_START_SECONDS = 3.0


@dataclass(frozen=True)
class BucketState:
    """The cost bucket as the client's model sees it now."""

    available: float
    maximum: float
    restore_rate: float


@dataclass(frozen=True)
class ReadSample:
    """What reading the first products through paginated queries measured."""

    products: int
    #: Actual cost charged (extensions.cost.actualQueryCost), follow-up pages included.
    cost: float
    requests: int
    #: Time spent on the requests, waits for the bucket left out.
    seconds: float

    @property
    def cost_per_product(self) -> float:
        return self.cost / self.products if self.products else 0.0

    @property
    def requests_per_product(self) -> float:
        return self.requests / self.products if self.products else 0.0

    @property
    def latency(self) -> float:
        """Seconds per request."""
        return self.seconds / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class BulkOverhead:
    """A bulk operation's fixed cost in time: start, polling until it ends, the download's round trip."""

    latency: float
    poll_interval: float = 2.0
    start: float = BULK_START_SECONDS

    @property
    def seconds(self) -> float:
        # The mutation and the download are a round trip each; the end is seen at the next poll (its
        # own round trip), which comes up to a poll interval after the operation finished.
        return self.start + self.poll_interval + 3 * self.latency


@dataclass(frozen=True)
class ReadPlan:
    """The choice for the rest of a full read, with the estimates it was made from."""

    bulk: bool
    remaining: int
    paginated_seconds: float
    bulk_seconds: float

    def describe(self) -> str:
        path = "a bulk operation" if self.bulk else "paginated queries"
        return (
            f"{path}: the other {self.remaining} products take about {self.paginated_seconds:.1f} s through "
            f"paginated queries and {self.bulk_seconds:.1f} s through a bulk operation"
        )


def paginated_seconds(remaining: int, sample: ReadSample, bucket: BucketState) -> float:
    """How long paginated queries take for `remaining` more products like the sample."""
    cost = remaining * sample.cost_per_product
    waiting = max(0.0, cost - bucket.available) / max(bucket.restore_rate, 1e-6)
    # The bucket restores while requests are in flight: whichever takes longer sets the pace.
    talking = remaining * sample.requests_per_product * sample.latency
    return max(waiting, talking)


def choose_read(remaining: int, sample: ReadSample, bucket: BucketState, overhead: BulkOverhead) -> ReadPlan:
    """Bulk operation or paginated queries for the rest of a full read: whichever is estimated faster."""
    pages = paginated_seconds(remaining, sample, bucket) if remaining > 0 and sample.products > 0 else 0.0
    bulk = overhead.seconds
    return ReadPlan(bulk=pages > bulk, remaining=max(0, remaining), paginated_seconds=pages, bulk_seconds=bulk)
