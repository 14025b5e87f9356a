"""Query cost analysis and the query guard on their own (no servers): the cost model, a corpus of hostile
documents under 1 MB each refused before graphql-core validates it, and the work the analysis does bounded
by its budget rather than by the document. The time each refusal takes is measured by `make bench`
(benchmarks/hostile.py), never asserted here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import strawberry.schema.schema as strawberry_schema
from graphql import get_introspection_query, parse

from gateway.api.cost import CostLimits, QueryRefused, analyse
from gateway.api.guard import DEFAULTS, limits_of
from gateway.api.schema import build_schema

SCHEMA = build_schema()
LIMITS = limits_of(DEFAULTS)


def with_limits(**changes: int) -> CostLimits:
    return replace(LIMITS, **changes)


def cost(query: str, variables: dict[str, Any] | None = None, limits: CostLimits = LIMITS) -> int:
    return analyse(SCHEMA._schema, parse(query), variables, None, limits).cost


def refusal(query: str, variables: dict[str, Any] | None = None, limits: CostLimits = LIMITS) -> QueryRefused:
    with pytest.raises(QueryRefused) as refused:
        analyse(SCHEMA._schema, parse(query, max_lexical_tokens=10**7), variables, None, limits)
    return refused.value


def fragment_bomb(depth: int, leaf: str = "__typename") -> str:
    parts = [f"fragment F0 on Query {{ {leaf} }}"]
    parts += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, depth + 1)]
    return f"query {{ ...F{depth} }}\n" + "\n".join(parts)


def nested_bomb(depth: int) -> str:
    """Doubling through distinct aliases, so no response name repeats: only the node budget stops it."""
    parts = ["fragment T0 on __Type { name }"]
    parts += [
        f"fragment T{i} on __Type {{ a: ofType {{ ...T{i - 1} }} b: ofType {{ ...T{i - 1} }} }}"
        for i in range(1, depth + 1)
    ]
    return f'{{ __type(name: "Product") {{ ...T{depth} }} }}\n' + "\n".join(parts)


# ---- the cost model --------------------------------------------------------------------------------
def test_lists_multiply_and_first_sizes_the_connection() -> None:
    assert cost("{ products(first: 250) { edges { node { id } } } }") == 10 + 1 + 250 + 250
    assert cost("{ products { edges { node { id } } } }") == 10 + 1 + 50 + 50  # the default first
    assert cost("query($n: Int) { products(first: $n) { edges { node { id } } } }", {"n": 20}) == 10 + 1 + 20 + 20
    # Over the page-size cap the resolver refuses `first` by name; the cost counts it at the cap.
    # totalCount has its own resolver (it reads the kept counts, or counts a search's matches).
    assert cost("{ products(first: 100000) { totalCount } }") == 10 + 10
    assert cost("{ products(first: 1) { edges { node { variants { sku } } } } }") == 10 + 1 + 1 + 1 + 10
    assert cost("{ products(first: 2) { edges { node { storeVersion } } } }") == 10 + 1 + 2 + 2 * 50
    aliases = "{ " + " ".join(f"a{i}: products(first: 250) {{ edges {{ node {{ id }} }} }}" for i in range(1000)) + " }"
    assert cost(aliases, limits=with_limits(max_cost=10**9, max_nodes=10**6)) == 511_000
    assert cost("{ integrations { health { status } syncRuns(first: 3) { id } } }") == 10 + 10 * (10 + 1 + 10 + 3)


def test_over_the_ceiling_the_refusal_quotes_cost_and_limit() -> None:
    refused = refusal(
        "{ a: products(first: 250) { edges { node { storeVersion } } } b: products { totalCount } }",
        limits=with_limits(max_cost=12_000),
    )
    assert refused.cost == 10 + 1 + 250 + 250 * 50 + 10 + 10
    assert "cost 12,781" in refused.message and "12,000" in refused.message


def test_everyday_queries_and_introspection_fit() -> None:
    introspection = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    assert cost(introspection) < LIMITS.max_cost
    page = """{ products(first: 250) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node {
      id title description tags storeVersion price { amount currencyCode } images { url alt }
      variants { externalId sku price { amount } } identifiers { sku gtin warnings } } } } }"""
    assert cost(page) < LIMITS.max_cost


# ---- hostile documents -----------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [22, 26, 30])
@pytest.mark.parametrize("build", [fragment_bomb, nested_bomb])
def test_fragment_bombs_cost_the_budget_not_two_to_the_depth(build: Any, depth: int) -> None:
    refused = refusal(build(depth))
    assert refused.nodes <= LIMITS.max_nodes + 1
    # Depth-first, the nested bomb passes the introspection depth (24) before the budget from depth 24 on.
    assert "fragments are expanded" in refused.message or "deeper than 24" in refused.message


def test_the_walk_stops_at_its_budget_whatever_the_document() -> None:
    for budget in (10, 100, 1_000):
        refused = refusal(nested_bomb(20), limits=with_limits(max_nodes=budget))
        assert refused.nodes == budget + 1


def test_cycles_deep_nesting_and_repeated_names_are_refused() -> None:
    assert "nested" in refusal("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }").message
    assert "deeper than 12" in refusal("{ " + "a { " * 14 + "b" + " }" * 14 + " }").message
    assert "more than 20 times" in refusal("{ " + "platforms { id } " * 21 + "}").message
    assert "directives" in refusal("{ __typename" + " @skip(if: false)" * 9 + " }").message
    variables = ", ".join(f"$v{i}: Int" for i in range(101))
    assert "variables" in refusal(f"query({variables}) {{ __typename }}").message
    assert "operations and fragments" in refusal(" ".join(f"query Q{i} {{ __typename }}" for i in range(201))).message


def test_variables_are_bounded_before_graphql_core_coerces_them() -> None:
    query = 'mutation($ids: [String!]) { syncNow(integrationId: "i", productExternalIds: $ids) { id } }'
    refused = refusal(query, {"ids": ["x"] * 1_001})
    assert refused.field == "productExternalIds" and "1,000" in refused.message
    edit = 'mutation($input: ProductEditInput!) { editProduct(productId: "p", input: $input) { id } }'
    refused = refusal(edit, {"input": {"attributes": [{"name": "n", "values": ["v"] * 900}] * 12}})
    assert "10,000 values" in refused.message
    assert cost(query, {"ids": ["x"] * 1_000}) == 10 + 1


def hostile_documents() -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """Each under 1 MB: the probe's bomb and every other shape that costs graphql-core more than its size."""
    for depth in (22, 26, 30):
        yield f"fragment bomb {depth}", fragment_bomb(depth), None
        yield f"nested bomb {depth}", nested_bomb(depth), None
    yield "deep nesting (5,000)", "{ " + "a { " * 5_000 + "b" + " }" * 5_000 + " }", None
    yield "deep nesting (150)", "{ " + "a { " * 150 + "b" + " }" * 150 + " }", None
    yield "10k aliases", "{ " + " ".join(f"a{i}: __typename" for i in range(10_000)) + " }", None
    yield (
        "10k aliases of products",
        "{ " + " ".join(f"a{i}: products(first: 250) {{ totalCount }}" for i in range(10_000)) + " }",
        None,
    )
    yield "900 same-name fields", "{ " + "platforms { id } " * 900 + "}", None
    yield "directives (2,000)", "{ __typename" + " @skip(if: false)" * 2_000 + " }", None
    yield "directives (300)", "{ __typename" + " @include(if: true)" * 300 + " }", None
    yield "variables (5,000)", "query(" + ", ".join(f"$v{i}: Int" for i in range(5_000)) + ") { __typename }", None
    yield "variables (600)", "query(" + ", ".join(f"$v{i}: Int" for i in range(600)) + ") { __typename }", None
    yield "operations (300)", " ".join(f"query Q{i} {{ __typename }}" for i in range(300)), None
    yield "1 MB string", '{ products(search: "' + "a" * 999_000 + '") { totalCount } }', None
    yield "1 MB comment", "#" + "c" * 999_000 + "\n{ __typename }", None
    yield "50k comments", "#\n" * 50_000 + "{ __typename }", None
    yield "500k tokens", "{ " + "a " * 499_000 + "}", None
    yield "fragment cycle", "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }", None
    ids = 'mutation($ids: [String!]) { syncNow(integrationId: "i", productExternalIds: $ids) { id } }'
    yield "200k variable values", ids, {"ids": ["a"] * 200_000}


@pytest.fixture
def validations() -> Iterator[list[int]]:
    calls: list[int] = []
    real = strawberry_schema.validate

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    strawberry_schema.validate = spy
    yield calls
    strawberry_schema.validate = real


@pytest.mark.parametrize(
    ("name", "query", "variables"),
    list(hostile_documents()),
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "",
)
async def test_hostile_documents_are_refused_before_validation(
    validations: list[int], name: str, query: str, variables: dict[str, Any] | None
) -> None:
    assert len(query.encode()) < 1_000_000
    result = await SCHEMA.execute(query, variable_values=variables)
    assert result.data is None and result.errors, name
    assert {e.extensions["code"] for e in result.errors if e.extensions} == {"BAD_USER_INPUT"}, result.errors
    assert validations == [], f"{name} reached graphql-core's validation"
