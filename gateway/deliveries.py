"""Webhook deliveries in MongoDB: the dedupe log and the work queue (data access for gateway.webhooks).

The dedupe log keeps one small document per delivery id for a week, so a redelivery is recognised.
The work queue holds what waits to be applied and loses each entry once applied, so claiming stays
cheap however many deliveries came before.
"""

from __future__ import annotations

from datetime import datetime

from pymongo.errors import DuplicateKeyError

from gateway.storage.mongo import Database, Doc


class DeliveryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, entry: Doc) -> bool:
        """Log a delivery; False when its (integration, delivery id) was seen before."""
        try:
            await self.db.deliveries.insert_one(entry)
        except DuplicateKeyError:
            return False
        return True

    async def enqueue(self, entry: Doc) -> None:
        await self.db.queue.insert_one({**entry, "claim": None})

    async def claim(self, integration_id: str, token: str, now: datetime) -> list[Doc]:
        """Take every unclaimed delivery of the integration under `token`, oldest first."""
        await self.db.queue.update_many(
            {"integration_id": integration_id, "claim": None}, {"$set": {"claim": token, "claimed_at": now}}
        )
        claimed = {"integration_id": integration_id, "claim": token}
        return [d async for d in self.db.queue.find(claimed).sort("received_at", 1)]

    async def done(self, integration_id: str, token: str) -> None:
        await self.db.queue.delete_many({"integration_id": integration_id, "claim": token})

    async def release_stale(self, cutoff: datetime) -> list[str]:
        """Claims older than `cutoff` (their worker died) go back to the queue; returns their integrations."""
        stale = {"claim": {"$ne": None}, "claimed_at": {"$lt": cutoff}}
        integrations = sorted({d["integration_id"] async for d in self.db.queue.find(stale, {"integration_id": 1})})
        if integrations:
            await self.db.queue.update_many(stale, {"$set": {"claim": None}})
        return integrations

    async def delete_integration(self, integration_id: str) -> None:
        await self.db.queue.delete_many({"integration_id": integration_id})
        await self.db.deliveries.delete_many({"integration_id": integration_id})
