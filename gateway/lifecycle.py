"""What happens to an integration between connecting and disconnecting, outside of syncing: credentials
the store stopped accepting, the app removed from the store, a reconnect that restores it in place, and
a platform's request to erase a store's data.

- Credentials rejected (a 401 from the store, a refresh refused with invalid_grant): the integration is
  paused (no scheduled runs, no webhook applies), health RED with RECONNECT, CREDENTIALS_REJECTED logged
  once (the flag is set with a conditional update; later 401s change nothing).
- App uninstalled (Shopify app/uninstalled, BigCommerce uninstall): every integration connected through
  the app on that store is paused the same way, APP_UNINSTALLED logged once; products stay.
- Restore (reconnectIntegration, or claiming a re-install of a known store): new credentials sealed over
  the old, webhooks checked and re-registered where needed, the pause lifted, INTEGRATION_RECONNECTED
  logged, a full sync queued (trigger INITIAL). Products, overlays, conflicts and history are kept.
- Store redaction (Shopify shop/redact): everything held for the store, in every account, is deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from gateway.activity import ActivityLog
from gateway.adapter import Connection, ConnectMethod, HookState, PlatformAdapter, WebhookRegistration
from gateway.conflict_store import ConflictStore
from gateway.connectstore import AttemptStore, PendingInstalls
from gateway.crypto import SecretBox
from gateway.deliveries import DeliveryStore
from gateway.domain import ActivityKind, RunKind, Trigger, WebhookState
from gateway.errors import NotFound, StoreError
from gateway.healthwatch import HealthWatch
from gateway.installflow import InstallFlow
from gateway.integration_store import Integration, IntegrationStore, TokenLifetimes
from gateway.products import ProductStore
from gateway.runs import RunStore
from gateway.settings import Settings
from gateway.syncs import SyncService

log = logging.getLogger(__name__)


def registration_of(integration: Integration, credentials: Mapping[str, str]) -> WebhookRegistration:
    """The integration's webhook registration: its hook ids and the secrets sealed beside the credentials."""
    names = set(integration.credential_names)
    secrets = {k: v for k, v in credentials.items() if k not in names}
    return WebhookRegistration(integration.webhooks.hook_ids, secrets)


def callback_url(settings: Settings, platform: str, integration_id: str) -> str:
    """Where a store delivers an integration's webhooks."""
    return f"{settings.public_url.rstrip('/')}/webhooks/{platform}/{integration_id}"


def callback_of(settings: Settings, integration: Integration) -> str:
    """The callback the integration's webhooks were registered with (or would be)."""
    return integration.webhooks.callback_url or callback_url(settings, integration.platform, integration.id)


