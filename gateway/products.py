"""Canonical products in MongoDB: writes with change detection, overlays, and account-scoped reads.

A product document holds the store version (`store`), its content hash, Alana's overlays, and a
`version` that every write increments. Writes that must not lose a concurrent update (an Alana edit
racing a sync, a webhook racing a run) are conditional on `version`: read, decide, write only if the
version is still the one read, else re-read and decide again. No read-modify-write without that
guard.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from gateway.domain import utcnow
from gateway.errors import NotFound
from gateway.model import EDITABLE_FIELDS, Product
from gateway.pagination import PageRequest, Slice
from gateway.storage.mongo import Database, Doc, find_page


class Outcome(StrEnum):
    ADDED = "ADDED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    REMOVED = "REMOVED"
    STALE = "STALE"  # an older store version than the one stored: ignored


@dataclass
class ConflictFound:
    """A store change that overrode an active Alana overlay (recorded by the caller)."""

    field: str
    store_value: Any
    alana_value: Any
    overlay_id: str
    conflict_id: str


@dataclass
class WriteResult:
    outcome: Outcome
    product_id: str
    conflicts: list[ConflictFound] = field(default_factory=list)


def product_id(integration_id: str, external_id: str) -> str:
    """Products have deterministic ids, so a retried write can never create a duplicate."""
    return f"{integration_id}:{external_id}"


def search_fields(store: Doc) -> Doc:
    skus = {store.get("identifiers", {}).get("sku") or ""}
    skus.update(v.get("sku") or "" for v in store.get("variants", []))
    return {
        "search_title": (store.get("title") or "").casefold(),
        "search_skus": sorted(s.casefold() for s in skus if s),
    }


def store_doc_fields(product: Product, content_hash: str, store: Doc | None = None) -> Doc:
    """The fields a store version sets; `store` is the product's `to_document()` when already made."""
    store = store if store is not None else product.to_document()
    return {
        "store": store,
        "hash": content_hash,
        "status": store["status"],
        "store_updated_at": product.store_updated_at,
        **search_fields(store),
    }


def store_field_value(store: Doc, name: str) -> Any:
    return store.get(name)


def effective(doc: Doc) -> Doc:
    """The store version with the active overlays on top."""
    result = dict(doc["store"])
    for overlay in doc.get("overlays", []):
        if overlay.get("active"):
            result[overlay["field"]] = overlay["value"]
    return result


def detect_conflicts(doc: Doc, new_store: Doc) -> tuple[list[Doc], list[ConflictFound]]:
    """Three-way check of each active overlay: base (store value when Alana edited), theirs (the
    store's new value), ours (Alana's value). Theirs != base -> the store wins, overlay deactivated.
    Returns the updated overlay list and the conflicts found."""
    overlays: list[Doc] = []
    found: list[ConflictFound] = []
    for overlay in doc.get("overlays", []):
        overlay = dict(overlay)
        if overlay.get("active"):
            theirs = store_field_value(new_store, overlay["field"])
            if theirs != overlay.get("base"):
                overlay["active"] = False
                overlay["deactivated_at"] = utcnow()
                # When the store now holds what Alana wanted, nothing is lost: no conflict to report.
                if theirs != overlay["value"]:
                    conflict_id = uuid.uuid4().hex
                    overlay["conflict_id"] = conflict_id
                    found.append(ConflictFound(overlay["field"], theirs, overlay["value"], overlay["id"], conflict_id))
        overlays.append(overlay)
    return overlays, found


