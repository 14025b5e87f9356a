"""Connected stores in MongoDB: the integration documents and the store API calls counted per hour.

Data access only: what the documents hold and how they change. Connecting, settings and
disconnecting (the workflows) are gateway.integrations; credentials arrive here already sealed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from pymongo import ReturnDocument

from gateway.domain import SyncMode
from gateway.storage.mongo import Database, Doc

#: The webhook endpoint may read an integration this old: a burst of deliveries costs one read.
CACHE_SECONDS = 2.0
CACHE_LIMIT = 1_000


class IntegrationStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: Integrations as recently read, for `get_cached`; every write through this store drops the
        #: entry, so in this process a change is seen at once (other processes: within CACHE_SECONDS).
        self._cache: dict[str, tuple[float, Doc]] = {}

    # ---- reads --------------------------------------------------------------------------------
    async def list(self, account_id: str) -> list[Doc]:
        cursor = self.db.integrations.find({"account_id": account_id}).sort([("created_at", 1)])
        return [doc async for doc in cursor]

    async def get(self, account_id: str, integration_id: str) -> Doc | None:
        return await self.db.integrations.find_one({"_id": integration_id, "account_id": account_id})

    async def get_any(self, integration_id: str) -> Doc | None:
        """For workers and webhooks, which act for the integration's own account."""
        return await self.db.integrations.find_one({"_id": integration_id})

    async def get_cached(self, integration_id: str) -> Doc | None:
        """`get_any`, answered from memory when read within the last CACHE_SECONDS."""
        cached = self._cache.get(integration_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        doc = await self.get_any(integration_id)
        if doc is None:
            return None  # never cached: a store pings its hook while the integration is still being saved
        if len(self._cache) > CACHE_LIMIT:
            self._cache.clear()
        self._cache[integration_id] = (time.monotonic() + CACHE_SECONDS, doc)
        return doc

    async def exists(self, integration_id: str) -> bool:
        return await self.db.integrations.count_documents({"_id": integration_id}) > 0

    async def due(self, now: datetime) -> AsyncIterator[Doc]:
        """Automatic integrations whose scheduled sync is due."""
        cursor = self.db.integrations.find(
            {"settings.mode": SyncMode.AUTOMATIC.value, "next_sync_at": {"$lte": now}}, {"credentials": 0}
        )
        async for doc in cursor:
            yield doc

    # ---- writes -------------------------------------------------------------------------------
    async def insert(self, doc: Doc) -> None:
        await self.db.integrations.insert_one(doc)

    async def update(self, integration_id: str, fields: Doc, *, account_id: str | None = None) -> Doc | None:
        """Set `fields`; the integration after the change (None when it is gone)."""
        query: Doc = {"_id": integration_id}
        if account_id is not None:
            query["account_id"] = account_id
        self._cache.pop(integration_id, None)
        return await self.db.integrations.find_one_and_update(
            query, {"$set": fields}, return_document=ReturnDocument.AFTER
        )

    async def claim_due(self, integration_id: str, expected: datetime, next_sync_at: datetime) -> Doc | None:
        """Move `next_sync_at` on, if it still is `expected` (exactly one scheduler wins)."""
        self._cache.pop(integration_id, None)
        return await self.db.integrations.find_one_and_update(
            {"_id": integration_id, "next_sync_at": expected},
            {"$set": {"next_sync_at": next_sync_at}},
            return_document=ReturnDocument.AFTER,
        )

    async def add_pending_change(self, integration_id: str, fields: Doc) -> Doc | None:
        """One more change waiting for Sync Now (manual mode), and `fields` set with it."""
        self._cache.pop(integration_id, None)
        return await self.db.integrations.find_one_and_update(
            {"_id": integration_id},
            {"$inc": {"pending_changes": 1}, "$set": fields},
            return_document=ReturnDocument.AFTER,
        )

    async def delete(self, account_id: str, integration_id: str) -> None:
        self._cache.pop(integration_id, None)
        await self.db.integrations.delete_one({"_id": integration_id, "account_id": account_id})
        await self.db.api_calls.delete_many({"integration_id": integration_id})

    # ---- store API calls ----------------------------------------------------------------------
    async def add_api_calls(self, integration_id: str, hour: datetime, count: int) -> None:
        await self.db.api_calls.update_one(
            {"integration_id": integration_id, "hour": hour}, {"$inc": {"count": count}}, upsert=True
        )

    async def api_calls_since(self, integration_id: str, since: datetime) -> int:
        cursor = await self.db.api_calls.aggregate(
            [
                {"$match": {"integration_id": integration_id, "hour": {"$gte": since}}},
                {"$group": {"_id": None, "n": {"$sum": "$count"}}},
            ]
        )
        async for row in cursor:
            return int(row["n"])
        return 0


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
