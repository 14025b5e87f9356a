"""Connected stores: connect, settings, disconnect, credentials and health.

Credentials (and the webhook secrets a plugin sets up) are sealed with the SecretBox before they
reach MongoDB and opened only to build a `Connection` for a plugin. They are never returned, logged
or put in an error message.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from gateway.activity import ActivityLog
from gateway.adapter import Connection, PlatformAdapter, WebhookRegistration
from gateway.conflict_store import ConflictStore
from gateway.crypto import SecretBox
from gateway.deliveries import DeliveryStore
from gateway.domain import (
    ActivityKind,
    EventKind,
    RunKind,
    SyncFrequency,
    SyncMode,
    Trigger,
    WebhookState,
)
from gateway.errors import BadInput, NotFound, StoreAuthError, StoreError
from gateway.events import EventPublisher
from gateway.health import Health, compute_health
from gateway.httpclient import HttpClient
from gateway.integration_store import CallCounter, IntegrationStore
from gateway.plugins import PluginRegistry
from gateway.products import ProductStore
from gateway.runs import RunStore
from gateway.settings import Settings
from gateway.storage.mongo import Doc
from gateway.syncs import SyncService
from gateway.urls import check_store_url

log = logging.getLogger(__name__)


def _context(account_id: str, integration_id: str) -> str:
    return f"{account_id}/{integration_id}"


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
        publisher: EventPublisher,
        syncs: SyncService,
        registry: PluginRegistry,
        box: SecretBox,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.runs = runs
        self.products = products
        self.conflicts = conflicts
        self.deliveries = deliveries
        self.activity = activity
        self.publisher = publisher
        self.syncs = syncs
        self.registry = registry
        self.box = box
        self.settings = settings
        self.clock = clock

    # ---- reads --------------------------------------------------------------------------------
    async def list(self, account_id: str) -> list[Doc]:
        return await self.store.list(account_id)

    async def get(self, account_id: str, integration_id: str) -> Doc:
        doc = await self.store.get(account_id, integration_id)
        if doc is None:
            raise NotFound("no integration with that id", field="integrationId")
        return doc

    async def get_any(self, integration_id: str) -> Doc | None:
        """For workers and webhooks, which act for the integration's own account."""
        return await self.store.get_any(integration_id)

    async def health(self, integration: Doc) -> Health:
        last = await self.runs.latest(integration["_id"], limit=1, finished_only=True)
        active = await self.runs.active(integration["_id"])
        return compute_health(integration, last[0] if last else None, active, self.clock())

    async def api_calls_24h(self, integration_id: str) -> int:
        since = self.clock() - timedelta(hours=24)
        return await self.store.api_calls_since(integration_id, since.replace(minute=0, second=0, microsecond=0))

    def counter(self, integration_id: str) -> CallCounter:
        return CallCounter(integration_id, self.store, self.clock)

    # ---- connections to the store -------------------------------------------------------------
    def adapter(self, platform: str) -> PlatformAdapter:
        return self.registry.adapter(platform)

    def credentials(self, integration: Doc) -> dict[str, str]:
        sealed = integration.get("credentials")
        if not sealed:
            return {}
        return self.box.open(sealed, _context(integration["account_id"], integration["_id"]))

    def connection(self, integration: Doc, counter: CallCounter | None = None) -> Connection:
        return self._connection(
            integration["_id"],
            integration["store_url"],
            self.credentials(integration),
            integration.get("options", {}),
            counter,
        )

    def _connection(
        self,
        integration_id: str,
        store_url: str,
        credentials: Mapping[str, str],
        options: Mapping[str, Any],
        counter: CallCounter | None,
    ) -> Connection:
        settings = self.settings

        def factory(base_url: str, **kwargs: Any) -> HttpClient:
            defaults: dict[str, Any] = {
                "concurrency": settings.store_concurrency,
                "backoff_base": settings.http_backoff_base,
                "on_call": counter,
            }
            return HttpClient(base_url, **{**defaults, **kwargs})

        return Connection(
            integration_id=integration_id,
            store_url=store_url,
            credentials=dict(credentials),
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
    ) -> Doc:
        """Check the credentials, register webhooks, save (sealed), queue the first full sync."""
        if platform not in self.registry.adapters:
            installed = ", ".join(sorted(self.registry.adapters))
            raise BadInput(f"unknown platform {platform!r}; installed platforms: {installed}", field="platform")
        adapter = self.adapter(platform)
        if not name or not name.strip():
            raise BadInput("name must not be empty", field="name")
        if len(name) > 200:
            raise BadInput("name must be at most 200 characters", field="name")
        url = check_store_url(store_url, allow_private=self.settings.allow_private_urls)
        creds = _validate_credentials(adapter, credentials)
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
            callback = f"{self.settings.public_url.rstrip('/')}/webhooks/{platform}/{integration_id}"
            webhooks: Doc
            secrets: Mapping[str, str] = {}
            try:
                registration = await adapter.register_webhooks(conn, callback)
                secrets = registration.secrets
                webhooks = {
                    "state": WebhookState.REGISTERED.value,
                    "hook_ids": list(registration.hook_ids),
                    "callback_url": callback,
                    "error": None,
                }
            except StoreError as exc:
                log.warning("webhook registration failed", extra={"integration_id": integration_id})
                webhooks = {
                    "state": WebhookState.FAILED.value,
                    "hook_ids": [],
                    "callback_url": callback,
                    "error": exc.message,
                }
        finally:
            await conn.close()
        now = self.clock()
        mode = mode or SyncMode.AUTOMATIC
        frequency = frequency or SyncFrequency.EVERY_HOUR
        doc: Doc = {
            "_id": integration_id,
            "account_id": account_id,
            "platform": platform,
            "name": name.strip(),
            "store_url": url,
            "credentials": self.box.seal({**creds, **secrets}, _context(account_id, integration_id)),
            "credential_names": sorted(creds),
            "settings": {"mode": mode.value, "frequency": frequency.value},
            "options": dict(options or {}),
            "webhooks": webhooks,
            "created_at": now,
            "next_sync_at": now + frequency.period if mode is SyncMode.AUTOMATIC else None,
            "last_full_sync_at": None,
            "last_sync_at": None,
            "sync_cursor": None,
            "pending_changes": 0,
            "credentials_rejected": False,
        }
        await self.store.insert(doc)
        await counter.flush()
        await self.activity.record(
            account_id,
            ActivityKind.INTEGRATION_CONNECTED,
            f"Connected {adapter.info.name} store {name.strip()!r}",
            integration_id=integration_id,
        )
        await self.syncs.queue(doc, Trigger.INITIAL, kind=RunKind.FULL)
        return doc

    # ---- settings -----------------------------------------------------------------------------
    async def update_settings(
        self, account_id: str, integration_id: str, mode: SyncMode | None, frequency: SyncFrequency | None
    ) -> Doc:
        doc = await self.get(account_id, integration_id)
        settings = dict(doc["settings"])
        if mode is not None:
            settings["mode"] = mode.value
        if frequency is not None:
            settings["frequency"] = frequency.value
        new_mode = SyncMode(settings["mode"])
        period = SyncFrequency(settings["frequency"]).period
        # Changing the frequency reschedules at once, counted from the last sync.
        anchor: datetime = doc.get("last_sync_at") or self.clock()
        next_sync = max(anchor + period, self.clock()) if new_mode is SyncMode.AUTOMATIC else None
        updated = await self.store.update(
            integration_id, {"settings": settings, "next_sync_at": next_sync}, account_id=account_id
        )
        if updated is None:
            raise NotFound("no integration with that id", field="integrationId")
        changes = (
            ", ".join(
                f"{k} {doc['settings'].get(k)} -> {v}" for k, v in settings.items() if doc["settings"].get(k) != v
            )
            or "no change"
        )
        await self.activity.record(
            account_id,
            ActivityKind.SETTINGS_CHANGED,
            f"Sync settings changed: {changes}",
            integration_id=integration_id,
        )
        await self.publish_health(updated)
        return dict(updated)

    async def publish_health(self, integration: Doc) -> None:
        health = await self.health(integration)
        await self.publisher.account_event(
            integration["account_id"],
            {
                "kind": EventKind.HEALTH_CHANGED.value,
                "integration_id": integration["_id"],
                "at": self.clock(),
                "health": health_doc(health),
            },
        )

    # ---- disconnect ---------------------------------------------------------------------------
    async def disconnect(self, account_id: str, integration_id: str) -> str:
        doc = await self.get(account_id, integration_id)
        active = await self.runs.active(integration_id)
        if active is not None:
            await self.runs.request_cancel(account_id, active["_id"])
        webhooks = doc.get("webhooks", {})
        if webhooks.get("hook_ids"):
            adapter = self.registry.adapters.get(doc["platform"])
            if adapter is not None:
                conn = self.connection(doc, self.counter(integration_id))
                try:
                    await adapter.remove_webhooks(conn, WebhookRegistration(tuple(webhooks["hook_ids"])))
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
            f"Disconnected {doc['name']!r}: webhooks removed, credentials and products deleted",
            integration_id=integration_id,
        )
        return integration_id


def health_doc(health: Health) -> Doc:
    return {
        "status": health.status.value,
        "reason": health.reason,
        "last_sync_at": health.last_sync_at,
        "next_sync_at": health.next_sync_at,
        "last_run_id": health.last_run["_id"] if health.last_run else None,
        "action": health.action.value if health.action else None,
    }


def _validate_credentials(adapter: PlatformAdapter, credentials: Any) -> dict[str, str]:
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
