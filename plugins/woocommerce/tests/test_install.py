"""WooCommerce's key approval against the simulated store, as the merchant's browser and WooCommerce drive
it: the approve screen, the keys POSTed to the callback (answered exactly 200), the return redirect with
success=0|1, the HTTPS requirement, failed-delivery hook disabling, and every bad input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import pytest_asyncio
from alana_woocommerce.adapter import WooCommerceAdapter
from alana_woocommerce.install import WooCommerceInstallFlow
from alana_woocommerce.simulator import WooCommerceSimulator

from gateway.adapter import Connection, FetchRequest, HookState, WebhookRegistration
from gateway.errors import BadInput, ConnectRefused, StoreAuthError
from gateway.installflow import (
    AppCredentials,
    AppEndpoints,
    Declined,
    FlowConfig,
    FlowFailure,
    FlowRequest,
    Granted,
    Rejected,
    Returned,
)
from gateway.testing.installkit import FlowKit
from gateway.testing.kit import local_http


@pytest_asyncio.fixture
async def fk() -> AsyncIterator[FlowKit]:
    sim = WooCommerceSimulator(3, insecure_callbacks=True)
    await sim.start()
    kit = FlowKit(WooCommerceAdapter(), sim)
    await kit.start()
    yield kit
    await kit.aclose()
    await sim.stop()


def sim_of(fk: FlowKit) -> WooCommerceSimulator:
    assert isinstance(fk.sim, WooCommerceSimulator)
    return fk.sim


def keys_post(**body: Any) -> FlowRequest:
    return FlowRequest.of("POST", headers={"Content-Type": "application/json"}, body=json.dumps(body).encode())


# ---- the browser's way through ----------------------------------------------------------------------------
async def test_a_merchant_approves_the_key_request(fk: FlowKit) -> None:
    attempt = fk.begin()
    authorize = dict(parse_qsl(urlsplit(attempt.redirect.url).query))
    assert urlsplit(attempt.redirect.url).path == "/wc-auth/v1/authorize"
    assert authorize == {
        "app_name": "Alana",
        "scope": "read_write",
        "user_id": attempt.state,
        "return_url": fk.gateway.endpoints.callback_url,
        "callback_url": fk.gateway.endpoints.callback_url,
    }
    screen = await fk.browser.open(fk.gateway.start_url(attempt))
    assert screen.status == 200 and "Create webhooks" in screen.text and "View and manage products" in screen.text
    landed = await fk.browser.choose(screen, "approve", follow=False)
    # WooCommerce posted the keys (server to server) before sending the browser back.
    post = fk.gateway.records("callback")[0]
    assert post.request.method == "POST" and post.answered == 200
    assert post.request.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert isinstance(post.outcome, Granted) and post.outcome.correlation == attempt.state and not post.outcome.browser
    assert landed.location is not None
    assert dict(parse_qsl(urlsplit(landed.location).query)) == {"success": "1", "user_id": attempt.state}
    final = await fk.browser.open(landed.location)
    assert "connect CONNECTED" in final.text
    assert isinstance(fk.gateway.records("callback")[1].outcome, Returned)
    installation = attempt.installation
    assert installation is not None and installation.store_url == fk.sim.store_url
    assert set(installation.tokens.credentials) == {"consumer_key", "consumer_secret"}
    assert installation.tokens.scopes == ("read_write",) and installation.account["key_id"] == "1"
    conn = fk.connection(installation, per_page=10)
    pages = [page async for page in fk.adapter.fetch_products(conn, FetchRequest())]
    assert sorted(str(p["id"]) for page in pages for p in page.items) == sorted(fk.sim.product_ids())
    # The key can create webhooks: that is why the flow asks for read_write.
    await fk.adapter.register_webhooks(conn, fk.gateway.product_webhook_url())
    await conn.close()


async def test_a_merchant_who_denies_returns_with_success_0(fk: FlowKit) -> None:
    attempt, page = await fk.connect(approve=False)
    outcome = fk.gateway.records("callback")[0].outcome
    assert isinstance(outcome, Declined) and outcome.correlation == attempt.state
    assert attempt.status == "FAILED" and "declined" in (attempt.error or "")
    assert fk.gateway.returns[-1]["status"] == "FAILED" and not sim_of(fk).auth.keys


async def test_keys_for_an_attempt_that_does_not_exist_are_refused_and_deleted(fk: FlowKit) -> None:
    attempt = fk.begin()
    forged = attempt.redirect.url.replace(attempt.state, "no-such-attempt")
    screen = await fk.browser.open(forged)
    page = await fk.browser.choose(screen, "approve")
    # The gateway answered the POST 404, so WooCommerce deleted the key and showed "Access denied".
    assert page.status == 401 and "unable to send the consumer data" in page.text
    assert fk.gateway.records("callback")[0].answered == 404
    assert sim_of(fk).auth.keys == {} and sim_of(fk).auth.refused_posts == 1
    assert attempt.status == "PENDING"


async def test_a_store_that_rejects_the_freshly_issued_keys(fk: FlowKit) -> None:
    sim_of(fk).auth.reject_issued = True
    attempt, page = await fk.connect()
    assert attempt.status == "FAILED" and "refused the credentials" in (attempt.error or "")
    assert page.status == 401 and sim_of(fk).auth.keys == {}  # answered 400: WooCommerce deleted the key


# ---- HTTPS and bad input ---------------------------------------------------------------------------------------
def flow_for(public_url: str, *, allow_private: bool) -> WooCommerceInstallFlow:
    config = FlowConfig(AppCredentials(), AppEndpoints.for_gateway(public_url, "woocommerce"), allow_private)
    flow = WooCommerceAdapter().install_flow(config)
    assert isinstance(flow, WooCommerceInstallFlow)
    return flow


def test_a_public_url_that_is_not_https_is_a_clear_error() -> None:
    with pytest.raises(ConnectRefused) as refused:
        flow_for("http://gateway.example.com", allow_private=False).authorize("s", "https://shop.example.com")
    assert refused.value.failure == FlowFailure.INSECURE_CALLBACK and "GATEWAY_PUBLIC_URL" in refused.value.message
    # Relaxed only where private URLs are allowed (tests, demo).
    redirect = flow_for("http://127.0.0.1:8000", allow_private=True).authorize("s", "http://127.0.0.1:9/")
    assert redirect.url.startswith("http://127.0.0.1:9/wc-auth/v1/authorize?")
    secure = flow_for("https://gateway.example.com", allow_private=False)
    assert secure.authorize("s", "https://93.184.215.14/wp-json/wc/v3").store_url == "https://93.184.215.14"


@pytest.mark.parametrize(
    "store", ["", "ftp://shop.example.com", "https://127.0.0.1/shop", "https://user:pw@93.184.215.14"]
)
def test_a_store_url_that_cannot_be_connected(store: str) -> None:
    with pytest.raises(BadInput) as refused:
        flow_for("https://gateway.example.com", allow_private=False).authorize("s", store)
    assert refused.value.field == "store"


async def test_the_store_refuses_a_plain_http_callback(fk: FlowKit) -> None:
    strict = WooCommerceSimulator(1)
    await strict.start()
    try:
        url = fk.begin().redirect.url.replace(fk.sim.base_url, strict.base_url)
        page = await fk.browser.open(url)
        assert page.status == 401 and "The callback_url needs to be over SSL" in page.text and not page.forms
        missing = await fk.browser.open(url.replace("user_id=", "other="))
        assert "Missing parameter user_id" in missing.text
    finally:
        await strict.stop()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"user_id": "s1", "consumer_key": "ck_1"},
        {"user_id": "s1", "consumer_key": "nope", "consumer_secret": "cs_1", "key_permissions": "read_write"},
        {"user_id": "s1", "consumer_key": "ck_1", "consumer_secret": "cs_1", "key_permissions": "read"},
        {"consumer_key": "ck_1", "consumer_secret": "cs_1", "key_permissions": "read_write"},
    ],
)
def test_a_bad_keys_post_is_rejected(fk: FlowKit, body: dict[str, Any]) -> None:
    outcome = fk.flow.verify_callback(keys_post(**body))
    assert isinstance(outcome, Rejected) and outcome.failure is FlowFailure.MALFORMED and outcome.status == 400


def test_bad_returns_are_rejected(fk: FlowKit) -> None:
    for query in ({"success": "1"}, {"user_id": "s1", "success": "yes"}, {}):
        outcome = fk.flow.verify_callback(FlowRequest.of("GET", query))
        assert isinstance(outcome, Rejected) and outcome.browser
    assert isinstance(fk.flow.verify_callback(FlowRequest.of("GET", {"user_id": "7", "success": "0"})), Declined)
    nonjson = fk.flow.verify_callback(FlowRequest.of("POST", body=b"consumer_key=ck_1"))
    assert isinstance(nonjson, Rejected)


async def test_keys_without_the_attempts_store_are_refused(fk: FlowKit) -> None:
    granted = Granted("s", None, False, {"consumer_key": "ck_1", "consumer_secret": "cs_1"})
    with pytest.raises(ConnectRefused) as refused:
        await fk.flow.complete(granted, fk.gateway.client())
    assert refused.value.failure == FlowFailure.BAD_STORE


async def test_a_read_key_cannot_create_webhooks() -> None:
    """Why the flow asks for read_write: WooCommerce refuses every write with a read key."""

    class ReadOnly(WooCommerceInstallFlow):
        scope = "read"

    async with WooCommerceSimulator(2, insecure_callbacks=True) as sim:
        kit = FlowKit(WooCommerceAdapter(), sim)
        await kit.start()
        kit.gateway.flow = ReadOnly(kit.config())
        try:
            attempt, _ = await kit.connect()
            assert attempt.installation is not None
            conn = kit.connection(attempt.installation)
            await kit.adapter.check_credentials(conn)
            with pytest.raises(StoreAuthError) as refused:
                await kit.adapter.register_webhooks(conn, kit.gateway.product_webhook_url())
            assert refused.value.status == 401
            await conn.close()
        finally:
            await kit.aclose()


# ---- revoked keys and failing webhooks ------------------------------------------------------------------------
async def test_every_client_call_raises_store_auth_error_on_a_revoked_key(fk: FlowKit) -> None:
    conn = Connection("it", fk.sim.store_url, fk.sim.credentials(), http_factory=local_http, options={"auth": "basic"})
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


async def test_a_hook_is_disabled_on_the_seventh_failure_in_a_row(fk: FlowKit) -> None:
    sim = sim_of(fk)
    conn = Connection("it", sim.store_url, sim.credentials(), http_factory=local_http)
    url = fk.gateway.product_webhook_url()
    registration = await fk.adapter.register_webhooks(conn, url)
    await sim.drain_deliveries()
    product = sim.product_ids()[0]

    async def updated_state() -> HookState:
        statuses = await fk.adapter.webhook_status(conn, registration, url)
        return next(s.state for s in statuses if s.topic == "product.updated")

    async def fail(times: int) -> None:
        fk.gateway.fail_product_webhooks = True
        for _ in range(times):
            sim.update_product(product)
            await sim.drain_deliveries()
        fk.gateway.fail_product_webhooks = False

    await fail(6)
    assert await updated_state() is HookState.ACTIVE
    sim.update_product(product)  # a success resets the count
    await sim.drain_deliveries()
    await fail(6)
    assert await updated_state() is HookState.ACTIVE
    await fail(1)
    assert await updated_state() is HookState.DISABLED
    before = len(fk.gateway.product_deliveries)
    sim.update_product(product)
    await sim.drain_deliveries()
    assert len(fk.gateway.product_deliveries) == before  # a disabled hook delivers nothing
    repair = await fk.adapter.repair_webhooks(conn, registration, url)
    assert [s.topic for s in repair.repaired] == ["product.updated"] and "failed deliveries" in repair.repaired[
        0
    ].detail
    assert await updated_state() is HookState.ACTIVE
    sim.update_product(product)
    await sim.drain_deliveries()
    headers, body = fk.gateway.product_deliveries[-1]
    assert fk.adapter.verify_webhook(headers, body, repair.registration.secrets)
    await conn.close()
