"""Tokens and websocket sessions against the outside probe of issue 11 (findings 4 and 14): a token's `exp`
must be a number within GATEWAY_MAX_TOKEN_TTL, and an open graphql-transport-ws socket loses its rights
when the token expires. Each test failed before its fix."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import jwt
import pytest
from gwtest import JWT_SECRET, Api

from gateway.constants import account_channel
from gateway.services import Gateway


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


# ---- finding 4: websocket sessions end with their token ------------------------------------------
class TransportWS:
    """A bare graphql-transport-ws client: every message the server sends is visible."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def receive(self, match: Callable[[dict[str, Any]], bool] = lambda m: True) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            while True:
                raw = await self.ws.receive()
                assert raw.type == aiohttp.WSMsgType.TEXT, raw
                message: dict[str, Any] = json.loads(raw.data)
                if message.get("type") != "ping" and match(message):
                    return message

        return await asyncio.wait_for(read(), timeout=20)

    async def subscribe(self, query: str) -> str:
        op_id = uuid.uuid4().hex[:8]
        await self.send({"id": op_id, "type": "subscribe", "payload": {"query": query}})
        return op_id


@contextlib.asynccontextmanager
async def transport_ws(api: Api, token: str) -> AsyncIterator[TransportWS]:
    async with api.session.ws_connect(api.url + "/graphql", protocols=["graphql-transport-ws"]) as ws:
        client = TransportWS(ws)
        await client.send({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        assert (await client.receive())["type"] == "connection_ack"
        yield client


def unauthenticated(message: dict[str, Any]) -> bool:
    payload = message.get("payload")
    errors = payload if message.get("type") == "error" else (payload or {}).get("errors")
    return bool(errors) and errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_an_open_websocket_loses_its_rights_when_the_token_expires(gw: Gateway, api: Api) -> None:
    token = jwt.encode({"account_id": "acct-1", "exp": time.time() + 3}, JWT_SECRET, "HS256")
    async with transport_ws(api, token) as client:
        op = await client.subscribe("subscription { integrationEvents { kind } }")
        await asyncio.wait_for(gw.hub.wait_for_listener(account_channel("acct-1")), timeout=20)
        # Nothing is published: the next message on this operation is the expiry.
        ended = await client.receive(lambda m: m.get("id") == op)
        assert ended["type"] == "error" and unauthenticated(ended), ended
        assert "expired" in ended["payload"][0]["message"]

        again = await client.subscribe("subscription { integrationEvents { kind } }")
        refused = await client.receive(lambda m: m.get("id") == again)
        assert refused["type"] == "error" and unauthenticated(refused), refused
        query = await client.subscribe("{ __typename }")
        refused = await client.receive(lambda m: m.get("id") == query)
        assert refused["type"] == "error" and unauthenticated(refused), refused


# ---- finding 14: token claims ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "claims",
    [
        {"account_id": "acct-1", "exp": str(int(time.time()) + 3600)},
        {"account_id": "acct-1", "exp": 253402300799},  # 9999-12-31
        {"account_id": "acct-1", "exp": int(time.time()) + 30 * 86_400},  # beyond the 7-day default
        {"account_id": "acct-1", "exp": True},
        {"account_id": "acct-1"},
    ],
)
async def test_token_exp_must_be_a_number_within_the_maximum_lifetime(api: Api, claims: dict[str, Any]) -> None:
    token = jwt.encode(claims, JWT_SECRET, "HS256")
    assert codes(await api.raw("{ platforms { id } }", token=token)) == ["UNAUTHENTICATED"]


async def test_a_token_within_the_maximum_lifetime_is_accepted(api: Api) -> None:
    token = jwt.encode({"account_id": "acct-1", "exp": time.time() + 6 * 86_400}, JWT_SECRET, "HS256")
    assert not (await api.raw("{ platforms { id } }", token=token)).get("errors")
