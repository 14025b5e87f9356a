"""Versioned data migrations: each runs once per database, at start-up, whatever the number of processes.

The `migrations` collection holds one record per migration (`_id` its name):
    state        "running" or "done"
    owner        the process running it; `lease_until` when another may take over (it died)
    checkpoint   the last product `_id` done, so a take-over goes on from there
    counts       what it did: seen, rewritten, failed
    started_at, finished_at

`run_migrations` (called by `Gateway.create`) claims the first migration not done with one atomic
upsert: a process that loses the race, or finds the lease held, goes on starting without waiting;
a migration whose runner died is taken over by the next process that starts once its lease has run
out. Migrations run in order and a later one never starts before an earlier one is done.

Every product rewrite is conditional on the product's `version` (and increments it), like every other
product write (gateway/products.py), so a sync or an Alana edit racing the migration is never lost:
the loser decides again against the other's write.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from gateway.domain import utcnow
from gateway.integration_store import api_call_day
from gateway.model import Product, hash_document
from gateway.product_counts import ProductCountStore
from gateway.products import feed_key, search_tokens, store_doc_fields
from gateway.storage.mongo import Database, Doc

log = logging.getLogger(__name__)

COLLECTION = "migrations"
#: How long a runner may go without renewing before another process takes the migration over.
LEASE = timedelta(seconds=60)
BATCH = 500
#: Attempts at a product whose version keeps changing under the migration (others write it meanwhile).
RETRIES = 5


@dataclass
class Counts:
    seen: int = 0
    rewritten: int = 0
    failed: int = 0

    def as_doc(self) -> Doc:
        return {"seen": self.seen, "rewritten": self.rewritten, "failed": self.failed}


@dataclass
class Step:
    """One migration's run: renews its lease and saves its checkpoint as it goes."""

    db: Database
    name: str
    owner: str
    clock: Callable[[], datetime]
    checkpoint: Any = None
    counts: Counts = field(default_factory=Counts)

    async def save(self) -> bool:
        """Checkpoint and renew the lease; False when another process has taken the migration over."""
        result = await self.db.db[COLLECTION].update_one(
            {"_id": self.name, "owner": self.owner, "state": "running"},
            {
                "$set": {
                    "checkpoint": self.checkpoint,
                    "counts": self.counts.as_doc(),
                    "lease_until": self.clock() + LEASE,
                }
            },
        )
        return result.matched_count == 1


Migration = Callable[[Step], Awaitable[bool]]


# ---- the migrations ----------------------------------------------------------------------------------
def canonical_store(store: Doc) -> tuple[Product, Doc, str]:
    """A stored `store` document read by today's model: the product, its document and its hash."""
    product = Product.model_validate(store)
    document = product.to_document()
    return product, document, hash_document(document)


async def canonical_shape(step: Step) -> bool:
    """Rewrite every stored product's store version, hash and search fields in the canonical shape
    (gateway/model.py: money in minor units, 0-based positions, slug handles, millisecond UTC times).

    Nothing a merchant sees as a change: `synced_at` and `updated_run` stay, so no run counts these
    products as updated, and the next sync of an unchanged store finds every hash equal.
    """
    products = step.db.products
    while True:
        query: Doc = {"_id": {"$gt": step.checkpoint}} if step.checkpoint is not None else {}
        batch = [
            doc async for doc in products.find(query, {"store": 1, "hash": 1, "version": 1}).sort("_id", 1).limit(BATCH)
        ]
        if not batch:
            return True
        pending = batch
        for _ in range(RETRIES):
            ops = {doc["_id"]: op for doc in pending if (op := _rewrite(doc, step.counts)) is not None}
            if not ops:
                break
            result = await products.bulk_write(list(ops.values()), ordered=False)
            step.counts.rewritten += result.modified_count
            if result.matched_count == len(ops):
                break
            # Someone wrote some of them meanwhile: read those again and decide against their write
            # (a write by today's code is in the new shape already, and then there is nothing to do).
            query = {"_id": {"$in": list(ops)}}
            pending = [doc async for doc in products.find(query, {"store": 1, "hash": 1, "version": 1})]
        step.counts.seen += len(batch)
        step.checkpoint = batch[-1]["_id"]
        if not await step.save():
            log.warning("migration taken over by another process", extra={"migration": step.name})
            return False


def _rewrite(doc: Doc, counts: Counts) -> UpdateOne | None:
    store = doc.get("store")
    if not isinstance(store, dict):
        return None
    try:
        product, document, content_hash = canonical_store(store)
    except (ValidationError, ValueError, TypeError) as exc:
        # Left as it is: the next sync of that product writes it in the new shape.
        counts.failed += 1
        log.warning("stored product not migrated", extra={"product_id": doc["_id"], "reason": str(exc)[:200]})
        return None
    if document == store and content_hash == doc.get("hash"):
        return None
    return UpdateOne(
        {"_id": doc["_id"], "version": doc.get("version", 0)},
        {"$set": store_doc_fields(product, content_hash, document), "$inc": {"version": 1}},
    )


