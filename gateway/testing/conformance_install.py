"""The install-flow checks of the plugin conformance suite: connecting through the platform's own
screens, lifecycle callbacks, expiring credentials, revoked credentials and webhook repair, checked
against the plugin's simulator over real HTTP on 127.0.0.1.

A plugin without an install flow passes by declaring only ConnectMethod.CREDENTIALS (and returning
None from install_flow); one that declares INSTALL_FLOW is driven through authorize -> the platform's
screen -> approve (the simulator's control route) -> the callbacks -> credentials that work, a denial,
forged and tampered callbacks, its lifecycle events, and refresh where it issues expiring tokens. The
gateway's side is played by gateway.testing.installkit.GatewayStandIn.

It runs wherever conformance.py runs (`pytest --gateway-platform=<id>` collects both), or in a
plugin's tests:

    from gateway.testing.conformance_install import *  # noqa: F403
    GATEWAY_PLATFORM = "<platform id>"

The simulator may declare `install_conformance_options`: constructor options these checks add (e.g.
a compressed webhook retry schedule, or accepting the stand-in's http:// callback URL).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from gateway.adapter import (
    Connection,
    ConnectMethod,
    HookState,
    HookStatus,
    PlatformAdapter,
    WebhookRegistration,
    WebhookRepair,
)
from gateway.errors import ConnectRefused, CredentialsRejected, StoreAuthError
from gateway.installflow import (
    Declined,
    FlowFailure,
    FlowRequest,
    Granted,
    Installation,
    InstallFlow,
    LifecycleEvent,
    Rejected,
    Returned,
    StoreInput,
    now_utc,
)
from gateway.simkit import Simulator
from gateway.testing.conformance import pytest_generate_tests
from gateway.testing.installkit import FlowKit, Recorded
from gateway.testing.kit import ConformanceKit, corrupt, fail

__all__ = [
    "pytest_generate_tests",
    "test_connect_methods_are_declared",
    "test_install_flow_connects",
    "test_install_flow_denial",
    "test_tampered_callbacks_are_refused",
    "test_lifecycle_callbacks",
    "test_expiring_credentials_refresh",
    "test_revoked_credentials_raise_store_auth_error",
    "test_webhook_status_and_repair",
]

#: Product changes with failing deliveries after which every platform has disabled or removed a hook
#: (WooCommerce: the 7th; BigCommerce and Shopify: the first, once its retries run out).
MAX_FAILING_ROUNDS = 10


def declares_flow(adapter: PlatformAdapter) -> bool:
    return ConnectMethod.INSTALL_FLOW in adapter.info.connect_methods


def install_options(kit: ConformanceKit) -> dict[str, Any]:
    return dict(getattr(kit.simulator_class, "install_conformance_options", None) or {})


@contextlib.asynccontextmanager
async def flow_kit(kit: ConformanceKit, products: int = 3) -> AsyncIterator[FlowKit]:
    sim = await kit.simulator(products=products, **install_options(kit))
    flowkit = FlowKit(kit.adapter, sim)
    try:
        await flowkit.start()
        yield flowkit
    finally:
        await flowkit.aclose()


async def connected(fk: FlowKit) -> tuple[Installation, Any]:
    """A store connected through the flow with the control route's approval; its Installation."""
    attempt = fk.begin()
    # The browser opens the start URL (the gateway binds the attempt to it) and sees the screen.
    await fk.browser.open(fk.gateway.start_url(attempt))
    location = await fk.decide(attempt, approve=True)
    if location is None:
        fail(
            f"approving on the {fk.adapter.info.id} simulator's authorize screen sent the browser nowhere: "
            "connect_decision(url, approve=True) must return where the platform redirects"
        )
    await fk.browser.open(location)
    if attempt.status != "CONNECTED" or attempt.installation is None:
        problem = attempt.error or "no callback completed it"
        fail(f"an approved install did not connect: {problem}")
    return attempt.installation, attempt


def needs_flow(kit: ConformanceKit) -> bool:
    """False (the check passes) for a plugin that declares no install flow."""
    return declares_flow(kit.adapter)


