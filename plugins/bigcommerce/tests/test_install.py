"""BigCommerce's single-click app against the simulated store, as the merchant's browser and BigCommerce
would drive it: the install screen, the auth callback, the code exchange, the signed load / uninstall /
remove_user callbacks, webhook deactivation after failed deliveries, and every bad input."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import jwt
import pytest
import pytest_asyncio
from alana_bigcommerce.adapter import BigCommerceAdapter
from alana_bigcommerce.install import BigCommerceInstallFlow
from alana_bigcommerce.simulator import HOOK_RETRIES, BigCommerceSimulator

from gateway.adapter import Connection, FetchRequest, HookState, WebhookRegistration
from gateway.errors import ConnectRefused, StoreAuthError
from gateway.installflow import FlowFailure, FlowRequest, Granted, LifecycleEvent, LifecycleKind, Rejected, now_utc
from gateway.testing.installkit import Browser, FlowKit
from gateway.testing.kit import local_http

OPTIONS = {"quota": 2000, "window_ms": 1000, "hook_retry_schedule": [0.0, 0.0]}


@pytest_asyncio.fixture
async def fk() -> AsyncIterator[FlowKit]:
    sim = BigCommerceSimulator(3, **OPTIONS)
    await sim.start()
    kit = FlowKit(BigCommerceAdapter(), sim)
    await kit.start()
    yield kit
    await kit.aclose()
    await sim.stop()


def flow_of(fk: FlowKit) -> BigCommerceInstallFlow:
    assert isinstance(fk.flow, BigCommerceInstallFlow)
    return fk.flow


def sim_of(fk: FlowKit) -> BigCommerceSimulator:
    assert isinstance(fk.sim, BigCommerceSimulator)
    return fk.sim


def load_request(token: str) -> FlowRequest:
    return FlowRequest.of("GET", {"signed_payload_jwt": token})


# ---- the browser's way through ----------------------------------------------------------------------------
async def test_a_merchant_installs_the_single_click_app(fk: FlowKit) -> None:
    attempt = fk.begin()
    assert attempt.redirect.url == f"{fk.sim.base_url}/app/{fk.app.client_id}/install"
    assert attempt.redirect.store_url is None  # the merchant picks the store on BigCommerce
    browser = fk.browser
    screen = await browser.open(fk.gateway.start_url(attempt))
    assert screen.status == 200 and f"stores/{sim_of(fk).store_hash}" in screen.text
    callback = await browser.choose(screen, "approve", follow=False)
    assert callback.location is not None and callback.location.startswith(fk.gateway.endpoints.callback_url)
    params = dict(parse_qsl(urlsplit(callback.location).query))
    assert set(params) == {"account_uuid", "code", "context", "scope", "external_install"}
    assert params["context"] == f"stores/{sim_of(fk).store_hash}"
    landed = await browser.open(callback.location)
    # An external install ends on BigCommerce's own "installed" page.
    assert landed.url == f"{fk.sim.base_url}/app/{fk.app.client_id}/install/succeeded" and landed.status == 200
    assert attempt.status == "CONNECTED" and attempt.installation is not None
    installation = attempt.installation
    assert installation.store_url == fk.sim.store_url and installation.store_key == sim_of(fk).store_hash
    assert set(installation.tokens.credentials) == {"access_token", "client_secret"}
    assert installation.tokens.expires_at is None  # BigCommerce tokens do not expire
    assert installation.account["owner_id"] == "9001" and installation.account["account_uuid"]
    conn = fk.connection(installation, page_size=10)
    pages = [page async for page in fk.adapter.fetch_products(conn, FetchRequest())]
    assert sorted(str(p["id"]) for page in pages for p in page.items) == sorted(fk.sim.product_ids())
    await conn.close()


async def test_an_install_begun_on_bigcommerce_waits_to_be_claimed(fk: FlowKit) -> None:
    """No browser binding (the marketplace's install): the credentials become a pending install."""
    location = await fk.decide(fk.begin(), approve=True)
    assert location is not None
    stranger = Browser()
    try:
        await stranger.open(location)
    finally:
        await stranger.close()
    assert len(fk.gateway.pending_installs) == 1
    assert fk.gateway.pending_installs[0].store_key == sim_of(fk).store_hash


async def test_cancelling_the_install_calls_nothing_back(fk: FlowKit) -> None:
    attempt = fk.begin()
    screen = await fk.browser.open(fk.gateway.start_url(attempt))
    page = await fk.browser.choose(screen, "deny")
    assert "cancelled" in page.text and attempt.status == "PENDING" and not fk.gateway.recorded


async def test_the_token_endpoint_takes_json_and_forms(fk: FlowKit) -> None:
    sim = sim_of(fk)
    url = f"{sim.base_url}/oauth2/token"
    async with aiohttp.ClientSession() as session:
        for encode in ("json", "form"):
            location = await fk.decide(fk.begin(), approve=True)
            assert location is not None
            grant = dict(parse_qsl(urlsplit(location).query))
            body = {
                "client_id": fk.app.client_id,
                "client_secret": fk.app.client_secret,
                "code": grant["code"],
                "context": grant["context"],
                "scope": grant["scope"],
                "grant_type": "authorization_code",
                "redirect_uri": fk.gateway.endpoints.callback_url,
            }
            kwargs: dict[str, Any] = {"json": body} if encode == "json" else {"data": body}
            async with session.post(url, **kwargs) as response:
                answer = await response.json()
                assert response.status == 200 and answer["context"] == grant["context"], answer
                assert set(answer) == {"access_token", "scope", "user", "owner", "context", "account_uuid"}
            async with session.post(url, **kwargs) as response:  # a code works once
                assert response.status == 400


async def test_a_store_that_rejects_the_freshly_issued_token(fk: FlowKit) -> None:
    sim_of(fk).app.reject_issued = True
    attempt, page = await fk.connect()
    assert attempt.status == "FAILED" and "refused the credentials" in (attempt.error or "")
    assert page.url.endswith("/install/failed")


# ---- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "failure"),
    [
        ({"code": "c", "scope": "s", "context": "stores/"}, FlowFailure.BAD_STORE),
        ({"code": "c", "scope": "s", "context": "https://evil.example"}, FlowFailure.BAD_STORE),
        ({"scope": "s", "context": "stores/abc"}, FlowFailure.MALFORMED),
        ({"code": "c", "context": "stores/abc"}, FlowFailure.MALFORMED),
    ],
)
def test_a_bad_auth_callback_is_rejected(fk: FlowKit, query: dict[str, str], failure: FlowFailure) -> None:
    outcome = flow_of(fk).verify_callback(FlowRequest.of("GET", query))
    assert isinstance(outcome, Rejected) and outcome.failure is failure and outcome.message


