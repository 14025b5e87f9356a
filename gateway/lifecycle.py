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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from gateway.adapter import Connection, HookState, PlatformAdapter, WebhookRegistration
from gateway.domain import ActivityKind, RunKind, Trigger, WebhookState
from gateway.errors import StoreError
from gateway.installflow import InstallFlow
from gateway.integrations import IntegrationService, seal_context
from gateway.storage.mongo import Doc
from gateway.syncs import SyncService

if TYPE_CHECKING:
    from gateway.services import Gateway

log = logging.getLogger(__name__)

#: Integration.connected_via values.
VIA_INSTALL_FLOW = "INSTALL_FLOW"
VIA_CREDENTIALS = "CREDENTIALS"
#: Fields that pause an integration until it is reconnected.
PAUSED = ("credentials_rejected", "app_uninstalled")


def paused(integration: Mapping[str, Any]) -> bool:
    """Credentials rejected or app removed: nothing may call the store until the merchant reconnects."""
    return any(integration.get(name) for name in PAUSED)


def registration_of(integration: Doc, credentials: Mapping[str, str]) -> WebhookRegistration:
    """The integration's webhook registration: its hook ids and the secrets sealed beside the credentials."""
    names = set(integration.get("credential_names") or ())
    secrets = {k: v for k, v in credentials.items() if k not in names}
    return WebhookRegistration(tuple(integration.get("webhooks", {}).get("hook_ids") or ()), secrets)


def callback_url(gw: Gateway, integration: Doc) -> str:
    stored = integration.get("webhooks", {}).get("callback_url")
    if stored:
        return str(stored)
    return f"{gw.settings.public_url.rstrip('/')}/webhooks/{integration['platform']}/{integration['_id']}"


