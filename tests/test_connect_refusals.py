"""Bad input to the install flows gets a clear error and stores nothing, through the real routes: forged or
missing HMACs, unknown, expired and reused states, shops that are not shop domains, returnUrls on origins
not allowed, forged or stale BigCommerce JWTs, WooCommerce keys for no attempt, codes the token endpoint
refuses, and stores that reject the credentials they just issued. Where an integration exists (a
reconnect), the activity log says what happened."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from alana_shopify.install import sign_query
from connectkit import (
    ATTEMPT,
    BEGIN,
    RECONNECT,
    Stores,
    app_settings,
    approve,
    begin,
    connect_through,
    kinds,
    query_of,
    register_apps,
    return_url,
    start_stores,
    stop_stores,
)
from gwtest import Api

from gateway.domain import utcnow
from gateway.services import Gateway
from gateway.testing.installkit import Browser


@pytest_asyncio.fixture
async def stores() -> AsyncIterator[Stores]:
    started = await start_stores()
    yield started
    await stop_stores(started)


@pytest.fixture
def settings_overrides(stores: Stores) -> dict[str, Any]:
    return app_settings(stores)


@pytest_asyncio.fixture
async def apps(gw: Gateway, stores: Stores) -> Stores:
    register_apps(gw, stores)
    return stores


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    made = Browser()
    yield made
    await made.close()


async def nothing_stored(gw: Gateway) -> None:
    assert await gw.db.integrations.count_documents({}) == 0
    assert await gw.db.pending_installs.count_documents({}) == 0


def shopify_callback(api: Api, stores: Stores, secret: str | None = None, **params: str) -> str:
    """A callback URL as Shopify signs it (with the app's secret unless another is given)."""
    values = {
        "code": "c0de",
        "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvYWxhbmEtc2lt",
        "shop": stores.shopify.install_store,
        "state": "never-issued",
        "timestamp": str(int(time.time())),
        **params,
    }
    signed = sign_query(values, secret if secret is not None else stores.shopify.app_credentials()["client_secret"])
    return f"{api.url}/connect/shopify/callback?" + "&".join(f"{k}={v}" for k, v in signed.items())


async def bound_state(browser: Browser, attempt: dict[str, Any]) -> str:
    """Open the attempt's start URL (binding the browser) and read the state from the platform redirect."""
    start = await browser.open(attempt["authorizeUrl"], follow=False)
    assert start.status == 302
    state = query_of(start.location).get("state") or query_of(start.location).get("user_id")
    assert state
    return state


async def status_of(api: Api, attempt_id: str) -> dict[str, Any]:
    result: dict[str, Any] = (await api.query(ATTEMPT, {"id": attempt_id}))["connectAttempt"]
    return result


async def test_forged_or_missing_hmac_changes_nothing(gw: Gateway, api: Api, apps: Stores, browser: Browser) -> None:
    attempt = await begin(api, "shopify", apps.shopify.install_store)
    state = await bound_state(browser, attempt)
    forged = shopify_callback(api, apps, secret="guessed-secret", state=state)
    page = await browser.open(forged)
    assert page.status == 401 and "did not come from Shopify" in page.text
    unsigned = forged.split("&hmac=")[0]
    page = await browser.open(unsigned)
    assert page.status == 401
    tampered = shopify_callback(api, apps, state=state).replace("shop=alana-sim", "shop=other-shop")
    assert (await browser.open(tampered)).status == 401
    assert (await status_of(api, attempt["id"]))["status"] == "PENDING"
    await nothing_stored(gw)
    # The genuine callback still works afterwards: a forgery cannot burn the attempt.
    landed = await approve(browser, attempt["authorizeUrl"])
    assert query_of(landed.url)["status"] == "CONNECTED"


async def test_a_forged_callback_for_a_reconnect_is_logged_on_the_integration(
    gw: Gateway, api: Api, apps: Stores, browser: Browser
) -> None:
    connected = await connect_through(api, browser, "shopify", apps.shopify.install_store)
    integration_id = connected["integration"]["id"]
    before = await gw.db.integrations.find_one({"_id": integration_id})
    reconnect = (await api.query(RECONNECT, {"id": integration_id, "returnUrl": return_url(api)}))[
        "reconnectIntegration"
    ]
    state = await bound_state(browser, reconnect)
    page = await browser.open(shopify_callback(api, apps, secret="guessed-secret", state=state))
    assert page.status == 401
    assert "CONNECT_FAILED" in await kinds(api, integration_id)
    after = await gw.db.integrations.find_one({"_id": integration_id})
    assert after == before  # nothing changed on the integration
    assert (await status_of(api, reconnect["id"]))["status"] == "PENDING"


async def test_unknown_expired_and_reused_states(gw: Gateway, api: Api, apps: Stores, browser: Browser) -> None:
    unknown = await browser.open(shopify_callback(api, apps, state="never-issued"))
    assert unknown.status == 400 and "unknown" in unknown.text
    await nothing_stored(gw)

    # Expired: the merchant took longer than 10 minutes.
    attempt = await begin(api, "shopify", apps.shopify.install_store)
    screen = await browser.open(attempt["authorizeUrl"])
    real_clock = gw.clock
    gw.clock = lambda: real_clock() + timedelta(minutes=11)
    try:
        landed = await browser.choose(screen, "approve")
    finally:
        gw.clock = real_clock
    assert query_of(landed.url) == {"tab": "stores", "connectAttempt": attempt["id"], "status": "EXPIRED"}
    expired = await status_of(api, attempt["id"])
    assert expired["status"] == "EXPIRED" and "10 minutes" in expired["error"] and expired["authorizeUrl"] is None
    await nothing_stored(gw)
    assert apps.shopify.app.codes.redeemed == 0  # the code was never exchanged

    # Reused: a callback replayed after the attempt completed changes nothing.
    attempt = await begin(api, "shopify", apps.shopify.install_store)
    screen = await browser.open(attempt["authorizeUrl"])
    callback = await browser.choose(screen, "approve", follow=False)
    assert callback.location is not None
    first = await browser.open(callback.location)
    assert query_of(first.url)["status"] == "CONNECTED"
    replayed = await browser.open(callback.location)
    assert query_of(replayed.url) == query_of(first.url)
    assert await gw.db.integrations.count_documents({}) == 1
    assert apps.shopify.app.codes.redeemed == 1  # exchanged once
    restart = await browser.open(attempt["authorizeUrl"])  # an ended attempt's start URL goes nowhere new
    assert query_of(restart.url)["status"] == "CONNECTED"


async def test_a_shop_that_is_not_a_shop_domain(gw: Gateway, api: Api, apps: Stores, browser: Browser) -> None:
    for store in ("evil.com", "https://shop.myshopify.com.evil.com", "", None):
        body = await api.raw(BEGIN, {"input": {"platform": "shopify", "name": "x", "store": store}})
        assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "store"}, store
    assert await gw.db.connect_attempts.count_documents({}) == 0
    attempt = await begin(api, "shopify", apps.shopify.install_store)
    state = await bound_state(browser, attempt)
    page = await browser.open(shopify_callback(api, apps, state=state, shop="evil.com"))
    assert page.status == 400 and "not a Shopify shop domain" in page.text
    await nothing_stored(gw)


