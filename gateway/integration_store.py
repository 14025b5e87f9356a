"""Connected stores in MongoDB: the integration documents and the store API calls counted per hour.

Data access only: what the documents hold and how they change. Connecting, settings and
disconnecting (the workflows) are gateway.integrations; credentials arrive here already sealed.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from gateway.adapter import ConnectMethod
from gateway.domain import HealthAction, HealthStatus, SyncFrequency, SyncMode, WebhookState
from gateway.storage.mongo import Database, Doc, update_and_read

#: The webhook endpoint may read an integration this old: a burst of deliveries costs one read.
CACHE_SECONDS = 2.0
#: The share of an entry's life after which its next use reads it again in the background.
REFRESH_AFTER = 0.25
CACHE_LIMIT = 1_000
MILLISECOND = timedelta(milliseconds=1)
#: Earlier than any scheduled time: the lower bound that keeps range queries on `next_sync_at` indexed.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SyncSettings:
    mode: SyncMode = SyncMode.AUTOMATIC
    frequency: SyncFrequency = SyncFrequency.EVERY_HOUR


@dataclass(frozen=True)
class WebhookInfo:
    """The store's change notifications: registered or not, and whether they still arrive."""

    state: WebhookState = WebhookState.NONE
    hook_ids: tuple[str, ...] = ()
    callback_url: str | None = None
    error: str | None = None
    last_delivery_at: datetime | None = None
    #: Changes reached the gateway only through a scheduled run: deliveries may not be arriving.
    silent: bool = False
    #: When the scheduler last asked the store about the registration (gateway.hookrepair).
    checked_at: datetime | None = None
    #: Why the last repair failed; None once one succeeds (health YELLOW meanwhile).
    repair_error: str | None = None
    repaired_at: datetime | None = None

    @classmethod
    def from_doc(cls, doc: Doc) -> WebhookInfo:
        return cls(
            state=WebhookState(doc.get("state", WebhookState.NONE)),
            hook_ids=tuple(doc.get("hook_ids") or ()),
            callback_url=doc.get("callback_url"),
            error=doc.get("error"),
            last_delivery_at=doc.get("last_delivery_at"),
            silent=bool(doc.get("silent")),
            checked_at=doc.get("checked_at"),
            repair_error=doc.get("repair_error"),
            repaired_at=doc.get("repaired_at"),
        )

    def to_doc(self) -> Doc:
        return {
            "state": self.state.value,
            "hook_ids": list(self.hook_ids),
            "callback_url": self.callback_url,
            "error": self.error,
            "last_delivery_at": self.last_delivery_at,
            "silent": self.silent,
            "checked_at": self.checked_at,
            "repair_error": self.repair_error,
            "repaired_at": self.repaired_at,
        }


@dataclass(frozen=True)
class TokenLifetimes:
    """What an integration keeps, unsealed, about expiring credentials (gateway.tokens refreshes them)."""

    expires_at: datetime
    refresh_expires_at: datetime | None = None
    #: The access token's whole lifetime in seconds, as issued (a refresh is due a third of it ahead).
    lifetime: float | None = None
    scopes: tuple[str, ...] = ()

    @classmethod
    def from_doc(cls, doc: Any) -> TokenLifetimes | None:
        if not isinstance(doc, Mapping) or not isinstance(doc.get("expires_at"), datetime):
            return None
        lifetime = doc.get("lifetime")
        return cls(
            expires_at=doc["expires_at"],
            refresh_expires_at=doc.get("refresh_expires_at"),
            lifetime=float(lifetime) if isinstance(lifetime, int | float) else None,
            scopes=tuple(doc.get("scopes") or ()),
        )

    def to_doc(self) -> Doc:
        return {
            "expires_at": self.expires_at,
            "refresh_expires_at": self.refresh_expires_at,
            "lifetime": self.lifetime,
            "scopes": list(self.scopes),
        }


@dataclass(frozen=True)
class HealthMark:
    """The light as last published for the integration (what decides whether a change is news)."""

    status: HealthStatus
    reason: str | None
    action: HealthAction | None


