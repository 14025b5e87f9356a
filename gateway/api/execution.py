"""How a response is executed: strawberry's executor, with a shorter way for a plain leaf field.

Most of a page's fields are plain leaves: `status`, `queuedAt`, `storeValue`, one per row of a list of
runs or conflicts (the Integrations page's own query resolves about 1,800 fields, 1,500 of them leaves).
graphql-core spends most of its time per field, not per row: for each one it builds a resolve info,
looks the resolver up through the (empty) middleware, then completes the value through the non-null,
list, leaf and object checks. For a field whose resolver is strawberry's attribute read (no resolver
function, no permission, no extension, no arguments) and whose type is a scalar or an enum, none of
that can change the answer: the value is the attribute, coerced by the type. Measured on that page
query (3 stores, 100 conflicts): 15-20 % less CPU per request.

Anything else, and any leaf whose value would be an error (null where the type says non-null, a
value the type refuses), goes through graphql-core's own path, which then answers with the usual error;
re-reading an attribute has no side effects. The shortcut relies on graphql-core 3.3's executor (its
`execute_field` receives the field's details list); another major version runs the stock executor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import graphql
from graphql import GraphQLNonNull, GraphQLObjectType, is_leaf_type
from graphql.pyutils import Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

#: A field that takes graphql-core's own path.
_STOCK = None

#: (attribute name, coerce, non-null) of a plain leaf field.
Plan = tuple[str, Callable[[Any], Any], bool]


def _plan_of(
    execution: StrawberryGraphQLCoreExecutionContext, parent_type: GraphQLObjectType, name: str
) -> Plan | None:
    field = execution.schema.get_field(parent_type, name)
    if field is None or field.args:
        return _STOCK
    middleware = execution.middleware_manager
    if middleware is not None and middleware.middlewares:
        return _STOCK
    resolve = field.resolve
    # strawberry marks its attribute read of a field with no resolver, permission or extension; that read
    # is its default resolver, `getattr` unless the schema configured another.
    definition = (field.extensions or {}).get("strawberry-definition")
    if resolve is None or not getattr(resolve, "_is_default", False) or definition is None:
        return _STOCK
    if definition.base_resolver is not None or definition.default_resolver is not getattr:
        return _STOCK
    non_null = isinstance(field.type, GraphQLNonNull)
    inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    if not is_leaf_type(inner):
        return _STOCK
    return definition.python_name, inner.coerce_output_value, non_null


class LeafShortcutExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context, answering plain leaf fields directly (see the module's docstring)."""

    #: Plans by (type, field name); a schema's types are built once, so the plans are kept with them.
    _plans: dict[tuple[GraphQLObjectType, str], Plan | None] = {}

    def execute_field(self, parent_type: GraphQLObjectType, source: Any, field_details_list: Any, *rest: Any) -> Any:
        node = field_details_list[0].node
        if not node.arguments:
            key = (parent_type, node.name.value)
            try:
                plan = self._plans[key]
            except KeyError:
                plan = self._plans[key] = _plan_of(self, parent_type, node.name.value)
            if plan is not _STOCK:
                attribute, coerce, non_null = plan
                try:
                    value = getattr(source, attribute)
                    if value is None:
                        if not non_null:
                            return None
                    else:
                        coerced = coerce(value)
                        if coerced is not None and coerced is not Undefined:
                            return coerced
                except Exception:  # noqa: BLE001, S110 - the stock path below raises it again, located
                    pass
        return super().execute_field(parent_type, source, field_details_list, *rest)


def execution_context_class() -> type[StrawberryGraphQLCoreExecutionContext]:
    """The shortcut on graphql-core 3.3; strawberry's own execution context on any other version."""
    if graphql.version_info[:2] == (3, 3):
        return LeafShortcutExecutionContext
    return StrawberryGraphQLCoreExecutionContext