class LifecycleService:
    def __init__(
        self,
        *,
        store: IntegrationStore,
        runs: RunStore,
        products: ProductStore,
        conflicts: ConflictStore,
        deliveries: DeliveryStore,
        activity: ActivityLog,
        attempts: AttemptStore,
        pending: PendingInstalls,
        health: HealthWatch,
        syncs: SyncService,
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
        self.attempts = attempts
        self.pending = pending
        self.health = health
        self.syncs = syncs
        self.box = box
        self.settings = settings
        self.clock = clock

    # ---- credentials that stop working ----------------------------------------------------------------
    async def credentials_rejected(self, integration: Integration, reason: str) -> bool:
        """Pause the integration (RED, RECONNECT); logs CREDENTIALS_REJECTED the first time only."""
        updated = await self.store.mark_credentials_rejected(integration.id, reason[:300], self.clock())
        if updated is None:
            return False
        await self.activity.record(
            updated.account_id,
            ActivityKind.CREDENTIALS_REJECTED,
            f"Your store stopped accepting Alana's credentials ({reason[:200]}). Syncing is paused until you "
            "reconnect the store; your products are kept.",
            integration_id=updated.id,
        )
        await self.health.refresh(updated.id)
        log.warning("store credentials rejected", extra={"integration_id": updated.id})
        return True

    # ---- the app's lifecycle on the platform ---------------------------------------------------------------
    async def find_by_store(
        self, platform: str, store_key: str, flow: InstallFlow | None, *, via_app_only: bool = False
    ) -> list[Integration]:
        """Integrations (in every account) of the store a platform names by `store_key`.

        Integrations connected with pasted keys before their store key was known get it computed from
        their store URL (and remembered) the first time."""
        found = await self.store.by_store_key(platform, store_key, via_app_only=via_app_only)
        if flow is None or via_app_only:
            return found
        for integration in await self.store.without_store_key(platform):
            key = flow.store_key_for(integration.store_url) or ""
            await self.store.set_store_key(integration.id, key)
            if key == store_key:
                found.append(replace(integration, store_key=key))
        return found

    async def _cancel_active(self, integration: Integration) -> None:
        active = await self.runs.active(integration.id)
        if active is not None:
            await self.runs.request_cancel(integration.account_id, active.id)

    async def uninstalled(self, platform: str, store_key: str, flow: InstallFlow | None, name: str) -> int:
        """The app was removed from the store: pause every integration connected through it."""
        count = 0
        for integration in await self.find_by_store(platform, store_key, flow, via_app_only=True):
            updated = await self.store.mark_uninstalled(integration.id, self.clock())
            if updated is None:
                continue  # a redelivery: already handled
            count += 1
            await self._cancel_active(updated)
            await self.activity.record(
                updated.account_id,
                ActivityKind.APP_UNINSTALLED,
                f"The Alana app was removed from your {name} store, so syncing has stopped. Your products are "
                "kept; reconnect the store to resume.",
                integration_id=updated.id,
            )
            await self.health.refresh(updated.id)
        # An install nobody claimed yet is void once the app is gone.
        await self.pending.delete_for_store(platform, store_key)
        log.info("app uninstalled", extra={"platform": platform, "integrations": count})
        return count

    async def user_removed(
        self, platform: str, store_key: str, flow: InstallFlow | None, name: str, user: Mapping[str, str]
    ) -> int:
        found = await self.find_by_store(platform, store_key, flow, via_app_only=True)
        who = f" (user {user['user_id']})" if user.get("user_id") else ""
        for integration in found:
            await self.activity.record(
                integration.account_id,
                ActivityKind.APP_USER_REMOVED,
                f"A {name} store user{who} lost access to the Alana app. Syncing is not affected.",
                integration_id=integration.id,
            )
        return len(found)

    async def redact_store(self, platform: str, store_key: str, flow: InstallFlow | None) -> int:
        """Delete everything held for the store in every account (Shopify's shop/redact)."""
        found = await self.find_by_store(platform, store_key, flow)
        for integration in found:
            await self._cancel_active(integration)
            await self.store.erase(integration.id)
            await self.products.delete_integration(integration.id)
            await self.runs.delete_integration(integration.id)
            await self.conflicts.delete_integration(integration.id)
            await self.deliveries.delete_integration(integration.id)
            await self.activity.delete_integration(integration.id)
            await self.attempts.delete_integration(integration.id)
        await self.pending.delete_for_store(platform, store_key)
        await self.attempts.delete_for_store(platform, store_key)
        log.info(
            "store data erased on the platform's request", extra={"platform": platform, "integrations": len(found)}
        )
        return len(found)

    # ---- reconnecting in place ---------------------------------------------------------------------------
    async def restore(
        self,
        integration: Integration,
        adapter: PlatformAdapter,
        conn: Connection,
        credentials: Mapping[str, str],
        *,
        via: ConnectMethod,
        tokens: TokenLifetimes | None = None,
        store_key: str | None = None,
    ) -> Integration:
        """Give an integration new (already checked) credentials and lift its pause; everything else is kept."""
        integration_id = integration.id
        old = self.box.open(integration.credentials, integration.seal_context) if integration.credentials else {}
        registration = registration_of(integration, old)
        webhooks = integration.webhooks
        callback = callback_of(self.settings, integration)
        repaired: list[str] = []
        try:
            if webhooks.state is WebhookState.REGISTERED and registration.hook_ids:
                statuses = await adapter.webhook_status(conn, registration, callback)
                if any(s.state is not HookState.ACTIVE for s in statuses):
                    repair = await adapter.repair_webhooks(conn, registration, callback)
                    registration = repair.registration
                    repaired = [s.topic for s in repair.repaired]
            else:
                registration = await adapter.register_webhooks(conn, callback)
                repaired = ["all"] if registration.hook_ids else []
            kept = replace(
                webhooks,
                state=WebhookState.REGISTERED,
                hook_ids=tuple(registration.hook_ids),
                callback_url=callback,
                error=None,
                repair_error=None,
                silent=False,
                checked_at=self.clock(),
            )
        except StoreError as exc:
            log.warning("webhook registration failed on reconnect", extra={"integration_id": integration_id})
            kept = replace(webhooks, state=WebhookState.FAILED, callback_url=callback, error=exc.message)
        restored = await self.store.restore(
            integration_id,
            credentials=self.box.seal({**credentials, **registration.secrets}, integration.seal_context),
            credential_names=tuple(sorted(credentials)),
            connected_via=via,
            tokens=tokens,
            webhooks=kept,
            at=self.clock(),
            store_key=store_key,
        )
        if restored is None:
            raise NotFound("the integration was disconnected meanwhile", field="integrationId")
        account_id = restored.account_id
        await self.activity.record(
            account_id,
            ActivityKind.INTEGRATION_RECONNECTED,
            f"Reconnected {restored.name!r}: products, Alana's edits, conflicts and history are kept; a full "
            "sync catches up what changed meanwhile",
            integration_id=integration_id,
        )
        if repaired:
            await self.activity.record(
                account_id,
                ActivityKind.WEBHOOKS_REREGISTERED,
                "Change notifications from your store were registered again after reconnecting"
                + ("" if repaired == ["all"] else f" ({', '.join(repaired)})"),
                integration_id=integration_id,
            )
        await self.syncs.queue(restored, Trigger.INITIAL, kind=RunKind.FULL)
        await self.health.refresh(integration_id)
        return restored