async def test_a_code_bigcommerce_refuses(fk: FlowKit) -> None:
    granted = Granted(
        None, "x", True, {"code": "never-issued", "scope": "s", "context": f"stores/{sim_of(fk).store_hash}"}
    )
    with pytest.raises(ConnectRefused) as refused:
        await flow_of(fk).complete(granted, fk.gateway.client())
    assert refused.value.failure == FlowFailure.CODE_REJECTED
    assert flow_of(fk).landing_url(granted, connected=False) is None


# ---- signed callbacks ----------------------------------------------------------------------------------------------
async def test_load_uninstall_and_remove_user(fk: FlowKit) -> None:
    attempt, _ = await fk.connect()
    assert attempt.installation is not None
    conn = fk.connection(attempt.installation)
    url = fk.gateway.product_webhook_url()
    await fk.adapter.register_webhooks(conn, url)
    location = await fk.sim.app_event("load")
    assert location is not None
    await fk.browser.open(location)
    await fk.sim.app_event("remove_user", user_id=77)
    await fk.sim.drain_deliveries()
    await fk.sim.app_event("uninstall")
    await fk.sim.drain_deliveries()
    kinds = [(e.kind, e.store_key, e.browser) for e in fk.gateway.lifecycle]
    hashed = sim_of(fk).store_hash
    assert kinds == [
        (LifecycleKind.OPENED, hashed, True),
        (LifecycleKind.USER_REMOVED, hashed, False),
        (LifecycleKind.UNINSTALLED, hashed, False),
    ]
    assert fk.gateway.lifecycle[1].user["user_id"] == "77" and fk.gateway.lifecycle[1].event_id
    assert fk.sim.hooks == {}  # BigCommerce deletes an uninstalled app's hooks
    with pytest.raises(StoreAuthError):
        await fk.adapter.check_credentials(conn)
    await conn.close()


@pytest.mark.parametrize(
    ("claims", "failure"),
    [
        ({"aud": "another-app"}, FlowFailure.FORGED),
        ({"secret": "another-apps-secret-0123456789abcdef0123"}, FlowFailure.FORGED),
        ({"exp": int(time.time()) - 3600, "nbf": int(time.time()) - 90000}, FlowFailure.STALE),
        ({"nbf": int(time.time()) + 3600}, FlowFailure.STALE),
        ({"sub": "customers/1"}, FlowFailure.BAD_STORE),
    ],
)
def test_a_bad_signed_payload_is_rejected(fk: FlowKit, claims: dict[str, Any], failure: FlowFailure) -> None:
    token = sim_of(fk).app.signed_payload(**claims)
    outcome = flow_of(fk).verify_app_request("uninstall", load_request(token))
    assert isinstance(outcome, Rejected) and outcome.failure is failure, outcome