@dataclass(frozen=True)
class Integration:
    id: str
    account_id: str
    platform: str
    name: str
    store_url: str
    created_at: datetime
    settings: SyncSettings = field(default_factory=SyncSettings)
    webhooks: WebhookInfo = field(default_factory=WebhookInfo)
    #: Credentials and webhook secrets, sealed (gateway.crypto); opened only to talk to the store.
    credentials: str | None = field(default=None, repr=False)
    credential_names: tuple[str, ...] = ()
    #: The platform plugin's own options (page sizes, thresholds), as given at connect.
    options: Mapping[str, Any] = field(default_factory=dict)
    next_sync_at: datetime | None = None
    last_full_sync_at: datetime | None = None
    last_sync_at: datetime | None = None
    #: Where the next incremental run starts (the newest store change seen).
    sync_cursor: datetime | None = None
    pending_changes: int = 0
    credentials_rejected: bool = False
    credentials_rejected_reason: str | None = None
    #: The app was removed from the store on the platform (gateway.lifecycle).
    app_uninstalled: bool = False
    health: HealthMark | None = None
    #: How it was connected: pasted keys or the platform's install flow (None: before install flows).
    connected_via: ConnectMethod | None = None
    #: The platform's stable name of the store (gateway.installflow), once known.
    store_key: str | None = None
    #: Lifetimes of expiring credentials; None for credentials that do not expire.
    tokens: TokenLifetimes | None = None
    #: What the platform said about the approving account at install (ids, never secrets).
    app_account: Mapping[str, Any] = field(default_factory=dict)
    reconnected_at: datetime | None = None

    @property
    def paused(self) -> bool:
        """Credentials rejected or app removed: nothing may call the store until the merchant reconnects."""
        return self.credentials_rejected or self.app_uninstalled

    @property
    def seal_context(self) -> str:
        """What the sealed credentials are bound to (a blob copied to another integration fails to open)."""
        return seal_context(self.account_id, self.id)

    @classmethod
    def from_doc(cls, doc: Doc) -> Integration:
        settings = doc.get("settings") or {}
        health = doc.get("health")
        via = doc.get("connected_via")
        return cls(
            id=doc["_id"],
            account_id=doc["account_id"],
            platform=doc["platform"],
            name=doc["name"],
            store_url=doc["store_url"],
            created_at=doc["created_at"],
            settings=SyncSettings(
                SyncMode(settings.get("mode", SyncMode.AUTOMATIC)),
                SyncFrequency(settings.get("frequency", SyncFrequency.EVERY_HOUR)),
            ),
            webhooks=WebhookInfo.from_doc(doc.get("webhooks") or {}),
            credentials=doc.get("credentials"),
            credential_names=tuple(doc.get("credential_names") or ()),
            options=dict(doc.get("options") or {}),
            next_sync_at=doc.get("next_sync_at"),
            last_full_sync_at=doc.get("last_full_sync_at"),
            last_sync_at=doc.get("last_sync_at"),
            sync_cursor=doc.get("sync_cursor"),
            pending_changes=int(doc.get("pending_changes") or 0),
            credentials_rejected=bool(doc.get("credentials_rejected")),
            credentials_rejected_reason=doc.get("credentials_rejected_reason"),
            app_uninstalled=bool(doc.get("app_uninstalled")),
            connected_via=ConnectMethod(via) if via else None,
            store_key=doc.get("store_key"),
            tokens=TokenLifetimes.from_doc(doc.get("tokens")),
            app_account=dict(doc.get("app_account") or {}),
            reconnected_at=doc.get("reconnected_at"),
            health=None
            if not health
            else HealthMark(
                HealthStatus(health["status"]),
                health.get("reason"),
                HealthAction(health["action"]) if health.get("action") else None,
            ),
        )

    def to_doc(self) -> Doc:
        return {
            "_id": self.id,
            "account_id": self.account_id,
            "platform": self.platform,
            "name": self.name,
            "store_url": self.store_url,
            "created_at": self.created_at,
            "settings": {"mode": self.settings.mode.value, "frequency": self.settings.frequency.value},
            "webhooks": self.webhooks.to_doc(),
            "credentials": self.credentials,
            "credential_names": list(self.credential_names),
            "options": dict(self.options),
            "next_sync_at": self.next_sync_at,
            "last_full_sync_at": self.last_full_sync_at,
            "last_sync_at": self.last_sync_at,
            "sync_cursor": self.sync_cursor,
            "pending_changes": self.pending_changes,
            "credentials_rejected": self.credentials_rejected,
            "credentials_rejected_reason": self.credentials_rejected_reason,
            "app_uninstalled": self.app_uninstalled,
            "connected_via": self.connected_via.value if self.connected_via else None,
            "store_key": self.store_key,
            "tokens": self.tokens.to_doc() if self.tokens else None,
            "app_account": dict(self.app_account),
            "reconnected_at": self.reconnected_at,
        }