async def list_fields(step: Step) -> bool:
    """Give every stored product what the product lists read it by (gateway.products): its list key `feed`,
    its `search_tokens`, and `removed` where an early release left it out; then count every integration's
    products (gateway.product_counts).

    One pass over the products without those fields (the embedded server reads a whole collection for
    a range on `_id`, so no `_id` checkpoints: a take-over finds what is left by the missing `feed`).
    """
    products = step.db.products
    fields = {"external_id": 1, "store_updated_at": 1, "search_title": 1, "search_skus": 1, "removed": 1, "version": 1}
    cursor = products.find({"feed": {"$exists": False}}, fields).batch_size(BATCH)
    batch: list[Doc] = []
    async for doc in cursor:
        batch.append(doc)
        if len(batch) >= BATCH:
            if not await _add_list_fields(step, batch):
                return False
            batch = []
    if batch and not await _add_list_fields(step, batch):
        return False
    counts = ProductCountStore(step.db)
    async for integration in step.db.integrations.find({}, {"_id": 1}):
        # None: a write was in flight; the integration is recounted after its next run (counts.repair).
        await counts.recount(integration["_id"])
    return True


async def _add_list_fields(step: Step, batch: list[Doc]) -> bool:
    pending = batch
    for _ in range(RETRIES):
        ops = [_list_fields(doc) for doc in pending if isinstance(doc.get("store_updated_at"), datetime)]
        if not ops:
            break
        result = await step.db.products.bulk_write(ops, ordered=False)
        step.counts.rewritten += result.modified_count
        if result.matched_count == len(ops):
            break
        # Written meanwhile: by today's code (it has `feed` then, nothing to do) or an edit (read again).
        query: Doc = {"_id": {"$in": [doc["_id"] for doc in pending]}, "feed": {"$exists": False}}
        pending = [doc async for doc in step.db.products.find(query)]
    step.counts.seen += len(batch)
    step.checkpoint = step.counts.seen
    if not await step.save():
        log.warning("migration taken over by another process", extra={"migration": step.name})
        return False
    return True


def _list_fields(doc: Doc) -> UpdateOne:
    fields: Doc = {
        "feed": feed_key(doc["store_updated_at"], str(doc["external_id"])),
        "search_tokens": search_tokens(doc.get("search_title") or "", doc.get("search_skus") or ()),
        "removed": bool(doc.get("removed")),
    }
    return UpdateOne({"_id": doc["_id"], "version": doc.get("version", 0)}, {"$set": fields, "$inc": {"version": 1}})


async def api_calls_by_day(step: Step) -> bool:
    """Fold the hourly API-call documents (`api_calls`, one per integration per hour) into a document per
    integration per day (`api_call_days`, gateway.integration_store), then drop the old collection.

    Only the last two days matter (apiCallsLast24h). Each hour is written with `$max`, so a take-over that
    folds an hour again, or a count this release added meanwhile, is never counted twice.
    """
    since = (step.clock() - timedelta(hours=48)).replace(minute=0, second=0, microsecond=0)
    ops: list[UpdateOne] = []
    async for doc in step.db.api_calls.find({"hour": {"$gte": since}}):
        hour = doc["hour"] if doc["hour"].tzinfo else doc["hour"].replace(tzinfo=UTC)
        ops.append(
            UpdateOne(
                {"_id": api_call_day(doc["integration_id"], hour)},
                {
                    "$max": {f"hours.{hour.hour:02d}": int(doc.get("count") or 0)},
                    "$setOnInsert": {"integration_id": doc["integration_id"]},
                },
                upsert=True,
            )
        )
        step.counts.seen += 1
    for start in range(0, len(ops), BATCH):
        result = await step.db.api_call_days.bulk_write(ops[start : start + BATCH], ordered=False)
        step.counts.rewritten += result.upserted_count + result.modified_count
        if not await step.save():
            log.warning("migration taken over by another process", extra={"migration": step.name})
            return False
    await step.db.api_calls.drop()
    return True


#: Every migration, in the order they run. Never rename or reorder one that has shipped.
MIGRATIONS: list[tuple[str, Migration]] = [
    ("0001-canonical-product-shape", canonical_shape),
    ("0002-product-list-fields-and-counts", list_fields),
    ("0003-api-calls-by-day", api_calls_by_day),
]


# ---- running them ------------------------------------------------------------------------------------
def process_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def claim(db: Database, name: str, owner: str, now: datetime) -> Doc | None:
    """Take the migration `name` if it is not done and nobody holds it; None otherwise."""
    try:
        return await db.db[COLLECTION].find_one_and_update(
            {"_id": name, "state": {"$ne": "done"}, "lease_until": {"$lt": now}},
            {
                "$set": {"state": "running", "owner": owner, "lease_until": now + LEASE},
                "$setOnInsert": {"started_at": now, "checkpoint": None},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError:
        return None  # done, or another process holds a live lease


async def run_migrations(
    db: Database,
    *,
    owner: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    migrations: list[tuple[str, Migration]] | None = None,
) -> list[str]:
    """Run the migrations this database has not had yet; returns the names this process completed."""
    owner = owner or process_owner()
    completed: list[str] = []
    for name, migrate in MIGRATIONS if migrations is None else migrations:
        record = await claim(db, name, owner, clock())
        if record is None:
            done = await db.db[COLLECTION].find_one({"_id": name, "state": "done"}, {"_id": 1})
            if done is not None:
                continue
            return completed  # another process is running it; the later ones wait for it
        step = Step(db, name, owner, clock, checkpoint=record.get("checkpoint"))
        step.counts = Counts(**(record.get("counts") or {}))
        log.info("running migration", extra={"migration": name, "resumed_from": step.checkpoint})
        if not await migrate(step):
            return completed
        await db.db[COLLECTION].update_one(
            {"_id": name, "owner": owner},
            {"$set": {"state": "done", "finished_at": clock(), "counts": step.counts.as_doc()}},
        )
        log.info("migration done", extra={"migration": name, **step.counts.as_doc()})
        completed.append(name)
    return completed