class LifecycleService:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.integrations = IntegrationService(gw)

    # ---- credentials that stop working ----------------------------------------------------------------
    async def credentials_rejected(self, integration: Doc, reason: str) -> bool:
        """Pause the integration (RED, RECONNECT); logs CREDENTIALS_REJECTED the first time only."""
        gw = self.gw
        updated = await gw.db.integrations.find_one_and_update(
            {"_id": integration["_id"], "credentials_rejected": {"$ne": True}, "app_uninstalled": {"$ne": True}},
            {
                "$set": {
                    "credentials_rejected": True,
                    "credentials_rejected_at": gw.now(),
                    "credentials_rejected_reason": reason[:300],
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        if updated is None:
            return False
        gw.webhook_integrations.pop(integration["_id"], None)
        await gw.activity.record(
            updated["account_id"],
            ActivityKind.CREDENTIALS_REJECTED,
            f"Your store stopped accepting Alana's credentials ({reason[:200]}). Syncing is paused until you "
            "reconnect the store; your products are kept.",
            integration_id=updated["_id"],
        )
        await self.integrations.publish_health(updated)
        log.warning("store credentials rejected", extra={"integration_id": updated["_id"]})
        return True

    # ---- the app's lifecycle on the platform ---------------------------------------------------------------
    async def find_by_store(
        self, platform: str, store_key: str, flow: InstallFlow | None, *, via_app_only: bool = False
    ) -> list[Doc]:
        """Integrations (in every account) of the store a platform names by `store_key`.

        Integrations connected with pasted keys before their store key was known get it computed from
        their store URL (and remembered) the first time."""
        gw = self.gw
        query: Doc = {"platform": platform, "store_key": store_key}
        if via_app_only:
            query["connected_via"] = VIA_INSTALL_FLOW
        found = [doc async for doc in gw.db.integrations.find(query)]
        if flow is None or via_app_only:
            return found
        async for doc in gw.db.integrations.find({"platform": platform, "store_key": None}):
            key = flow.store_key_for(doc["store_url"]) or ""
            await gw.db.integrations.update_one({"_id": doc["_id"]}, {"$set": {"store_key": key}})
            if key == store_key:
                found.append(doc)
        return found

    async def uninstalled(self, platform: str, store_key: str, flow: InstallFlow | None, name: str) -> int:
        """The app was removed from the store: pause every integration connected through it."""
        gw = self.gw
        count = 0
        for integration in await self.find_by_store(platform, store_key, flow, via_app_only=True):
            updated = await gw.db.integrations.find_one_and_update(
                {"_id": integration["_id"], "app_uninstalled": {"$ne": True}},
                {"$set": {"app_uninstalled": True, "app_uninstalled_at": gw.now()}},
                return_document=ReturnDocument.AFTER,
            )
            if updated is None:
                continue  # a redelivery: already handled
            count += 1
            gw.webhook_integrations.pop(updated["_id"], None)
            active = await gw.runs.active(updated["_id"])
            if active is not None:
                await gw.runs.request_cancel(updated["account_id"], active["_id"])
            await gw.activity.record(
                updated["account_id"],
                ActivityKind.APP_UNINSTALLED,
                f"The Alana app was removed from your {name} store, so syncing has stopped. Your products are "
                "kept; reconnect the store to resume.",
                integration_id=updated["_id"],
            )
            await self.integrations.publish_health(updated)
        # An install nobody claimed yet is void once the app is gone.
        await self.gw.db.pending_installs.delete_many({"platform": platform, "store_key": store_key})
        log.info("app uninstalled", extra={"platform": platform, "integrations": count})
        return count

    async def user_removed(
        self, platform: str, store_key: str, flow: InstallFlow | None, name: str, user: Mapping[str, str]
    ) -> int:
        found = await self.find_by_store(platform, store_key, flow, via_app_only=True)
        who = f" (user {user['user_id']})" if user.get("user_id") else ""
        for integration in found:
            await self.gw.activity.record(
                integration["account_id"],
                ActivityKind.APP_USER_REMOVED,
                f"A {name} store user{who} lost access to the Alana app. Syncing is not affected.",
                integration_id=integration["_id"],
            )
        return len(found)

    async def redact_store(self, platform: str, store_key: str, flow: InstallFlow | None) -> int:
        """Delete everything held for the store in every account (Shopify's shop/redact)."""
        db = self.gw.db
        found = await self.find_by_store(platform, store_key, flow)
        for integration in found:
            integration_id = integration["_id"]
            active = await self.gw.runs.active(integration_id)
            if active is not None:
                await self.gw.runs.request_cancel(integration["account_id"], active["_id"])
            await db.integrations.delete_one({"_id": integration_id})
            self.gw.webhook_integrations.pop(integration_id, None)
            for collection in (
                db.products,
                db.runs,
                db.conflicts,
                db.deliveries,
                db.queue,
                db.api_calls,
                db.activity,
                db.connect_attempts,
            ):
                await collection.delete_many({"integration_id": integration_id})
        await db.pending_installs.delete_many({"platform": platform, "store_key": store_key})
        await db.connect_attempts.delete_many({"platform": platform, "store_key": store_key})
        log.info(
            "store data erased on the platform's request", extra={"platform": platform, "integrations": len(found)}
        )
        return len(found)

    # ---- reconnecting in place ---------------------------------------------------------------------------
    async def restore(
        self,
        integration: Doc,
        adapter: PlatformAdapter,
        conn: Connection,
        credentials: Mapping[str, str],
        *,
        via: str,
        tokens: Doc | None = None,
        store_key: str | None = None,
    ) -> Doc:
        """Give an integration new (already checked) credentials and lift its pause; everything else is kept."""
        gw = self.gw
        integration_id = integration["_id"]
        old = self.integrations.credentials(integration)
        registration = registration_of(integration, old)
        webhooks = dict(integration.get("webhooks") or {})
        callback = callback_url(gw, integration)
        repaired: list[str] = []
        try:
            if webhooks.get("state") == WebhookState.REGISTERED.value and registration.hook_ids:
                statuses = await adapter.webhook_status(conn, registration, callback)
                if any(s.state is not HookState.ACTIVE for s in statuses):
                    repair = await adapter.repair_webhooks(conn, registration, callback)
                    registration = repair.registration
                    repaired = [s.topic for s in repair.repaired]
            else:
                registration = await adapter.register_webhooks(conn, callback)
                repaired = ["all"] if registration.hook_ids else []
            webhook_doc: Doc = {
                **webhooks,
                "state": WebhookState.REGISTERED.value,
                "hook_ids": list(registration.hook_ids),
                "callback_url": callback,
                "error": None,
                "repair_error": None,
                "silent": False,
                "checked_at": gw.now(),
            }
        except StoreError as exc:
            log.warning("webhook registration failed on reconnect", extra={"integration_id": integration_id})
            webhook_doc = {
                **webhooks,
                "state": WebhookState.FAILED.value,
                "callback_url": callback,
                "error": exc.message,
            }
        update: Doc = {
            "credentials": gw.box.seal({**credentials, **registration.secrets}, seal_context(integration)),
            "credential_names": sorted(credentials),
            "credentials_rejected": False,
            "app_uninstalled": False,
            "credentials_rejected_reason": None,
            "connected_via": via,
            "tokens": tokens,
            "webhooks": webhook_doc,
            "reconnected_at": gw.now(),
        }
        if store_key:
            update["store_key"] = store_key
        restored = await gw.db.integrations.find_one_and_update(
            {"_id": integration_id}, {"$set": update}, return_document=ReturnDocument.AFTER
        )
        if restored is None:
            from gateway.errors import NotFound

            raise NotFound("the integration was disconnected meanwhile", field="integrationId")
        gw.webhook_integrations.pop(integration_id, None)
        account_id = restored["account_id"]
        await gw.activity.record(
            account_id,
            ActivityKind.INTEGRATION_RECONNECTED,
            f"Reconnected {restored['name']!r}: products, Alana's edits, conflicts and history are kept; a full "
            "sync catches up what changed meanwhile",
            integration_id=integration_id,
        )
        if repaired:
            await gw.activity.record(
                account_id,
                ActivityKind.WEBHOOKS_REREGISTERED,
                "Change notifications from your store were registered again after reconnecting"
                + ("" if repaired == ["all"] else f" ({', '.join(repaired)})"),
                integration_id=integration_id,
            )
        await SyncService(gw).queue(restored, Trigger.INITIAL, kind=RunKind.FULL)
        await self.integrations.publish_health(restored)
        return restored
