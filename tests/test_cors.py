"""Who may use the API from a browser (GATEWAY_ALLOWED_ORIGINS), and the pages the gateway serves.

HTTP-level checks on the real server; tests/browser/ drives the same rules from Chromium.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from gwtest import Api

from gateway.api.cors import OriginPolicy, normalize_origin
from gateway.settings import Settings

ALLOWED = "https://app.alana.example"
OTHER = "https://evil.example"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"GATEWAY_ALLOWED_ORIGINS": f"{ALLOWED}, http://localhost:5173"}


def test_origins_are_normalized_and_bad_ones_named() -> None:
    assert normalize_origin("HTTPS://App.Alana.Example:443/") == "https://app.alana.example"
    assert normalize_origin("http://localhost:5173") == "http://localhost:5173"
    assert normalize_origin("null") is None
    assert normalize_origin("https://app.example/path") is None
    with pytest.raises(ValueError, match="'app.example' is not an origin"):
        OriginPolicy(["app.example"])
    policy = OriginPolicy.from_settings(
        Settings(_env_file=None, GATEWAY_PUBLIC_URL="https://gw.example/base", GATEWAY_ALLOWED_ORIGINS=ALLOWED)  # type: ignore[call-arg]
    )
    assert policy.origins == {"https://gw.example", ALLOWED}
    assert policy.allows(None) and policy.allows("https://gw.example") and policy.allows(ALLOWED)
    assert not policy.allows(OTHER) and not policy.allows("null")
    assert policy.allows("http://10.0.0.5:8000", host="10.0.0.5:8000")  # the page came from this very host
    assert not policy.allows("http://10.0.0.5:8001", host="10.0.0.5:8000")


async def test_preflight_from_an_allowed_origin_is_answered(api: Api) -> None:
    headers = {
        "Origin": ALLOWED,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with api.session.options(f"{api.url}/graphql", headers=headers) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type"} <= allowed
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "Origin" in response.headers["Vary"]
        assert int(response.headers["Access-Control-Max-Age"]) > 0


async def test_requests_from_an_allowed_origin_can_read_the_answer(api: Api) -> None:
    async with api.session.post(
        f"{api.url}/graphql",
        json={"query": "{ integrations { id } }"},
        headers={"Origin": ALLOWED, "Authorization": f"Bearer {api.token()}"},
    ) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert "X-Request-Id" in response.headers["Access-Control-Expose-Headers"]
        assert "Origin" in response.headers["Vary"]
        assert (await response.json())["data"] == {"integrations": []}


async def test_other_origins_are_refused_before_graphql(api: Api) -> None:
    headers = {"Origin": OTHER, "Access-Control-Request-Method": "POST"}
    async with api.session.options(f"{api.url}/graphql", headers=headers) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    async with api.session.post(
        f"{api.url}/graphql",
        json={"query": "{ integrations { id } }"},
        headers={"Origin": OTHER, "Authorization": f"Bearer {api.token()}"},
    ) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
        body = await response.json()
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert "GATEWAY_ALLOWED_ORIGINS" in body["errors"][0]["message"]


async def test_same_origin_and_non_browser_requests_pass(api: Api) -> None:
    query = {"query": "{ integrations { id } }"}
    auth = {"Authorization": f"Bearer {api.token()}"}
    async with api.session.post(f"{api.url}/graphql", json=query, headers=auth) as response:
        assert response.status == 200 and "Access-Control-Allow-Origin" not in response.headers
    async with api.session.post(f"{api.url}/graphql", json=query, headers={**auth, "Origin": api.url}) as response:
        assert response.status == 200


async def _ws_handshake(api: Api, origin: str) -> dict[str, Any]:
    async with api.session.ws_connect(
        f"{api.url}/graphql", protocols=("graphql-transport-ws",), headers={"Origin": origin}
    ) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {api.token()}"}})
        ack: dict[str, Any] = await ws.receive_json(timeout=10)
        return ack


async def test_websockets_follow_the_same_rule(api: Api) -> None:
    assert (await _ws_handshake(api, ALLOWED))["type"] == "connection_ack"
    assert (await _ws_handshake(api, api.url))["type"] == "connection_ack"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await _ws_handshake(api, OTHER)
    assert refused.value.status == 403


async def test_pages_are_served_with_a_strict_policy(api: Api) -> None:
    for path, headers, marker in (
        ("/", {}, 'src="/static/console/app.js"'),
        ("/graphql", {"Accept": "text/html,application/xhtml+xml"}, "/static/graphiql/graphiql.min.js"),
    ):
        async with api.session.get(f"{api.url}{path}", headers=headers) as response:
            assert response.status == 200
            assert marker in await response.text()
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy
            assert "frame-ancestors 'none'" in policy
    for asset in ("console/app.js", "console/gql.js", "graphiql/graphiql.min.js", "graphiql/react.production.min.js"):
        async with api.session.get(f"{api.url}/static/{asset}") as response:
            assert response.status == 200, asset
            assert "javascript" in response.headers["Content-Type"]
    async with api.session.get(f"{api.url}/static/..%2f..%2fsettings.py") as response:
        assert response.status == 404
    async with api.session.get(f"{api.url}/static/nothing-here.js") as response:
        assert response.status == 404