# ---- declaring --------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_connect_methods_are_declared(conformance: ConformanceKit) -> None:
    """PlatformInfo.connect_methods says what the plugin offers, and install_flow() agrees with it."""
    kit = conformance
    methods = kit.adapter.info.connect_methods
    if not methods or not all(isinstance(m, ConnectMethod) for m in methods):
        fail(f"PlatformInfo.connect_methods is {methods!r}: declare a tuple of ConnectMethod values")
    sim = await kit.simulator(products=1, **install_options(kit))
    fk = FlowKit(kit.adapter, sim)
    try:
        flow = fk.build()
    finally:
        await fk.aclose()
    if not declares_flow(kit.adapter):
        if flow is not None:
            fail(
                "install_flow() returned a flow but PlatformInfo.connect_methods does not declare "
                "ConnectMethod.INSTALL_FLOW: declare it, or return None"
            )
        return
    if not isinstance(flow, InstallFlow):
        fail(
            f"PlatformInfo.connect_methods declares INSTALL_FLOW but install_flow() returned {flow!r} for the "
            "simulator's app credentials (Simulator.app_credentials()): return a gateway.installflow.InstallFlow"
        )
    if flow.platform != kit.platform:
        fail(f"{type(flow).__name__}.platform is {flow.platform!r}, not the adapter's {kit.platform!r}")
    if not isinstance(flow.store_input, StoreInput):
        fail(f"{type(flow).__name__}.store_input must be a StoreInput")
    if not sim.plays_install_flow:
        fail(
            f"{type(sim).__name__} does not play the install flow: implement Simulator.connect_decision (and "
            "the platform's authorize screen and token endpoint)"
        )
    missing = sorted(flow.app_events - type(sim).app_events)
    if missing:
        fail(f"the flow answers app events {missing} that {type(sim).__name__}.app_events cannot play")


# ---- connecting -----------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_install_flow_connects(conformance: ConformanceKit) -> None:
    """authorize -> the platform's screen (a real page) -> approve -> callbacks -> working credentials;
    a used or refused code raises ConnectRefused(CODE_REJECTED); no secret shows in a repr."""
    kit = conformance
    if not needs_flow(kit):
        return
    async with flow_kit(kit) as fk:
        attempt = fk.begin()
        if not attempt.redirect.url.startswith(fk.sim.base_url):
            fail(
                f"the authorize URL {attempt.redirect.url[:120]!r} does not lead to the simulator at "
                f"{fk.sim.base_url}: build it on AppCredentials.auth_url (or the store URL the merchant gave)"
            )
        screen = await fk.browser.open(fk.gateway.start_url(attempt))
        buttons = {value for form in screen.forms for _, value in form.buttons}
        if screen.status != 200 or not {"approve", "deny"} <= buttons:
            fail(
                f"the simulator's authorize screen answered {screen.status} with buttons {sorted(buttons)}: it must "
                "be an HTML page whose form offers approve and deny (simkit.consent_page)"
            )
        location = await fk.decide(attempt, approve=True)
        if location is None:
            fail("approving sent the browser nowhere: connect_decision(url, approve=True) must return a URL")
        page = await fk.browser.open(location)
        if attempt.status != "CONNECTED" or attempt.installation is None:
            fail(f"an approved install did not connect: {attempt.error or 'no callback completed it'}")
        if not any(r.get("status") == "CONNECTED" for r in fk.gateway.returns) and page.status >= 400:
            fail(f"after approving, the browser ended on {page.url} with status {page.status}")
        installation = attempt.installation
        if not installation.store_url or not installation.store_key:
            fail("the Installation has no store_url or store_key")
        required = [f.name for f in kit.adapter.info.credential_fields if f.required]
        absent = [name for name in required if not installation.tokens.credentials.get(name)]
        if absent:
            fail(f"the install flow's credentials lack {absent}, required credential fields of the adapter")
        conn = kit.connect(fk.sim, installation.tokens.credentials)
        conn.store_url = installation.store_url
        ids = sorted(p.external_id for p in await kit.fetch_mapped(conn))
        if ids != sorted(fk.sim.product_ids()):
            fail(f"with the flow's credentials a FULL fetch returned {ids}, not the store's {fk.sim.product_ids()}")
        secrets = [v for v in installation.tokens.credentials.values() if len(v) >= 8]
        granted = [r.outcome for r in fk.gateway.records("callback") if isinstance(r.outcome, Granted)]
        shown = " ".join(repr(x) for x in (installation, *granted, fk.flow.app))
        if any(secret in shown for secret in secrets) or (fk.app.client_secret and fk.app.client_secret in shown):
            fail("a credential or the app's client secret appears in the repr of a Granted or an Installation")
        for outcome in granted:
            await _spent_grant(fk, outcome, installation)