def seal_context(account_id: str, integration_id: str) -> str:
    """What an integration's sealed credentials are bound to."""
    return f"{account_id}/{integration_id}"


def _one(doc: Doc | None) -> Integration | None:
    return None if doc is None else Integration.from_doc(doc)


class IntegrationStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: Integrations as recently read, for `get_cached`; every write through this store drops the
        #: entry, so in this process a change is seen at once (other processes: within CACHE_SECONDS).
        self._cache: dict[str, tuple[float, Integration]] = {}
        #: Reads in flight for `get_cached`: a burst of deliveries arriving together on a cold (or just
        #: expired) entry shares one read instead of each sending its own.
        self._loading: dict[str, asyncio.Future[Integration | None]] = {}

    # ---- reads --------------------------------------------------------------------------------
    async def list(self, account_id: str) -> list[Integration]:
        cursor = self.db.integrations.find({"account_id": account_id}).sort([("created_at", 1)])
        return [Integration.from_doc(doc) async for doc in cursor]

    async def get(self, account_id: str, integration_id: str) -> Integration | None:
        return _one(await self.db.integrations.find_one({"_id": integration_id, "account_id": account_id}))

    async def get_any(self, integration_id: str) -> Integration | None:
        """For workers and webhooks, which act for the integration's own account."""
        return _one(await self.db.integrations.find_one({"_id": integration_id}))

    async def get_many_any(self, integration_ids: Sequence[str]) -> dict[str, Integration]:
        """`get_any` for several integrations in one read; those that are gone are missing."""
        found: dict[str, Integration] = {}
        async for doc in self.db.integrations.find({"_id": {"$in": list(integration_ids)}}):
            integration = _one(doc)
            if integration is not None:
                found[integration.id] = integration
        return found

    async def get_cached(self, integration_id: str) -> Integration | None:
        """`get_any`, answered from memory when read within the last CACHE_SECONDS.

        An entry in use is read again in the background once REFRESH_AFTER of its life has passed, and
        answers meanwhile: a steady stream of deliveries never waits for the read (under a bulk edit
        the database can take a second to answer, and every delivery of that second would wait)."""
        cached = self._cache.get(integration_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            if cached[0] - now < CACHE_SECONDS * (1 - REFRESH_AFTER) and integration_id not in self._loading:
                self._start_load(integration_id)
            return cached[1]
        # Shielded: a caller that goes away does not cancel the read the others wait for.
        return await asyncio.shield(self._loading.get(integration_id) or self._start_load(integration_id))

    def _start_load(self, integration_id: str) -> asyncio.Future[Integration | None]:
        loading = asyncio.ensure_future(self._load(integration_id))
        # Read here too, so a read nobody waits for any more (its callers went away) logs nothing.
        loading.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._loading[integration_id] = loading
        return loading

    async def _load(self, integration_id: str) -> Integration | None:
        mine = asyncio.current_task()
        try:
            doc = await self.get_any(integration_id)
            # Not cached when a write dropped the entry meanwhile (the read may predate the write), nor
            # when the integration is missing: a store pings its hook while it is still being saved.
            current = self._loading.get(integration_id)
            if doc is not None and current is not None and current is mine:
                if len(self._cache) > CACHE_LIMIT:
                    self._cache.clear()
                self._cache[integration_id] = (time.monotonic() + CACHE_SECONDS, doc)
            return doc
        finally:
            if self._loading.get(integration_id) is mine:
                del self._loading[integration_id]

    def _forget(self, integration_id: str) -> None:
        """A write changed the integration: the cached copy, and any read in flight, are stale."""
        self._cache.pop(integration_id, None)
        self._loading.pop(integration_id, None)

    async def exists(self, integration_id: str) -> bool:
        return await self.db.integrations.count_documents({"_id": integration_id}) > 0

    async def next_due_at(self, before: datetime) -> datetime | None:
        """When the next scheduled sync of any automatic integration falls due, if that is before
        `before` (None: nothing falls due until then).

        A bounded range on the `next_sync_at` index, not a sort: the embedded server walks the whole
        collection for a sort with a limit, and for a range open at the bottom (nulls sort first)."""
        cursor = self.db.integrations.find(
            {"settings.mode": SyncMode.AUTOMATIC.value, "next_sync_at": {"$gte": EPOCH, "$lt": before}},
            {"next_sync_at": 1},
        )
        found: builtins.list[datetime] = [doc["next_sync_at"] async for doc in cursor]
        return min(found, default=None)

    # ---- writes -------------------------------------------------------------------------------
    async def insert(self, integration: Integration, store_identity: str | None = None) -> Integration | None:
        """Save a new integration; None when saved. With `store_identity` (which store it is), the database
        keeps one integration per store and account: the one already holding it comes back instead."""
        doc = integration.to_doc()
        if store_identity is not None:
            doc["store_identity"] = store_identity
        try:
            await self.db.integrations.insert_one(doc)
        except DuplicateKeyError:
            if store_identity is None:
                raise
            found = await self.db.integrations.find_one(
                {"account_id": integration.account_id, "store_identity": store_identity}
            )
            if found is None:  # pragma: no cover - disconnected in between: the caller may try again
                raise
            return Integration.from_doc(found)
        return None

    async def _update(self, query: Doc, update: Doc) -> Integration | None:
        self._forget(query["_id"])
        return _one(await update_and_read(self.db.integrations, query, update))

    async def update_settings(
        self, account_id: str, integration_id: str, settings: SyncSettings, next_sync_at: datetime | None
    ) -> Integration | None:
        fields = {
            "settings": {"mode": settings.mode.value, "frequency": settings.frequency.value},
            "next_sync_at": next_sync_at,
        }
        return await self._update({"_id": integration_id, "account_id": account_id}, {"$set": fields})

    async def record_sync(
        self,
        integration_id: str,
        at: datetime,
        *,
        full: bool,
        sync_cursor: datetime | None,
        webhooks_silent: bool | None,
        pending_changes: int | None = None,
    ) -> Integration | None:
        """A run succeeded at `at`: the last-sync times, the incremental cursor, the flags it settles, and
        (after a Sync Now of the whole store) how many changes still wait: those that arrived meanwhile."""
        fields: Doc = {"last_sync_at": at, "credentials_rejected": False}
        if pending_changes is not None:
            fields["pending_changes"] = pending_changes
        if full:
            fields["last_full_sync_at"] = at
        if sync_cursor is not None:
            fields["sync_cursor"] = sync_cursor
        if webhooks_silent is not None:
            fields["webhooks.silent"] = webhooks_silent
        return await self._update({"_id": integration_id}, {"$set": fields})

    # ---- the lifecycle between connecting and disconnecting (gateway.lifecycle) ----------------
    async def mark_credentials_rejected(self, integration_id: str, reason: str, at: datetime) -> Integration | None:
        """Pause the integration; None when it already was paused (so the first rejection alone is news)."""
        query: Doc = {"_id": integration_id, "credentials_rejected": {"$ne": True}, "app_uninstalled": {"$ne": True}}
        fields = {"credentials_rejected": True, "credentials_rejected_at": at, "credentials_rejected_reason": reason}
        return await self._update(query, {"$set": fields})

    async def mark_uninstalled(self, integration_id: str, at: datetime) -> Integration | None:
        """The app was removed from the store; None when that was known already (a redelivery)."""
        query: Doc = {"_id": integration_id, "app_uninstalled": {"$ne": True}}
        return await self._update(query, {"$set": {"app_uninstalled": True, "app_uninstalled_at": at}})

    async def by_store_key(
        self, platform: str, store_key: str, *, via_app_only: bool = False
    ) -> builtins.list[Integration]:
        """Integrations (in every account) of the store the platform names `store_key`."""
        query: Doc = {"platform": platform, "store_key": store_key}
        if via_app_only:
            query["connected_via"] = ConnectMethod.INSTALL_FLOW.value
        return [Integration.from_doc(doc) async for doc in self.db.integrations.find(query)]

    async def without_store_key(self, platform: str) -> builtins.list[Integration]:
        """Integrations connected with pasted keys before their store key was known."""
        cursor = self.db.integrations.find({"platform": platform, "store_key": None})
        return [Integration.from_doc(doc) async for doc in cursor]

    async def set_store_key(self, integration_id: str, store_key: str) -> None:
        await self._update({"_id": integration_id}, {"$set": {"store_key": store_key}})

    async def restore(
        self,
        integration_id: str,
        *,
        credentials: str,
        credential_names: tuple[str, ...],
        connected_via: ConnectMethod,
        tokens: TokenLifetimes | None,
        webhooks: WebhookInfo,
        at: datetime,
        store_key: str | None,
    ) -> Integration | None:
        """New (sealed) credentials for an integration, its pause lifted; None when it is gone."""
        fields: Doc = {
            "credentials": credentials,
            "credential_names": list(credential_names),
            "credentials_rejected": False,
            "app_uninstalled": False,
            "credentials_rejected_reason": None,
            "connected_via": connected_via.value,
            "tokens": tokens.to_doc() if tokens else None,
            "webhooks": webhooks.to_doc(),
            "reconnected_at": at,
        }
        if store_key:
            fields["store_key"] = store_key
        return await self._update({"_id": integration_id}, {"$set": fields})

    async def replace_credentials(
        self,
        integration_id: str,
        expected: str | None,
        credentials: str,
        *,
        credential_names: tuple[str, ...] | None = None,
        tokens: TokenLifetimes | None = None,
    ) -> Integration | None:
        """Seal `credentials` over the sealed blob `expected`, only if that still is the stored one (a token
        refresh or webhook secrets never overwrite a newer pair); None when it no longer was."""
        fields: Doc = {"credentials": credentials}
        if credential_names is not None:
            fields["credential_names"] = list(credential_names)
            fields["tokens"] = tokens.to_doc() if tokens else None
        return await self._update({"_id": integration_id, "credentials": expected}, {"$set": fields})

    async def move_store(self, account_id: str, old_url: str, new_url: str) -> None:
        """The store answers at another URL now (the demo's simulated stores after a restart)."""
        self._cache.clear()
        self._loading.clear()
        await self.db.integrations.update_many(
            {"account_id": account_id, "store_url": old_url}, {"$set": {"store_url": new_url}}
        )

    async def erase(self, integration_id: str) -> None:
        """Delete the integration whatever its account (a platform's request to erase a store's data)."""
        self._forget(integration_id)
        await self.db.integrations.delete_one({"_id": integration_id})
        await self.db.api_call_days.delete_many({"integration_id": integration_id})

    # ---- webhook checks (gateway.hookrepair) ------------------------------------------------------
    async def webhook_checks_due(
        self, daily: datetime, soon: datetime, limit: int
    ) -> builtins.list[tuple[str, datetime | None]]:
        """(id, last check) of unpaused integrations whose registration is due a check: last checked before
        `daily`, or before `soon` when deliveries went silent, the registration failed, or a repair did."""
        query: Doc = {
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
        cursor = self.db.integrations.find(query, {"_id": 1, "webhooks.checked_at": 1}).limit(limit)
        return [(doc["_id"], (doc.get("webhooks") or {}).get("checked_at")) async for doc in cursor]

    async def claim_webhook_check(
        self, integration_id: str, last_checked: datetime | None, at: datetime
    ) -> Integration | None:
        """Take the check (one conditional update: with any number of workers, one does it)."""
        query: Doc = {"_id": integration_id, "webhooks.checked_at": last_checked}
        return await self._update(query, {"$set": {"webhooks.checked_at": at}})

    async def record_webhook_check(self, integration_id: str, repair_error: str | None) -> Integration | None:
        """A check found nothing to repair (None), or a repair failed (why)."""
        return await self._update({"_id": integration_id}, {"$set": {"webhooks.repair_error": repair_error}})

    async def record_webhook_repair(
        self, integration_id: str, hook_ids: tuple[str, ...], callback_url: str, at: datetime
    ) -> Integration | None:
        fields = {
            "webhooks.state": WebhookState.REGISTERED.value,
            "webhooks.hook_ids": list(hook_ids),
            "webhooks.callback_url": callback_url,
            "webhooks.error": None,
            "webhooks.repair_error": None,
            "webhooks.silent": False,
            "webhooks.repaired_at": at,
        }
        return await self._update({"_id": integration_id}, {"$set": fields})

    async def mark_deliveries_arriving(self, integration_id: str, at: datetime) -> Integration | None:
        """A delivery arrived: notifications work (the light's "webhooks silent" reason no longer holds)."""
        fields = {"webhooks.last_delivery_at": at, "webhooks.silent": False}
        return await self._update({"_id": integration_id}, {"$set": fields})

    async def claim_due(self, now: datetime, token: str) -> builtins.list[Integration]:
        """Claim every automatic integration whose scheduled sync is due at `now`, for the scheduler tick
        `token`: a few writes however many are due (one per frequency among them), and one read back.

        Each claim moves `next_sync_at` a period on (at least half a period past `now`, so a long outage
        queues one catch-up run, not one per missed period) in the same conditional update that marks it
        with `token`; the condition is `next_sync_at <= now` again, so of any number of schedulers
        ticking together exactly one claims each due run.
        """
        # Bounded below as well: nulls sort first, so an open range walks every unscheduled integration.
        automatic = {"settings.mode": SyncMode.AUTOMATIC.value, "next_sync_at": {"$gte": EPOCH, "$lte": now}}
        due: dict[str, builtins.list[str]] = {}
        async for doc in self.db.integrations.find(automatic, {"settings.frequency": 1}):
            frequency = (doc.get("settings") or {}).get("frequency", SyncFrequency.EVERY_HOUR.value)
            due.setdefault(frequency, []).append(doc["_id"])
        if not due:
            return []
        for frequency, ids in due.items():
            period = SyncFrequency(frequency).period
            for integration_id in ids:
                self._forget(integration_id)
            await self.db.integrations.update_many(
                {**automatic, "_id": {"$in": ids}, "settings.frequency": frequency},
                [
                    {
                        "$set": {
                            "next_sync_at": {
                                "$max": [{"$add": ["$next_sync_at", period // MILLISECOND]}, now + period / 2]
                            },
                            # The due time it served stays with the claim (lateness is measured from it).
                            "schedule_claim": {"token": token, "due": "$next_sync_at", "at": now},
                        }
                    }
                ],
            )
        every = [integration_id for ids in due.values() for integration_id in ids]
        cursor = self.db.integrations.find({"_id": {"$in": every}, "schedule_claim.token": token}, {"credentials": 0})
        return [Integration.from_doc(doc) async for doc in cursor]

    async def add_pending_change(self, integration_id: str, at: datetime, count: int = 1) -> Integration | None:
        """`count` more changes waiting for Sync Now (manual mode); the last delivery arrived at `at`."""
        fields = {"webhooks.last_delivery_at": at, "webhooks.silent": False}
        return await self._update({"_id": integration_id}, {"$inc": {"pending_changes": count}, "$set": fields})

    async def settle_pending_changes(self, integration_id: str, applied: int) -> Integration | None:
        """`applied` of the changes waiting for Sync Now were applied (or dropped): they wait no more.
        Changes that arrived meanwhile, or that a Sync Now of chosen products left alone, still do."""
        if applied <= 0:
            return None
        await self._update({"_id": integration_id}, {"$inc": {"pending_changes": -applied}})
        # Deliveries enqueued before a switch to manual mode were never counted: never below zero.
        return await self._update(
            {"_id": integration_id, "pending_changes": {"$lt": 0}}, {"$set": {"pending_changes": 0}}
        )

    async def mark_health(self, integration_id: str, seen: HealthMark | None, new: HealthMark) -> bool:
        """Record `new` as the published light if it still is `seen`: True for the one caller that
        changed it (that caller publishes the transition; any other saw it already done)."""
        expected: Any = None if seen is None else _mark_doc(seen)
        query: Doc = {"_id": integration_id, "health": expected}
        result = await self.db.integrations.update_one(query, {"$set": {"health": _mark_doc(new)}})
        self._forget(integration_id)
        return result.modified_count == 1

    async def delete(self, account_id: str, integration_id: str) -> None:
        self._forget(integration_id)
        await self.db.integrations.delete_one({"_id": integration_id, "account_id": account_id})
        await self.db.api_call_days.delete_many({"integration_id": integration_id})

    # ---- store API calls ----------------------------------------------------------------------
    async def add_api_calls(self, integration_id: str, hour: datetime, count: int) -> None:
        await self.db.api_call_days.update_one(
            {"_id": api_call_day(integration_id, hour)},
            {"$inc": {f"hours.{hour.hour:02d}": count}, "$setOnInsert": {"integration_id": integration_id}},
            upsert=True,
        )

    async def api_calls_since(self, integration_ids: Sequence[str], since: datetime, now: datetime) -> dict[str, int]:
        """The calls of each integration in the hours from `since` (an hour's start) to `now`: one query by
        `_id` for every integration's days, however many integrations (a day's document holds its hours)."""
        days = [since + timedelta(days=n) for n in range((now.date() - since.date()).days + 1)]
        keys = [api_call_day(i, day) for i in integration_ids for day in days]
        found = {i: 0 for i in integration_ids}
        async for doc in self.db.api_call_days.find({"_id": {"$in": keys}}):
            day = datetime.strptime(doc["_id"].rsplit(":", 1)[1], "%Y-%m-%d").replace(tzinfo=UTC)
            for hour, count in (doc.get("hours") or {}).items():
                if day + timedelta(hours=int(hour)) >= since:
                    found[doc["integration_id"]] = found.get(doc["integration_id"], 0) + int(count or 0)
        return found


def api_call_day(integration_id: str, moment: datetime) -> str:
    """The `_id` of the document holding an integration's API calls of `moment`'s day (UTC)."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return f"{integration_id}:{moment:%Y-%m-%d}"


def _mark_doc(mark: HealthMark) -> Doc:
    return {"status": mark.status.value, "reason": mark.reason, "action": mark.action.value if mark.action else None}


class CallCounter:
    """Counts store API calls in memory; `flush` adds them to the hourly bucket in MongoDB."""

    def __init__(self, integration_id: str, store: IntegrationStore, clock: Callable[[], datetime]) -> None:
        self.integration_id = integration_id
        self.store = store
        self.clock = clock
        self.pending = 0
        self.total = 0

    def __call__(self) -> None:
        self.pending += 1
        self.total += 1

    async def flush(self) -> None:
        if not self.pending:
            return
        count, self.pending = self.pending, 0
        hour = self.clock().replace(minute=0, second=0, microsecond=0)
        await self.store.add_api_calls(self.integration_id, hour, count)