class ProductStore:
    """Account-scoped access to canonical products."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- reads --------------------------------------------------------------------------------
    async def existing(self, integration_id: str, external_ids: Sequence[str]) -> dict[str, Doc]:
        """Hash, version, flags and overlays of the given products, keyed by external id."""
        cursor = self.db.products.find(
            {"_id": {"$in": [product_id(integration_id, e) for e in external_ids]}},
            {
                "external_id": 1,
                "hash": 1,
                "version": 1,
                "removed": 1,
                "overlays": 1,
                "created_run": 1,
                "updated_run": 1,
                "store_updated_at": 1,
            },
        )
        return {doc["external_id"]: doc async for doc in cursor}

    async def any_stored(self, integration_id: str) -> bool:
        return await self.db.products.find_one({"integration_id": integration_id}, {"_id": 1}) is not None

    async def get(self, account_id: str, pid: str) -> Doc | None:
        return await self.db.products.find_one({"_id": pid, "account_id": account_id})

    async def count(self, account_id: str, integration_id: str) -> int:
        return await self.db.products.count_documents(
            {"account_id": account_id, "integration_id": integration_id, "removed": {"$ne": True}}
        )

    async def page(
        self,
        account_id: str,
        page: PageRequest,
        *,
        integration_id: str | None = None,
        search: str | None = None,
        status: str | None = None,
    ) -> Slice[Doc]:
        """The account's products (not removed), newest store change first, with the total count.

        `search` matches the title anywhere and a SKU from its start, case-insensitively, through the
        normalized `search_*` fields (no text index: the embedded server has none).
        """
        query: Doc = {"account_id": account_id, "removed": {"$ne": True}}
        if integration_id:
            query["integration_id"] = integration_id
        if status:
            query["status"] = status
        if search and search.strip():
            term = re.escape(search.strip().casefold())
            query["$or"] = [{"search_title": {"$regex": term}}, {"search_skus": {"$regex": f"^{term}"}}]
        total = await self.db.products.count_documents(query)
        found = await find_page(self.db.products, query, "store_updated_at", page)
        return replace(found, total=total)

    # ---- writes from the store ----------------------------------------------------------------
    def new_document(
        self,
        account_id: str,
        integration_id: str,
        product: Product,
        content_hash: str,
        run_id: str | None,
        store: Doc | None = None,
    ) -> Doc:
        """A whole product document, for a product the store has and we have never stored."""
        now = utcnow()
        return {
            "_id": product_id(integration_id, product.external_id),
            "account_id": account_id,
            "integration_id": integration_id,
            "external_id": product.external_id,
            "overlays": [],
            "created_run": run_id,
            "updated_run": run_id,
            "created_at": now,
            "synced_at": now,
            "removed": False,
            "version": 1,
            **store_doc_fields(product, content_hash, store),
        }

    def update_op(
        self,
        integration_id: str,
        product: Product,
        content_hash: str,
        version: int,
        run_id: str | None,
        store: Doc | None = None,
    ) -> UpdateOne:
        return UpdateOne(
            {"_id": product_id(integration_id, product.external_id), "version": version},
            {
                "$set": {
                    **store_doc_fields(product, content_hash, store),
                    "removed": False,
                    "synced_at": utcnow(),
                    "updated_run": run_id,
                },
                "$inc": {"version": 1},
            },
        )

    async def bulk(self, inserts: list[Doc], updates: list[UpdateOne]) -> tuple[int, set[str]]:
        """Insert new products and apply version-guarded updates, unordered, in one round trip.

        Returns how many updates matched, and the ids of inserts that hit an existing document (a
        concurrent writer got there first: the caller decides those again, one by one).
        """
        ops: list[InsertOne[Doc] | UpdateOne] = [InsertOne(doc) for doc in inserts]
        ops.extend(updates)
        if not ops:
            return 0, set()
        try:
            result = await self.db.products.bulk_write(ops, ordered=False)
            return result.matched_count, set()
        except BulkWriteError as exc:
            details = exc.details
            duplicates = {
                str(inserts[e["index"]]["_id"])
                for e in details.get("writeErrors", [])
                if e.get("code") == 11000 and e["index"] < len(inserts)
            }
            others = [e for e in details.get("writeErrors", []) if e.get("code") != 11000]
            if others:
                raise
            return int(details.get("nMatched", 0)), duplicates

    async def write_one(
        self,
        account_id: str,
        integration_id: str,
        product: Product,
        content_hash: str,
        run_id: str | None,
        *,
        skip_older: bool = False,
    ) -> WriteResult:
        """Write one store version safely (conditional on version), detecting overlay conflicts.

        `skip_older`: a store version older than the stored one changes nothing (late webhooks).
        """
        pid = product_id(integration_id, product.external_id)
        for _ in range(20):
            doc = await self.db.products.find_one({"_id": pid})
            if doc is None:
                try:
                    await self.db.products.insert_one(
                        self.new_document(account_id, integration_id, product, content_hash, run_id)
                    )
                    return WriteResult(Outcome.ADDED, pid)
                except DuplicateKeyError:
                    continue  # someone else inserted it first: decide again against theirs
            if skip_older and older(product.store_updated_at, doc.get("store_updated_at")):
                return WriteResult(Outcome.STALE, pid)
            if doc.get("hash") == content_hash and not doc.get("removed"):
                return WriteResult(Outcome.UNCHANGED, pid)
            new_store = product.to_document()
            overlays, conflicts = detect_conflicts(doc, new_store)
            update = {
                "$set": {
                    **store_doc_fields(product, content_hash),
                    "removed": False,
                    "synced_at": utcnow(),
                    "updated_run": run_id,
                    "overlays": overlays,
                },
                "$inc": {"version": 1},
            }
            result = await self.db.products.update_one({"_id": pid, "version": doc.get("version", 0)}, update)
            if result.matched_count:
                outcome = Outcome.ADDED if doc.get("removed") else Outcome.UPDATED
                return WriteResult(outcome, pid, conflicts)
        raise RuntimeError(f"product {pid} kept changing under 20 consecutive writes")

    async def mark_removed(self, integration_id: str, external_ids: Iterable[str], run_id: str | None) -> int:
        ids = [product_id(integration_id, e) for e in external_ids]
        if not ids:
            return 0
        result = await self.db.products.update_many(
            {"_id": {"$in": ids}, "removed": {"$ne": True}},
            {
                "$set": {"removed": True, "removed_at": utcnow(), "removed_run": run_id},
                "$inc": {"version": 1},
            },
        )
        return result.modified_count

    async def active_external_ids(self, integration_id: str, batch: int = 1000) -> Any:
        """Yield batches of external ids of the products not marked removed (memory stays flat)."""
        cursor = self.db.products.find(
            {"integration_id": integration_id, "removed": {"$ne": True}}, {"external_id": 1}
        ).batch_size(batch)
        chunk: list[str] = []
        async for doc in cursor:
            chunk.append(doc["external_id"])
            if len(chunk) >= batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    async def delete_integration(self, integration_id: str) -> None:
        await self.db.products.delete_many({"integration_id": integration_id})

    # ---- Alana's edits ------------------------------------------------------------------------
    async def add_overlays(self, account_id: str, pid: str, values: dict[str, Any]) -> Doc:
        """Store Alana's edits as fresh overlays on the current store version (version-guarded)."""
        for _ in range(20):
            doc = await self.get(account_id, pid)
            if doc is None:
                raise NotFound("no product with that id", field="productId")
            now = utcnow()
            overlays = [dict(o) for o in doc.get("overlays", [])]
            for name, value in values.items():
                assert name in EDITABLE_FIELDS
                current = next((o for o in overlays if o["field"] == name and o.get("active")), None)
                if current is not None:
                    # Alana editing its own edit: the overlay takes the new value; its base is still
                    # the current store value (a store change would have deactivated it).
                    current["value"] = value
                    current["edited_at"] = now
                    continue
                overlays.append(
                    {
                        "id": uuid.uuid4().hex,
                        "field": name,
                        "value": value,
                        "base": store_field_value(doc["store"], name),
                        "edited_at": now,
                        "active": True,
                    }
                )
            result = await self.db.products.find_one_and_update(
                {"_id": pid, "account_id": account_id, "version": doc.get("version", 0)},
                {"$set": {"overlays": overlays}, "$inc": {"version": 1}},
                return_document=True,
            )
            if result is not None:
                return dict(result)
        raise RuntimeError(f"product {pid} kept changing under 20 consecutive edits")


def older(new: datetime | None, stored: datetime | None) -> bool:
    """True when `new` is strictly older than `stored` (a late delivery)."""
    if new is None or stored is None:
        return False
    return new < stored