async def test_a_return_url_on_an_origin_not_allowed(gw: Gateway, api: Api, apps: Stores) -> None:
    for url in ("https://evil.example/back", "javascript:alert(1)", "//evil.example/x", "ftp://127.0.0.1/"):
        body = await api.raw(
            BEGIN,
            {"input": {"platform": "shopify", "name": "x", "store": apps.shopify.install_store, "returnUrl": url}},
        )
        assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "returnUrl"}, url
        assert "allowed frontend origin" in body["errors"][0]["message"]
    assert await gw.db.connect_attempts.count_documents({}) == 0


async def test_bigcommerce_callbacks_with_a_bad_jwt_change_nothing(
    gw: Gateway, api: Api, apps: Stores, browser: Browser
) -> None:
    sim = apps.bigcommerce
    connected = await connect_through(api, browser, "bigcommerce", None)
    integration_id = connected["integration"]["id"]
    before = await gw.db.integrations.find_one({"_id": integration_id})
    now = int(time.time())
    cases = {
        "wrong audience": sim.app.signed_payload(aud="another-app"),
        "wrong signature": sim.app.signed_payload(secret="not-the-client-secret-but-long-enough-0123"),
        "expired": sim.app.signed_payload(iat=now - 200_000, nbf=now - 200_000, exp=now - 100_000),
        "not yet valid": sim.app.signed_payload(nbf=now + 3600),
    }
    for case, token in cases.items():
        for event in ("uninstall", "load", "remove_user"):
            async with api.session.get(
                f"{api.url}/apps/bigcommerce/{event}", params={"signed_payload_jwt": token}, allow_redirects=False
            ) as response:
                assert response.status == 401, (case, event)
    async with api.session.get(f"{api.url}/apps/bigcommerce/uninstall", allow_redirects=False) as response:
        assert response.status == 401  # no JWT at all
    after = await gw.db.integrations.find_one({"_id": integration_id})
    assert after == before
    assert "APP_UNINSTALLED" not in await kinds(api, integration_id)


