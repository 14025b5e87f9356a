"""The query guard: what one GraphQL request may make the gateway do, settled before graphql-core works on it.

In order, for every caller, signed in or not:
1. parsing is bounded: the source length, lexical tokens and comments are capped (graphql-core stops
   the lexer at the limit, so a 1 MB document costs what the cap costs);
2. before validation, the document's cost is measured (gateway/api/cost.py): fragments expanded against
   a budget, depth, aliases and list sizes; over the ceiling is BAD_USER_INPUT with the cost;
3. the cost is taken from the caller's token bucket (gateway/api/ratelimit.py; per account, or per
   address without a token); an empty bucket is RATE_LIMITED;
4. without a valid token, introspection is refused and "Did you mean" suggestions are removed from
   every message, so the schema cannot be read or guessed anonymously.
A refusal in steps 2-3 replaces validation, so a hostile document never reaches graphql-core's rules.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable, Iterable, Iterator
from typing import Any, cast

import graphql.validation.rules.overlapping_fields_can_be_merged as overlapping
from graphql import DocumentNode, GraphQLError, NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from gateway.api.context import Context
from gateway.api.cost import CostLimits, QueryRefused, analyse
from gateway.api.ratelimit import CostBucket
from gateway.errors import BadInput, GatewayError, RateLimited
from gateway.settings import Settings

# graphql-core meters OverlappingFieldsCanBeMerged (pairwise comparisons) and aborts validation when the
# budget runs out. Its default (500,000) is about a second of CPU; the largest query the frontend and
# GraphiQL send (introspection included) uses under 100, so 5,000 bounds the rule to milliseconds.
overlapping.MAX_COMPLEXITY_BUDGET = 5_000

MAX_COMMENTS = 500
SUGGESTION = " Did you mean "


#: For a schema executed without the gateway's context (tools, tests of the schema alone).
DEFAULTS = Settings.model_construct()

#: The frontend sends the same few documents again and again: each is parsed and validated once per process
#: (about a third of a small query's time). Only documents up to MAX_KEPT_CHARS are kept, at most KEPT of
#: each, least recently used dropped first; a document is kept as valid only after validation passed.
KEPT = 256
MAX_KEPT_CHARS = 20_000


class _Recent(OrderedDict[Hashable, Any]):
    """A small LRU map."""

    def get_recent(self, key: Hashable) -> Any:
        found = self.get(key)
        if found is not None:
            self.move_to_end(key)
        return found

    def keep(self, key: Hashable, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > KEPT:
            self.popitem(last=False)


_PARSED = _Recent()
_VALID = _Recent()


def limits_of(settings: Settings, max_depth: int | None = None) -> CostLimits:
    return CostLimits(
        max_cost=settings.max_query_cost,
        max_depth=settings.max_query_depth if max_depth is None else max_depth,
        max_nodes=settings.max_query_nodes,
        max_page_size=settings.max_page_size,
        max_list_items=settings.max_input_items,
        max_variable_values=settings.max_variable_values,
    )


def hide_suggestions(errors: Iterable[GraphQLError] | None) -> None:
    for error in errors or ():
        if SUGGESTION in error.message:
            error.message = error.message.split(SUGGESTION, 1)[0]


class QueryGuard(SchemaExtension):
    def __init__(self, max_depth: int | None = None) -> None:
        self.max_depth = max_depth
        #: The signed-in account; None for a caller without a valid token.
        self.account: str | None = None

    @property
    def context(self) -> Context | None:
        context = self.execution_context.context
        return context if isinstance(context, Context) else None

    @property
    def settings(self) -> Settings:
        return self.context.gw.settings if self.context else DEFAULTS

    def on_operation(self) -> Iterator[None]:
        # graphql-core 3.3's parser limits; strawberry's ParseOptions type predates them.
        options = cast(dict[str, Any], self.execution_context.parse_options)
        options["max_source_length"] = self.settings.max_query_chars
        options["max_lexical_tokens"] = self.settings.max_query_tokens
        options["max_comments"] = MAX_COMMENTS
        self.account = self._account()
        yield
        if self.account is None:
            result = self.execution_context.result
            hide_suggestions(getattr(result, "errors", None))
            hide_suggestions(self.execution_context.pre_execution_errors)

    def _parse_key(self) -> Hashable | None:
        ctx = self.execution_context
        if not ctx.query or len(ctx.query) > MAX_KEPT_CHARS:
            return None
        return (ctx.query, tuple(sorted(cast(dict[str, Any], ctx.parse_options).items())))

    def on_parse(self) -> Iterator[None]:
        # A hit is handed to strawberry, which then skips parsing; a miss is parsed by strawberry (its errors
        # answered as usual) and kept.
        key = self._parse_key()
        ctx = self.execution_context
        if key is not None and ctx.graphql_document is None:
            ctx.graphql_document = _PARSED.get_recent(key)
        yield
        if key is not None and isinstance(ctx.graphql_document, DocumentNode):
            _PARSED.keep(key, ctx.graphql_document)

    async def on_validate(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        refusal = await self._refusal()
        if refusal is not None:
            # Set before strawberry validates: it then skips validation and answers with this error.
            ctx.pre_execution_errors = [GraphQLError(refusal.message, original_error=refusal)]
            yield
            return
        if self.account is None:
            ctx.validation_rules = (*ctx.validation_rules, NoSchemaIntrospectionCustomRule)
        parsed = self._parse_key()
        # The same text, parsed the same way, under the same rules of the same schema: valid again.
        key = None if parsed is None else (id(ctx.schema), parsed, ctx.validation_rules)
        if key is not None and _VALID.get_recent(key):
            ctx.pre_execution_errors = []  # strawberry validates only when this is None
        yield
        if key is not None and ctx.pre_execution_errors == []:
            _VALID.keep(key, True)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        if self.account is None:
            hide_suggestions(getattr(result, "errors", None))
        yield

    def _subscription_over_http(self) -> bool:
        """A subscription sent as an HTTP request (a websocket's context carries its connection_init payload)."""
        if self.context is None or self.context.connection_params is not None:
            return False
        try:
            return self.execution_context.operation_type is OperationType.SUBSCRIPTION
        except RuntimeError:  # no operation in the document (or not the named one): validation says so
            return False

    def _account(self) -> str | None:
        if self.context is None:
            return None
        try:
            return self.context.account_id
        except GatewayError:
            return None

    async def _refusal(self) -> GatewayError | None:
        ctx = self.execution_context
        assert ctx.graphql_document is not None
        if self._subscription_over_http():
            return BadInput(
                "subscriptions are served over a websocket at /graphql (graphql-transport-ws), not over HTTP"
            )
        limits = limits_of(self.settings, self.max_depth)
        try:
            cost = analyse(ctx.schema._schema, ctx.graphql_document, ctx.variables, ctx.operation_name, limits)
        except QueryRefused as refused:
            return refused
        context, settings = self.context, self.settings
        if context is None:
            return None
        # Scoped by database: accounts live there, and deployments may share one Redis.
        who = f"account:{self.account}" if self.account else f"address:{context.request.remote}"
        caller = f"{settings.mongodb_database}:{who}"
        bucket = CostBucket(context.gw.redis, settings.query_cost_burst, settings.query_cost_rate)
        decision = await bucket.take(caller, cost.cost)
        if decision.allowed:
            return None
        if cost.cost > bucket.burst:
            return RateLimited(
                f"the query costs {cost.cost:,}, more than the whole budget of {bucket.burst:,}: ask for less"
            )
        return RateLimited(
            f"the query costs {cost.cost:,} and {decision.remaining:,.0f} of the budget of {bucket.burst:,} are left "
            f"(it refills at {bucket.rate:,g} a second): retry in {decision.retry_after:,.1f} s"
        )
