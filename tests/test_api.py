"""The GraphQL API on a real port: auth and account scoping, input validation, limits, health."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import aiohttp
import jwt
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from gwtest import CONNECT, Api, connect, wait_run

from gateway.services import Gateway
from gateway.storage.mongo import connect as mongo_connect
from gateway.testing.toy import ToySimulator

PLATFORMS = "{ platforms { id name version capabilities credentialFields { name label secret required } } }"


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


def ws_transport(api: Api, token: str | None) -> WebsocketsTransport:
    payload = {"Authorization": f"Bearer {token}"} if token else {}
    return WebsocketsTransport(
        url=api.url.replace("http", "ws") + "/graphql",
        init_payload=payload,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )


async def test_platforms_lists_every_installed_plugin(api: Api) -> None:
    data = await api.query(PLATFORMS)
    by_id = {p["id"]: p for p in data["platforms"]}
    assert {"shopify", "woocommerce", "bigcommerce", "toy"} <= set(by_id)
    assert "webhooks" in by_id["shopify"]["capabilities"] and "bulk" in by_id["shopify"]["capabilities"]
    woo_fields = {f["name"]: f for f in by_id["woocommerce"]["credentialFields"]}
    assert woo_fields["consumer_secret"]["secret"] is True


async def test_missing_or_forged_token_is_unauthenticated(api: Api) -> None:
    assert codes(await api.raw(PLATFORMS, account=None)) == ["UNAUTHENTICATED"]
    forged = jwt.encode({"account_id": "acct-1", "exp": 9999999999}, "another-secret-entirely-32-bytes!", "HS256")
    assert codes(await api.raw(PLATFORMS, token=forged)) == ["UNAUTHENTICATED"]
    assert codes(await api.raw(PLATFORMS, token="not.a.jwt")) == ["UNAUTHENTICATED"]


async def test_another_accounts_integration_is_not_found(api: Api, toy_store: ToySimulator) -> None:
    integration_id = await connect(api, toy_store, account="acct-1")
    query = "query($id: ID!) { integration(id: $id) { id name } }"
    body = await api.raw(query, {"id": integration_id}, account="acct-2")
    assert codes(body) == ["NOT_FOUND"] and body["data"]["integration"] is None
    body = await api.raw(
        "mutation($id: ID!) { syncNow(integrationId: $id) { id } }", {"id": integration_id}, account="acct-2"
    )
    assert codes(body) == ["NOT_FOUND"]
    assert (await api.query("{ integrations { id } }", account="acct-2"))["integrations"] == []
    assert (await api.query(query, {"id": integration_id}))["integration"]["id"] == integration_id


async def test_websocket_requires_a_token_and_scopes_by_account(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connect(api, toy_store)
    runs = await api.query(
        "query($id: ID!) { syncRuns(integrationId: $id) { edges { node { id } } } }", {"id": integration_id}
    )
    run_id = runs["syncRuns"]["edges"][0]["node"]["id"]
    subscription = GraphQLRequest(
        "subscription($id: ID!) { syncProgress(runId: $id) { runId status processed } }",
        variable_values={"id": run_id},
    )

    async with Client(transport=ws_transport(api, None)) as session:
        with pytest.raises(TransportQueryError) as denied:
            async for _ in session.subscribe(subscription):
                pass
    assert denied.value.errors and denied.value.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"

    async with Client(transport=ws_transport(api, api.token("acct-2"))) as session:
        with pytest.raises(TransportQueryError) as hidden:
            async for _ in session.subscribe(subscription):
                pass
    assert hidden.value.errors and hidden.value.errors[0]["extensions"]["code"] == "NOT_FOUND"

    await wait_run(gw, run_id)
    async with Client(transport=ws_transport(api, api.token("acct-1"))) as session:
        seen = [r async for r in session.subscribe(subscription)]
    assert seen[-1]["syncProgress"]["status"] == "SUCCEEDED"


async def test_credentials_are_encrypted_at_rest_and_never_returned(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    integration_id = await connect(api, toy_store)
    raw = await gw.db.integrations.find_one({"_id": integration_id})
    assert raw is not None
    dumped = json.dumps(raw, default=str)
    assert toy_store.token not in dumped
    for hook in toy_store.hooks.values():
        assert hook.secret not in dumped  # the webhook secret is sealed too
    assert raw["credentials"].startswith("v1.")
    body = await api.raw("query($id: ID!) { integration(id: $id) { credentialNames } }", {"id": integration_id})
    assert body["data"]["integration"]["credentialNames"] == ["token"]
    assert toy_store.token not in json.dumps(body)


@pytest.mark.parametrize(
    ("store_url", "field"),
    [
        ("http://127.0.0.1:9/", "storeUrl"),
        ("ftp://shop.example.com", "storeUrl"),
        ("http://169.254.169.254/latest", "storeUrl"),
        ("http://10.0.0.5", "storeUrl"),
    ],
)
@pytest.mark.parametrize("settings_overrides", [{"GATEWAY_ALLOW_PRIVATE_URLS": False}])
async def test_store_urls_are_guarded_against_ssrf(api: Api, store_url: str, field: str) -> None:
    body = await api.raw(
        CONNECT,
        {"input": {"platform": "toy", "name": "x", "storeUrl": store_url, "credentials": {"token": "t"}}},
    )
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == field


async def test_bad_connect_input_names_the_field_and_saves_nothing(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    base = {"platform": "toy", "name": "Mine", "storeUrl": toy_store.store_url, "credentials": {"token": "t"}}
    cases = [
        ({"platform": "magento"}, "platform"),
        ({"name": "  "}, "name"),
        ({"credentials": {}}, "credentials.token"),
        ({"credentials": {"token": "wrong"}}, "credentials"),
        ({"credentials": {"token": 5}}, "credentials.token"),
        ({"credentials": "token"}, "credentials"),
    ]
    for change, field in cases:
        body = await api.raw(CONNECT, {"input": {**base, **change}})
        assert codes(body) == ["BAD_USER_INPUT"], (change, body)
        assert body["errors"][0]["extensions"]["field"] == field, (change, body)
    assert await gw.db.integrations.count_documents({}) == 0
    body = await api.raw(CONNECT, {"input": {**base, "settings": {"mode": "SOMETIMES"}}})
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_settings_change_and_disconnect(gw: Gateway, api: Api, worker: object, toy_store: ToySimulator) -> None:
    integration_id = await connect(api, toy_store)
    await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id)
    assert len(toy_store.hooks) == 1
    data = await api.query(
        """mutation($id: ID!) { updateSyncSettings(integrationId: $id, settings: {mode: MANUAL}) {
             settings { mode frequency } health { nextSyncAt } } }""",
        {"id": integration_id},
    )
    assert data["updateSyncSettings"]["settings"] == {"mode": "MANUAL", "frequency": "EVERY_HOUR"}
    assert data["updateSyncSettings"]["health"]["nextSyncAt"] is None
    data = await api.query(
        """mutation($id: ID!) { updateSyncSettings(integrationId: $id,
             settings: {mode: AUTOMATIC, frequency: EVERY_15_MINUTES}) { settings { mode frequency }
             health { nextSyncAt } } }""",
        {"id": integration_id},
    )
    assert data["updateSyncSettings"]["settings"]["frequency"] == "EVERY_15_MINUTES"
    assert data["updateSyncSettings"]["health"]["nextSyncAt"] is not None
    data = await api.query("mutation($id: ID!) { disconnectIntegration(integrationId: $id) }", {"id": integration_id})
    assert data["disconnectIntegration"] == integration_id
    assert toy_store.hooks == {}
    assert await gw.db.integrations.count_documents({"_id": integration_id}) == 0
    assert await gw.db.products.count_documents({"integration_id": integration_id}) == 0
    log = await api.query("{ activityLog { edges { node { kind } } } }")
    kinds = [e["node"]["kind"] for e in log["activityLog"]["edges"]]
    assert (
        kinds[0] == "INTEGRATION_DISCONNECTED" and "SETTINGS_CHANGED" in kinds and kinds[-1] == "INTEGRATION_CONNECTED"
    )


async def test_query_limits(api: Api) -> None:
    body = await api.raw("{ products(first: 100000) { totalCount } }")
    assert codes(body) == ["BAD_USER_INPUT"] and body["errors"][0]["extensions"]["field"] == "first"
    deep = "{ integrations { health { lastRun { progress { runId } summary { errors { code } } } } } }"
    assert not (await api.raw(deep)).get("errors")
    too_deep = "{ integrations { " + "health { lastRun { " * 4 + "id" + " } }" * 4 + " } }"
    assert codes(await api.raw(too_deep)) == ["BAD_USER_INPUT"]
    assert codes(await api.raw("{ nope }")) == ["BAD_USER_INPUT"]
    assert codes(await api.raw('{ products(after: "garbage") { totalCount } }')) == ["BAD_USER_INPUT"]
    async with api.session.post(
        f"{api.url}/graphql", data=io.BytesIO(b"x" * 2_000_000), headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 413


@pytest.mark.parametrize("settings_overrides", [{"GATEWAY_WS_AUTH_TIMEOUT": 0.3}])
async def test_a_websocket_that_never_initialises_is_closed(api: Api) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(api.url + "/graphql", protocols=["graphql-transport-ws"]) as ws,
    ):
        message = await asyncio.wait_for(ws.receive(), timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert ws.close_code == 4408


async def test_health_endpoints_and_metrics(gw: Gateway, api: Api) -> None:
    async with api.session.get(f"{api.url}/healthz") as response:
        assert response.status == 200
    async with api.session.get(f"{api.url}/readyz") as response:
        assert response.status == 200
        assert "woocommerce" in (await response.json())["platforms"]
    async with api.session.get(f"{api.url}/metrics") as response:
        assert "gateway_webhook_deliveries_total" in await response.text()
    async with api.session.get(f"{api.url}/graphql", headers={"Accept": "text/html"}) as response:
        assert response.status == 200 and "graphiql" in (await response.text()).lower()
    real_db = gw.db
    gw.db = mongo_connect("mongodb://127.0.0.1:9/?directConnection=true", "x", serverSelectionTimeoutMS=200)
    try:
        async with api.session.get(f"{api.url}/readyz") as response:
            assert response.status == 503
            assert "mongodb" in (await response.json())["reasons"][0]
    finally:
        await gw.db.close()
        gw.db = real_db


async def page_through(api: Api, field: str, args: str, first: int) -> list[dict[str, Any]]:
    """Every node of a connection, read `first` at a time by following endCursor."""
    query = (
        f"query($after: String) {{ {field}(first: {first}, after: $after{args}) {{"
        " edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"
    )
    nodes: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = (await api.query(query, {"after": after}))[field]
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            assert len(page["edges"]) <= first
            return nodes
        assert len(page["edges"]) == first and page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        after = page["pageInfo"]["endCursor"]


async def test_every_connection_pages_through_each_row_once(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connect(api, toy_store)
    await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id)
    for _ in range(2):
        data = await api.query("mutation($id: ID!) { syncNow(integrationId: $id) { id } }", {"id": integration_id})
        await wait_run(gw, data["syncNow"]["id"])
    whole = await api.query("{ products(first: 250) { totalCount edges { node { id } } } }")
    products = await page_through(api, "products", "", 7)
    assert [p["id"] for p in products] == [e["node"]["id"] for e in whole["products"]["edges"]]
    assert len({p["id"] for p in products}) == whole["products"]["totalCount"] == 30
    runs = await page_through(api, "syncRuns", f', integrationId: "{integration_id}"', 1)
    assert len({r["id"] for r in runs}) == len(runs) == 3
    entries = await page_through(api, "activityLog", "", 2)
    assert len({e["id"] for e in entries}) == len(entries) == await gw.db.activity.count_documents({})
    empty = await api.query("{ conflicts(first: 5) { edges { cursor } pageInfo { hasNextPage endCursor } } }")
    assert empty["conflicts"] == {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}
