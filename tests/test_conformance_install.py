"""The install-flow checks themselves: a plugin without a flow passes by declaring only CREDENTIALS, the toy
platform with a flow passes every check, and deliberately broken flows fail with a message naming the problem."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import pytest
from pytest_asyncio import fixture as async_fixture

from gateway.adapter import (
    Connection,
    ConnectMethod,
    HookState,
    HookStatus,
    PlatformAdapter,
    WebhookRegistration,
    WebhookRepair,
)
from gateway.errors import ConnectRefused, CredentialsRejected
from gateway.httpclient import HttpClient
from gateway.installflow import (
    AppCredentials,
    AppEndpoints,
    FlowConfig,
    Granted,
    Installation,
    InstallFlow,
    TokenSet,
    connect_methods,
)
from gateway.simkit import Simulator
from gateway.testing import conformance_install
from gateway.testing.conformance import ConformanceKit, ConformanceOptions
from gateway.testing.toy import ToyAdapter, ToySimulator
from gateway.testing.toy_install import ToyAppAdapter, ToyAppSimulator, ToyInstallFlow

Check = Callable[[ConformanceKit], Awaitable[None]]
CHECKS: dict[str, Check] = {
    name: getattr(conformance_install, name) for name in conformance_install.__all__ if name.startswith("test_")
}
OPTIONS = ConformanceOptions(connection_options={"page_size": 10}, catalog_size=10)


@async_fixture
async def make_kit() -> AsyncIterator[Callable[[PlatformAdapter, type[Simulator]], ConformanceKit]]:
    kits: list[ConformanceKit] = []

    def make(adapter: PlatformAdapter, simulator: type[Simulator]) -> ConformanceKit:
        kits.append(ConformanceKit(adapter, simulator, OPTIONS))
        return kits[-1]

    yield make
    for kit in kits:
        await kit.aclose()


@pytest.mark.parametrize("name", sorted(CHECKS))
async def test_a_plugin_without_a_flow_passes_by_declaring_credentials_only(
    name: str, make_kit: Callable[[PlatformAdapter, type[Simulator]], ConformanceKit]
) -> None:
    assert ToyAdapter.info.connect_methods == (ConnectMethod.CREDENTIALS,)
    try:
        await CHECKS[name](make_kit(ToyAdapter(), ToySimulator))
    except pytest.skip.Exception as skipped:
        # The plain toy store has no way to revoke its one token.
        assert name == "test_revoked_credentials_raise_store_auth_error" and "revoke" in str(skipped), str(skipped)


@pytest.mark.parametrize("name", sorted(CHECKS))
async def test_a_platform_with_a_flow_passes_every_check(
    name: str, make_kit: Callable[[PlatformAdapter, type[Simulator]], ConformanceKit]
) -> None:
    await CHECKS[name](make_kit(ToyAppAdapter(), ToyAppSimulator))


def test_connect_methods_offer_the_flow_only_when_it_can_be_built() -> None:
    endpoints = AppEndpoints.for_gateway("https://gw.example.com/", "toy")
    configured = FlowConfig(AppCredentials("id", "secret"), endpoints)
    assert connect_methods(ToyAppAdapter(), configured) == (ConnectMethod.CREDENTIALS, ConnectMethod.INSTALL_FLOW)
    assert connect_methods(ToyAppAdapter(), FlowConfig(AppCredentials(), endpoints)) == (ConnectMethod.CREDENTIALS,)
    assert connect_methods(ToyAdapter(), configured) == (ConnectMethod.CREDENTIALS,)
    assert endpoints.callback_url == "https://gw.example.com/connect/toy/callback"
    assert endpoints.app_event_url("load") == "https://gw.example.com/apps/toy/load"
    assert endpoints.app_webhook_url == "https://gw.example.com/webhooks/toy/app" and endpoints.secure


def test_app_credentials_come_from_the_environment_and_never_show() -> None:
    env = {
        "GATEWAY_SHOPIFY_CLIENT_ID": " abc ",
        "GATEWAY_SHOPIFY_CLIENT_SECRET": "s3cret-value",
        "GATEWAY_SHOPIFY_AUTH_URL": "http://127.0.0.1:9/",
    }
    app = AppCredentials.from_env("shopify", env)
    assert (app.client_id, app.client_secret, app.auth_url, app.app_name) == (
        "abc",
        "s3cret-value",
        "http://127.0.0.1:9",
        "Alana",
    )
    assert app.configured and "s3cret-value" not in repr(app)
    assert not AppCredentials.from_env("bigcommerce", env).configured


# ---- deliberately broken platforms ------------------------------------------------------------------------
class DeclaresAFlowItCannotBuild(ToyAppAdapter):
    def install_flow(self, config: FlowConfig) -> InstallFlow | None:
        return None


class BuildsAFlowItDoesNotDeclare(ToyAppAdapter):
    info = ToyAdapter.info


class RefreshKeepsTheOldToken(ToyInstallFlow):
    async def refresh(
        self, tokens: TokenSet, store_url: str, http: HttpClient, *, now: datetime | None = None
    ) -> TokenSet:
        return tokens


class RefreshHidesInvalidGrant(ToyInstallFlow):
    async def refresh(
        self, tokens: TokenSet, store_url: str, http: HttpClient, *, now: datetime | None = None
    ) -> TokenSet:
        try:
            return await super().refresh(tokens, store_url, http, now=now)
        except CredentialsRejected:
            return tokens


class TrustsRefusedCodes(ToyInstallFlow):
    """Falls back to the credentials of the last install when the platform refuses a code."""

    last: Installation | None = None

    async def complete(self, granted: Granted, http: HttpClient, *, store_url: str | None = None) -> Installation:
        try:
            TrustsRefusedCodes.last = await super().complete(granted, http, store_url=store_url)
        except ConnectRefused:
            if TrustsRefusedCodes.last is None:
                raise
        return TrustsRefusedCodes.last


def with_flow(flow: type[ToyInstallFlow]) -> type[ToyAppAdapter]:
    class Adapter(ToyAppAdapter):
        def install_flow(self, config: FlowConfig) -> InstallFlow | None:
            return flow(config)

    return Adapter


class NeverSeesDisabledHooks(ToyAppAdapter):
    async def webhook_status(
        self, conn: Connection, registration: WebhookRegistration, callback_url: str
    ) -> list[HookStatus]:
        return [HookStatus("product", HookState.ACTIVE, registration.hook_ids[0])]


class RepairNewSecret(ToyAppAdapter):
    async def repair_webhooks(
        self, conn: Connection, registration: WebhookRegistration, callback_url: str
    ) -> WebhookRepair:
        repair = await super().repair_webhooks(conn, registration, callback_url)
        return dataclasses.replace(repair, registration=WebhookRegistration(repair.registration.hook_ids, {"x": "y"}))


BROKEN: list[tuple[type[PlatformAdapter], str, str]] = [
    (DeclaresAFlowItCannotBuild, "test_connect_methods_are_declared", "declares INSTALL_FLOW but install_flow()"),
    (BuildsAFlowItDoesNotDeclare, "test_connect_methods_are_declared", "does not declare ConnectMethod.INSTALL_FLOW"),
    (with_flow(RefreshKeepsTheOldToken), "test_expiring_credentials_refresh", "returned the same credentials"),
    (with_flow(RefreshHidesInvalidGrant), "test_expiring_credentials_refresh", "refreshing revoked credentials"),
    (with_flow(TrustsRefusedCodes), "test_install_flow_connects", "the token endpoint must refuse it"),
    (NeverSeesDisabledHooks, "test_webhook_status_and_repair", "still reports every hook ACTIVE"),
    (RepairNewSecret, "test_webhook_status_and_repair", "changed the registration's secrets"),
]


@pytest.mark.parametrize(("adapter_class", "check", "message"), BROKEN, ids=[b[1] + ":" + b[2][:30] for b in BROKEN])
async def test_a_broken_flow_fails_with_a_message_naming_the_problem(
    adapter_class: type[PlatformAdapter],
    check: str,
    message: str,
    make_kit: Callable[[PlatformAdapter, type[Simulator]], ConformanceKit],
) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        await CHECKS[check](make_kit(adapter_class(), ToyAppSimulator))
    assert message in str(failed.value), str(failed.value)
