"""Query cost: how much work a GraphQL document asks for, measured on its syntax tree before graphql-core
validates or executes it (gateway/api/guard.py runs it).

Fragment spreads are expanded as execution would expand them, against a budget: every selection and
directive the walk visits counts, and the walk stops at the first one over `max_nodes`. A document whose
fragments each spread the previous one twice (2^n selections from a few hundred bytes, issue 11's probe)
is refused after `max_nodes` steps, never 2^n. The same walk bounds depth, nesting of fragments, and the
number of times one response name repeats in a selection set (graphql-core's OverlappingFieldsCanBeMerged
compares those pairwise), so what reaches validation is small.

The cost model, in the units refusals quote:
- a field costs its weight each time it can appear in the response: 1 for a plain field,
  RESOLVER_COST for a field with its own resolver (it reads MongoDB or Redis), DOCUMENT_COST for a
  JSON field (a whole stored document, such as `storeVersion`);
- below a list, everything appears once per item: `first` for paginated fields (its default when the
  argument is absent, capped at the page-size limit since larger values are refused anyway), applied to
  the connection's list (`edges`); LIST_SIZE for lists without `first`.
So `products(first: 250) { edges { node { id } } }` costs 10 + 1 + 250 + 250 = 511, and 1,000 aliases of it
511,000.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

from gateway.errors import BadInput

RESOLVER_COST = 10
#: Field metadata of a resolver that reads nothing (it reshapes its parent's data): costed as a plain field.
IN_MEMORY = "alana.in_memory"
DOCUMENT_COST = 50
LIST_SIZE = 10
#: Spreads and inline fragments along one path from the root.
MAX_FRAGMENT_NESTING = 32
#: Introspection types nest `ofType` about ten deep (GraphiQL's TypeRef), deeper than any data query.
INTROSPECTION_DEPTH = 24
#: Fields with one response name in one selection set (fragments included).
MAX_SAME_NAME = 20
#: Operations and fragments in one document, variables of one operation, directives on one selection:
#: far above what clients send, low enough that graphql-core's per-item rules stay cheap.
MAX_DEFINITIONS = 200
MAX_VARIABLES = 100
MAX_DIRECTIVES = 8


@dataclass(frozen=True)
class CostLimits:
    """The settings the walk checks (gateway/api/guard.py builds them from gateway/settings.py)."""

    max_cost: int
    max_depth: int
    max_nodes: int
    max_page_size: int
    max_list_items: int
    max_variable_values: int


@dataclass(frozen=True)
class QueryCost:
    cost: int
    depth: int
    #: Selections and directives visited, fragments expanded.
    nodes: int


class QueryRefused(BadInput):
    """The document asks for more than the limits allow; `nodes` is how far the walk went."""

    def __init__(self, message: str, *, nodes: int, cost: int | None = None, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.nodes = nodes
        self.cost = cost


def analyse(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
    limits: CostLimits,
) -> QueryCost:
    """The cost of the operation that would run; QueryRefused when any limit is passed."""
    walk = _Walk(schema, document, variables or {}, limits)
    if len(document.definitions) > MAX_DEFINITIONS:
        raise QueryRefused(f"the document holds more than {MAX_DEFINITIONS} operations and fragments", nodes=0)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    named = [op for op in operations if operation_name and op.name and op.name.value == operation_name]
    cost = 0
    for operation in named or operations:
        if len(operation.variable_definitions or ()) > MAX_VARIABLES:
            raise QueryRefused(f"an operation may declare at most {MAX_VARIABLES} variables", nodes=walk.nodes)
        walk.directives(operation.directives)
        walk.count(len(operation.variable_definitions or ()))
        root = _root_type(schema, operation.operation)
        before = walk.cost
        try:
            walk.selections(operation.selection_set, root, 1, 1, None, {}, 0)
        except RecursionError:  # the limits above keep the walk far from it; this is the backstop
            raise QueryRefused("the query is nested too deeply", nodes=walk.nodes) from None
        cost = max(cost, walk.cost - before)
    _check_variables(variables or {}, walk.usage, limits, walk.nodes)
    if cost > limits.max_cost:
        raise QueryRefused(
            f"query cost {cost:,} is over the limit of {limits.max_cost:,} per request: ask for fewer items "
            "(first), fields or aliases",
            nodes=walk.nodes,
            cost=cost,
        )
    return QueryCost(cost=cost, depth=walk.depth, nodes=walk.nodes)


def _root_type(schema: GraphQLSchema, operation: OperationType) -> GraphQLObjectType | None:
    if operation is OperationType.MUTATION:
        return schema.mutation_type
    if operation is OperationType.SUBSCRIPTION:
        return schema.subscription_type
    return schema.query_type


@dataclass
class _Walk:
    schema: GraphQLSchema
    document: DocumentNode
    variables: Mapping[str, Any]
    limits: CostLimits
    nodes: int = 0
    cost: int = 0
    depth: int = 0
    #: Variable name -> the argument path it feeds, so a refusal about a variable names the field.
    usage: dict[str, str] = field(default_factory=dict)
    fragments: dict[str, FragmentDefinitionNode] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for definition in self.document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                self.fragments.setdefault(definition.name.value, definition)

    def count(self, n: int = 1) -> None:
        self.nodes += n
        if self.nodes > self.limits.max_nodes:
            raise QueryRefused(
                f"the query selects more than {self.limits.max_nodes:,} fields and directives once its fragments "
                "are expanded: ask for less, or split it",
                nodes=self.nodes,
            )

    def directives(self, directives: Sequence[DirectiveNode] | None) -> None:
        if directives and len(directives) > MAX_DIRECTIVES:
            raise QueryRefused(f"at most {MAX_DIRECTIVES} directives are allowed in one place", nodes=self.nodes)
        self.count(len(directives or ()))

    def selections(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType | None,
        multiplier: int,
        depth: int,
        pending: int | None,
        names: dict[str, int],
        nesting: int,
    ) -> None:
        """Walk one selection set; `names` is shared by the fragments merged into it."""
        for selection in selection_set.selections:
            self.count()
            self.directives(selection.directives)
            if isinstance(selection, FieldNode):
                name = (selection.alias or selection.name).value
                names[name] = names.get(name, 0) + 1
                if names[name] > MAX_SAME_NAME:
                    raise QueryRefused(
                        f"{name!r} is selected more than {MAX_SAME_NAME} times in one selection set once its "
                        "fragments are expanded",
                        nodes=self.nodes,
                    )
                self.field(selection, parent, multiplier, depth, pending, nesting)
                continue
            if nesting >= MAX_FRAGMENT_NESTING:
                raise QueryRefused(f"fragments are nested more than {MAX_FRAGMENT_NESTING} deep", nodes=self.nodes)
            if isinstance(selection, InlineFragmentNode):
                target = self._type(selection.type_condition.name.value) if selection.type_condition else parent
                self.selections(selection.selection_set, target, multiplier, depth, pending, names, nesting + 1)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None:
                    continue  # validation names the unknown fragment
                self.directives(fragment.directives)
                target = self._type(fragment.type_condition.name.value)
                self.selections(fragment.selection_set, target, multiplier, depth, pending, names, nesting + 1)

    def field(
        self,
        node: FieldNode,
        parent: GraphQLNamedType | None,
        multiplier: int,
        depth: int,
        pending: int | None,
        nesting: int,
    ) -> None:
        name = node.name.value
        introspection = name.startswith("__") or (parent is not None and parent.name.startswith("__"))
        limit = max(self.limits.max_depth, INTROSPECTION_DEPTH) if introspection else self.limits.max_depth
        if depth > limit:
            raise QueryRefused(f"the query is nested deeper than {limit} fields", nodes=self.nodes)
        self.depth = max(self.depth, depth)
        definition = self._field(parent, name)
        for argument in node.arguments or ():
            self._note_variables(argument.value, argument.name.value)
        if definition is None:  # __typename, or a field validation will refuse
            self.cost += multiplier
            if node.selection_set:
                self.selections(node.selection_set, None, multiplier, depth + 1, None, {}, nesting)
            return
        named = get_named_type(definition.type)
        self.cost += _weight(definition, named) * multiplier
        if not node.selection_set:
            return
        size = self._first(node, definition)
        child_multiplier, child_pending = multiplier, None
        if size is not None and _is_list(definition):
            child_multiplier *= size
        elif size is not None:
            child_pending = size  # a connection: its list (edges) has `first` items
        elif _is_list(definition):
            child_multiplier *= pending if pending is not None else LIST_SIZE
        self.selections(node.selection_set, named, child_multiplier, depth + 1, child_pending, {}, nesting)

    def _type(self, name: str) -> GraphQLNamedType | None:
        return self.schema.get_type(name)

    def _field(self, parent: GraphQLNamedType | None, name: str) -> GraphQLField | None:
        if name == "__schema":
            return SchemaMetaFieldDef
        if name == "__type":
            return TypeMetaFieldDef
        fields = getattr(parent, "fields", None)
        return fields.get(name) if fields else None

    def _first(self, node: FieldNode, definition: GraphQLField) -> int | None:
        argument = definition.args.get("first")
        if argument is None:
            return None
        value: Any = argument.default_value
        for given in node.arguments or ():
            if given.name.value != "first":
                continue
            if isinstance(given.value, IntValueNode):
                try:
                    value = int(given.value.value)
                except ValueError:  # more digits than Python converts: far over the cap
                    value = self.limits.max_page_size
            elif isinstance(given.value, VariableNode):
                value = self.variables.get(given.value.name.value, argument.default_value)
        if not isinstance(value, int) or isinstance(value, bool):
            value = argument.default_value if isinstance(argument.default_value, int) else self.limits.max_page_size
        # Values over the cap are refused by the resolver with the field named; count them at the cap.
        return max(0, min(int(value), self.limits.max_page_size))

    def _note_variables(self, value: ValueNode, path: str) -> None:
        if isinstance(value, VariableNode):
            self.usage.setdefault(value.name.value, path)
        elif isinstance(value, ObjectValueNode):
            for item in value.fields:
                self._note_variables(item.value, f"{path}.{item.name.value}")
        elif isinstance(value, ListValueNode):
            for element in value.values:
                self._note_variables(element, path)


def _weight(definition: GraphQLField, named: GraphQLNamedType) -> int:
    if isinstance(named, GraphQLScalarType) and named.name == "JSON":
        return DOCUMENT_COST
    strawberry_field = (definition.extensions or {}).get("strawberry-definition")
    if getattr(strawberry_field, "base_resolver", None) is not None:
        # A resolver that only reshapes what its parent already holds costs what a plain field does.
        return 1 if (getattr(strawberry_field, "metadata", None) or {}).get(IN_MEMORY) else RESOLVER_COST
    return 1


def _is_list(definition: GraphQLField) -> bool:
    output = definition.type
    if isinstance(output, GraphQLNonNull):
        output = output.of_type
    return isinstance(output, GraphQLList)


def _check_variables(variables: Mapping[str, Any], usage: Mapping[str, str], limits: CostLimits, nodes: int) -> None:
    """Bound the values graphql-core will coerce one by one: lists and values in all."""
    total = 0
    # Paths are cut short: a key in the variables can be as long as the body.
    stack: list[tuple[Any, str]] = [(value, usage.get(name, name)[:200]) for name, value in variables.items()]
    while stack:
        value, path = stack.pop()
        total += 1
        if total > limits.max_variable_values:
            raise QueryRefused(
                f"the variables hold more than {limits.max_variable_values:,} values", nodes=nodes, field=path
            )
        if isinstance(value, list):
            if len(value) > limits.max_list_items:
                raise QueryRefused(
                    f"{path} has {len(value):,} items; at most {limits.max_list_items:,} are allowed",
                    nodes=nodes,
                    field=path,
                )
            stack.extend((item, path) for item in value)
        elif isinstance(value, dict):
            stack.extend((item, f"{path}.{key}"[:200]) for key, item in value.items())
