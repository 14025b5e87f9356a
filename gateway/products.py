"""Canonical products in MongoDB: writes with change detection, overlays, and account-scoped reads.

A product document holds the store version (`store`), its content hash, Alana's overlays, and a
`version` that every write increments. Writes that must not lose a concurrent update (an Alana edit
racing a sync, a webhook racing a run) are conditional on `version`: read, decide, write only if the
version is still the one read, else re-read and decide again. No read-modify-write without that
guard.

Change detection for a run's page is `write_page`: one read of the stored hashes, a `Decision` per
product, one unordered bulk write. At the end of a full run, `sweep_unseen` marks removed the products
the run did not see (the run keeps what it saw in MongoDB: gateway.runs.RunStore.record_seen).

A removal is a store version too, and nothing older brings a product back:
- it records when it was decided (`removed_at`) and the store time it stands for (`removal_version`);
- a store body not newer than both that and the last version stored (a late or replayed webhook)
  changes nothing;
- what a sync read (a page, a webhook's read-back) brings a removed product back only when the read
  began after the removal (`observed_after`): a page fetched before a webhook removed the product is
  older than that removal, whatever the page says.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from gateway.domain import utcnow
from gateway.errors import NotFound
from gateway.model import EDITABLE_FIELDS, Product, hash_document
from gateway.pagination import PageRequest, Slice
from gateway.runs import RunCounts
from gateway.storage.mongo import Database, Doc, find_page


class Outcome(StrEnum):
    ADDED = "ADDED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    REMOVED = "REMOVED"
    STALE = "STALE"  # an older store version than the one stored: ignored


@dataclass(frozen=True)
class ConflictFound:
    """A store change that overrode an active Alana overlay (recorded by the caller)."""

    field: str
    store_value: Any
    alana_value: Any
    overlay_id: str
    conflict_id: str


@dataclass(frozen=True)
class WriteResult:
    outcome: Outcome
    product_id: str
    conflicts: tuple[ConflictFound, ...] = ()


class Decision(Enum):
    """What a run's page does with one mapped product, against what is stored."""

    INSERT = "insert"  # not stored: insert it (counted added)
    UPDATE = "update"  # changed: a version-guarded update in the page's bulk write
    CHECK_OVERLAYS = "check_overlays"  # changed under Alana's active edits: written one by one, with conflicts
    UNCHANGED = "unchanged"  # same content, or older than what is stored (a webhook overtook the run)
    ADDED_BEFORE = "added_before"  # an earlier attempt of this same run inserted it: counted as it did
    UPDATED_BEFORE = "updated_before"  # an earlier attempt of this same run updated it


#: Products mapped or hashed between two turns of the event loop (a run's page is CPU work that would
#: otherwise hold up every other job of its worker process for the whole page).
YIELD_EVERY = 25

#: The counter a decision adds to (UPDATE and CHECK_OVERLAYS are settled when written).
_COUNTER = {
    Decision.INSERT: "added",
    Decision.UPDATE: "updated",
    Decision.CHECK_OVERLAYS: "updated",
    Decision.UNCHANGED: "unchanged",
    Decision.ADDED_BEFORE: "added",
    Decision.UPDATED_BEFORE: "updated",
}


@dataclass(frozen=True)
class PageWrite:
    """What writing one page did: the counters it adds to the run, and what else the run reports."""

    counts: RunCounts
    #: Products added or updated (PRODUCT_CHANGED events).
    changed_ids: tuple[str, ...] = ()
    #: Alana's edits the store overrode, by product id (the caller records them).
    conflicts: tuple[tuple[str, ConflictFound], ...] = ()
    #: The newest store change on the page.
    max_updated: datetime | None = None


@dataclass(frozen=True)
class Overlay:
    """One of Alana's edits, layered over the store version of one field."""

    id: str
    field: str
    value: Any
    #: The store's value when Alana edited: a store change to the field is detected against it.
    base: Any
    edited_at: datetime
    active: bool = True
    conflict_id: str | None = None
    deactivated_at: datetime | None = None


