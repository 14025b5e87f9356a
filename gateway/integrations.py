"""Connected stores: connect, settings, disconnect, credentials and health.

Credentials (and the webhook secrets a plugin sets up) are sealed with the SecretBox before they
reach MongoDB and opened only to build a `Connection` for a plugin. They are never returned, logged
or put in an error message.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gateway.adapter import Connection, PlatformAdapter, WebhookRegistration
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
from gateway.health import Health, compute_health
from gateway.httpclient import HttpClient
from gateway.ratebudget import RedisRateState
from gateway.storage.mongo import Doc
from gateway.urls import check_store_url

if TYPE_CHECKING:
    from gateway.services import Gateway
    from gateway.tokens import FreshCredentials

log = logging.getLogger(__name__)


class CallCounter:
    """Counts store API calls in memory; `flush` adds them to the hourly bucket in MongoDB."""

    def __init__(self, integration_id: str) -> None:
        self.integration_id = integration_id
        self.pending = 0
        self.total = 0

    def __call__(self) -> None:
        self.pending += 1
        self.total += 1

    async def flush(self, gw: Gateway) -> None:
        if not self.pending:
            return
        count, self.pending = self.pending, 0
        hour = gw.now().replace(minute=0, second=0, microsecond=0)
        await gw.db.api_calls.update_one(
            {"integration_id": self.integration_id, "hour": hour}, {"$inc": {"count": count}}, upsert=True
        )


def _context(account_id: str, integration_id: str) -> str:
    return f"{account_id}/{integration_id}"


def seal_context(integration: Doc) -> str:
    """What an integration's sealed credentials are bound to (a blob copied elsewhere fails to open)."""
    return _context(integration["account_id"], integration["_id"])


def check_name(name: str | None) -> str:
    if not name or not name.strip():
        raise BadInput("name must not be empty", field="name")
    if len(name) > 200:
        raise BadInput("name must be at most 200 characters", field="name")
    return name.strip()


