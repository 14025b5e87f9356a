"""The query guard against the outside probe of issue 11 (findings 1 and 5, and introspection): hostile
documents refused before validation while /healthz answers, query cost and its per-account rate across
API processes, the response size cap, and introspection and suggestions only with a token. Each test
failed before the guard."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import jwt
import pytest
import strawberry.schema.schema as strawberry_schema
from aiohttp import web
from gwtest import JWT_SECRET, Api

from gateway.api.app import create_app
from gateway.services import Gateway
from gateway.simkit import free_port


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def fragment_bomb(depth: int) -> str:
    """The probe's document: each fragment spreads the previous one twice (2^depth fields)."""
    parts = ["fragment F0 on Query { __typename }"]
    parts += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, depth + 1)]
    return f"query {{ ...F{depth} }}\n" + "\n".join(parts)


@contextlib.contextmanager
def validation_spy() -> Any:
    """Counts graphql-core validations strawberry runs (the cost check must refuse before them)."""
    calls: list[int] = []
    real = strawberry_schema.validate

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    strawberry_schema.validate = spy
    try:
        yield calls
    finally:
        strawberry_schema.validate = real


# ---- finding 1: the unauthenticated fragment bomb -------------------------------------------------
@pytest.mark.parametrize("depth", [22, 30])
async def test_fragment_bomb_is_refused_before_validation_while_healthz_answers(api: Api, depth: int) -> None:
    with validation_spy() as validations:
        query = asyncio.ensure_future(api.raw(fragment_bomb(depth), account=None))
        async with api.session.get(f"{api.url}/healthz") as response:
            assert response.status == 200
        body = await query
    assert codes(body) == ["BAD_USER_INPUT"], body
    assert body["data"] is None
    assert "fragments are expanded" in body["errors"][0]["message"]
    assert validations == []


# ---- finding 5: cost for signed-in callers --------------------------------------------------------
async def test_alias_attacks_are_refused_with_their_cost(api: Api) -> None:
    def aliases(n: int, field: str = "id") -> str:
        each = f"products(first: 250) {{ edges {{ node {{ {field} }} }} }}"
        return "{ " + " ".join(f"a{i}: {each}" for i in range(n)) + " }"

    versions = "{ " + " ".join(f"a{i}: products {{ edges {{ node {{ storeVersion }} }} }}" for i in range(100)) + " }"
    with validation_spy() as validations:
        probe = await api.raw(aliases(1000))  # the probe's: over the document limits before any cost
        within = await api.raw(aliases(8, "storeVersion"))  # within them: 8 x (10 + 1 + 250 x (1 + 50))
        documents = await api.raw(versions)  # 100 x (10 + 1 + 50 x (1 + 50))
    assert validations == []
    assert codes(probe) == ["BAD_USER_INPUT"] and probe["data"] is None
    assert codes(within) == ["BAD_USER_INPUT"] and within["data"] is None
    message = within["errors"][0]["message"]
    assert "cost 102,088" in message and "100,000" in message, message
    assert codes(documents) == ["BAD_USER_INPUT"] and "cost 256,100" in documents["errors"][0]["message"]
    # A page of 250 fully detailed products stays within the ceiling.
    page = """{ products(first: 250) { totalCount edges { node { id title description tags storeVersion
      price { amount currencyCode } variants { externalId sku price { amount } options { name value } }
      images { url alt } attributes { name values } identifiers { sku gtin warnings } } } } }"""
    assert not (await api.raw(page)).get("errors")


@pytest.mark.parametrize("settings_overrides", [{"GATEWAY_QUERY_COST_BURST": 1_000, "GATEWAY_QUERY_COST_RATE": 0.001}])
async def test_each_account_has_a_cost_rate_shared_by_every_api_process(gw: Gateway, api: Api) -> None:
    query = "{ products(first: 100) { edges { node { id title } } } }"  # 10 + 1 + 100 x 3 = 311
    for _ in range(3):
        assert not (await api.raw(query)).get("errors")
    body = await api.raw(query)
    assert codes(body) == ["RATE_LIMITED"], body
    assert "311" in body["errors"][0]["message"] and "1,000" in body["errors"][0]["message"]
    assert not (await api.raw(query, account="acct-2")).get("errors")  # another tenant is unaffected

    # A second API process (its own Gateway and Redis connections) sees the same bucket.
    other = await Gateway.create(gw.settings)
    port = free_port()
    runner = web.AppRunner(create_app(other), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        second = Api(f"http://127.0.0.1:{port}", api.session)
        assert codes(await second.raw(query)) == ["RATE_LIMITED"]
        assert not (await second.raw(query, account="acct-3")).get("errors")
    finally:
        await runner.cleanup()
        await other.close()


@pytest.mark.parametrize("settings_overrides", [{"GATEWAY_MAX_RESPONSE_BYTES": 400}])
async def test_a_response_over_the_size_cap_is_replaced_by_an_error(api: Api) -> None:
    body = await api.raw("{ platforms { id name version capabilities credentialFields { name label } } }")
    assert body["data"] is None and codes(body) == ["BAD_USER_INPUT"]
    assert "400" in body["errors"][0]["message"]
    assert not (await api.raw("{ platforms { id } }")).get("errors")


# ---- "Also": introspection and suggestions need a token ------------------------------------------
async def test_introspection_and_suggestions_need_a_valid_token(api: Api) -> None:
    introspection = "{ __schema { queryType { name } types { name } } }"
    body = await api.raw(introspection, account=None)
    assert body.get("data") is None and set(codes(body)) == {"BAD_USER_INPUT"}
    assert "introspection" in body["errors"][0]["message"].lower()
    assert (await api.query(introspection))["__schema"]["queryType"]["name"] == "Query"

    typo = "{ integrationz { id } }"
    anonymous = await api.raw(typo, account=None)
    assert codes(anonymous) == ["BAD_USER_INPUT"]
    assert "Did you mean" not in json.dumps(anonymous)
    assert "Did you mean" in (await api.raw(typo))["errors"][0]["message"]

    enum_typo = 'mutation($m: SyncMode) { updateSyncSettings(integrationId: "x", settings: {mode: $m}) { id } }'
    anonymous = await api.raw(enum_typo, {"m": "AUTOMATI"}, account=None)
    assert anonymous["errors"] and "AUTOMATIC" not in json.dumps(anonymous)
    assert "AUTOMATIC" in json.dumps(await api.raw(enum_typo, {"m": "AUTOMATI"}))

    expired = jwt.encode({"account_id": "acct-1", "exp": int(time.time()) - 10}, JWT_SECRET, "HS256")
    assert set(codes(await api.raw(introspection, token=expired))) == {"BAD_USER_INPUT"}


# ---- documents sent again and again (the frontend's) are parsed and validated once ------------------
async def test_a_document_sent_again_is_validated_once_and_an_invalid_one_every_time(api: Api) -> None:
    valid = "query Again { integrations { id name } }"
    invalid = "query Again { integrations { id nameless } }"
    with validation_spy() as calls:
        for _ in range(3):
            assert (await api.query(valid))["integrations"] == []
        assert len(calls) == 1
        for _ in range(2):
            assert set(codes(await api.raw(invalid))) == {"BAD_USER_INPUT"}
        assert len(calls) == 3  # an invalid document is never taken as valid
    # Signed out, the same valid text meets other rules (no introspection): validated again, refused.
    introspection = "{ __schema { queryType { name } } }"
    assert (await api.query(introspection))["__schema"]["queryType"]["name"] == "Query"
    assert set(codes(await api.raw(introspection, account=None))) == {"BAD_USER_INPUT"}
