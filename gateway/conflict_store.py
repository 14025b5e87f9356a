"""Store-won conflicts in MongoDB (data access; gateway.conflicts holds the workflow)."""

from __future__ import annotations

from datetime import datetime

from pymongo import ReturnDocument

from gateway.domain import ConflictStatus
from gateway.pagination import PageRequest, Slice
from gateway.storage.mongo import Database, Doc, find_page


class ConflictStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert_once(self, doc: Doc) -> None:
        """Idempotent: a retried page records the same conflict (same id) once."""
        await self.db.conflicts.update_one({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True)

    async def get(self, account_id: str, conflict_id: str) -> Doc | None:
        return await self.db.conflicts.find_one({"_id": conflict_id, "account_id": account_id})

    async def page(
        self,
        account_id: str,
        page: PageRequest,
        *,
        integration_id: str | None = None,
        status: str | None = None,
        product_id: str | None = None,
    ) -> Slice[Doc]:
        query: Doc = {"account_id": account_id}
        if integration_id:
            query["integration_id"] = integration_id
        if product_id:
            query["product_id"] = product_id
        if status:
            query["status"] = status
        return await find_page(self.db.conflicts, query, "detected_at", page)

    async def claim_reapply(self, account_id: str, conflict_id: str, now: datetime) -> Doc | None:
        """STORE_WON -> REAPPLIED, once: two concurrent re-applies, one winner (None for the other)."""
        return await self.db.conflicts.find_one_and_update(
            {"_id": conflict_id, "account_id": account_id, "status": ConflictStatus.STORE_WON.value},
            {"$set": {"status": ConflictStatus.REAPPLIED.value, "reapplied_at": now}},
            return_document=ReturnDocument.AFTER,
        )

    async def delete_integration(self, integration_id: str) -> None:
        await self.db.conflicts.delete_many({"integration_id": integration_id})