@dataclass(frozen=True)
class StoredProduct:
    id: str
    account_id: str
    integration_id: str
    external_id: str
    #: The store version: the canonical product (gateway.model.Product) as JSON.
    store: Mapping[str, Any]
    store_updated_at: datetime
    synced_at: datetime | None = None
    overlays: tuple[Overlay, ...] = ()
    removed: bool = False
    version: int = 0

    @property
    def effective(self) -> dict[str, Any]:
        """The store version with the active overlays on top."""
        result = dict(self.store)
        for overlay in self.overlays:
            if overlay.active:
                result[overlay.field] = overlay.value
        return result

    @classmethod
    def from_doc(cls, doc: Doc) -> StoredProduct:
        return cls(
            id=doc["_id"],
            account_id=doc["account_id"],
            integration_id=doc["integration_id"],
            external_id=doc["external_id"],
            store=doc["store"],
            store_updated_at=doc["store_updated_at"],
            synced_at=doc.get("synced_at"),
            overlays=tuple(
                Overlay(
                    id=o["id"],
                    field=o["field"],
                    value=o.get("value"),
                    base=o.get("base"),
                    edited_at=o["edited_at"],
                    active=bool(o.get("active")),
                    conflict_id=o.get("conflict_id"),
                    deactivated_at=o.get("deactivated_at"),
                )
                for o in doc.get("overlays") or ()
            ),
            removed=bool(doc.get("removed")),
            version=int(doc.get("version") or 0),
        )


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