async def _spent_grant(fk: FlowKit, granted: Granted, installation: Installation) -> None:
    """A grant already completed, or one with a forged code, never yields credentials twice."""
    attempts: list[tuple[str, Granted]] = [("the same grant a second time", granted)]
    if "code" in granted.grant:
        forged = {**granted.grant, "code": corrupt(granted.grant["code"])}
        attempts.append(("a code the platform never issued", dataclasses.replace(granted, grant=forged)))
    for what, grant in attempts:
        try:
            again = await fk.flow.complete(grant, fk.gateway.client(), store_url=installation.store_url)
        except ConnectRefused as exc:
            if exc.failure != FlowFailure.CODE_REJECTED:
                fail(f"complete() with {what} raised ConnectRefused({exc.failure}), expected CODE_REJECTED")
            continue
        except Exception as exc:  # noqa: BLE001 - any other outcome is the finding
            fail(f"complete() with {what} raised {type(exc).__name__} ({exc}); expected ConnectRefused(CODE_REJECTED)")
        if "code" in grant.grant:
            fail(f"complete() with {what} returned credentials: the token endpoint must refuse it (CODE_REJECTED)")
        if dict(again.tokens.credentials) != dict(installation.tokens.credentials):
            fail(f"complete() with {what} returned other credentials than the first time")


@pytest.mark.asyncio
async def test_install_flow_denial(conformance: ConformanceKit) -> None:
    """A merchant who declines: Declined for the attempt where the platform says so, nothing otherwise."""
    kit = conformance
    if not needs_flow(kit):
        return
    async with flow_kit(kit) as fk:
        attempt = fk.begin()
        location = await fk.decide(attempt, approve=False)
        on_gateway = location is not None and location.startswith(fk.gateway.base_url)
        if fk.flow.reports_denial and not on_gateway:
            fail(
                f"{type(fk.flow).__name__}.reports_denial is True but declining sent the browser to {location!r}, "
                "not to the gateway's callback"
            )
        if not fk.flow.reports_denial and on_gateway:
            fail(
                f"declining sent the browser to the gateway ({location}) but {type(fk.flow).__name__}.reports_denial "
                "is False"
            )
        if location is not None:
            await fk.browser.open(location)
        outcomes = [r.outcome for r in fk.gateway.records("callback")]
        if fk.flow.reports_denial:
            if not any(isinstance(o, Declined) and o.correlation == attempt.state for o in outcomes):
                fail(f"the denial's callback gave {outcomes}, not a Declined carrying the attempt's state")
            if attempt.status != "FAILED" or not attempt.error:
                fail("a declined attempt must end FAILED with the Declined message")
        elif any(isinstance(o, Granted) for o in outcomes) or attempt.status != "PENDING":
            fail("declining connected (or ended) the attempt")


@pytest.mark.asyncio
async def test_tampered_callbacks_are_refused(conformance: ConformanceKit) -> None:
    """Tampered, re-signed-with-the-wrong-secret and empty callbacks are Rejected, never an exception."""
    kit = conformance
    if not needs_flow(kit):
        return
    async with flow_kit(kit) as fk:
        await connected(fk)
        genuine = [r for r in fk.gateway.records("callback") if isinstance(r.outcome, Granted | Returned)]
        flow = fk.flow
        for empty in (FlowRequest.of("GET"), FlowRequest.of("POST", body=b"{}"), FlowRequest.of("POST", body=b"\xff")):
            outcome = _verify(flow, empty, "an empty callback")
            if not isinstance(outcome, Rejected):
                fail(f"verify_callback accepted an empty {empty.method} callback: {outcome}")
        if not flow.signed_callbacks:
            return
        wrong = fk.build(dataclasses.replace(fk.app, client_secret=corrupt(fk.app.client_secret)))
        assert wrong is not None
        for record in genuine:
            outcome = _verify(wrong, record.request, "a genuine callback")
            if not isinstance(outcome, Rejected) or outcome.failure != FlowFailure.FORGED:
                fail(f"a flow with the wrong client secret accepted a genuine callback ({outcome})")
            for what, tampered in _tamperings(record.request):
                outcome = _verify(flow, tampered, what)
                if not isinstance(outcome, Rejected):
                    fail(f"verify_callback accepted a callback with {what}: signed callbacks must be Rejected")


