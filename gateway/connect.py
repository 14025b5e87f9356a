"""Connecting stores through the platforms' own install flows: the core's column of gateway/installflow.py.

GraphQL side (the merchant's frontend, signed in):
- `begin` (beginConnect): a PENDING attempt with a single-use random state and a 10-minute expiry; its
  authorizeUrl is the gateway's own `GET /connect/{platform}/start/{attempt_id}`.
- `reconnect` (reconnectIntegration): the same flow for an existing integration, which keeps its
  products, overlays, conflicts and history; with `credentials` (pasted keys) it reconnects at once,
  for platforms without a flow or without a configured app.
- `claim` (claimInstall): an install begun on the platform's side becomes an integration of the caller.
- `attempt` (connectAttempt).

HTTP side (the merchant's browser and the platform; gateway/api/connect.py turns `Reply` into responses):
- `start`: binds the attempt to the browser (a cookie whose secret only the attempt's digest matches),
  then 302 to the platform's authorize screen.
- `callback` (GET|POST /connect/{platform}/callback): the flow verifies the request (pure); a request it
  rejects changes nothing. The attempt is found by the echoed state, or by the browser binding when the
  platform carries none (BigCommerce); without either it is an install begun on the platform. Unknown,
  used and expired attempts change nothing. The code is exchanged once per attempt (a claimed
  completion), the credentials checked with one cheap call, then: connected (IntegrationService.establish,
  what connectIntegration does after its check), reconnected in place (LifecycleService.restore), or kept
  as a pending install for an hour and the browser sent to GATEWAY_FRONTEND_URL?claimInstall=<token>.
  The browser lands on the attempt's returnUrl with `connectAttempt=<id>&status=<ConnectStatus>`; the
  account gets CONNECT_FINISHED on integrationEvents.
- `app_request` (GET /apps/{platform}/{event}) and `app_webhook` (POST /webhooks/{platform}/app): the
  app's lifecycle: Shopify's App URL install request, BigCommerce load / uninstall / remove_user,
  Shopify app/uninstalled and the compliance webhooks.

The browser is only ever sent to the platform's own authorize URL (built by the flow), to a returnUrl on
an allowed origin (checked at beginConnect and again before redirecting), to GATEWAY_FRONTEND_URL, or to
a landing page the flow names on the platform.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway.activity import ActivityLog
from gateway.adapter import Connection, ConnectMethod, PlatformAdapter
from gateway.connectstore import Attempt, AttemptKind, AttemptStore, PendingInstall, PendingInstalls
from gateway.domain import ActivityKind, ConnectStatus, SyncFrequency, SyncMode
from gateway.errors import AlreadyConnected, BadInput, ConnectRefused, NotFound, StoreAuthError, StoreError
from gateway.events import ConnectFinished, EventPublisher
from gateway.flows import Flows
from gateway.installflow import (
    Declined,
    FlowRequest,
    Granted,
    Installation,
    InstallFlow,
    LifecycleEvent,
    LifecycleKind,
    Rejected,
    Returned,
    StoreInput,
    new_state,
)
from gateway.integration_store import Integration, SyncSettings
from gateway.integrations import IntegrationService, already_connected, check_name, validate_credentials
from gateway.lifecycle import LifecycleService
from gateway.origins import OriginPolicy
from gateway.plugins import PluginRegistry
from gateway.settings import Settings
from gateway.tokens import Expiry, token_meta

log = logging.getLogger(__name__)

COOKIE_PREFIX = "alana_connect_"
MAX_RETURN_URL = 2000


@dataclass(frozen=True)
class Cookie:
    """The browser binding: set with a value, cleared with None."""

    name: str
    value: str | None
    path: str
    max_age: int = 600


@dataclass(frozen=True)
class Reply:
    """What a connect route answers: a redirect (`location`), a plain page for a person (`page`), or a short
    text for a platform's server. Nothing here knows HTTP frameworks."""

    status: int = 200
    location: str | None = None
    message: str = ""
    page: bool = False
    #: On a page: where "Back to Alana" goes.
    back: str | None = None
    cookie: Cookie | None = None


