"""What callers send, against the outside probe of issue 11 (finding 14 and the input sizes): body limits
that hold for chunked bodies, invalid UTF-8 as a bad request, and size limits on names, titles,
descriptions, tags, attributes and id lists that name the field and the limit. Each test failed before
its fix."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gwtest import Api

from gateway.services import Gateway


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def post(api: Api, payload: bytes, token: str | None = None, **headers: str) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", **headers}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with api.session.post(f"{api.url}/graphql", data=payload, headers=headers) as response:
        return response.status, await response.text()


# ---- finding 14: bodies --------------------------------------------------------------------------
async def test_a_chunked_body_over_the_limit_is_refused(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ __typename }", "variables": {"pad": "'
        for _ in range(64):
            yield b"x" * 65_536  # 4 MB in all, without a Content-Length
        yield b'"}}'

    async with api.session.post(
        f"{api.url}/graphql", data=chunks(), headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 413
        assert (await response.json())["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("settings_overrides", [{"GATEWAY_MAX_WEBHOOK_BYTES": 10_000}])
async def test_a_chunked_webhook_over_the_limit_is_refused(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 4_096

    async with api.session.post(
        f"{api.url}/webhooks/toy/some-integration", data=chunks(), headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 413


async def test_a_body_that_is_not_utf8_is_a_bad_request(api: Api) -> None:
    status, text = await post(api, b'{"query": "{ __typename \xff\xfe }"}')
    assert status == 400, text
    assert json.loads(text)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


# ---- "Also": input sizes -------------------------------------------------------------------------
CONNECT = "mutation($input: ConnectIntegrationInput!) { connectIntegration(input: $input) { id } }"
EDIT = 'mutation($input: ProductEditInput!) { editProduct(productId: "p", input: $input) { id } }'
SYNC_IDS = 'mutation($ids: [String!]) { syncNow(integrationId: "i", productExternalIds: $ids) { id } }'


@pytest.mark.parametrize(
    ("query", "variables", "field", "limit"),
    [
        (
            CONNECT,
            {"input": {"platform": "toy", "name": "\x00\x00\x00", "storeUrl": "http://x", "credentials": {}}},
            "name",
            None,
        ),
        (
            CONNECT,
            {"input": {"platform": "toy", "name": "n" * 201, "storeUrl": "http://x", "credentials": {}}},
            "name",
            "200",
        ),
        (EDIT, {"input": {"title": "t" * 900_000}}, "input.title", "1,000"),
        (EDIT, {"input": {"title": "a\x00b"}}, "input.title", None),
        (EDIT, {"input": {"description": "d" * 200_000}}, "input.description", "100,000"),
        (EDIT, {"input": {"tags": ["x"] * 300}}, "input.tags", "250"),
        (EDIT, {"input": {"tags": ["x" * 300]}}, "input.tags", "255"),
        (EDIT, {"input": {"tags": ["x"] * 50_000}}, "input.tags", "1,000"),
        (EDIT, {"input": {"attributes": [{"name": "color", "values": ["v" * 2_000]}]}}, "input.attributes", "1,000"),
        (EDIT, {"input": {"attributes": [{"name": "", "values": ["red"]}]}}, "input.attributes", None),
        (SYNC_IDS, {"ids": [str(i) for i in range(1_001)]}, "productExternalIds", "1,000"),
        (SYNC_IDS, {"ids": [str(i) for i in range(20_000)]}, "productExternalIds", "1,000"),
    ],
)
async def test_input_sizes_are_limited_with_the_field_and_limit_named(
    gw: Gateway, api: Api, query: str, variables: dict[str, Any], field: str, limit: str | None
) -> None:
    body = await api.raw(query, variables)
    assert codes(body) == ["BAD_USER_INPUT"], body
    error = body["errors"][0]
    assert error["extensions"].get("field") == field, error
    if limit:
        assert limit in error["message"], error
    assert await gw.db.integrations.count_documents({}) == 0
