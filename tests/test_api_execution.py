"""The executor's shortcut for plain leaf fields (gateway/api/execution.py) answers exactly as graphql-core.

A small schema holds every kind of leaf value, good and bad (null where non-null, a value its type
refuses, an enum, a list of leaves), executed by both execution contexts: data and errors must be the
same. Then the gateway's own page query over a synced store, by the served API and by the stock
executor: the same answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

import strawberry
from aiohttp.test_utils import make_mocked_request
from gwtest import Api, connect, wait_run
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.api.context import Context
from gateway.api.execution import LeafShortcutExecutionContext, execution_context_class
from gateway.api.schema import build_schema
from gateway.jobs import Workers
from gateway.services import Gateway
from gateway.testing.toy import ToySimulator


@strawberry.enum
class Colour(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Row:
    name: str
    count: int | None
    required_count: int
    colour: Colour | None
    at: datetime | None
    tags: list[str]
    nested: Row | None = None

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()


def rows() -> list[Row]:
    good = Row(name="a", count=1, required_count=2, colour=Colour.RED, at=datetime(2026, 1, 2, tzinfo=UTC), tags=["x"])
    return [
        good,
        Row(name="b", count=None, required_count=3, colour=None, at=None, tags=[], nested=good),
        Row(name=None, count=2, required_count=4, colour=Colour.BLUE, at=None, tags=["y"]),  # type: ignore[arg-type]
        Row(name="d", count="many", required_count=None, colour="green", at=None, tags=["z"]),  # type: ignore[arg-type]
    ]


@strawberry.type
class RowsQuery:
    @strawberry.field
    def rows(self) -> list[Row | None]:
        return rows()  # type: ignore[return-value]


ROWS = "{ rows { name count requiredCount colour at tags shout nested { name colour } alias: name } }"


def row_schema(execution: type) -> strawberry.Schema:
    return strawberry.Schema(query=RowsQuery, execution_context_class=execution)


async def test_the_shortcut_answers_every_leaf_as_graphql_core_does() -> None:
    stock = await row_schema(StrawberryGraphQLCoreExecutionContext).execute(ROWS)
    fast = await row_schema(LeafShortcutExecutionContext).execute(ROWS)
    assert fast.data == stock.data
    shortcut = {
        name for (kind, name), plan in LeafShortcutExecutionContext._plans.items() if kind.name == "Row" and plan
    }
    assert shortcut == {"name", "count", "requiredCount", "colour", "at"}  # not tags (a list), shout, nested
    assert stock.errors and len(stock.errors) >= 3  # a null name, a refused count, a null requiredCount...
    assert [(e.message, e.path) for e in fast.errors or []] == [(e.message, e.path) for e in stock.errors]
    assert fast.data and fast.data["rows"][1] == {
        "name": "b",
        "count": None,
        "requiredCount": 3,
        "colour": None,
        "at": None,
        "tags": [],
        "shout": "B",
        "nested": {"name": "a", "colour": "RED"},
        "alias": "b",
    }


def test_the_served_schema_uses_the_shortcut_on_this_graphql_core() -> None:
    assert build_schema().execution_context_class is execution_context_class()


PAGE = """{
  platforms { id name capabilities credentialFields { name label secret required } connectMethods }
  integrations { id platform name storeUrl createdAt settings { mode frequency }
    health { status reason action lastSyncAt nextSyncAt } productCount pendingChanges apiCallsLast24h
    currentRun { id } syncRuns(first: 10) { id status trigger kind queuedAt startedAt finishedAt failure
      progress { runId status processed total percent message } summary { added updated unchanged removed failed } } }
  products(first: 50) { totalCount edges { cursor node { id externalId title status availability description
    handle vendor sku price { amount currencyCode } compareAtPrice { amount } inventoryQuantity categories tags
    storeUpdatedAt syncedAt removed warnings variants { externalId sku title } images { url position } } }
    pageInfo { hasNextPage endCursor } }
  conflicts(first: 100) { edges { node { id field storeValue alanaValue status detectedAt } } }
}"""


async def test_the_page_query_answers_the_same_through_the_shortcut(
    gw: Gateway, api: Api, worker: Workers, toy_store: ToySimulator
) -> None:
    integration_id = await connect(api, toy_store)
    await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id)
    await worker.running_jobs()  # the finished run's job still sets the light: nothing changes after this
    served = await api.raw(PAGE)
    assert not served.get("errors") and len(served["data"]["products"]["edges"]) == 30
    stock = build_schema(execution=StrawberryGraphQLCoreExecutionContext)
    assert stock.execution_context_class is StrawberryGraphQLCoreExecutionContext
    request = make_mocked_request("POST", "/graphql", headers={"Authorization": f"Bearer {api.token('acct-1')}"})
    result = await stock.execute(PAGE, context_value=Context(gw=gw, request=request))
    assert not result.errors
    expected: dict[str, Any] = result.data or {}
    # Only the live parts may differ between the two reads: the next sync's time is computed from now.
    for data in (served["data"], expected):
        for integration in data["integrations"]:
            integration["health"].pop("nextSyncAt")
    assert served["data"] == expected