def _verify(flow: InstallFlow, request: FlowRequest, what: str) -> Any:
    try:
        return flow.verify_callback(request)
    except Exception as exc:  # noqa: BLE001 - any crash is the finding
        fail(f"verify_callback raised {type(exc).__name__} ({exc}) for {what}: it must return Rejected")


def _tamperings(request: FlowRequest) -> list[tuple[str, FlowRequest]]:
    """The request with one thing changed: each parameter's value, each parameter removed, the body."""
    found: list[tuple[str, FlowRequest]] = []
    for index, (key, value) in enumerate(request.query):
        changed = list(request.query)
        changed[index] = (key, corrupt(value))
        found.append((f"{key} changed", dataclasses.replace(request, query=tuple(changed))))
        removed = request.query[:index] + request.query[index + 1 :]
        found.append((f"{key} removed", dataclasses.replace(request, query=removed)))
    if request.body:
        body = bytearray(request.body)
        body[len(body) // 2] ^= 0x01
        found.append(("one byte of the body changed", dataclasses.replace(request, body=bytes(body))))
    for name in list(request.headers):
        if "hmac" in name.lower() or "signature" in name.lower():
            headers = request.headers.copy()
            del headers[name]
            found.append((f"no {name} header", dataclasses.replace(request, headers=headers)))
    return found


# ---- the app's lifecycle ------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_lifecycle_callbacks(conformance: ConformanceKit) -> None:
    """Every lifecycle event the simulator plays arrives as a LifecycleEvent for the installed store;
    forged, tampered and days-old ones are Rejected; after an uninstall the credentials stop working."""
    kit = conformance
    if not needs_flow(kit):
        return
    async with flow_kit(kit) as fk:
        installation, _ = await connected(fk)
        events = sorted(type(fk.sim).app_events, key=lambda e: e == "uninstall")
        for event in events:
            before = len(fk.gateway.recorded)
            location = await fk.sim.app_event(event)
            if location is not None:
                await fk.browser.open(location, follow=False)
            await fk.sim.drain_deliveries()
            new = [r for r in fk.gateway.recorded[before:] if r.endpoint != "callback"]
            if not new:
                fail(f"the simulator's {event!r} event reached none of the gateway's app endpoints")
            for record in new:
                _check_lifecycle(fk, record, event, installation)
        if "uninstall" in events:
            conn = fk.connection(installation)
            try:
                await kit.adapter.check_credentials(conn)
            except StoreAuthError:
                pass
            else:
                fail("after the app was uninstalled its credentials still work on the simulator")
            finally:
                await conn.close()


def _check_lifecycle(fk: FlowKit, record: Recorded, event: str, installation: Installation) -> None:
    if not isinstance(record.outcome, LifecycleEvent):
        fail(f"the flow refused the simulator's genuine {event!r} callback ({record.endpoint}): {record.outcome}")
    if record.outcome.store_key != installation.store_key:
        fail(
            f"the {event!r} LifecycleEvent names store {record.outcome.store_key!r}, but the install's store_key is "
            f"{installation.store_key!r}: the core finds integrations by it"
        )
    wrong = fk.build(dataclasses.replace(fk.app, client_secret=corrupt(fk.app.client_secret)))
    assert wrong is not None
    if not isinstance(_lifecycle(wrong, record), Rejected):
        fail(f"a flow with the wrong client secret accepted the genuine {event!r} callback")
    for what, tampered in _tamperings(record.request):
        outcome = _lifecycle(fk.flow, dataclasses.replace(record, request=tampered))
        if not isinstance(outcome, Rejected):
            fail(f"the flow accepted a {event!r} callback with {what}")
    if record.endpoint.startswith("app:"):
        stale = _lifecycle(fk.flow, record, now=now_utc() + timedelta(days=3))
        if not isinstance(stale, Rejected):
            fail(
                f"the flow accepted a {event!r} callback three days old: a replayed lifecycle callback must be refused"
            )


def _lifecycle(flow: InstallFlow, record: Recorded, **kwargs: Any) -> Any:
    try:
        if record.endpoint == "app-webhook":
            return flow.verify_app_webhook(record.request, **kwargs)
        return flow.verify_app_request(record.endpoint.removeprefix("app:"), record.request, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any crash is the finding
        fail(f"verifying a lifecycle callback raised {type(exc).__name__} ({exc}): it must return Rejected")


# ---- credentials over time ------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_expiring_credentials_refresh(conformance: ConformanceKit) -> None:
    """Expiring credentials refresh into a new working set; once revoked, refresh raises CredentialsRejected."""
    kit = conformance
    if not needs_flow(kit):
        return
    async with flow_kit(kit) as fk:
        installation, _ = await connected(fk)
        tokens = installation.tokens
        if not fk.flow.refreshes_tokens:
            if tokens.expiring:
                fail("the flow issues expiring credentials but its refreshes_tokens is False")
            return
        if not tokens.expiring:
            fail("refreshes_tokens is True but the Installation's TokenSet has no expires_at")
        client = fk.gateway.client()
        fresh = await fk.flow.refresh(tokens, installation.store_url, client)
        if dict(fresh.credentials) == dict(tokens.credentials) or fresh.expires_at is None:
            fail("refresh() returned the same credentials, or ones without an expiry")
        assert tokens.expires_at is not None
        if fresh.expires_at < tokens.expires_at:
            fail("refresh() returned credentials expiring before the ones they replace")
        await fk.gateway.check(dataclasses.replace(installation, tokens=fresh))
        fk.sim.revoke_credentials()
        try:
            await fk.flow.refresh(fresh, installation.store_url, client)
        except CredentialsRejected:
            return
        except Exception as exc:  # noqa: BLE001 - any other outcome is the finding
            fail(f"refreshing revoked credentials raised {type(exc).__name__} ({exc}), not CredentialsRejected")
        fail("refreshing revoked credentials succeeded: the platform answers invalid_grant (CredentialsRejected)")


@pytest.mark.asyncio
async def test_revoked_credentials_raise_store_auth_error(conformance: ConformanceKit) -> None:
    """Credentials revoked on the store make every call raise StoreAuthError (the gateway then stops
    retrying and asks the merchant to reconnect), in the platform's own 401 shape."""
    kit = conformance
    sim = await kit.simulator(products=3, **install_options(kit))
    conn = kit.connect(sim)
    await kit.adapter.check_credentials(conn)
    try:
        sim.revoke_credentials()
    except NotImplementedError:
        pytest.skip(f"{type(sim).__name__} cannot revoke credentials (Simulator.revoke_credentials)")
    calls: list[tuple[str, Any]] = [
        ("check_credentials", lambda c: kit.adapter.check_credentials(c)),
        ("a FULL fetch", lambda c: kit.fetch(c)),
    ]
    if "webhooks" in kit.adapter.info.capabilities:
        calls.append(("register_webhooks", lambda c: kit.adapter.register_webhooks(c, "https://example.com/hook")))
    for what, call in calls:
        fresh = kit.connect(sim)
        try:
            await call(fresh)
        except StoreAuthError:
            continue
        except Exception as exc:  # noqa: BLE001 - any other outcome is the finding
            fail(f"{what} with revoked credentials raised {type(exc).__name__} ({exc}), not StoreAuthError")
        fail(f"{what} with revoked credentials succeeded")


# ---- webhook repair -------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_webhook_status_and_repair(conformance: ConformanceKit) -> None:
    """webhook_status sees hooks the platform disabled or removed after failed deliveries, and deleted
    ones; repair_webhooks brings them back with the same secrets, and deliveries verify again."""
    kit = conformance
    adapter = kit.adapter
    sim = await kit.simulator(products=3, **install_options(kit))
    conn = kit.connect(sim)
    if type(adapter).webhook_status is PlatformAdapter.webhook_status:
        registration = WebhookRegistration(hook_ids=("1",))
        if await adapter.webhook_status(conn, registration, "https://example.com/hook") != []:
            fail("the default webhook_status must return []")
        return
    fk = FlowKit(adapter, sim)
    await fk.gateway.start()
    try:
        await _break_and_repair(kit, fk, sim, conn)
    finally:
        await fk.aclose()


async def _break_and_repair(kit: ConformanceKit, fk: FlowKit, sim: Simulator, conn: Connection) -> None:
    adapter, url = kit.adapter, fk.gateway.product_webhook_url()
    registration = await adapter.register_webhooks(conn, url)
    await sim.drain_deliveries()
    statuses = await _status(adapter, conn, registration, url)
    if not statuses or any(s.state is not HookState.ACTIVE for s in statuses):
        fail(f"right after register_webhooks, webhook_status reports {statuses}: every topic must be ACTIVE")
    fk.gateway.fail_product_webhooks = True
    product = sim.product_ids()[0]
    for _ in range(MAX_FAILING_ROUNDS):
        sim.update_product(product)
        await sim.drain_deliveries(retries=True)
        statuses = await _status(adapter, conn, registration, url)
        if any(s.state is not HookState.ACTIVE for s in statuses):
            break
    else:
        fail(
            f"after {MAX_FAILING_ROUNDS} product changes whose deliveries all failed, webhook_status still reports "
            "every hook ACTIVE: the simulator must disable or remove hooks as its platform does, and webhook_status "
            "must see it"
        )
    fk.gateway.fail_product_webhooks = False
    repaired = await _repair(adapter, conn, registration, url, "a hook disabled after failed deliveries")
    await _delivers(kit, fk, sim, {**conn.credentials, **repaired.registration.secrets})
    await adapter.remove_webhooks(conn, repaired.registration)
    statuses = await _status(adapter, conn, repaired.registration, url)
    if any(s.state is not HookState.MISSING for s in statuses):
        fail(f"after remove_webhooks, webhook_status reports {statuses}: removed hooks are MISSING")
    again = await _repair(adapter, conn, repaired.registration, url, "removed hooks")
    await adapter.remove_webhooks(conn, again.registration)


async def _status(
    adapter: PlatformAdapter, conn: Connection, registration: WebhookRegistration, url: str
) -> list[HookStatus]:
    statuses = await adapter.webhook_status(conn, registration, url)
    if not all(isinstance(s, HookStatus) and isinstance(s.state, HookState) for s in statuses):
        fail(f"webhook_status returned {statuses!r}: a list of gateway.adapter.HookStatus")
    return statuses


async def _repair(
    adapter: PlatformAdapter, conn: Connection, registration: WebhookRegistration, url: str, what: str
) -> WebhookRepair:
    repair = await adapter.repair_webhooks(conn, registration, url)
    if not isinstance(repair, WebhookRepair) or not repair.repaired:
        fail(f"repair_webhooks after {what} returned {repair!r}: a WebhookRepair listing what it repaired")
    if dict(repair.registration.secrets) != dict(registration.secrets):
        fail("repair_webhooks changed the registration's secrets: deliveries signed with the stored ones would fail")
    statuses = await _status(adapter, conn, repair.registration, url)
    if any(s.state is not HookState.ACTIVE for s in statuses):
        fail(f"after repair_webhooks ({what}), webhook_status reports {statuses}: every topic must be ACTIVE")
    return repair


async def _delivers(kit: ConformanceKit, fk: FlowKit, sim: Simulator, secrets: Mapping[str, str]) -> None:
    before = len(fk.gateway.product_deliveries)
    sim.update_product(sim.product_ids()[0])
    await sim.drain_deliveries()
    arrived = fk.gateway.product_deliveries[before:]
    if not arrived:
        fail("after repair_webhooks, a product change delivered nothing")
    for headers, body in arrived:
        if not kit.adapter.verify_webhook(headers, body, secrets):
            fail("a delivery after repair_webhooks does not verify with the registration's secrets")
