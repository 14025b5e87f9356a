"""What callers send, against the outside probe of issue 11 (finding 14): body limits that hold for chunked
bodies, and invalid UTF-8 as a bad request. Each test failed before its fix."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gwtest import Api


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
