"""Shopify's install flow against the simulated shop, driven as the merchant's browser and Shopify would:
the grant screen, the signed redirect, the code exchange with expiring tokens, refresh and rotation, the
App URL install request, APP_UNINSTALLED and the compliance webhooks, and every bad input."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import pytest_asyncio
from alana_shopify.adapter import ShopifyAdapter
from alana_shopify.install import (
    SCOPES,
    ShopifyInstallFlow,
    query_hmac,
    sign_query,
    signing_string,
    valid_shop,
)
from alana_shopify.simulator import WEBHOOK_RETRIES, ShopifySimulator
from alana_shopify.webhooks import sign

from gateway.adapter import Connection, FetchRequest, HookState, WebhookRegistration
from gateway.errors import BadInput, ConnectRefused, CredentialsRejected, StoreAuthError
from gateway.installflow import (
    FlowFailure,
    FlowRequest,
    Granted,
    LifecycleEvent,
    LifecycleKind,
    Rejected,
    now_utc,
)
from gateway.testing.installkit import FlowKit
from gateway.testing.kit import local_http

FAST = {"restore_rate": 1_000_000, "bucket_size": 2000, "webhook_retry_schedule": [0.0, 0.0]}


@pytest_asyncio.fixture
async def fk() -> AsyncIterator[FlowKit]:
    sim = ShopifySimulator(3, **FAST)
    await sim.start()
    kit = FlowKit(ShopifyAdapter(), sim)
    await kit.start()
    yield kit
    await kit.aclose()
    await sim.stop()


def flow_of(fk: FlowKit) -> ShopifyInstallFlow:
    assert isinstance(fk.flow, ShopifyInstallFlow)
    return fk.flow


def shopify_request(fk: FlowKit, secret: str | None = None, **params: str) -> FlowRequest:
    """A GET as Shopify signs it (with the app's secret unless `secret` is given)."""
    signed = sign_query(params, secret if secret is not None else fk.app.client_secret)
    return FlowRequest.of("GET", signed.items())


def callback_params(fk: FlowKit, **changes: str) -> dict[str, str]:
    params = {
        "code": "c0de",
        "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvYWxhbmEtc2lt",
        "shop": fk.sim.install_store,
        "state": "s1",
        "timestamp": str(int(time.time())),
    }
    return {**params, **changes}


# ---- the query HMAC -------------------------------------------------------------------------------------
def test_hmac_matches_the_published_test_vectors() -> None:
    """docs/reference/CONNECT-FACTS.md 1a: secret `hush`."""
    base = [("code", "0907a61c0c8d55e99db179b68161bc00"), ("shop", "some-shop.myshopify.com")]
    assert (
        query_hmac([*base, ("timestamp", "1337178173")], "hush")
        == "4712bf92ffc2917d15a2f5a273e39f0116667419aa4b6ac0b3baaf26fa3c4d20"
    )
    with_state = [*base, ("state", "0.6784241404160823"), ("timestamp", "1337178173")]
    assert query_hmac(with_state, "hush") == "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"
    # hmac and signature are not signed; order does not matter; delimiters inside values cannot forge pairs.
    assert query_hmac([("hmac", "x"), ("signature", "y"), *reversed(with_state)], "hush") == query_hmac(
        with_state, "hush"
    )
    assert signing_string([("a", "1&b=2")]) == "a=1%26b=2" != signing_string([("a", "1"), ("b", "2")])
    assert signing_string([("k=v", "%")]) == "k%3Dv=%25"


@pytest.mark.parametrize(
    ("shop", "valid"),
    [
        ("some-shop.myshopify.com", True),
        ("Shop1.myshopify.com", True),
        ("evil.com", False),
        ("shop.myshopify.com.evil.com", False),
        ("-shop.myshopify.com", False),
        ("shop.myshopify.com/admin", False),
        ("shop_name.myshopify.com", False),
        ("", False),
    ],
)
def test_shop_domain_validation(shop: str, valid: bool) -> None:
    assert valid_shop(shop) is valid


# ---- the browser's way through -------------------------------------------------------------------------------
async def test_a_merchant_connects_through_the_grant_screen(fk: FlowKit) -> None:
    attempt = fk.begin()
    browser = fk.browser
    start = await browser.open(fk.gateway.start_url(attempt), follow=False)
    assert start.status == 302 and start.location == attempt.redirect.url
    authorize = dict(parse_qsl(urlsplit(attempt.redirect.url).query))
    assert urlsplit(attempt.redirect.url).path == "/admin/oauth/authorize"
    assert authorize == {
        "client_id": fk.app.client_id,
        "scope": ",".join(SCOPES),
        "redirect_uri": fk.gateway.endpoints.callback_url,
        "state": attempt.state,
    }
    screen = await browser.open(attempt.redirect.url)
    assert screen.status == 200 and "Install app" in screen.text and fk.sim.install_store in screen.text
    redirected = await browser.choose(screen, "approve", follow=False)
    assert redirected.status == 302 and redirected.location is not None
    assert redirected.location.startswith(fk.gateway.endpoints.callback_url)
    callback = dict(parse_qsl(urlsplit(redirected.location).query))
    assert set(callback) == {"code", "hmac", "host", "shop", "state", "timestamp"}
    assert callback["state"] == attempt.state and callback["shop"] == "alana-sim.myshopify.com"
    landed = await browser.open(redirected.location)
    assert landed.status == 200 and "connect CONNECTED" in landed.text
    assert fk.gateway.returns[-1] == {"connectAttempt": attempt.id, "status": "CONNECTED"}
    installation = attempt.installation
    assert installation is not None and installation.store_key == "alana-sim.myshopify.com"
    assert installation.store_url == fk.sim.base_url
    tokens = installation.tokens
    assert set(tokens.credentials) == {"access_token", "refresh_token", "client_secret"}
    assert tokens.expires_at is not None
    assert timedelta(minutes=59) < tokens.expires_at - now_utc() <= timedelta(minutes=60)
    assert tokens.refresh_expires_at is not None and tokens.scopes == SCOPES
    conn = fk.connection(installation, bulk_threshold=0)
    pages = [page async for page in fk.adapter.fetch_products(conn, FetchRequest())]
    assert sorted(n["legacyResourceId"] for p in pages for n in p.items) == fk.sim.product_ids()
    await conn.close()


async def test_cancelling_on_the_grant_screen_leaves_the_merchant_on_shopify(fk: FlowKit) -> None:
    attempt = fk.begin()
    screen = await fk.browser.open(fk.gateway.start_url(attempt))
    page = await fk.browser.choose(screen, "deny")
    assert page.url.startswith(fk.sim.base_url) and "not installed" in page.text
    assert attempt.status == "PENDING" and fk.gateway.records("callback") == []


async def test_the_grant_screen_refuses_an_unknown_app_or_redirect(fk: FlowKit) -> None:
    attempt = fk.begin()
    wrong_client = attempt.redirect.url.replace(f"client_id={fk.app.client_id}", "client_id=someone-else")
    page = await fk.browser.open(wrong_client)
    assert page.status == 400 and "client_id" in page.text and not page.forms
    query = {**dict(parse_qsl(urlsplit(attempt.redirect.url).query)), "redirect_uri": "https://evil.example/cb"}
    elsewhere = f"{fk.sim.base_url}/admin/oauth/authorize?{urlencode(query)}"
    page = await fk.browser.open(elsewhere)
    assert page.status == 400 and "not whitelisted" in page.text


async def test_a_shop_that_rejects_the_freshly_issued_token_connects_nothing(fk: FlowKit) -> None:
    fk.sim.app.reject_issued = True
    attempt, page = await fk.connect()
    assert attempt.status == "FAILED" and "refused the credentials" in (attempt.error or "")
    assert fk.gateway.returns[-1]["status"] == "FAILED" and attempt.installation is None


# ---- bad input at the callback ----------------------------------------------------------------------------------
def test_authorize_refuses_a_store_that_is_not_a_shop(fk: FlowKit) -> None:
    flow = flow_of(fk)
    for store in ("evil.com", "https://evil.com", "shop.myshopify.com.evil.com", ""):
        with pytest.raises(BadInput) as refused:
            flow.authorize("state", store)
        assert refused.value.field == "store"
    assert flow.authorize("s", "https://Some-Shop.myshopify.com/admin").store_key == "some-shop.myshopify.com"
    assert flow.authorize("s", fk.sim.base_url + "/").store_key is None  # the configured simulator


@pytest.mark.parametrize(
    ("case", "failure", "status"),
    [
        ("no hmac", FlowFailure.FORGED, 401),
        ("forged hmac", FlowFailure.FORGED, 401),
        ("shop changed after signing", FlowFailure.FORGED, 401),
        ("signed with another secret", FlowFailure.FORGED, 401),
        ("not a shop domain", FlowFailure.BAD_STORE, 400),
        ("ten minutes old", FlowFailure.STALE, 400),
        ("from the future", FlowFailure.STALE, 400),
        ("no code", FlowFailure.MALFORMED, 400),
        ("state repeated", FlowFailure.MALFORMED, 400),
    ],
)
def test_a_bad_callback_is_rejected_and_says_why(fk: FlowKit, case: str, failure: FlowFailure, status: int) -> None:
    flow = flow_of(fk)
    params = callback_params(fk)
    signed = sign_query(params, fk.app.client_secret)
    request: FlowRequest
    if case == "no hmac":
        request = FlowRequest.of("GET", params.items())
    elif case == "forged hmac":
        request = FlowRequest.of("GET", {**signed, "hmac": "0" * 64}.items())
    elif case == "shop changed after signing":
        request = FlowRequest.of("GET", {**signed, "shop": "other.myshopify.com"}.items())
    elif case == "signed with another secret":
        request = shopify_request(fk, secret="not-the-app-secret", **params)
    elif case == "not a shop domain":
        request = shopify_request(fk, **callback_params(fk, shop="evil.com"))
    elif case == "ten minutes old":
        request = shopify_request(fk, **callback_params(fk, timestamp=str(int(time.time()) - 600)))
    elif case == "from the future":
        request = shopify_request(fk, **callback_params(fk, timestamp=str(int(time.time()) + 600)))
    elif case == "no code":
        request = shopify_request(fk, **{k: v for k, v in params.items() if k != "code"})
    else:
        request = FlowRequest.of("GET", [*signed.items(), ("state", "s2")])
    outcome = flow.verify_callback(request)
    assert isinstance(outcome, Rejected), outcome
    assert (outcome.failure, outcome.status) == (failure, status)
    assert outcome.message and "c0de" not in outcome.message and fk.app.client_secret not in outcome.message


async def test_a_forged_callback_through_the_gateway_changes_nothing(fk: FlowKit) -> None:
    attempt = fk.begin()
    params = callback_params(fk, state=attempt.state)
    forged = {**params, "hmac": query_hmac(params.items(), "guessed")}
    page = await fk.browser.open(
        f"{fk.gateway.endpoints.callback_url}?{'&'.join(f'{k}={v}' for k, v in forged.items())}"
    )
    assert page.status == 401 and "did not come from Shopify" in page.text
    assert attempt.status == "PENDING" and attempt.installation is None


async def test_a_code_shopify_refuses_and_a_grant_for_another_shop(fk: FlowKit) -> None:
    flow = flow_of(fk)
    granted = Granted("s", "alana-sim.myshopify.com", True, {"code": "never-issued", "shop": "alana-sim.myshopify.com"})
    with pytest.raises(ConnectRefused) as refused:
        await flow.complete(granted, fk.gateway.client(), store_url=fk.sim.base_url)
    assert refused.value.failure == FlowFailure.CODE_REJECTED and "connect again" in refused.value.message
    with pytest.raises(ConnectRefused) as other:
        await flow.complete(granted, fk.gateway.client(), store_url="https://another-shop.myshopify.com")
    assert other.value.failure == FlowFailure.BAD_STORE and "another-shop.myshopify.com" in other.value.message


# ---- expiring tokens ---------------------------------------------------------------------------------------------
async def test_expiring_tokens_refresh_and_rotate(fk: FlowKit) -> None:
    attempt, _ = await fk.connect()
    assert attempt.installation is not None
    installation, flow, http = attempt.installation, flow_of(fk), fk.gateway.client()
    first = installation.tokens
    # Two workers refresh with the same refresh token at once: both succeed (the previous token stays
    # valid until a replacement is used).
    second = await flow.refresh(first, installation.store_url, http)
    racing = await flow.refresh(first, installation.store_url, http)
    assert (
        len({first.credentials["access_token"], second.credentials["access_token"], racing.credentials["access_token"]})
        == 3
    )
    assert second.credentials["refresh_token"] != first.credentials["refresh_token"]
    assert second.credentials["client_secret"] == fk.app.client_secret
    for tokens in (first, second, racing):  # old access tokens live until their own expiry
        await fk.gateway.check(dataclasses.replace(installation, tokens=tokens))
    # Once a replacement is used, the refresh token it replaced is dead.
    third = await flow.refresh(second, installation.store_url, http)
    with pytest.raises(CredentialsRejected):
        await flow.refresh(first, installation.store_url, http)
    assert third.expires_at is not None and second.expires_at is not None and third.expires_at >= second.expires_at
    assert fk.sim.app.tokens.refreshes == 3


async def test_an_expired_token_is_a_store_auth_error_until_refreshed(fk: FlowKit) -> None:
    attempt, _ = await fk.connect()
    assert attempt.installation is not None
    installation = attempt.installation
    fk.sim.expire_tokens()
    conn = fk.connection(installation)
    with pytest.raises(StoreAuthError) as refused:
        await fk.adapter.check_credentials(conn)
    assert refused.value.status == 401
    await conn.close()
    fresh = await flow_of(fk).refresh(installation.tokens, installation.store_url, fk.gateway.client())
    conn = fk.connection(dataclasses.replace(installation, tokens=fresh))
    await fk.adapter.check_credentials(conn)
    await conn.close()


async def test_invalid_grant_after_uninstall_is_credentials_rejected(fk: FlowKit) -> None:
    attempt, _ = await fk.connect()
    assert attempt.installation is not None
    await fk.sim.app_event("uninstall")
    with pytest.raises(CredentialsRejected) as rejected:
        await flow_of(fk).refresh(attempt.installation.tokens, attempt.installation.store_url, fk.gateway.client())
    assert "reconnect" in rejected.value.message and rejected.value.status == 400


# ---- the app's lifecycle -------------------------------------------------------------------------------------------
async def test_the_app_url_install_request_starts_an_install(fk: FlowKit) -> None:
    location = await fk.sim.app_event("install")
    assert location is not None and location.startswith(fk.gateway.endpoints.app_event_url("install"))
    page = await fk.browser.open(location)
    assert page.status == 200
    event = fk.gateway.lifecycle[-1]
    assert event.kind is LifecycleKind.INSTALL_REQUESTED and event.store_key == "alana-sim.myshopify.com"
    assert event.browser
    # The core then starts an attempt for that shop: the authorize URL is the shop's.
    redirect = flow_of(fk).authorize("state", event.store_key)
    assert redirect.store_key == event.store_key and redirect.url.startswith(fk.sim.base_url)
    forged = FlowRequest.from_url(location.replace("shop=alana-sim", "shop=other"))
    outcome = flow_of(fk).verify_app_request("install", forged)
    assert isinstance(outcome, Rejected) and outcome.failure is FlowFailure.FORGED and outcome.status == 401
    stale = flow_of(fk).verify_app_request(
        "install", FlowRequest.from_url(location), now=now_utc() + timedelta(hours=1)
    )
    assert isinstance(stale, Rejected) and stale.failure is FlowFailure.STALE
    assert isinstance(flow_of(fk).verify_app_request("load", FlowRequest.from_url(location)), Rejected)


@pytest.mark.parametrize(
    ("topic", "kind"),
    [
        ("customers/data_request", LifecycleKind.CUSTOMER_DATA_REQUEST),
        ("customers/redact", LifecycleKind.CUSTOMER_REDACT),
        ("shop/redact", LifecycleKind.SHOP_REDACT),
    ],
)
async def test_compliance_webhooks(fk: FlowKit, topic: str, kind: LifecycleKind) -> None:
    await fk.sim.app_event(topic)
    await fk.sim.drain_deliveries()
    record = fk.gateway.records("app-webhook")[-1]
    assert record.answered == 200 and isinstance(record.outcome, LifecycleEvent)
    event = record.outcome
    assert event.kind is kind and event.store_key == "alana-sim.myshopify.com" and event.event_id
    facts = json.dumps(dict(event.details))
    assert "customer@example.com" not in facts and "555-0100" not in facts  # no customer data kept
    if kind is LifecycleKind.CUSTOMER_DATA_REQUEST:
        assert event.details["data_request_id"] == "9999" and event.details["orders_requested"] == "2"
    # A body changed after signing, a missing or wrong HMAC: 401, as Shopify requires.
    body = record.request.body.replace(b"alana-sim", b"other-sim")
    headers = record.request.headers.copy()
    for variant in (
        FlowRequest.of("POST", headers=headers, body=body),
        FlowRequest.of(
            "POST",
            headers={**headers, "X-Shopify-Hmac-Sha256": sign("wrong", record.request.body)},
            body=record.request.body,
        ),
        FlowRequest.of("POST", headers={"X-Shopify-Topic": topic}, body=record.request.body),
    ):
        outcome = flow_of(fk).verify_app_webhook(variant)
        assert isinstance(outcome, Rejected) and outcome.status == 401 and outcome.failure is FlowFailure.FORGED


async def test_uninstall_sends_app_uninstalled_and_kills_the_token(fk: FlowKit) -> None:
    attempt, _ = await fk.connect()
    assert attempt.installation is not None
    conn = fk.connection(attempt.installation)
    url = fk.gateway.product_webhook_url()
    registration = await fk.adapter.register_webhooks(conn, url)
    assert {s.state for s in await fk.adapter.webhook_status(conn, registration, url)} == {HookState.ACTIVE}
    await fk.sim.app_event("uninstall")
    await fk.sim.drain_deliveries()
    event = fk.gateway.lifecycle[-1]
    assert event.kind is LifecycleKind.UNINSTALLED and event.store_key == "alana-sim.myshopify.com"
    assert fk.sim.hooks == {}  # Shopify deletes the app's subscriptions
    for call in (
        fk.adapter.check_credentials(conn),
        fk.adapter.mapping_context(conn),
        fk.adapter.webhook_status(conn, registration, url),
    ):
        with pytest.raises(StoreAuthError):
            await call
    await conn.close()


async def test_every_client_call_raises_store_auth_error_on_shopifys_401(fk: FlowKit) -> None:
    conn = Connection(
        "it", fk.sim.store_url, fk.sim.credentials(), http_factory=local_http, options={"bulk_threshold": 0}
    )
    fk.sim.revoke_credentials()
    url = "https://example.com/hook"
    calls: list[Any] = [
        fk.adapter.check_credentials(conn),
        fk.adapter.mapping_context(conn),
        fk.adapter.count_products(conn, FetchRequest()),
        fk.adapter.register_webhooks(conn, url),
        fk.adapter.webhook_status(conn, WebhookRegistration(), url),
    ]
    for call in calls:
        with pytest.raises(StoreAuthError) as refused:
            await call
        assert refused.value.status == 401
    await conn.close()


def test_the_simulators_default_retries_are_shopifys() -> None:
    assert len(WEBHOOK_RETRIES) == 8 and sum(WEBHOOK_RETRIES) == 4 * 3600
