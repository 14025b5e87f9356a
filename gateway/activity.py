"""The activity log: what happened to an integration, in a merchant's words."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.domain import ActivityKind, utcnow
from gateway.pagination import PageRequest, Slice
from gateway.storage.mongo import Database, Doc, find_page


class ActivityLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        account_id: str,
        kind: ActivityKind,
        message: str,
        *,
        integration_id: str | None = None,
        run_id: str | None = None,
        product_id: str | None = None,
        conflict_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Doc:
        doc: Doc = {
            "_id": uuid.uuid4().hex,
            "account_id": account_id,
            "integration_id": integration_id,
            "at": utcnow(),
            "kind": kind.value,
            "message": message,
            "run_id": run_id,
            "product_id": product_id,
            "conflict_id": conflict_id,
            "details": details or {},
        }
        await self.db.activity.insert_one(doc)
        return doc

    async def page(self, account_id: str, integration_id: str | None, page: PageRequest) -> Slice[Doc]:
        query: Doc = {"account_id": account_id}
        if integration_id:
            query["integration_id"] = integration_id
        return await find_page(self.db.activity, query, "at", page)
