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
from datetime import timedelta
from typing import TYPE_CHECKING

from pymongo import ReturnDocument

from gateway.adapter import HookState, WebhookRegistration
from gateway.domain import ActivityKind, RunKind, Trigger, WebhookState
from gateway.errors import StoreAuthError, StoreError
from gateway.integrations import CallCounter, IntegrationService, seal_context
from gateway.lifecycle import LifecycleService, callback_url, registration_of
from gateway.storage.mongo import Doc
from gateway.syncs import SyncService

if TYPE_CHECKING:
    from gateway.services import Gateway

log = logging.getLogger(__name__)


class WebhookRepairService:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.integrations = IntegrationService(gw)

    def due_query(self) -> Doc:
        now = self.gw.now()
        daily = now - timedelta(seconds=self.gw.settings.webhook_check_seconds)
        soon = now - timedelta(seconds=self.gw.settings.webhook_recheck_seconds)
        return {
            "credentials_rejected": {"$ne": True},
            "app_uninstalled": {"$ne": True},
            "webhooks.state": {"$in": [WebhookState.REGISTERED.value, WebhookState.FAILED.value]},
            "$or": [
                {"webhooks.checked_at": None},
                {"webhooks.checked_at": {"$lt": daily}},
                {"webhooks.silent": True, "webhooks.checked_at": {"$lt": soon}},
                {"webhooks.state": WebhookState.FAILED.value, "webhooks.checked_at": {"$lt": soon}},
                {"webhooks.repair_error": {"$type": "string"}, "webhooks.checked_at": {"$lt": soon}},
            ],
        }

    async def check_due(self, limit: int = 20) -> list[str]:
        """Check (and repair) the integrations that are due; returns the ids this process checked."""
        gw = self.gw
        checked: list[str] = []
        cursor = gw.db.integrations.find(self.due_query(), {"_id": 1, "webhooks.checked_at": 1}).limit(limit)
        for candidate in [doc async for doc in cursor]:
            claimed = await gw.db.integrations.find_one_and_update(
                {"_id": candidate["_id"], "webhooks.checked_at": candidate.get("webhooks", {}).get("checked_at")},
                {"$set": {"webhooks.checked_at": gw.now()}},
                return_document=ReturnDocument.AFTER,
            )
            if claimed is None:
                continue  # another worker took it
            try:
                await self.check(claimed)
            except Exception:  # noqa: BLE001 - one store's problem must not stop the others' checks
                log.exception("webhook check failed", extra={"integration_id": claimed["_id"]})
            checked.append(claimed["_id"])
        return checked

    async def check(self, integration: Doc) -> bool:
        """Ask the store about the integration's webhooks and repair what is not active; True when repaired."""
        gw = self.gw
        adapter = gw.registry.adapters.get(integration["platform"])
        if adapter is None or "webhooks" not in adapter.info.capabilities:
            return False
        counter = CallCounter(integration["_id"])
        conn = self.integrations.connection(integration, counter)
        webhooks = integration.get("webhooks", {})
        callback = callback_url(gw, integration)
        registration = registration_of(integration, conn.credentials)
        fresh_registration = False
        try:
            if webhooks.get("state") == WebhookState.FAILED.value or not registration.hook_ids:
                repaired = await adapter.register_webhooks(conn, callback)
                fresh_registration = True
                topics = ["every topic"] if repaired.hook_ids else []
            else:
                statuses = await adapter.webhook_status(conn, registration, callback)
                broken = [s for s in statuses if s.state is not HookState.ACTIVE]
                if not broken:
                    await self._set(integration, {"webhooks.repair_error": None})
                    return False
                repair = await adapter.repair_webhooks(conn, registration, callback)
                repaired = repair.registration
                topics = [f"{s.topic} ({s.detail or s.state.value.lower()})" for s in repair.repaired or broken]
        except StoreAuthError as exc:
            await LifecycleService(gw).credentials_rejected(integration, exc.message)
            return False
        except StoreError as exc:
            log.warning("webhook repair failed", extra={"integration_id": integration["_id"]})
            updated = await self._set(integration, {"webhooks.repair_error": exc.message[:300]})
            if updated is not None:
                await self.integrations.publish_health(updated)
            return False
        finally:
            await conn.close()
            await counter.flush(gw)
        if not topics:
            await self._set(integration, {"webhooks.repair_error": None})
            return False
        if fresh_registration and repaired.secrets:
            await self._store_secrets(integration, repaired)
        updated = await self._set(
            integration,
            {
                "webhooks.state": WebhookState.REGISTERED.value,
                "webhooks.hook_ids": list(repaired.hook_ids),
                "webhooks.callback_url": callback,
                "webhooks.error": None,
                "webhooks.repair_error": None,
                "webhooks.silent": False,
                "webhooks.repaired_at": gw.now(),
            },
        )
        if updated is None:
            return False
        await gw.activity.record(
            updated["account_id"],
            ActivityKind.WEBHOOKS_REREGISTERED,
            f"Change notifications from your store had stopped ({'; '.join(topics)[:300]}). Alana registered them "
            "again and queued a sync to catch up what they missed.",
            integration_id=updated["_id"],
        )
        await SyncService(gw).queue(updated, Trigger.SCHEDULED, kind=RunKind.FULL)
        await self.integrations.publish_health(updated)
        log.info("webhooks re-registered", extra={"integration_id": updated["_id"]})
        return True

    async def _set(self, integration: Doc, fields: Doc) -> Doc | None:
        self.gw.webhook_integrations.pop(integration["_id"], None)
        return await self.gw.db.integrations.find_one_and_update(
            {"_id": integration["_id"]}, {"$set": fields}, return_document=ReturnDocument.AFTER
        )

    async def _store_secrets(self, integration: Doc, registration: WebhookRegistration) -> None:
        """A fresh registration's secrets, sealed beside the current credentials (re-read: a token may have
        been refreshed meanwhile, and only the pair it replaced may be overwritten)."""
        current = await self.gw.db.integrations.find_one({"_id": integration["_id"]})
        if current is None:
            return
        names = set(current.get("credential_names") or ())
        opened = self.integrations.credentials(current)
        kept = {k: v for k, v in opened.items() if k in names}
        sealed = self.gw.box.seal({**kept, **registration.secrets}, seal_context(current))
        await self.gw.db.integrations.update_one(
            {"_id": current["_id"], "credentials": current["credentials"]}, {"$set": {"credentials": sealed}}
        )
