"""Each integration's products counted per status, kept by the product writes (no scan per request).

Data access for `product_counts`, one document per integration (gateway.products writes through it):
    _id, account_id
    counts         {status: products not removed}
    newest, oldest the largest / smallest list key (`feed`) counted: where the product lists begin
                   reading (a hint: a removal leaves them as they were)
    pending        [{t: token, at}]: count changes in flight (below)
    v              grows with every change, so a recount can tell that nothing moved while it counted
    recounted_at

How a write is counted. The product write itself says what it changed, exactly: an insert that
succeeded, an update whose version guard matched (the guard pins the state it replaced: removed or
not, which status), a removal whose filter named the status it removed. Only the writer whose
guarded write matched counts its change, so concurrent writers never count one change twice or miss
one. Writes that cannot change a count (an update that keeps the status: nearly all of them) do not
touch this collection at all.

The counts and the products are different documents, so a counted write takes two small updates
around the product write: `change()` records a token in `pending` before it, and adds the changes and
removes the token in one update after it (only if the token is still there). A process that dies in
between leaves its token behind; that is the one way the counts can drift, and `repair` (after every
run, gateway.engine) recounts an integration that has a token older than STALE, has no counts yet, or
was last recounted more than RECOUNT_EVERY ago. A recount reads the integration's products and
replaces the counts only if no young token is pending and `v` has not moved since it looked, so it
never races a writer: a busy integration is recounted after a later run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from gateway.domain import utcnow
from gateway.storage.mongo import Database, Doc

log = logging.getLogger(__name__)

#: A count change in flight longer than this was left by a process that died: its integration is recounted.
STALE = timedelta(minutes=10)
#: Counts are recounted after a run at least this often, whatever else happened (older releases' writes).
RECOUNT_EVERY = timedelta(days=1)


@dataclass(frozen=True)
class ProductCounts:
    """How many products (not removed) an integration has, by status."""

    integration_id: str
    by_status: Mapping[str, int] = field(default_factory=dict)
    #: Whose integration it is (None: nothing counted yet).
    account_id: str | None = None
    #: The largest and smallest list keys counted (sizing hints for the lists, not exact bounds).
    newest: int | None = None
    oldest: int | None = None

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def of(self, status: str | None) -> int:
        return self.total if status is None else self.by_status.get(status, 0)

    @classmethod
    def from_doc(cls, doc: Doc) -> ProductCounts:
        counts = {str(k): int(v) for k, v in (doc.get("counts") or {}).items() if v}
        return cls(doc["_id"], counts, doc.get("account_id"), doc.get("newest"), doc.get("oldest"))


class Tally:
    """The count changes one guarded write (or batch of writes) made: added by status, removed by status."""

    def __init__(self) -> None:
        self.changes: dict[str, int] = {}
        self.newest: int | None = None
        self.oldest: int | None = None

    def add(self, status: str, n: int = 1, feed: int | None = None) -> None:
        if n:
            self.changes[status] = self.changes.get(status, 0) + n
        if feed is not None:
            self.newest = feed if self.newest is None else max(self.newest, feed)
            self.oldest = feed if self.oldest is None else min(self.oldest, feed)

    def remove(self, status: str, n: int = 1) -> None:
        self.add(status, -n)

    def move(self, old_status: str, new_status: str, feed: int | None = None) -> None:
        """A product changed status (or came back: call `add` for that)."""
        if old_status != new_status:
            self.remove(old_status)
            self.add(new_status)
        self.add(new_status, 0, feed)

    def update(self) -> Doc:
        update: Doc = {"$inc": {"v": 1, **{f"counts.{k}": v for k, v in self.changes.items() if v}}}
        if self.newest is not None:
            update["$max"] = {"newest": self.newest}
        if self.oldest is not None:
            update["$min"] = {"oldest": self.oldest}
        return update


class ProductCountStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- reads ----------------------------------------------------------------------------------
    async def get(self, integration_id: str) -> ProductCounts:
        doc = await self.db.product_counts.find_one({"_id": integration_id}, {"pending": 0})
        return ProductCounts(integration_id) if doc is None else ProductCounts.from_doc(doc)

    async def of_integrations(self, integration_ids: Iterable[str]) -> dict[str, ProductCounts]:
        """Counts by integration id (zero for an integration without any counted product)."""
        ids = list(dict.fromkeys(integration_ids))
        found = {i: ProductCounts(i) for i in ids}
        if ids:
            async for doc in self.db.product_counts.find({"_id": {"$in": ids}}, {"pending": 0}):
                found[doc["_id"]] = ProductCounts.from_doc(doc)
        return found

    async def of_account(self, account_id: str) -> list[ProductCounts]:
        """The counts of every integration of the account that has counted products."""
        cursor = self.db.product_counts.find({"account_id": account_id}, {"pending": 0})
        return [ProductCounts.from_doc(doc) async for doc in cursor]

    # ---- counting writes ------------------------------------------------------------------------
    @asynccontextmanager
    async def change(self, integration_id: str, account_id: str | None) -> AsyncIterator[Tally]:
        """Count the product writes made inside: what is added to the tally is added to the counts.

        Without `account_id` (a removal) an integration that has no counts yet is left to `repair`.
        """
        token = uuid.uuid4().hex
        pending: Doc = {"$push": {"pending": {"t": token, "at": utcnow()}}, "$inc": {"v": 1}}
        if account_id is None:
            await self.db.product_counts.update_one({"_id": integration_id}, pending)
        else:
            # A first write for the integration starts its counts from nothing: they need no recount yet.
            pending["$setOnInsert"] = {"account_id": account_id, "recounted_at": utcnow()}
            try:
                await self.db.product_counts.update_one({"_id": integration_id}, pending, upsert=True)
            except DuplicateKeyError:  # two first writers at once: the document exists now
                await self.db.product_counts.update_one({"_id": integration_id}, pending)
        tally = Tally()
        try:
            yield tally
        finally:
            # Whatever happened inside, the writes that matched are counted (and the token goes).
            update = tally.update()
            update["$pull"] = {"pending": {"t": token}}
            await self.db.product_counts.update_one({"_id": integration_id, "pending.t": token}, update)

    @asynccontextmanager
    async def change_many(self, owners: Mapping[str, str]) -> AsyncIterator[dict[str, Tally]]:
        """`change` for several integrations (integration id -> account id) at once: one write before the
        product writes and one after, whatever their number (a webhook apply pass serves many stores)."""
        if not owners:
            yield {}
            return
        token = uuid.uuid4().hex
        now = utcnow()
        pending: Doc = {"$push": {"pending": {"t": token, "at": now}}, "$inc": {"v": 1}}
        owned = list(owners.items())
        try:
            await self.db.product_counts.bulk_write(
                [
                    UpdateOne(
                        {"_id": integration_id},
                        {**pending, "$setOnInsert": {"account_id": account_id, "recounted_at": now}},
                        upsert=True,
                    )
                    for integration_id, account_id in owned
                ],
                ordered=False,
            )
        except BulkWriteError as exc:
            # Two first writers at once: the document exists now (any other error is raised).
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            await self.db.product_counts.bulk_write([UpdateOne({"_id": owned[e["index"]][0]}, pending) for e in errors])
        tallies = {integration_id: Tally() for integration_id in owners}
        try:
            yield tallies
        finally:
            after = []
            for integration_id, tally in tallies.items():
                update = tally.update()
                update["$pull"] = {"pending": {"t": token}}
                after.append(UpdateOne({"_id": integration_id, "pending.t": token}, update))
            await self.db.product_counts.bulk_write(after, ordered=False)

    async def delete(self, integration_id: str) -> None:
        await self.db.product_counts.delete_one({"_id": integration_id})

    # ---- repair ---------------------------------------------------------------------------------
    async def repair(self, integration_id: str) -> ProductCounts | None:
        """Recount the integration if its counts may have drifted (see the module docstring)."""
        doc = await self.db.product_counts.find_one({"_id": integration_id})
        now = utcnow()
        if doc is not None:
            stale = any(p.get("at") is not None and p["at"] < now - STALE for p in doc.get("pending") or ())
            recounted = doc.get("recounted_at")
            if not stale and recounted is not None and recounted > now - RECOUNT_EVERY:
                return None
        return await self.recount(integration_id)

    async def recount(self, integration_id: str) -> ProductCounts | None:
        """Count the integration's products again and replace its counts; None when a write was in flight
        (or began meanwhile): the counts are left as they are then, for a later recount."""
        now = utcnow()
        doc = await self.db.product_counts.find_one({"_id": integration_id})
        if doc is not None and any(
            p.get("at") is not None and p["at"] >= now - STALE for p in doc.get("pending") or ()
        ):
            return None
        counts: dict[str, int] = {}
        newest: int | None = None
        oldest: int | None = None
        account_id = doc.get("account_id") if doc is not None else None
        pipeline: list[Doc] = [
            {"$match": {"integration_id": integration_id, "removed": False}},
            {
                "$group": {
                    "_id": "$status",
                    "n": {"$sum": 1},
                    "newest": {"$max": "$feed"},
                    "oldest": {"$min": "$feed"},
                    "account_id": {"$first": "$account_id"},
                }
            },
        ]
        async for row in await self.db.products.aggregate(pipeline):
            counts[str(row["_id"])] = int(row["n"])
            account_id = account_id or row.get("account_id")
            if row.get("newest") is not None:
                newest = row["newest"] if newest is None else max(newest, row["newest"])
            if row.get("oldest") is not None:
                oldest = row["oldest"] if oldest is None else min(oldest, row["oldest"])
        fields: Doc = {"counts": counts, "newest": newest, "oldest": oldest, "pending": [], "recounted_at": now}
        if doc is None:
            if account_id is None:
                return ProductCounts(integration_id)  # no products: nothing to keep
            try:
                await self.db.product_counts.insert_one(
                    {"_id": integration_id, "account_id": account_id, "v": 1, **fields}
                )
            except DuplicateKeyError:
                return None  # a writer made it meanwhile
        else:
            result = await self.db.product_counts.update_one(
                {"_id": integration_id, "v": doc.get("v")}, {"$set": fields, "$inc": {"v": 1}}
            )
            if not result.matched_count:
                return None
            before = {k: int(v) for k, v in (doc.get("counts") or {}).items() if v}
            if before != counts:
                log.warning(
                    "product counts had drifted and were recounted",
                    extra={"integration_id": integration_id, "before": before, "after": counts},
                )
        return ProductCounts(integration_id, counts, account_id, newest, oldest)
