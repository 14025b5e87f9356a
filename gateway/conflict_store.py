"""Store-won conflicts in MongoDB (data access; gateway.conflicts holds the workflow)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.domain import ConflictStatus
from gateway.pagination import PageRequest, Slice
from gateway.storage.keyset import KeyPage, Paged, read_page
from gateway.storage.mongo import (
    CONFLICTS,
    CONFLICTS_BY_STATUS,
    INTEGRATION_CONFLICTS,
    INTEGRATION_CONFLICTS_BY_STATUS,
    PRODUCT_CONFLICTS,
    PRODUCT_CONFLICTS_BY_STATUS,
    Database,
    Doc,
    update_and_read,
)

#: The list index for each filter: (by integration, by product, by status).
_SHAPES: dict[tuple[bool, bool, bool], Paged] = {
    (False, False, False): CONFLICTS,
    (False, False, True): CONFLICTS_BY_STATUS,
    (True, False, False): INTEGRATION_CONFLICTS,
    (True, False, True): INTEGRATION_CONFLICTS_BY_STATUS,
    (False, True, False): PRODUCT_CONFLICTS,
    (False, True, True): PRODUCT_CONFLICTS_BY_STATUS,
}


@dataclass(frozen=True)
class ConflictRecord:
    """A store change that overrode one of Alana's edits; the store's value was kept."""

    id: str
    account_id: str
    integration_id: str
    product_id: str
    field: str
    store_value: Any
    alana_value: Any
    overlay_id: str
    detected_at: datetime
    status: ConflictStatus = ConflictStatus.STORE_WON
    run_id: str | None = None
    reapplied_at: datetime | None = None

    @classmethod
    def from_doc(cls, doc: Doc) -> ConflictRecord:
        return cls(
            id=doc["_id"],
            account_id=doc["account_id"],
            integration_id=doc["integration_id"],
            product_id=doc["product_id"],
            field=doc["field"],
            store_value=doc.get("store_value"),
            alana_value=doc.get("alana_value"),
            overlay_id=doc.get("overlay_id", ""),
            detected_at=doc["detected_at"],
            status=ConflictStatus(doc["status"]),
            run_id=doc.get("run_id"),
            reapplied_at=doc.get("reapplied_at"),
        )

    def to_doc(self) -> Doc:
        return {
            "_id": self.id,
            "account_id": self.account_id,
            "integration_id": self.integration_id,
            "product_id": self.product_id,
            "field": self.field,
            "store_value": self.store_value,
            "alana_value": self.alana_value,
            "overlay_id": self.overlay_id,
            "detected_at": self.detected_at,
            "status": self.status.value,
            "run_id": self.run_id,
        }


def _one(doc: Doc | None) -> ConflictRecord | None:
    return None if doc is None else ConflictRecord.from_doc(doc)


class ConflictStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert_once(self, conflict: ConflictRecord) -> None:
        """Idempotent: a retried page records the same conflict (same id) once."""
        await self.db.conflicts.update_one({"_id": conflict.id}, {"$setOnInsert": conflict.to_doc()}, upsert=True)

    async def get(self, account_id: str, conflict_id: str) -> ConflictRecord | None:
        return _one(await self.db.conflicts.find_one({"_id": conflict_id, "account_id": account_id}))

    async def page(
        self,
        account_id: str,
        page: PageRequest,
        *,
        integration_id: str | None = None,
        status: str | None = None,
        product_id: str | None = None,
    ) -> Slice[ConflictRecord]:
        query: Doc = {"account_id": account_id}
        # A product belongs to one integration: its conflicts are read by product (checked against the
        # integration below).
        by_integration = bool(integration_id) and not product_id
        if by_integration:
            query["integration_id"] = integration_id
        if product_id:
            query["product_id"] = product_id
        if status:
            query["status"] = status
        shape = _SHAPES[(by_integration, bool(product_id), bool(status))]
        accept = (lambda doc: doc.get("integration_id") == integration_id) if integration_id and product_id else None
        found = await read_page(self.db.conflicts, shape, query, KeyPage(page.first, page.after), accept=accept)
        return Slice([ConflictRecord.from_doc(d) for d in found.items], found.positions, found.has_next)

    async def claim_reapply(self, account_id: str, conflict_id: str, now: datetime) -> ConflictRecord | None:
        """STORE_WON -> REAPPLIED, once: two concurrent re-applies, one winner (None for the other)."""
        doc = await update_and_read(
            self.db.conflicts,
            {"_id": conflict_id, "account_id": account_id, "status": ConflictStatus.STORE_WON.value},
            {"$set": {"status": ConflictStatus.REAPPLIED.value, "reapplied_at": now}},
        )
        return _one(doc)

    async def delete_integration(self, integration_id: str) -> None:
        await self.db.conflicts.delete_many({"integration_id": integration_id})
