"""Connected stores: connect, settings, disconnect, credentials and health.

Credentials (and the webhook secrets a plugin sets up) are sealed with the SecretBox before they
reach MongoDB and opened only to build a `Connection` for a plugin. They are never returned, logged
or put in an error message.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from gateway.activity import ActivityLog
from gateway.adapter import Connection, ConnectMethod, PlatformAdapter, WebhookRegistration
from gateway.conflict_store import ConflictStore
from gateway.crypto import SecretBox
from gateway.deliveries import DeliveryStore
from gateway.domain import (
    ActivityKind,
    RunKind,
    RunStatus,
    SyncFrequency,
    SyncMode,
    Trigger,
    WebhookState,
)
from gateway.errors import AlreadyConnected, BadInput, NotFound, StoreAuthError, StoreError
from gateway.flows import Flows
from gateway.health import Health
from gateway.healthwatch import HealthWatch
from gateway.httpclient import HttpClient
from gateway.integration_store import (
    CallCounter,
    Integration,
    IntegrationStore,
    SyncSettings,
    TokenLifetimes,
    WebhookInfo,
    seal_context,
)
from gateway.lifecycle import callback_url
from gateway.plugins import PluginRegistry
from gateway.products import ProductStore
from gateway.ratebudget import RateState
from gateway.runs import Run, RunStore
from gateway.settings import Settings
from gateway.syncs import SyncService
from gateway.tokens import FreshCredentials, TokenKeeper
from gateway.urls import check_store_url, store_identity

log = logging.getLogger(__name__)


def check_name(name: str | None) -> str:
    if not name or not name.strip():
        raise BadInput("name must not be empty", field="name")
    if len(name) > 200:
        raise BadInput("name must be at most 200 characters", field="name")
    return name.strip()


class IntegrationService:
    def __init__(
        self,
        *,
        store: IntegrationStore,
        runs: RunStore,
        products: ProductStore,
        conflicts: ConflictStore,
        deliveries: DeliveryStore,
        activity: ActivityLog,
        health: HealthWatch,
        syncs: SyncService,
        tokens: TokenKeeper,
        registry: PluginRegistry,
        flows: Flows,
        box: SecretBox,
        settings: Settings,
        rate_states: Callable[[str], RateState],
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.runs = runs
        self.products = products
        self.conflicts = conflicts
        self.deliveries = deliveries
        self.activity = activity
        self.health_watch = health
        self.syncs = syncs
        self.tokens = tokens
        self.registry = registry
        self.flows = flows
        self.box = box
        self.settings = settings
        #: The shared rate-limit state of the store at a URL (in Redis: one per store for every process).
        self.rate_states = rate_states
        self.clock = clock

    # ---- reads --------------------------------------------------------------------------------
    async def list(self, account_id: str) -> list[Integration]:
        return await self.store.list(account_id)

    async def get(self, account_id: str, integration_id: str) -> Integration:
        integration = await self.store.get(account_id, integration_id)
        if integration is None:
            raise NotFound("no integration with that id", field="integrationId")
        return integration

    async def get_any(self, integration_id: str) -> Integration | None:
        """For workers and webhooks, which act for the integration's own account."""
        return await self.store.get_any(integration_id)

    async def health(self, integration: Integration) -> Health:
        return await self.health_watch.current(integration)

    def health_of(self, integration: Integration, last_finished: Run | None, active: Run | None) -> Health:
        """The light from runs the caller read already (the API batches those reads)."""
        return self.health_watch.of(integration, last_finished, active)

    async def api_calls_24h(self, integration_ids: Sequence[str]) -> dict[str, int]:
        """Each integration's store API calls in the last 24 hours (whole hours), in one query."""
        now = self.clock()
        since = (now - timedelta(hours=24)).replace(minute=0, second=0, microsecond=0)
        return await self.store.api_calls_since(integration_ids, since, now)

    def counter(self, integration_id: str) -> CallCounter:
        return CallCounter(integration_id, self.store, self.clock)

    # ---- connections to the store -------------------------------------------------------------
    def adapter(self, platform: str) -> PlatformAdapter:
        return self.registry.adapter(platform)

    def credentials(self, integration: Integration) -> dict[str, str]:
        if not integration.credentials:
            return {}
        return self.box.open(integration.credentials, integration.seal_context)

    def connection(self, integration: Integration, counter: CallCounter | None = None) -> Connection:
        """A Connection to the integration's store. Expiring credentials stay fresh for as long as it is used:
        its HTTP clients refresh them before a request once they are due (gateway/tokens.py)."""
        return self._connection(
            integration.id,
            integration.store_url,
            self.credentials(integration),
            integration.options,
            counter,
            fresh=self.tokens.fresh(integration),
        )

    def connection_for(
        self,
        integration_id: str,
        store_url: str,
        credentials: Mapping[str, str],
        options: Mapping[str, Any] | None = None,
        counter: CallCounter | None = None,
    ) -> Connection:
        """A Connection for credentials not saved yet (checking them before an integration exists or changes)."""
        return self._connection(integration_id, store_url, credentials, options or {}, counter)

    def _connection(
        self,
        integration_id: str,
        store_url: str,
        credentials: Mapping[str, str],
        options: Mapping[str, Any],
        counter: CallCounter | None,
        fresh: FreshCredentials | None = None,
    ) -> Connection:
        settings = self.settings
        # One rate budget per store, shared by every process: runs, webhook batches, connect checks and
        # webhook repair all build their clients here (gateway/ratebudget.py).
        rate_state = self.rate_states(store_url)

        def factory(base_url: str, **kwargs: Any) -> HttpClient:
            defaults: dict[str, Any] = {
                "concurrency": settings.store_concurrency,
                "backoff_base": settings.http_backoff_base,
                "on_call": counter,
                "allow_private": settings.allow_private_urls,
                "rate_state": rate_state,
            }
            client = HttpClient(base_url, **{**defaults, **kwargs})
            if fresh is not None:
                fresh.watch(client)
            return client

        opened = dict(credentials)
        if fresh is not None:
            fresh.bind(opened)
        return Connection(
            integration_id=integration_id,
            store_url=store_url,
            credentials=opened,
            http_factory=factory,
            options=dict(options),
            on_call=counter,
        )

    # ---- connect ------------------------------------------------------------------------------
    async def connect(
        self,
        account_id: str,
        platform: str,
        name: str,
        store_url: str,
        credentials: Any,
        mode: SyncMode | None = None,
        frequency: SyncFrequency | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Integration:
        """Check the credentials, register webhooks, save (sealed), queue the first full sync."""
        if platform not in self.registry.adapters:
            installed = ", ".join(sorted(self.registry.adapters))
            raise BadInput(f"unknown platform {platform!r}; installed platforms: {installed}", field="platform")
        adapter = self.adapter(platform)
        name = check_name(name)
        url = check_store_url(store_url, allow_private=self.settings.allow_private_urls)
        creds = validate_credentials(adapter, credentials)
        await self.refuse_connected(account_id, platform, url)
        integration_id = uuid.uuid4().hex
        counter = self.counter(integration_id)
        conn = self._connection(integration_id, url, creds, options or {}, counter)
        try:
            try:
                await adapter.check_credentials(conn)
            except StoreAuthError:
                raise BadInput(
                    f"the store refused these credentials (check the {adapter.info.name} API keys and "
                    "their permissions)",
                    field="credentials",
                ) from None
            except StoreError as exc:
                raise BadInput(f"the store could not be reached: {exc.message}", field="storeUrl") from None
            return await self.establish(
                adapter, conn, account_id, name, creds, mode=mode, frequency=frequency, options=options, counter=counter
            )
        finally:
            await conn.close()

    async def establish(
        self,
        adapter: PlatformAdapter,
        conn: Connection,
        account_id: str,
        name: str,
        creds: Mapping[str, str],
        *,
        mode: SyncMode | None = None,
        frequency: SyncFrequency | None = None,
        options: Mapping[str, Any] | None = None,
        counter: CallCounter | None = None,
        via: ConnectMethod | None = None,
        store_key: str | None = None,
        tokens: TokenLifetimes | None = None,
        app_account: Mapping[str, Any] | None = None,
    ) -> Integration:
        """What connecting does once the store accepted the credentials (with pasted keys or through an
        install flow): register webhooks, save the integration with its credentials sealed, log it, queue
        the first full sync. `conn` is the checked connection; its integration id becomes the
        integration's. An install flow also gives the store key, the token lifetimes and the app account."""
        platform = adapter.info.id
        integration_id = conn.integration_id
        identity = await self.refuse_connected(account_id, platform, conn.store_url, store_key)
        callback = callback_url(self.settings, platform, integration_id)
        now = self.clock()
        webhooks: WebhookInfo
        secrets: Mapping[str, str] = {}
        try:
            registration = await adapter.register_webhooks(conn, callback)
            secrets = registration.secrets
            webhooks = WebhookInfo(WebhookState.REGISTERED, tuple(registration.hook_ids), callback, checked_at=now)
        except StoreError as exc:
            log.warning("webhook registration failed", extra={"integration_id": integration_id})
            webhooks = WebhookInfo(WebhookState.FAILED, (), callback, exc.message, checked_at=now)
        mode = mode or SyncMode.AUTOMATIC
        frequency = frequency or SyncFrequency.EVERY_HOUR
        integration = Integration(
            id=integration_id,
            account_id=account_id,
            platform=platform,
            name=name,
            store_url=conn.store_url,
            created_at=now,
            settings=SyncSettings(mode, frequency),
            webhooks=webhooks,
            credentials=self.box.seal({**creds, **secrets}, seal_context(account_id, integration_id)),
            credential_names=tuple(sorted(creds)),
            options=dict(options or {}),
            next_sync_at=now + frequency.period if mode is SyncMode.AUTOMATIC else None,
            connected_via=via,
            store_key=store_key,
            tokens=tokens,
            app_account=dict(app_account or {}),
        )
        holder = await self.store.insert(integration, identity)
        if holder is not None:
            # Connected twice at once (a double click): the other one won. Take back our webhooks.
            if webhooks.hook_ids:
                with contextlib.suppress(StoreError):
                    await adapter.remove_webhooks(conn, WebhookRegistration(webhooks.hook_ids, secrets))
            raise already_connected(holder)
        if counter is not None:
            await counter.flush()
        await self.activity.record(
            account_id,
            ActivityKind.INTEGRATION_CONNECTED,
            f"Connected {adapter.info.name} store {name!r}",
            integration_id=integration_id,
        )
        await self.syncs.queue(integration, Trigger.INITIAL, kind=RunKind.FULL)
        return integration

    async def connected_store(
        self, account_id: str, platform: str, store_url: str | None, store_key: str | None = None
    ) -> Integration | None:
        """The account's integration of this store, if it has one: same platform, and the same store URL
        (in one spelling, gateway.urls.store_identity) or the same store key (the platform's name for the
        store: a Shopify shop domain, a BigCommerce store hash, a WooCommerce site)."""
        flow = self.flows.install_flow(platform)
        if store_key is None and store_url and flow is not None:
            store_key = flow.store_key_for(store_url)
        wanted = store_identity(store_url) if store_url else None
        for integration in await self.store.list(account_id):
            if integration.platform != platform:
                continue
            if wanted and store_identity(integration.store_url) == wanted:
                return integration
            theirs = integration.store_key or (flow.store_key_for(integration.store_url) if flow else None)
            if store_key and theirs == store_key:
                return integration
        return None

    async def refuse_connected(
        self, account_id: str, platform: str, store_url: str | None, store_key: str | None = None
    ) -> str:
        """Raise AlreadyConnected when the account has this store already; else the store's identity (what
        the database keeps unique per account, so two connects racing each other make one integration)."""
        found = await self.connected_store(account_id, platform, store_url, store_key)
        if found is not None:
            raise already_connected(found)
        flow = self.flows.install_flow(platform)
        if store_key is None and store_url and flow is not None:
            store_key = flow.store_key_for(store_url)
        return f"{platform}|key:{store_key}" if store_key else f"{platform}|url:{store_identity(store_url or '')}"

    # ---- settings -----------------------------------------------------------------------------
    async def update_settings(
        self, account_id: str, integration_id: str, mode: SyncMode | None, frequency: SyncFrequency | None
    ) -> Integration:
        before = await self.get(account_id, integration_id)
        settings = SyncSettings(mode or before.settings.mode, frequency or before.settings.frequency)
        # Changing the frequency reschedules at once, counted from the last sync.
        anchor = before.last_sync_at or self.clock()
        automatic = settings.mode is SyncMode.AUTOMATIC
        next_sync = max(anchor + settings.frequency.period, self.clock()) if automatic else None
        updated = await self.store.update_settings(account_id, integration_id, settings, next_sync)
        if updated is None:
            raise NotFound("no integration with that id", field="integrationId")
        changes = [
            f"{name} {getattr(before.settings, name).value} -> {getattr(settings, name).value}"
            for name in ("mode", "frequency")
            if getattr(before.settings, name) != getattr(settings, name)
        ]
        await self.activity.record(
            account_id,
            ActivityKind.SETTINGS_CHANGED,
            f"Sync settings changed: {', '.join(changes) or 'no change'}",
            integration_id=integration_id,
        )
        await self.health_watch.refresh(integration_id)
        return updated

    # ---- runs -----------------------------------------------------------------------------------
    async def record_run_end(
        self, integration: Integration, run: Run, max_updated: datetime | None
    ) -> Integration | None:
        """What a finished run changes on its integration (docs/reference/BEHAVIOUR.md): the integration as
        written, or None when a run that did not succeed changed nothing."""
        if run.status is not RunStatus.SUCCEEDED:
            return None
        cursor = integration.sync_cursor
        if max_updated is not None and run.kind is not RunKind.PRODUCTS:
            cursor = max(cursor, max_updated) if cursor else max_updated
        else:
            cursor = None
        silent = None
        if run.trigger is Trigger.SCHEDULED and run.kind is RunKind.INCREMENTAL:
            # With webhooks working, the store's changes are already applied when the scheduled run
            # looks: changes it still finds are changes the webhooks missed.
            registered = integration.webhooks.state is WebhookState.REGISTERED
            silent = registered and run.counts.added + run.counts.updated > 0
        waiting = None
        if run.trigger is Trigger.MANUAL and run.kind is not RunKind.PRODUCTS:
            # A Sync Now of the whole store applied what waited (counted as it went, settled here
            # against the queue itself); a Sync Now of chosen products leaves the others waiting.
            waiting = await self.deliveries.waiting(integration.id)
        return await self.store.record_sync(
            integration.id,
            self.clock(),
            full=run.kind is RunKind.FULL,
            sync_cursor=cursor,
            pending_changes=waiting,
            webhooks_silent=silent,
        )

    # ---- disconnect ---------------------------------------------------------------------------
    async def disconnect(self, account_id: str, integration_id: str) -> str:
        integration = await self.get(account_id, integration_id)
        active = await self.runs.active(integration_id)
        if active is not None:
            await self.runs.request_cancel(account_id, active.id)
        if integration.webhooks.hook_ids:
            adapter = self.registry.adapters.get(integration.platform)
            if adapter is not None:
                conn = self.connection(integration, self.counter(integration_id))
                try:
                    await adapter.remove_webhooks(conn, WebhookRegistration(integration.webhooks.hook_ids))
                except StoreError:
                    log.warning("could not remove webhooks on disconnect", extra={"integration_id": integration_id})
                finally:
                    await conn.close()
        await self.store.delete(account_id, integration_id)
        await self.deliveries.delete_integration(integration_id)
        await self.products.delete_integration(integration_id)
        await self.runs.delete_integration(integration_id)
        await self.conflicts.delete_integration(integration_id)
        await self.activity.record(
            account_id,
            ActivityKind.INTEGRATION_DISCONNECTED,
            f"Disconnected {integration.name!r}: webhooks removed, credentials and products deleted",
            integration_id=integration_id,
        )
        return integration_id


def already_connected(integration: Integration) -> AlreadyConnected:
    return AlreadyConnected(
        f"This store is already connected to Alana as {integration.name!r}: one store is one integration. To renew "
        "its access, reconnect that integration (reconnectIntegration) instead of connecting the store again.",
        integration_id=integration.id,
    )


def validate_credentials(adapter: PlatformAdapter, credentials: Any) -> dict[str, str]:
    if not isinstance(credentials, Mapping):
        raise BadInput("credentials must be an object of credential fields", field="credentials")
    known = {f.name: f for f in adapter.info.credential_fields}
    result: dict[str, str] = {}
    for key, value in credentials.items():
        if key not in known:
            raise BadInput(
                f"unknown credential {key!r} for {adapter.info.name}; expected: {', '.join(known)}",
                field=f"credentials.{key}",
            )
        if not isinstance(value, str):
            raise BadInput(f"credential {key!r} must be a string", field=f"credentials.{key}")
        if value.strip():
            result[key] = value.strip()
    for name, spec in known.items():
        if spec.required and name not in result:
            raise BadInput(f"missing credential {name!r} ({spec.label})", field=f"credentials.{name}")
    return result