def test_unsigned_missing_and_mangled_payloads_are_rejected(fk: FlowKit) -> None:
    flow = flow_of(fk)
    genuine = sim_of(fk).app.signed_payload()
    claims = jwt.decode(genuine, options={"verify_signature": False})
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    for request in (
        load_request(unsigned),
        FlowRequest.of("GET"),
        load_request(genuine[:-2] + "xx"),
        load_request("x"),
    ):
        outcome = flow.verify_app_request("load", request)
        assert isinstance(outcome, Rejected) and outcome.status == 401, outcome
    assert isinstance(flow.verify_app_request("load", load_request(genuine)), LifecycleEvent)
    later = flow.verify_app_request("load", load_request(genuine), now=now_utc() + timedelta(hours=25))
    assert isinstance(later, Rejected) and later.failure is FlowFailure.STALE
    assert isinstance(flow.verify_app_request("install", load_request(genuine)), Rejected)


# ---- revoked credentials and failing webhooks ----------------------------------------------------------------------
@pytest.mark.parametrize("plain", [False, True], ids=["json-401", "text-401"])
async def test_every_client_call_raises_store_auth_error_on_a_401(plain: bool) -> None:
    async with BigCommerceSimulator(3, plain_401=plain, **OPTIONS) as sim:
        conn = Connection("it", sim.store_url, sim.credentials(), http_factory=local_http)
        sim.revoke_credentials()
        url = "https://example.com/hook"
        calls: list[Any] = [
            BigCommerceAdapter().check_credentials(conn),
            BigCommerceAdapter().mapping_context(conn),
            BigCommerceAdapter().count_products(conn, FetchRequest()),
            BigCommerceAdapter().register_webhooks(conn, url),
            BigCommerceAdapter().webhook_status(conn, WebhookRegistration(), url),
        ]
        for call in calls:
            with pytest.raises(StoreAuthError) as refused:
                await call
            assert refused.value.status == 401
        await conn.close()


async def test_a_hook_deactivates_after_the_retries_and_is_reactivated(fk: FlowKit) -> None:
    sim = sim_of(fk)
    conn = Connection("it", sim.store_url, sim.credentials(), http_factory=local_http)
    url = fk.gateway.product_webhook_url()
    registration = await fk.adapter.register_webhooks(conn, url)
    fk.gateway.fail_product_webhooks = True
    sim.update_product(sim.product_ids()[0])
    await sim.drain_deliveries(retries=True)
    statuses = {s.topic: s for s in await fk.adapter.webhook_status(conn, registration, url)}
    assert statuses["store/product/updated"].state is HookState.DISABLED
    assert "48 hours" in statuses["store/product/updated"].detail
    assert statuses["store/product/created"].state is HookState.ACTIVE
    fk.gateway.fail_product_webhooks = False
    repair = await fk.adapter.repair_webhooks(conn, registration, url)
    assert [s.topic for s in repair.repaired] == ["store/product/updated"]
    assert set(repair.registration.hook_ids) == set(registration.hook_ids)  # reactivated in place
    sim.update_product(sim.product_ids()[0])
    await sim.drain_deliveries()
    assert fk.gateway.product_deliveries and all(
        fk.adapter.verify_webhook(h, b, repair.registration.secrets) for h, b in fk.gateway.product_deliveries
    )
    await conn.close()


def test_the_simulators_default_retries_are_bigcommerces() -> None:
    assert len(HOOK_RETRIES) == 11 and 47 * 3600 < sum(HOOK_RETRIES) < 49 * 3600


def test_app_registration_names_the_developer_portal_settings(fk: FlowKit) -> None:
    base = fk.gateway.base_url
    assert flow_of(fk).app_registration() == {
        "auth_callback_url": f"{base}/connect/bigcommerce/callback",
        "load_callback_url": f"{base}/apps/bigcommerce/load",
        "uninstall_callback_url": f"{base}/apps/bigcommerce/uninstall",
        "remove_user_callback_url": f"{base}/apps/bigcommerce/remove_user",
    }
    assert flow_of(fk).store_key_for("https://api.bigcommerce.com/stores/abc123/v3") == "abc123"
