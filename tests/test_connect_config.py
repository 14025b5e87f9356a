"""Install flows follow the configuration: INSTALL_FLOW is offered only where the platform's app is set up,
and WooCommerce's approval is refused, clearly, where the gateway cannot take its keys over HTTPS."""

from __future__ import annotations

from typing import Any

import pytest
from connectkit import BEGIN, RECONNECT
from gwtest import Api

from gateway.services import Gateway
from gateway.settings import Settings


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # A production-like gateway: no Shopify / BigCommerce app, plain-HTTP public URL, no private URLs.
    return {"GATEWAY_ALLOW_PRIVATE_URLS": False}


async def test_install_flow_offered_only_where_configured(gw: Gateway, api: Api) -> None:
    data = await api.query("{ platforms { id connectMethods } }")
    methods = {p["id"]: p["connectMethods"] for p in data["platforms"]}
    assert methods["shopify"] == ["CREDENTIALS"]
    assert methods["bigcommerce"] == ["CREDENTIALS"]
    assert methods["woocommerce"] == ["CREDENTIALS", "INSTALL_FLOW"]  # needs no app credentials
    assert methods["toy"] == ["CREDENTIALS"]
    body = await api.raw(BEGIN, {"input": {"platform": "shopify", "name": "x", "store": "shop.myshopify.com"}})
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "platform"}
    assert "API keys" in body["errors"][0]["message"]
    async with api.session.get(f"{api.url}/connect/shopify/callback?code=x&state=y") as response:
        assert response.status == 404 and "not set up" in await response.text()
    async with api.session.post(f"{api.url}/webhooks/shopify/app", data=b"{}") as response:
        assert response.status == 404


async def test_woocommerce_needs_an_https_gateway(gw: Gateway, api: Api) -> None:
    body = await api.raw(BEGIN, {"input": {"platform": "woocommerce", "name": "x", "store": "https://shop.example"}})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "HTTPS" in error["message"] and "GATEWAY_PUBLIC_URL" in error["message"]
    assert await gw.db.connect_attempts.count_documents({}) == 0


async def test_reconnect_of_an_unknown_integration_is_not_found(api: Api) -> None:
    body = await api.raw(RECONNECT, {"id": "nope"})
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_app_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ACME_CLIENT_ID", "acme-id")  # a third-party plugin's app
    monkeypatch.setenv("GATEWAY_ACME_CLIENT_SECRET", "acme-secret")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        GATEWAY_SHOPIFY_CLIENT_ID="shop-id",
        GATEWAY_SHOPIFY_CLIENT_SECRET="shop-secret",
        GATEWAY_SHOPIFY_AUTH_URL="http://127.0.0.1:9/",
        GATEWAY_WOOCOMMERCE_APP_NAME="Alana Catalog",
    )
    shopify = settings.app_credentials("shopify")
    assert shopify.configured and shopify.client_id == "shop-id" and shopify.auth_url == "http://127.0.0.1:9"
    assert settings.app_credentials("woocommerce").app_name == "Alana Catalog"
    assert settings.app_credentials("acme").client_secret == "acme-secret"
    assert not settings.app_credentials("bigcommerce").configured
    assert settings.effective_frontend_url == "http://localhost:8000/"