class IntegrationService:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    # ---- reads --------------------------------------------------------------------------------
    async def list(self, account_id: str) -> list[Doc]:
        cursor = self.gw.db.integrations.find({"account_id": account_id}).sort([("created_at", 1)])
        return [doc async for doc in cursor]

    async def get(self, account_id: str, integration_id: str) -> Doc:
        doc = await self.gw.db.integrations.find_one({"_id": integration_id, "account_id": account_id})
        if doc is None:
            raise NotFound("no integration with that id", field="integrationId")
        return doc

    async def get_any(self, integration_id: str) -> Doc | None:
        """For workers and webhooks, which act for the integration's own account."""
        return await self.gw.db.integrations.find_one({"_id": integration_id})

    async def health(self, integration: Doc) -> Health:
        last = await self.gw.runs.latest(integration["_id"], limit=1, finished_only=True)
        active = await self.gw.runs.active(integration["_id"])
        return compute_health(integration, last[0] if last else None, active, self.gw.now())

    async def api_calls_24h(self, integration_id: str) -> int:
        since = self.gw.now() - timedelta(hours=24)
        cursor = await self.gw.db.api_calls.aggregate(
            [
                {
                    "$match": {
                        "integration_id": integration_id,
                        "hour": {"$gte": since.replace(minute=0, second=0, microsecond=0)},
                    }
                },
                {"$group": {"_id": None, "n": {"$sum": "$count"}}},
            ]
        )
        async for row in cursor:
            return int(row["n"])
        return 0

    # ---- connections to the store -------------------------------------------------------------
    def adapter(self, platform: str) -> PlatformAdapter:
        return self.gw.registry.adapter(platform)

    def credentials(self, integration: Doc) -> dict[str, str]:
        sealed = integration.get("credentials")
        if not sealed:
            return {}
        return self.gw.box.open(sealed, _context(integration["account_id"], integration["_id"]))

    def connection(self, integration: Doc, counter: CallCounter | None = None) -> Connection:
        """A Connection to the integration's store. Expiring credentials stay fresh for as long as it is used:
        its HTTP clients refresh them before a request once they are due (gateway/tokens.py)."""
        from gateway.tokens import FreshCredentials

        return self._connection(
            integration["_id"],
            integration["store_url"],
            self.credentials(integration),
            integration.get("options", {}),
            counter,
            fresh=FreshCredentials.of(self.gw, integration),
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
        settings = self.gw.settings
        # One rate budget per store, shared by every process: runs, webhook batches, connect checks and
        # webhook repair all build their clients here (gateway/ratebudget.py).
        rate_state = RedisRateState.for_store(self.gw.redis, store_url)

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
    ) -> Doc:
        """Check the credentials, register webhooks, save (sealed), queue the first full sync."""
        if platform not in self.gw.registry.adapters:
            installed = ", ".join(sorted(self.gw.registry.adapters))
            raise BadInput(f"unknown platform {platform!r}; installed platforms: {installed}", field="platform")
        adapter = self.adapter(platform)
        name = check_name(name)
        url = check_store_url(store_url, allow_private=self.gw.settings.allow_private_urls)
        creds = _validate_credentials(adapter, credentials)
        integration_id = uuid.uuid4().hex
        counter = CallCounter(integration_id)
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
        extra: Mapping[str, Any] | None = None,
    ) -> Doc:
        """What connecting does once the store accepted the credentials (with pasted keys or through an
        install flow): register webhooks, save the integration with its credentials sealed, log it, queue
        the first full sync. `conn` is the checked connection; its integration id becomes the
        integration's. `extra` adds fields (the install flow's store key and token lifetimes)."""
        platform = adapter.info.id
        integration_id = conn.integration_id
        url = conn.store_url
        callback = f"{self.gw.settings.public_url.rstrip('/')}/webhooks/{platform}/{integration_id}"
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
        webhooks["checked_at"] = self.gw.now()
        now = self.gw.now()
        mode = mode or SyncMode.AUTOMATIC
        frequency = frequency or SyncFrequency.EVERY_HOUR
        doc: Doc = {
            "_id": integration_id,
            "account_id": account_id,
            "platform": platform,
            "name": name,
            "store_url": url,
            "credentials": self.gw.box.seal({**creds, **secrets}, _context(account_id, integration_id)),
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
            **(extra or {}),
        }
        await self.gw.db.integrations.insert_one(doc)
        if counter is not None:
            await counter.flush(self.gw)
        await self.gw.activity.record(
            account_id,
            ActivityKind.INTEGRATION_CONNECTED,
            f"Connected {adapter.info.name} store {name!r}",
            integration_id=integration_id,
        )
        from gateway.syncs import SyncService

        await SyncService(self.gw).queue(doc, Trigger.INITIAL, kind=RunKind.FULL)
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
        anchor: datetime = doc.get("last_sync_at") or self.gw.now()
        next_sync = max(anchor + period, self.gw.now()) if new_mode is SyncMode.AUTOMATIC else None
        updated = await self.gw.db.integrations.find_one_and_update(
            {"_id": integration_id, "account_id": account_id},
            {"$set": {"settings": settings, "next_sync_at": next_sync}},
            return_document=True,
        )
        self.gw.webhook_integrations.pop(integration_id, None)
        if updated is None:
            raise NotFound("no integration with that id", field="integrationId")
        changes = (
            ", ".join(
                f"{k} {doc['settings'].get(k)} -> {v}" for k, v in settings.items() if doc["settings"].get(k) != v
            )
            or "no change"
        )
        await self.gw.activity.record(
            account_id,
            ActivityKind.SETTINGS_CHANGED,
            f"Sync settings changed: {changes}",
            integration_id=integration_id,
        )
        await self.publish_health(updated)
        return dict(updated)

    async def publish_health(self, integration: Doc) -> None:
        health = await self.health(integration)
        await self.gw.publisher.account_event(
            integration["account_id"],
            {
                "kind": EventKind.HEALTH_CHANGED.value,
                "integration_id": integration["_id"],
                "at": self.gw.now(),
                "health": health_doc(health),
            },
        )

    # ---- disconnect ---------------------------------------------------------------------------
    async def disconnect(self, account_id: str, integration_id: str) -> str:
        doc = await self.get(account_id, integration_id)
        active = await self.gw.runs.active(integration_id)
        if active is not None:
            await self.gw.runs.request_cancel(account_id, active["_id"])
        webhooks = doc.get("webhooks", {})
        if webhooks.get("hook_ids"):
            adapter = self.gw.registry.adapters.get(doc["platform"])
            if adapter is not None:
                conn = self.connection(doc, CallCounter(integration_id))
                try:
                    await adapter.remove_webhooks(conn, WebhookRegistration(tuple(webhooks["hook_ids"])))
                except StoreError:
                    log.warning("could not remove webhooks on disconnect", extra={"integration_id": integration_id})
                finally:
                    await conn.close()
        db = self.gw.db
        await db.integrations.delete_one({"_id": integration_id, "account_id": account_id})
        self.gw.webhook_integrations.pop(integration_id, None)
        await db.queue.delete_many({"integration_id": integration_id})
        for collection in (db.products, db.runs, db.conflicts, db.deliveries):
            await collection.delete_many({"integration_id": integration_id})
        await db.api_calls.delete_many({"integration_id": integration_id})
        await self.gw.activity.record(
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