def classify(
    product: Product,
    content_hash: str,
    old: Doc | None,
    run_id: str | None,
    observed_after: datetime | None = None,
) -> Decision:
    """The decision for one mapped product of run `run_id` (None: a webhook's), given its stored hash,
    version and flags, when the store was read after `observed_after`."""
    if old is None:
        return Decision.INSERT
    if removed_since(old, observed_after):
        return Decision.UNCHANGED  # removed (by a webhook) after this page was read: the page is older
    if older(product.store_updated_at, old.get("store_updated_at")):
        return Decision.UNCHANGED  # a newer version already arrived (a webhook overtook this run): keep it
    if old.get("hash") == content_hash and not old.get("removed"):
        # Written by an earlier attempt of this same run: count it as that attempt did.
        if old.get("created_run") == run_id:
            return Decision.ADDED_BEFORE
        return Decision.UPDATED_BEFORE if old.get("updated_run") == run_id else Decision.UNCHANGED
    if any(o.get("active") for o in old.get("overlays", [])):
        return Decision.CHECK_OVERLAYS
    return Decision.UPDATE


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
                "held_run": 1,
                "held_seen_run": 1,
                "removed_run": 1,
                "store_updated_at": 1,
                "removed_at": 1,
            },
        )
        return {doc["external_id"]: doc async for doc in cursor}

    async def any_stored(self, integration_id: str) -> bool:
        return await self.db.products.find_one({"integration_id": integration_id}, {"_id": 1}) is not None

    async def get(self, account_id: str, pid: str) -> StoredProduct | None:
        doc = await self.db.products.find_one({"_id": pid, "account_id": account_id})
        return None if doc is None else StoredProduct.from_doc(doc)

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
    ) -> Slice[StoredProduct]:
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
        items = [StoredProduct.from_doc(d) for d in found.items]
        return Slice(items, found.positions, found.has_next, total)

    # ---- a run's page -------------------------------------------------------------------------
    async def write_page(
        self,
        account_id: str,
        integration_id: str,
        run_id: str | None,
        products: Mapping[str, Product],
        *,
        nothing_stored: bool = False,
        held_counted: str | None = None,
        observed_after: datetime | None = None,
    ) -> PageWrite:
        """Write one page of a run (or a webhook batch: `run_id` None): only what changed, in one unordered
        bulk write (version-guarded); a version older than the stored one changes nothing.

        `nothing_stored` (a first load) skips reading what is stored; a product that appears meanwhile
        (a webhook) makes its insert collide and is decided again. `held_counted`: the run has counted the
        held changes it applied first, under this mark (`HeldChanges.mark`: the attempt that saved their
        counts; what an attempt that died before saving wrote is counted here, by the walk), so a product
        they wrote (`held_run`) is written if the store has
        changed it again, but not counted a second time; one they found unchanged (`held_seen_run`) and
        that the store has changed since moves from the run's "unchanged" to what the walk made of it.
        `observed_after`: the store was read after this moment (a removed product comes back only if it
        was removed before).
        """
        existing = {} if nothing_stored or not products else await self.existing(integration_id, list(products))
        counted_before = {
            e
            for e, doc in existing.items()
            if held_counted and held_counted in (doc.get("held_run"), doc.get("held_seen_run"))
        }
        held_unchanged = {e for e in counted_before if existing[e].get("held_run") != held_counted}
        #: Each product's counter ("added", "updated" or "unchanged"), as finally decided.
        tally: dict[str, str] = {}
        written: set[str] = set()  # written by this attempt: PRODUCT_CHANGED
        inserts: list[Doc] = []
        updates: list[UpdateOne] = []
        guarded: dict[str, str] = {}
        slow: list[tuple[Product, str]] = []
        max_updated: datetime | None = None
        for n, (external_id, product) in enumerate(products.items(), 1):
            if not n % YIELD_EVERY:
                await asyncio.sleep(0)  # hashing is CPU work: other jobs get the event loop in between
            store = product.to_document()  # dumped once: hashed and stored as is
            content_hash = hash_document(store)
            if max_updated is None or product.store_updated_at > max_updated:
                max_updated = product.store_updated_at
            old = existing.get(external_id)
            decision = classify(product, content_hash, old, run_id, observed_after)
            tally[external_id] = _COUNTER[decision]
            if decision is Decision.INSERT:
                inserts.append(self.new_document(account_id, integration_id, product, content_hash, run_id, store))
                written.add(external_id)
            elif decision is Decision.UPDATE:
                assert old is not None
                version = old.get("version", 0)
                updates.append(self.update_op(integration_id, product, content_hash, version, run_id, store))
                guarded[external_id] = content_hash
                tally[external_id] = "added" if old.get("removed") else "updated"
                written.add(external_id)
            elif decision is Decision.CHECK_OVERLAYS:
                slow.append((product, content_hash))
        matched, collided = await self.bulk(inserts, updates)
        # An insert that collided (a webhook inserted it between our read and our write), or an update
        # whose version moved (an Alana edit, a webhook): decided again, one by one.
        slow += [(products[d["external_id"]], d["hash"]) for d in inserts if d["_id"] in collided]
        if matched < len(updates):
            now = await self.existing(integration_id, list(guarded))
            slow += [(products[e], h) for e, h in guarded.items() if now.get(e, {}).get("hash") != h]
        found: list[tuple[str, ConflictFound]] = []
        for product, content_hash in slow:
            outcome = await self.write_one(
                account_id,
                integration_id,
                product,
                content_hash,
                run_id,
                skip_older=True,
                observed_after=observed_after,
            )
            external_id = product.external_id
            if outcome.outcome in (Outcome.UNCHANGED, Outcome.STALE):
                tally[external_id] = "unchanged"
                written.discard(external_id)
            else:
                if external_id not in guarded:
                    tally[external_id] = "added" if outcome.outcome is Outcome.ADDED else "updated"
                written.add(external_id)
            found += [(outcome.product_id, conflict) for conflict in outcome.conflicts]
        counted = [tally[e] for e in products if e not in counted_before]
        # Counted "unchanged" by the held step, changed by the walk: counted as what the walk did instead.
        recounted = [tally[e] for e in products if e in held_unchanged and tally[e] != "unchanged"]
        counts = RunCounts(
            added=counted.count("added") + recounted.count("added"),
            updated=counted.count("updated") + recounted.count("updated"),
            unchanged=counted.count("unchanged") - len(recounted),
            conflicts=len(found),
        )
        changed = tuple(product_id(integration_id, e) for e in products if e in written)
        return PageWrite(counts, changed, tuple(found), max_updated)

    async def sweep_unseen(
        self, integration_id: str, run_id: str, started_at: datetime, seen: Collection[str], *, retried: bool
    ) -> int:
        """The end of a full run: the products it did not see are gone from the store (marked removed,
        never deleted). Returns how many this run removed, however many attempts it took.

        A product written since the run started (a webhook) is newer than what the run walked past and
        is kept; the next full run decides it. A `retried` run may have swept before its worker died:
        its removals are counted from the products it marked, not from this attempt's updates.
        """
        cursor = self.db.products.find(
            {"integration_id": integration_id, "removed": {"$ne": True}, "synced_at": {"$lt": started_at}},
            {"external_id": 1},
        ).batch_size(1000)
        gone = [doc["external_id"] async for doc in cursor if doc["external_id"] not in seen]
        removed = 0
        for start in range(0, len(gone), 1000):
            ids = [product_id(integration_id, e) for e in gone[start : start + 1000]]
            # The run read the store from `started_at` on without finding them: a store version of that
            # time or older cannot be newer than their removal.
            removal = {"removed": True, "removed_at": utcnow(), "removal_version": started_at}
            result = await self.db.products.update_many(
                {"_id": {"$in": ids}, "removed": {"$ne": True}},
                {"$set": {**removal, "removed_run": run_id, "removed_sweep": run_id}, "$inc": {"version": 1}},
            )
            removed += result.modified_count
        if retried:  # a scan, so only when an earlier attempt may have swept some already
            return await self.db.products.count_documents({"integration_id": integration_id, "removed_sweep": run_id})
        return removed

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
        fields: Doc = {
            **store_doc_fields(product, content_hash, store),
            "removed": False,
            "synced_at": utcnow(),
            "updated_run": run_id,
        }
        return UpdateOne(
            {"_id": product_id(integration_id, product.external_id), "version": version},
            {"$set": fields, "$inc": {"version": 1}},
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
        held: str | None = None,
        observed_after: datetime | None = None,
    ) -> WriteResult:
        """Write one store version safely (conditional on version), detecting overlay conflicts.

        `skip_older`: a store version older than the stored one changes nothing (late webhooks), and so
        does one of a removed product dated at or before its removal. `observed_after`: the product was
        read from the store after this moment; a product removed since stays removed.
        `held`: a change manual mode kept waiting, applied by run `run_id` before it reads the store;
        the product remembers it (`held_run` when written, `held_seen_run` when it changed nothing) so
        that run counts it once (see `write_page`).
        """
        pid = product_id(integration_id, product.external_id)
        marks: Doc = {"held_run": held} if held else {}
        seen: Doc = {"held_seen_run": held} if held else {}
        for _ in range(20):
            doc = await self.db.products.find_one({"_id": pid})
            if doc is None:
                try:
                    await self.db.products.insert_one(
                        {**self.new_document(account_id, integration_id, product, content_hash, run_id), **marks}
                    )
                    return WriteResult(Outcome.ADDED, pid)
                except DuplicateKeyError:
                    continue  # someone else inserted it first: decide again against theirs
            if removed_since(doc, observed_after):
                await self._mark(pid, seen)
                return WriteResult(Outcome.STALE, pid)
            if skip_older and older(product.store_updated_at, doc.get("store_updated_at")):
                await self._mark(pid, seen)
                return WriteResult(Outcome.STALE, pid)
            if skip_older and observed_after is None and not newer_than_removal(product.store_updated_at, doc):
                await self._mark(pid, seen)
                return WriteResult(Outcome.STALE, pid)
            if doc.get("hash") == content_hash and not doc.get("removed"):
                await self._mark(pid, seen)
                return WriteResult(Outcome.UNCHANGED, pid)
            new_store = product.to_document()
            overlays, conflicts = detect_conflicts(doc, new_store)
            fields: Doc = {
                **store_doc_fields(product, content_hash),
                "removed": False,
                "synced_at": utcnow(),
                "updated_run": run_id,
                "overlays": overlays,
                **marks,
            }
            update = {"$set": fields, "$inc": {"version": 1}}
            result = await self.db.products.update_one({"_id": pid, "version": doc.get("version", 0)}, update)
            if result.matched_count:
                outcome = Outcome.ADDED if doc.get("removed") else Outcome.UPDATED
                return WriteResult(outcome, pid, tuple(conflicts))
        raise RuntimeError(f"product {pid} kept changing under 20 consecutive writes")

    async def _mark(self, pid: str, marks: Doc) -> None:
        """Remember a held change checked and found unchanged (no new version: nothing changed)."""
        if marks:
            await self.db.products.update_one({"_id": pid}, {"$set": marks})

    async def mark_removed(
        self,
        integration_id: str,
        external_ids: Iterable[str],
        run_id: str | None,
        *,
        version: datetime | None = None,
        held: str | None = None,
    ) -> int:
        """Mark products removed (never deleted). `version`: the store time the removal stands for (the
        delivery's receipt; by default now, when the store was just asked): no older body revives them.
        `held` as in `write_one`."""
        ids = [product_id(integration_id, e) for e in external_ids]
        if not ids:
            return 0
        now = utcnow()
        fields: Doc = {"removed": True, "removed_at": now, "removal_version": version or now, "removed_run": run_id}
        if held:
            fields["held_run"] = held
        result = await self.db.products.update_many(
            {"_id": {"$in": ids}, "removed": {"$ne": True}}, {"$set": fields, "$inc": {"version": 1}}
        )
        return result.modified_count

    async def remove_missing(
        self, integration_id: str, run_id: str, external_ids: Sequence[str], *, held_counted: str | None
    ) -> tuple[int, list[str]]:
        """Chosen products (a PRODUCTS run) the store no longer has: mark removed the ones stored, and
        return how many this run removed with the ids that are not stored at all, or were gone before
        this run (unknown to the store: NOT_FOUND). A removal by an earlier attempt of the run counts
        again (its counters were not saved); one by the held changes it applied first does not."""
        stored = await self.existing(integration_id, external_ids)
        removed = await self.mark_removed(integration_id, [e for e in external_ids if e in stored], run_id)
        unknown: list[str] = []
        for external_id in external_ids:
            doc = stored.get(external_id)
            if doc is None:
                unknown.append(external_id)
            elif not doc.get("removed"):
                continue  # removed just now: counted above
            elif doc.get("removed_run") != run_id:
                unknown.append(external_id)
            elif not (held_counted and doc.get("held_run") == held_counted):
                removed += 1  # an earlier attempt of this run removed it
        return removed, unknown

    async def delete_integration(self, integration_id: str) -> None:
        await self.db.products.delete_many({"integration_id": integration_id})

    # ---- Alana's edits ------------------------------------------------------------------------
    async def add_overlays(self, account_id: str, pid: str, values: dict[str, Any]) -> StoredProduct:
        """Store Alana's edits as fresh overlays on the current store version (version-guarded)."""
        for _ in range(20):
            doc = await self.db.products.find_one({"_id": pid, "account_id": account_id})
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
                return StoredProduct.from_doc(result)
        raise RuntimeError(f"product {pid} kept changing under 20 consecutive edits")


def older(new: datetime | None, stored: datetime | None) -> bool:
    """True when `new` is strictly older than `stored` (a late delivery)."""
    if new is None or stored is None:
        return False
    return new < stored


def newer_than_removal(new: datetime | None, doc: Doc) -> bool:
    """False when `doc` is removed and a store version dated `new` is not newer than the removal.

    The removal stands after the last store version applied (a replay of that very body is not newer)
    and after the store time it was decided at (`removal_version`, this side's clock: a store whose
    clock runs ahead can only slip a body through within that difference)."""
    if not doc.get("removed") or new is None:
        return True
    marks = [m for m in (doc.get("store_updated_at"), doc.get("removal_version") or doc.get("removed_at")) if m]
    return all(new > mark for mark in marks)


def removed_since(doc: Doc, observed_after: datetime | None) -> bool:
    """True when `doc` was removed at or after `observed_after` (what was read then is older)."""
    if observed_after is None or not doc.get("removed"):
        return False
    removed_at = doc.get("removed_at")
    return removed_at is not None and removed_at >= observed_after
