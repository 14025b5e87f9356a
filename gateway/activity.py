"""The activity log: what happened to an integration, in a merchant's words.

What can happen many times a second (a store, or someone pretending to be one, sending deliveries
that fail verification) is counted into one entry per integration and minute (`record_repeated`),
so the log stays readable and its size bounded whatever arrives.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from gateway.domain import ActivityKind, utcnow
from gateway.pagination import PageRequest, Slice
from gateway.storage.keyset import KeyPage, read_page
from gateway.storage.mongo import ACTIVITY, INTEGRATION_ACTIVITY, Database, Doc


@dataclass(frozen=True)
class ActivityRecord:
    id: str
    account_id: str
    at: datetime
    kind: ActivityKind
    message: str
    integration_id: str | None = None
    run_id: str | None = None
    product_id: str | None = None
    conflict_id: str | None = None

    @classmethod
    def from_doc(cls, doc: Doc) -> ActivityRecord:
        message = doc["message"]
        count = int(doc.get("count") or 1)
        many = (doc.get("details") or {}).get("message_many")
        if count > 1 and isinstance(many, str):
            message = many.format(count=count)
        return cls(
            id=doc["_id"],
            account_id=doc["account_id"],
            at=doc["at"],
            kind=ActivityKind(doc["kind"]),
            message=message,
            integration_id=doc.get("integration_id"),
            run_id=doc.get("run_id"),
            product_id=doc.get("product_id"),
            conflict_id=doc.get("conflict_id"),
        )


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
    ) -> ActivityRecord:
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
        return ActivityRecord.from_doc(doc)

    async def record_many(self, entries: Sequence[tuple[str, ActivityKind, str, str | None, str | None]]) -> None:
        """Several entries in one write: (account, kind, message, integration id, run id) each."""
        now = utcnow()
        docs: list[Doc] = [
            {
                "_id": uuid.uuid4().hex,
                "account_id": account_id,
                "integration_id": integration_id,
                "at": now,
                "kind": kind.value,
                "message": message,
                "run_id": run_id,
                "product_id": None,
                "conflict_id": None,
                "details": {},
            }
            for account_id, kind, message, integration_id, run_id in entries
        ]
        if docs:
            await self.db.activity.insert_many(docs)

    async def record_digest(
        self, account_id: str, integration_id: str, run_id: str, at: datetime, message: str, *, seq: int
    ) -> None:
        """The one entry of an hour's WEBHOOK digest run (its id is the run's): created by the first batch at
        `at`, where it stays in the log; later batches update its message. `seq` is the digest run's, so a
        slower writer never puts back an older count."""
        await self.record_digests([DigestEntry(account_id, integration_id, run_id, at, message, seq)])

    async def record_digests(self, entries: Sequence[DigestEntry]) -> None:
        """`record_digest` for several digest runs in one write (a webhook apply pass serves many stores)."""
        ops = [
            UpdateOne(
                {"_id": e.run_id, "details.seq": {"$not": {"$gte": e.seq}}},
                {
                    "$set": {"message": e.message, "details": {"seq": e.seq}},
                    "$setOnInsert": {
                        "account_id": e.account_id,
                        "integration_id": e.integration_id,
                        "at": e.at,
                        "kind": ActivityKind.WEBHOOK_CHANGES_APPLIED.value,
                        "run_id": e.run_id,
                        "product_id": None,
                        "conflict_id": None,
                    },
                },
                upsert=True,
            )
            for e in entries
        ]
        if not ops:
            return
        try:
            await self.db.activity.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            # A duplicate key: a newer count is there already (the others were written). Others are raised.
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise

    async def record_repeated(
        self, account_id: str, kind: ActivityKind, one: str, many: str, *, integration_id: str, reason: str
    ) -> None:
        """Count one more occurrence into this minute's entry of `kind` and `reason` for the integration.

        `one` is the message of a single occurrence; `many` the message of several, with `{count}`."""
        now = utcnow()
        minute = now.replace(second=0, microsecond=0)
        key = f"{kind.value}|{integration_id}|{reason}|{minute.isoformat()}"
        entry = hashlib.sha256(key.encode()).hexdigest()[:32]
        fields: Doc = {
            "account_id": account_id,
            "integration_id": integration_id,
            "at": now,
            "kind": kind.value,
            "message": one,
            "run_id": None,
            "product_id": None,
            "conflict_id": None,
            "details": {"message_many": many, "reason": reason},
        }
        update = {"$setOnInsert": fields, "$inc": {"count": 1}}
        try:
            await self.db.activity.update_one({"_id": entry}, update, upsert=True)
        except DuplicateKeyError:  # two processes created it at once: the other one won, count into it
            await self.db.activity.update_one({"_id": entry}, {"$inc": {"count": 1}})

    async def page(self, account_id: str, integration_id: str | None, page: PageRequest) -> Slice[ActivityRecord]:
        query: Doc = {"account_id": account_id}
        if integration_id:
            query["integration_id"] = integration_id
        shape = INTEGRATION_ACTIVITY if integration_id else ACTIVITY
        found = await read_page(self.db.activity, shape, query, KeyPage(page.first, page.after))
        return Slice([ActivityRecord.from_doc(d) for d in found.items], found.positions, found.has_next)

    async def delete_integration(self, integration_id: str) -> None:
        """Only on a platform's request to erase a store's data: disconnecting keeps the log."""
        await self.db.activity.delete_many({"integration_id": integration_id})


@dataclass(frozen=True)
class DigestEntry:
    """The activity entry of an hour's WEBHOOK digest run, as of one batch (`ActivityLog.record_digests`)."""

    account_id: str
    integration_id: str
    run_id: str
    at: datetime
    message: str
    seq: int