async def test_woocommerce_keys_for_an_attempt_that_does_not_exist(gw: Gateway, api: Api, apps: Stores) -> None:
    keys = {"key_id": 9, "user_id": "no-such-attempt", "consumer_key": "ck_x", "consumer_secret": "cs_y"}
    async with api.session.post(
        f"{api.url}/connect/woocommerce/callback",
        data=json.dumps({**keys, "key_permissions": "read_write"}),
        headers={"Content-Type": "application/json;charset=UTF-8"},
    ) as response:
        assert response.status == 404  # not 200: WooCommerce deletes the key again
    async with api.session.post(
        f"{api.url}/connect/woocommerce/callback", data=b"not json", headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
    async with api.session.get(
        f"{api.url}/connect/woocommerce/callback", params={"success": "1", "user_id": "no-such-attempt"}
    ) as response:
        assert response.status == 400 and "unknown" in await response.text()
    await nothing_stored(gw)


async def test_a_code_the_token_endpoint_refuses(gw: Gateway, api: Api, apps: Stores, browser: Browser) -> None:
    connected = await connect_through(api, browser, "shopify", apps.shopify.install_store)
    integration_id = connected["integration"]["id"]
    reconnect = (await api.query(RECONNECT, {"id": integration_id, "returnUrl": return_url(api)}))[
        "reconnectIntegration"
    ]
    state = await bound_state(browser, reconnect)
    landed = await browser.open(shopify_callback(api, apps, state=state, code="never-issued-code"))
    assert query_of(landed.url)["status"] == "FAILED"
    failed = await status_of(api, reconnect["id"])
    assert failed["status"] == "FAILED" and "refused the authorization" in failed["error"]
    assert "CONNECT_FAILED" in await kinds(api, integration_id)
    assert await gw.db.integrations.count_documents({}) == 1

    # BigCommerce: a code nobody issued, for a browser-bound attempt.
    attempt = await begin(api, "bigcommerce", None)
    await browser.open(attempt["authorizeUrl"], follow=False)
    forged = await browser.open(
        f"{api.url}/connect/bigcommerce/callback?code=bogus&scope=store_v2_products_read_only"
        f"&context=stores/{apps.bigcommerce.store_hash}&account_uuid=x"
    )
    assert query_of(forged.url)["status"] == "FAILED"
    assert "refused the authorization" in (await status_of(api, attempt["id"]))["error"]
    assert await gw.db.integrations.count_documents({}) == 1


@pytest.mark.parametrize("platform", ["shopify", "bigcommerce", "woocommerce"])
async def test_a_store_that_rejects_the_credentials_it_just_issued(
    gw: Gateway, api: Api, apps: Stores, browser: Browser, platform: str
) -> None:
    sim = apps.of(platform)
    side = sim.auth if platform == "woocommerce" else sim.app  # type: ignore[attr-defined]
    side.reject_issued = True
    attempt = await begin(api, platform, None if platform == "bigcommerce" else sim.install_store)
    landed = await approve(browser, attempt["authorizeUrl"])
    assert query_of(landed.url)["status"] == "FAILED"
    failed = await status_of(api, attempt["id"])
    assert failed["status"] == "FAILED" and "refused the credentials it had just issued" in failed["error"]
    await nothing_stored(gw)


async def test_an_unconfigured_app_and_unknown_attempts(gw: Gateway, api: Api, apps: Stores, browser: Browser) -> None:
    body = await api.raw(BEGIN, {"input": {"platform": "toy", "name": "x", "store": "http://127.0.0.1:1"}})
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "platform"}
    body = await api.raw(BEGIN, {"input": {"platform": "nope", "name": "x"}})
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "platform"}
    body = await api.raw(
        BEGIN, {"input": {"platform": "woocommerce", "name": " ", "store": apps.woocommerce.store_url}}
    )
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "name"}
    missing = await browser.open(f"{api.url}/connect/shopify/start/no-such-attempt")
    assert missing.status == 404 and "unknown" in missing.text
    body = await api.raw(ATTEMPT, {"id": "no-such-attempt"})
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert await gw.db.connect_attempts.count_documents({}) == 0
    # Started in time, never finished: the scheduler marks it EXPIRED.
    attempt = await begin(api, "woocommerce", apps.woocommerce.install_store)
    real_clock = gw.clock
    gw.clock = lambda: real_clock() + timedelta(minutes=11)
    try:
        await gw.scheduler.maintain_connections()
    finally:
        gw.clock = real_clock
    stored = await gw.db.connect_attempts.find_one({"_id": attempt["id"]})
    assert (
        stored is not None
        and stored["status"] == "EXPIRED"
        and stored["finished_at"] <= utcnow() + timedelta(minutes=12)
    )
