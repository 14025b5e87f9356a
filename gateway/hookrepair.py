"""Webhook repair: the scheduler asks each store whether the webhooks the gateway registered still work,
at least daily and sooner after a delivery gap, and registers again what was removed or disabled.

Webhooks die quietly on every platform (docs/reference/CONNECT.md): WooCommerce disables a hook after
repeated failed deliveries, BigCommerce deactivates one after ~48 h of retries, Shopify removes failing
subscriptions, uninstalls delete them all. An integration is checked when
- its last check is older than GATEWAY_WEBHOOK_CHECK_INTERVAL (a day), or
- since GATEWAY_WEBHOOK_RECHECK_INTERVAL (15 minutes): a scheduled run found changes the webhooks had
  not delivered (`webhooks.silent`, the delivery gap), the registration failed, or the last repair did.
Claiming a check is one conditional update on `webhooks.checked_at`, so with any number of workers one
does it. A repair logs WEBHOOKS_REREGISTERED and queues a full run that catches up what the dead hook
missed (deletions included); while a repair fails the light shows YELLOW with REREGISTER_WEBHOOKS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from gateway.activity import ActivityLog
from gateway.adapter import HookState, WebhookRegistration
from gateway.crypto import SecretBox
from gateway.domain import ActivityKind, RunKind, Trigger, WebhookState
from gateway.errors import StoreAuthError, StoreError
from gateway.healthwatch import HealthWatch
from gateway.integration_store import Integration, IntegrationStore
from gateway.integrations import IntegrationService
from gateway.lifecycle import LifecycleService, callback_of, registration_of
from gateway.plugins import PluginRegistry
from gateway.settings import Settings
from gateway.syncs import SyncService

log = logging.getLogger(__name__)


class WebhookRepairService:
    def __init__(
        self,
        *,
        store: IntegrationStore,
        integrations: IntegrationService,
        lifecycle: LifecycleService,
        syncs: SyncService,
        activity: ActivityLog,
        health: HealthWatch,
        box: SecretBox,
        registry: PluginRegistry,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.integrations = integrations
        self.lifecycle = lifecycle
        self.syncs = syncs
        self.activity = activity
        self.health = health
        self.box = box
        self.registry = registry
        self.settings = settings
        self.clock = clock

    async def check_due(self, limit: int = 20) -> list[str]:
        """Check (and repair) the integrations that are due; returns the ids this process checked."""
        now = self.clock()
        daily = now - timedelta(seconds=self.settings.webhook_check_seconds)
        soon = now - timedelta(seconds=self.settings.webhook_recheck_seconds)
        checked: list[str] = []
        for integration_id, last_checked in await self.store.webhook_checks_due(daily, soon, limit):
            claimed = await self.store.claim_webhook_check(integration_id, last_checked, self.clock())
            if claimed is None:
                continue  # another worker took it
            try:
                await self.check(claimed)
            except Exception:  # noqa: BLE001 - one store's problem must not stop the others' checks
                log.exception("webhook check failed", extra={"integration_id": claimed.id})
            checked.append(claimed.id)
        return checked

    async def check(self, integration: Integration) -> bool:
        """Ask the store about the integration's webhooks and repair what is not active; True when repaired."""
        adapter = self.registry.adapters.get(integration.platform)
        if adapter is None or "webhooks" not in adapter.info.capabilities:
            return False
        counter = self.integrations.counter(integration.id)
        conn = self.integrations.connection(integration, counter)
        webhooks = integration.webhooks
        callback = callback_of(self.settings, integration)
        registration = registration_of(integration, conn.credentials)
        fresh_registration = False
        try:
            if webhooks.state is WebhookState.FAILED or not registration.hook_ids:
                repaired = await adapter.register_webhooks(conn, callback)
                fresh_registration = True
                topics = ["every topic"] if repaired.hook_ids else []
            else:
                statuses = await adapter.webhook_status(conn, registration, callback)
                broken = [s for s in statuses if s.state is not HookState.ACTIVE]
                if not broken:
                    await self._clear_repair_error(integration)
                    return False
                repair = await adapter.repair_webhooks(conn, registration, callback)
                repaired = repair.registration
                topics = [f"{s.topic} ({s.detail or s.state.value.lower()})" for s in repair.repaired or broken]
        except StoreAuthError as exc:
            await self.lifecycle.credentials_rejected(integration, exc.message)
            return False
        except StoreError as exc:
            log.warning("webhook repair failed", extra={"integration_id": integration.id})
            if await self.store.record_webhook_check(integration.id, exc.message[:300]) is not None:
                await self.health.refresh(integration.id)
            return False
        finally:
            await conn.close()
            await counter.flush()
        if not topics:
            await self._clear_repair_error(integration)
            return False
        if fresh_registration and repaired.secrets:
            await self._store_secrets(integration.id, repaired)
        updated = await self.store.record_webhook_repair(integration.id, repaired.hook_ids, callback, self.clock())
        if updated is None:
            return False
        await self.activity.record(
            updated.account_id,
            ActivityKind.WEBHOOKS_REREGISTERED,
            f"Change notifications from your store had stopped ({'; '.join(topics)[:300]}). Alana registered them "
            "again and queued a sync to catch up what they missed.",
            integration_id=updated.id,
        )
        await self.syncs.queue(updated, Trigger.SCHEDULED, kind=RunKind.FULL)
        await self.health.refresh(updated.id)
        log.info("webhooks re-registered", extra={"integration_id": updated.id})
        return True

    async def _clear_repair_error(self, integration: Integration) -> None:
        await self.store.record_webhook_check(integration.id, None)
        if integration.webhooks.repair_error:
            await self.health.refresh(integration.id)  # the YELLOW of a failed repair no longer holds

    async def _store_secrets(self, integration_id: str, registration: WebhookRegistration) -> None:
        """A fresh registration's secrets, sealed beside the current credentials (re-read: a token may have
        been refreshed meanwhile, and only the pair it replaced may be overwritten)."""
        current = await self.store.get_any(integration_id)
        if current is None:
            return
        names = set(current.credential_names)
        opened = self.integrations.credentials(current)
        kept = {k: v for k, v in opened.items() if k in names}
        sealed = self.box.seal({**kept, **registration.secrets}, current.seal_context)
        await self.store.replace_credentials(current.id, current.credentials, sealed)