def with_query(url: str, **params: str) -> str:
    """`url` with `params` added to its query (replacing same-named ones), fragment kept."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def cookie_name(platform: str) -> str:
    return COOKIE_PREFIX + "".join(c if c.isalnum() else "_" for c in platform)


def parse_binding(value: str | None) -> tuple[str, str] | None:
    """(attempt id, secret) from a binding cookie's value."""
    attempt_id, _, secret = (value or "").partition(".")
    return (attempt_id, secret) if attempt_id and secret else None


def _page(status: int, message: str, back: str | None = None) -> Reply:
    return Reply(status=status, message=message, page=True, back=back)


@dataclass(frozen=True)
class _Failing:
    """Where a failure is logged when there is no attempt yet (a reconnect with pasted keys)."""

    account_id: str | None
    integration_id: str | None


class ConnectService:
    def __init__(
        self,
        *,
        attempts: AttemptStore,
        pending: PendingInstalls,
        integrations: IntegrationService,
        lifecycle: LifecycleService,
        flows: Flows,
        activity: ActivityLog,
        publisher: EventPublisher,
        registry: PluginRegistry,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self.attempts = attempts
        self.pending = pending
        self.integrations = integrations
        self.lifecycle = lifecycle
        self.flows = flows
        self.activity = activity
        self.publisher = publisher
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self._origins = OriginPolicy.from_settings(settings)

    # ---- helpers ---------------------------------------------------------------------------------------
    def _adapter(self, platform: str) -> PlatformAdapter:
        adapter = self.registry.adapters.get(platform)
        if adapter is None:
            installed = ", ".join(sorted(self.registry.adapters))
            raise BadInput(f"unknown platform {platform!r}; installed platforms: {installed}", field="platform")
        return adapter

    def _name(self, platform: str) -> str:
        adapter = self.registry.adapters.get(platform)
        return adapter.info.name if adapter is not None else platform

    def start_url(self, platform: str, attempt_id: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}/connect/{platform}/start/{attempt_id}"

    @property
    def frontend_url(self) -> str:
        return self.settings.effective_frontend_url

    def origins(self) -> OriginPolicy:
        return self._origins

    def check_return_url(self, url: str | None) -> str | None:
        """A returnUrl on an allowed frontend origin (GATEWAY_ALLOWED_ORIGINS or the gateway's own), else
        BAD_USER_INPUT."""
        if url is None or not url.strip():
            return None
        url = url.strip()
        if len(url) > MAX_RETURN_URL or not self.origins().trusts_url(url):
            raise BadInput(
                "returnUrl must be an http(s) URL on an allowed frontend origin (GATEWAY_ALLOWED_ORIGINS); "
                f"{url[:100]!r} is not",
                field="returnUrl",
            )
        return url

    def _cookie(self, platform: str, attempt_id: str | None, secret: str | None = None) -> Cookie:
        value = f"{attempt_id}.{secret}" if attempt_id and secret else None
        return Cookie(cookie_name(platform), value, f"/connect/{platform}/")

    def _expired(self, attempt: Attempt) -> bool:
        return attempt.expired(self.clock())

    async def _announce(self, attempt: Attempt) -> None:
        """CONNECT_FINISHED on the account's integrationEvents (an install begun on the platform has no account)."""
        if not attempt.account_id:
            return
        await self.publisher.publish(
            ConnectFinished(
                account_id=attempt.account_id,
                integration_id=attempt.integration_id or "",
                at=self.clock(),
                attempt=attempt.view(),
            )
        )

    async def _log_failure(self, attempt: Attempt | _Failing | None, message: str) -> None:
        """An activity entry where an integration exists (a reconnect)."""
        if attempt is None or not attempt.integration_id or not attempt.account_id:
            return
        await self.activity.record(
            attempt.account_id,
            ActivityKind.CONNECT_FAILED,
            f"Reconnecting the store did not succeed: {message[:300]} Nothing was changed.",
            integration_id=attempt.integration_id,
        )

    async def _end(self, attempt: Attempt, status: ConnectStatus, message: str, *, only_idle: bool = False) -> Attempt:
        """End an attempt FAILED or EXPIRED (announced, logged where an integration exists)."""
        ended = await self.attempts.finish(attempt.id, status, error=message, only_idle=only_idle)
        if ended is None:
            return await self.attempts.get(attempt.id) or attempt
        await self._announce(ended)
        if status is ConnectStatus.FAILED:
            await self._log_failure(ended, message)
        return ended

    async def _expire(self, attempt: Attempt) -> Attempt:
        return await self._end(
            attempt,
            ConnectStatus.EXPIRED,
            "The store was not approved within 10 minutes, so the connection attempt expired. Please start again.",
            only_idle=True,
        )

    # ---- GraphQL side ---------------------------------------------------------------------------------
    async def begin(
        self,
        account_id: str,
        platform: str,
        name: str,
        store: str | None,
        mode: SyncMode | None = None,
        frequency: SyncFrequency | None = None,
        return_url: str | None = None,
    ) -> Attempt:
        """beginConnect: a PENDING attempt whose authorizeUrl starts the flow; nothing is stored on bad input."""
        adapter = self._adapter(platform.strip())
        platform = adapter.info.id
        flow = self.flows.install_flow(platform)
        if flow is None:
            raise BadInput(
                f"{adapter.info.name} cannot be connected through its own page on this gateway (the "
                f"{adapter.info.name} app is not configured): connect it with its API keys instead",
                field="platform",
            )
        name = check_name(name)
        target = self.check_return_url(return_url)
        state = new_state()
        redirect = flow.authorize(state, store.strip() if store else None)
        if redirect.store_url or redirect.store_key:
            # Known before the merchant leaves: a store connected already is CONFLICT now, not after approving.
            await self.integrations.refuse_connected(account_id, platform, redirect.store_url, redirect.store_key)
        return await self.attempts.create(
            kind=AttemptKind.CONNECT,
            platform=platform,
            account_id=account_id,
            state=state,
            redirect=redirect,
            return_url=target,
            name=name,
            settings=SyncSettings(mode or SyncMode.AUTOMATIC, frequency or SyncFrequency.EVERY_HOUR),
        )

    async def reconnect(
        self,
        account_id: str,
        integration_id: str,
        return_url: str | None = None,
        credentials: Any = None,
    ) -> Attempt:
        """reconnectIntegration: through the platform's flow, or at once with pasted `credentials`."""
        integration = await self.integrations.get(account_id, integration_id)
        adapter = self._adapter(integration.platform)
        target = self.check_return_url(return_url)
        if credentials is not None:
            return await self._reconnect_with_keys(integration, adapter, credentials)
        flow = self.flows.install_flow(adapter.info.id)
        if flow is None:
            raise BadInput(
                f"{adapter.info.name} cannot be reconnected through its own page on this gateway: give the "
                "store's API keys (credentials) to reconnect it",
                field="credentials",
            )
        state = new_state()
        store = None
        if flow.store_input is not StoreInput.IGNORED:
            store = integration.store_key or integration.store_url
        redirect = flow.authorize(state, store)
        return await self.attempts.create(
            kind=AttemptKind.RECONNECT,
            platform=adapter.info.id,
            account_id=account_id,
            state=state,
            redirect=redirect,
            return_url=target,
            integration_id=integration.id,
            name=integration.name,
        )

    async def _reconnect_with_keys(
        self, integration: Integration, adapter: PlatformAdapter, credentials: Any
    ) -> Attempt:
        creds = validate_credentials(adapter, credentials)
        counter = self.integrations.counter(integration.id)
        conn = self.integrations.connection_for(
            integration.id, integration.store_url, creds, integration.options, counter
        )
        failing = _Failing(integration.account_id, integration.id)
        try:
            try:
                await adapter.check_credentials(conn)
            except StoreAuthError:
                message = (
                    f"the store refused these credentials (check the {adapter.info.name} API keys and their "
                    "permissions); nothing was changed"
                )
                await self._log_failure(failing, "The store refused the new credentials.")
                raise BadInput(message, field="credentials") from None
            except StoreError as exc:
                raise BadInput(f"the store could not be reached: {exc.message}", field="credentials") from None
            await self.lifecycle.restore(integration, adapter, conn, creds, via=ConnectMethod.CREDENTIALS)
        finally:
            await conn.close()
            await counter.flush()
        attempt = await self.attempts.create(
            kind=AttemptKind.RECONNECT,
            platform=adapter.info.id,
            account_id=integration.account_id,
            state=None,
            redirect=None,
            integration_id=integration.id,
            name=integration.name,
            status=ConnectStatus.CONNECTED,
        )
        await self._announce(attempt)
        return attempt

    async def attempt(self, account_id: str, attempt_id: str) -> Attempt:
        """connectAttempt(id): another account's attempt reads as missing."""
        found = await self.attempts.get(attempt_id)
        if found is None or found.account_id != account_id:
            raise NotFound("no connect attempt with that id", field="id")
        if self._expired(found) and not found.completing:
            found = await self._expire(found)
        return found

    async def expire_overdue(self) -> int:
        """Attempts nobody finished within 10 minutes become EXPIRED (and say so on integrationEvents)."""
        overdue = await self.attempts.overdue()
        for attempt in overdue:
            await self._expire(attempt)
        return len(overdue)

    async def claim(
        self,
        account_id: str,
        token: str,
        name: str | None = None,
        mode: SyncMode | None = None,
        frequency: SyncFrequency | None = None,
    ) -> Integration:
        """claimInstall: the pending install becomes the caller's integration, or restores the caller's paused
        integration of the same store (the app installed again after an uninstall). A store the caller has
        connected and working already is CONFLICT (AlreadyConnected), and the install stays claimable."""
        pending = await self.pending.claim(token.strip(), account_id) if token and token.strip() else None
        if pending is None:
            raise BadInput(
                "This install link is unknown, was already used, or has expired (links last an hour): install "
                "the app again from the platform",
                field="token",
            )
        try:
            integration = await self._claim(account_id, pending, name, mode, frequency)
        except BaseException:
            await self.pending.release(pending)
            raise
        await self.pending.delete(pending)
        return integration

    async def _claim(
        self,
        account_id: str,
        pending: PendingInstall,
        name: str | None,
        mode: SyncMode | None,
        frequency: SyncFrequency | None,
    ) -> Integration:
        platform = pending.platform
        adapter = self._adapter(platform)
        flow = self.flows.install_flow(platform)
        creds = self.pending.credentials(pending)
        meta = pending.tokens
        expiry = Expiry.of(meta)
        if flow is not None and expiry is not None and expiry.due(self.clock()):
            # Claimed late in its hour: the access token is about to expire; renew it before using it.
            http = self.flows.http(pending.store_url)
            try:
                renewed = await flow.refresh(expiry.token_set(creds), pending.store_url, http)
            except StoreError as exc:
                message = f"the store no longer accepts this install ({exc.message}): install the app again"
                raise BadInput(message, field="token") from None
            finally:
                await http.close()
            creds = {**creds, **dict(renewed.credentials)}
            meta = token_meta(renewed, self.clock())
        target = await self.integrations.connected_store(account_id, platform, pending.store_url, pending.store_key)
        if target is not None and not target.paused:
            # Connected and working: one store is one integration (a paused one is restored in place
            # below: an app installed again after it was removed is how it comes back).
            raise already_connected(target)
        integration_id = target.id if target else uuid.uuid4().hex
        store_url = target.store_url if target else pending.store_url
        counter = self.integrations.counter(integration_id)
        conn = self.integrations.connection_for(
            integration_id, store_url, creds, target.options if target else None, counter
        )
        try:
            problem = await self._check(adapter, conn)
            if problem is not None:
                raise BadInput(problem, field="token")
            if target is not None:
                return await self.lifecycle.restore(
                    target,
                    adapter,
                    conn,
                    creds,
                    via=ConnectMethod.INSTALL_FLOW,
                    tokens=meta,
                    store_key=pending.store_key,
                )
            chosen = check_name(name or pending.store_name or f"{adapter.info.name} store {pending.store_key}")
            return await self.integrations.establish(
                adapter,
                conn,
                account_id,
                chosen,
                creds,
                mode=mode,
                frequency=frequency,
                counter=counter,
                via=ConnectMethod.INSTALL_FLOW,
                store_key=pending.store_key,
                tokens=meta,
                app_account=pending.account,
            )
        finally:
            await conn.close()
            await counter.flush()

    # ---- completing a handshake ---------------------------------------------------------------------------
    async def _handshake(self, flow: InstallFlow, granted: Granted, store_url: str | None) -> Installation:
        http = self.flows.http(store_url)
        try:
            return await flow.complete(granted, http, store_url=store_url)
        except ConnectRefused:
            raise
        except StoreError as exc:
            name = self._name(flow.platform)
            raise ConnectRefused(
                f"{name} could not be reached to finish connecting ({exc.message}); please try again",
                failure="UNREACHABLE",
            ) from None
        finally:
            await http.close()

    async def _check(self, adapter: PlatformAdapter, conn: Connection) -> str | None:
        """Why the freshly issued credentials do not work (one cheap call), or None."""
        try:
            await adapter.check_credentials(conn)
        except StoreAuthError:
            return (
                f"{adapter.info.name} granted access, but the store refused the credentials it had just issued, so "
                "nothing was connected. Check the app's permissions on the store (and that the approving user may "
                "manage it), then try again."
            )
        except StoreError as exc:
            return (
                f"The store could not be reached to check the new credentials ({exc.message}); nothing was connected."
            )
        return None

    async def _complete(
        self, flow: InstallFlow, adapter: PlatformAdapter, attempt: Attempt, granted: Granted
    ) -> tuple[Attempt, str | None]:
        """Exchange the grant (once: the attempt is claimed), check the credentials, then connect, reconnect in
        place or keep a pending install. Returns the ended attempt and, for an install begun on the
        platform, the claim token."""
        try:
            return await self._complete_claimed(flow, adapter, attempt, granted)
        except BaseException:
            await self._end(attempt, ConnectStatus.FAILED, "Alana could not finish connecting (an internal error).")
            raise

    async def _complete_claimed(
        self, flow: InstallFlow, adapter: PlatformAdapter, attempt: Attempt, granted: Granted
    ) -> tuple[Attempt, str | None]:
        kind = attempt.kind
        integration: Integration | None = None
        if kind is AttemptKind.RECONNECT:
            integration = await self.integrations.get_any(attempt.integration_id or "")
            if integration is None:
                message = "The store was disconnected from Alana meanwhile, so nothing was reconnected."
                return await self._end(attempt, ConnectStatus.FAILED, message), None
        try:
            installation = await self._handshake(flow, granted, attempt.store_url)
        except ConnectRefused as exc:
            return await self._end(attempt, ConnectStatus.FAILED, exc.message), None
        if integration is not None:
            expected = integration.store_key or flow.store_key_for(integration.store_url)
            if expected and installation.store_key != expected:
                message = (
                    f"{adapter.info.name} approved Alana for {installation.store_key}, but {integration.name!r} "
                    f"is {expected}: approve it on that store."
                )
                return await self._end(attempt, ConnectStatus.FAILED, message), None
        integration_id = integration.id if integration is not None else uuid.uuid4().hex
        store_url = integration.store_url if integration is not None else installation.store_url
        creds = dict(installation.tokens.credentials)
        meta = token_meta(installation.tokens, self.clock())
        counter = self.integrations.counter(integration_id) if kind is not AttemptKind.INSTALL else None
        conn = self.integrations.connection_for(
            integration_id, store_url, creds, integration.options if integration else None, counter
        )
        claim_token: str | None = None
        try:
            problem = await self._check(adapter, conn)
            if problem is not None:
                return await self._end(attempt, ConnectStatus.FAILED, problem), None
            if kind is AttemptKind.CONNECT:
                settings = attempt.settings or SyncSettings()
                try:
                    await self.integrations.establish(
                        adapter,
                        conn,
                        attempt.account_id or "",
                        attempt.name or "",
                        creds,
                        mode=settings.mode,
                        frequency=settings.frequency,
                        counter=counter,
                        via=ConnectMethod.INSTALL_FLOW,
                        store_key=installation.store_key,
                        tokens=meta,
                        app_account=installation.account,
                    )
                except AlreadyConnected as exc:
                    # The merchant picked, on the platform, a store this account has already.
                    return await self._already_connected(attempt, exc), None
            elif integration is not None:
                await self.lifecycle.restore(
                    integration,
                    adapter,
                    conn,
                    creds,
                    via=ConnectMethod.INSTALL_FLOW,
                    tokens=meta,
                    store_key=installation.store_key,
                )
            else:
                claim_token = await self.pending.create(adapter.info.id, installation, meta)
        finally:
            await conn.close()
            if counter is not None:
                await counter.flush()
        ended = await self.attempts.finish(
            attempt.id,
            ConnectStatus.CONNECTED,
            integration_id=None if kind is AttemptKind.INSTALL else integration_id,
            store_key=installation.store_key,
        )
        if ended is None:  # pragma: no cover - the claim makes this attempt ours until it ends
            ended = await self.attempts.get(attempt.id) or attempt
        await self._announce(ended)
        log.info("store connected through its install flow", extra={"platform": adapter.info.id, "kind": kind.value})
        return ended, claim_token

    async def _already_connected(self, attempt: Attempt, exc: AlreadyConnected) -> Attempt:
        """End a connect attempt FAILED for a store the account has already; the attempt names that
        integration (ConnectAttempt.existingIntegration), so the frontend can offer to reconnect it."""
        ended = await self.attempts.finish(
            attempt.id, ConnectStatus.FAILED, error=exc.message, integration_id=exc.integration_id
        )
        ended = ended or await self.attempts.get(attempt.id) or attempt
        await self._announce(ended)
        return ended

    # ---- HTTP side ------------------------------------------------------------------------------------------
    def _land(self, attempt: Attempt, *, claim_token: str | None = None, landing: str | None = None) -> Reply:
        """Where the browser goes once a callback is settled (or refused for an attempt that already ended)."""
        clear = self._cookie(attempt.platform, None)
        if attempt.kind is AttemptKind.INSTALL:
            if claim_token is not None:
                return Reply(302, with_query(self.frontend_url, claimInstall=claim_token), cookie=clear)
            if landing is not None:
                return Reply(302, landing, cookie=clear)
            message = attempt.error or "This install link was already used or has expired."
            return _page(400, f"{message} Install the app again from the platform.", self.frontend_url)
        target = attempt.return_url
        if not target or not self.origins().trusts_url(target):
            target = self.frontend_url  # never a URL the gateway was not configured to trust
        return Reply(302, with_query(target, connectAttempt=attempt.id, status=attempt.status.value), cookie=clear)

    async def start(self, platform: str, attempt_id: str, cookie: str | None) -> Reply:
        """GET /connect/{platform}/start/{attempt_id}: bind the browser, then to the platform's authorize screen."""
        attempt = await self.attempts.get(attempt_id)
        if attempt is None or attempt.platform != platform or attempt.kind is AttemptKind.INSTALL:
            return _page(404, "This connection link is unknown. Start again from Alana.", self.frontend_url)
        if self._expired(attempt):
            attempt = await self._expire(attempt)
        if not attempt.pending:
            return self._land(attempt)
        held = parse_binding(cookie)
        secret = held[1] if held and held[0] == attempt_id else secrets.token_urlsafe(24)
        bound = await self.attempts.bind(attempt, secret)
        if bound is None:
            return _page(
                409,
                "This connection link was already opened in another browser. Start again from Alana in this browser.",
                self.frontend_url,
            )
        url = self.attempts.authorize_url(bound)
        if not url:  # pragma: no cover - every attempt that can be started has one
            return _page(404, "This connection link is unknown. Start again from Alana.", self.frontend_url)
        return Reply(302, url, cookie=self._cookie(platform, attempt_id, secret))

    async def callback(self, platform: str, request: FlowRequest, cookie: str | None) -> Reply:
        """GET|POST /connect/{platform}/callback."""
        flow = self.flows.install_flow(platform)
        if flow is None:
            return _page(404, f"Connecting {self._name(platform)} through its own page is not set up on this gateway.")
        adapter = self._adapter(platform)
        outcome = flow.verify_callback(request)
        if isinstance(outcome, Rejected):
            return await self._rejected(platform, outcome)
        held = parse_binding(cookie)
        attempt = await self._find(platform, outcome.correlation, held)
        if attempt is None:
            if isinstance(outcome, Granted) and outcome.correlation is None:
                return await self._install(flow, adapter, outcome)
            return self._unknown(outcome)
        if self._expired(attempt) and not attempt.completing:
            attempt = await self._expire(attempt)
        if not attempt.pending:
            # Used or expired: changes nothing, and says how it ended.
            return self._used(attempt, outcome) if isinstance(outcome, Granted) else self._land(attempt)
        if outcome.browser and attempt.binding_hash and not self.attempts.bound_to(attempt, held[1] if held else None):
            # Started in one browser, finished in another: someone else's link. Change nothing.
            return _page(
                400,
                "This connection was started in another browser, so nothing was changed. Start again from Alana in "
                "this browser.",
                self.frontend_url,
            )
        if not isinstance(outcome, Granted):
            return await self._returned(adapter, attempt, outcome)
        claimed = await self.attempts.claim(attempt.id)
        if claimed is None:  # another callback is completing it, or it just ended
            return self._used(await self.attempts.get(attempt.id) or attempt, outcome)
        ended, claim_token = await self._complete(flow, adapter, claimed, outcome)
        if not outcome.browser:
            # Keys POSTed by the platform's server (WooCommerce): the attempt says how it went; anything but
            # exactly `reply_status` would make the platform delete the keys and show the merchant an error.
            return Reply(
                outcome.reply_status, message="ok" if ended.status is ConnectStatus.CONNECTED else "not connected"
            )
        landing = None
        if ended.kind is AttemptKind.INSTALL and claim_token is None:
            landing = flow.landing_url(outcome, connected=False)
        return self._land(ended, claim_token=claim_token, landing=landing)

    async def _find(self, platform: str, correlation: str | None, held: tuple[str, str] | None) -> Attempt | None:
        """The attempt a callback is for: by its echoed state, else by the browser's binding."""
        if correlation is not None:
            return await self.attempts.by_state(platform, correlation)
        if held is None:
            return None
        candidate = await self.attempts.get(held[0])
        # Only a live attempt: a binding left over from an earlier one must not swallow a new install.
        if (
            candidate is not None
            and candidate.platform == platform
            and candidate.pending
            and self.attempts.bound_to(candidate, held[1])
        ):
            return candidate
        return None

    async def _returned(self, adapter: PlatformAdapter, attempt: Attempt, outcome: Returned | Declined) -> Reply:
        """The browser is back without a grant: declined, or after keys that came (or not) separately."""
        if attempt.pending and not attempt.completing:
            if isinstance(outcome, Declined):
                message = outcome.message
            else:
                message = f"{adapter.info.name} sent Alana no credentials, so nothing was connected. Please try again."
            attempt = await self._end(attempt, ConnectStatus.FAILED, message, only_idle=True)
        return self._land(attempt)

    def _used(self, attempt: Attempt, outcome: Granted) -> Reply:
        """A grant for an attempt that already ended (or is being completed): nothing changes."""
        if not outcome.browser:
            return Reply(409, message="this connect attempt has already ended")
        return self._land(attempt)

    def _unknown(self, outcome: Granted | Returned | Declined) -> Reply:
        if not outcome.browser:
            return Reply(404, message="no connect attempt has this state")
        return _page(
            400,
            "This connection link is unknown or was already used, so nothing was changed. Start again from Alana.",
            self.frontend_url,
        )

    async def _rejected(self, platform: str, outcome: Rejected) -> Reply:
        """A callback that failed verification: nothing stored; logged where it claims a reconnect."""
        claimed = None
        if outcome.claimed_correlation:
            claimed = await self.attempts.by_state(platform, outcome.claimed_correlation)
        await self._log_failure(
            claimed, f"A callback claiming to come from {self._name(platform)} was refused: {outcome.message}"
        )
        log.warning("connect callback refused", extra={"platform": platform, "failure": str(outcome.failure)})
        if not outcome.browser:
            return Reply(outcome.status, message=outcome.message)
        back = claimed.return_url if claimed else None
        if not back or not self.origins().trusts_url(back):
            back = self.frontend_url
        return _page(outcome.status, outcome.message, back)

    async def _install(self, flow: InstallFlow, adapter: PlatformAdapter, granted: Granted) -> Reply:
        """A grant with no attempt and no browser binding: an install begun on the platform (BigCommerce's
        marketplace, its install link): complete it and send the browser to claim it."""
        attempt = await self.attempts.create(
            kind=AttemptKind.INSTALL, platform=adapter.info.id, account_id=None, state=None, redirect=None
        )
        claimed = await self.attempts.claim(attempt.id)
        assert claimed is not None
        ended, claim_token = await self._complete(flow, adapter, claimed, granted)
        if not granted.browser:
            return Reply(granted.reply_status, message="ok")
        landing = flow.landing_url(granted, connected=False) if claim_token is None else None
        if landing is None and claim_token is None:
            return _page(400, ended.error or "The store was not connected.", self.frontend_url)
        return self._land(ended, claim_token=claim_token, landing=landing)

    async def app_request(self, platform: str, event: str, request: FlowRequest, cookie: str | None) -> Reply:
        """GET /apps/{platform}/{event}: Shopify's App URL install request; BigCommerce load, uninstall, remove_user."""
        flow = self.flows.install_flow(platform)
        if flow is None:
            return _page(404, f"The {self._name(platform)} app is not set up on this gateway.")
        outcome = flow.verify_app_request(event, request)
        if isinstance(outcome, Rejected):
            if outcome.browser:
                return _page(outcome.status, outcome.message, self.frontend_url)
            return Reply(outcome.status, message=outcome.message)
        if outcome.kind is LifecycleKind.INSTALL_REQUESTED:
            return await self._install_requested(flow, outcome)
        if outcome.kind is LifecycleKind.OPENED:
            return Reply(302, self.frontend_url)
        return await self._lifecycle(platform, flow, outcome)

    async def _install_requested(self, flow: InstallFlow, event: LifecycleEvent) -> Reply:
        platform = flow.platform
        installed = [
            integration
            for integration in await self.lifecycle.find_by_store(platform, event.store_key, flow, via_app_only=True)
            if not integration.paused
        ]
        if installed:
            return Reply(302, self.frontend_url)  # the app is installed and working: opening it lands on Alana
        state = new_state()
        try:
            redirect = flow.authorize(state, event.store_key)
        except BadInput as exc:
            return _page(400, exc.message, self.frontend_url)
        attempt = await self.attempts.create(
            kind=AttemptKind.INSTALL, platform=platform, account_id=None, state=state, redirect=redirect
        )
        secret = secrets.token_urlsafe(24)
        await self.attempts.bind(attempt, secret)
        return Reply(302, redirect.url, cookie=self._cookie(platform, attempt.id, secret))

    async def app_webhook(self, platform: str, request: FlowRequest) -> Reply:
        """POST /webhooks/{platform}/app: app-level webhooks (Shopify's compliance topics, app/uninstalled)."""
        flow = self.flows.install_flow(platform)
        if flow is None:
            return Reply(404, message=f"the {platform} app is not set up on this gateway")
        outcome = flow.verify_app_webhook(request)
        if isinstance(outcome, Rejected):
            log.warning("app webhook refused", extra={"platform": platform, "failure": str(outcome.failure)})
            return Reply(outcome.status, message=outcome.message)
        return await self._lifecycle(platform, flow, outcome)

    async def _lifecycle(self, platform: str, flow: InstallFlow, event: LifecycleEvent) -> Reply:
        name = self._name(platform)
        facts: Mapping[str, str] = {k: v for k, v in event.details.items() if k != "url"}
        if event.kind is LifecycleKind.UNINSTALLED:
            await self.lifecycle.uninstalled(platform, event.store_key, flow, name)
            return Reply(200, message="ok")
        if event.kind is LifecycleKind.USER_REMOVED:
            await self.lifecycle.user_removed(platform, event.store_key, flow, name, event.user)
            return Reply(200, message="ok")
        if event.kind in (LifecycleKind.CUSTOMER_DATA_REQUEST, LifecycleKind.CUSTOMER_REDACT):
            # The gateway holds catalog data only, never customers': acknowledged and logged (ids only).
            log.info(
                "privacy request acknowledged: the gateway holds no customer data",
                extra={"platform": platform, "store": event.store_key, "request": event.kind.value, **facts},
            )
            return Reply(200, message="acknowledged: no customer data is held")
        if event.kind is LifecycleKind.SHOP_REDACT:
            await self.lifecycle.redact_store(platform, event.store_key, flow)
            return Reply(200, message="erased")
        return Reply(200, message="ignored")


__all__ = ["ConnectService", "Cookie", "Reply", "cookie_name", "with_query"]
