"""Canonical products in MongoDB: writes with change detection, overlays, and account-scoped reads.

A product document holds the store version (`store`), its content hash, Alana's overlays, and a
`version` that every write increments. Writes that must not lose a concurrent update (an Alana edit
racing a sync, a webhook racing a run) are conditional on `version`: read, decide, write only if the
version is still the one read, else re-read and decide again. No read-modify-write without that
guard.

Change detection for a run's page is `write_page`: one read of the stored hashes, a `Decision` per
product, one unordered bulk write. At the end of a full run, `sweep_unseen` marks removed the products
the run did not see (the run keeps what it saw in MongoDB: gateway.runs.RunStore.record_seen).

Every write that can change how many products an integration has of a status (an insert, a product
coming back, a status change, a removal) is counted as it happens (gateway.product_counts), from what
the guarded write itself matched; the product lists and `productCount` read those counts.

Reads page through `feed`, the list key (`feed_key`: the store change time with a hash of the store id
in its low bits), in narrow ranges (gateway.storage.keyset). `search` goes through `search_tokens`,
the words of the title and the SKUs (and each word's first three letters): a term matches a title
where it begins a word, and a SKU from its start; `search_title` and `search_skus` decide it exactly.

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
import math
import re
import uuid
import zlib
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from gateway.domain import utcnow
from gateway.errors import NotFound
from gateway.model import EDITABLE_FIELDS, Product, hash_document
from gateway.pagination import PageRequest, Slice
from gateway.product_counts import ProductCounts, ProductCountStore
from gateway.runs import RunCounts
from gateway.storage.keyset import KeyPage, Paged, read_page
from gateway.storage.mongo import (
    ACCOUNT_PRODUCTS,
    ACCOUNT_PRODUCTS_BY_STATUS,
    FEED_HASH_BITS,
    PRODUCTS,
    PRODUCTS_BY_STATUS,
    PRODUCTS_BY_TOKEN,
    Database,
    Doc,
    update_and_read,
)

#: With `search`, `totalCount` counts matches up to this many (more read as this many).
SEARCH_COUNT_LIMIT = 1000
#: An account-wide search asks each store for its share of the page and this many rows more (fewer
#: second rounds when the matches are unevenly spread over the stores).
SEARCH_SHARE_SLACK = 4
#: A search reads its token's rows whole when at least this share of them matched the last time
#: (ProductStore._search_one); below it, only the fields that decide a match (_SEARCH_FIELDS).
WHOLE_ROWS_ACCEPTANCE = 0.5
#: What a search reads of each candidate to decide it (the page's products are read whole afterwards).
_SEARCH_FIELDS = {"account_id": 1, "search_title": 1, "search_skus": 1, "status": 1, "removed": 1}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Accounts whose stores the all-stores search remembers (a guess it checks), per process.
ACCOUNTS_KEPT = 4096
#: Products written per command. The embedded server holds a collection's write lock for a whole insert
#: command: a run's 250-product page held it for 0.3-0.5 s under load, and every other store's webhook
#: write waited behind it (measured in the fair-work benchmark). Smaller commands let those in between,
#: for a few round trips more per page.
WRITE_CHUNK = 50
#: A run of letters or digits: a word of a title, or a part of a SKU.
_WORD = re.compile(r"[^\W_]+")
#: A phrase token is a word and this many letters of the next one (gateway.products.search_tokens).
PAIR_LETTERS = 2


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


@dataclass(frozen=True)
class Changes:
    """The products one batch of an integration's webhook deliveries carried (`write_changes_many`)."""

    account_id: str
    integration_id: str
    products: Mapping[str, Product]
    run_id: str


@dataclass
class _ChangePlan:
    """What `write_changes_many` decided, before writing: results known already (by batch), inserts,
    updates that keep a status and those that move one (by batch and statuses), the guarded writes'
    hashes and outcomes (by batch and external id), and products to decide one by one."""

    results: list[dict[str, WriteResult]]
    inserts: list[Doc] = field(default_factory=list)
    updates: list[UpdateOne] = field(default_factory=list)
    moves: dict[tuple[int, str | None, str], list[UpdateOne]] = field(default_factory=dict)
    guarded: dict[tuple[int, str], tuple[str, Outcome]] = field(default_factory=dict)
    slow: list[tuple[int, Product, str]] = field(default_factory=list)


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


def feed_key(store_updated_at: datetime, external_id: str) -> int:
    """The products' list key: newest store change first, and products changed in the same millisecond
    spread over 2**FEED_HASH_BITS values by a hash of their store id (gateway.storage.mongo.FEED)."""
    moment = store_updated_at if store_updated_at.tzinfo else store_updated_at.replace(tzinfo=UTC)
    ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    return (ms << FEED_HASH_BITS) | (zlib.crc32(external_id.encode()) & ((1 << FEED_HASH_BITS) - 1))


def search_tokens(title: str, skus: Iterable[str]) -> list[str]:
    """What a search looks a product up by: each word of the (casefolded) title and each part of a SKU,
    the first three letters of each longer one (a term still being typed finds its word), and each word
    with the first two letters of the next (a phrase: "vintage sc" is a token of "Vintage Scarf", so a
    search of two words reads its few matches, not every product holding the rarer word)."""
    tokens: set[str] = set()
    for text in (title, *skus):
        words = _WORD.findall(text)
        for word in words:
            tokens.add(word)
            if len(word) > 3:
                tokens.add(word[:3])
        tokens.update(
            f"{a} {b[:PAIR_LETTERS]}" for a, b in zip(words, words[1:], strict=False) if len(b) >= PAIR_LETTERS
        )
    return sorted(tokens)


def search_fields(store: Doc) -> Doc:
    skus = {store.get("identifiers", {}).get("sku") or ""}
    skus.update(v.get("sku") or "" for v in store.get("variants", []))
    title = (store.get("title") or "").casefold()
    folded = sorted(s.casefold() for s in skus if s)
    return {"search_title": title, "search_skus": folded, "search_tokens": search_tokens(title, folded)}


def store_doc_fields(product: Product, content_hash: str, store: Doc | None = None) -> Doc:
    """The fields a store version sets; `store` is the product's `to_document()` when already made."""
    store = store if store is not None else product.to_document()
    return {
        "store": store,
        "hash": content_hash,
        "status": store["status"],
        "store_updated_at": product.store_updated_at,
        "feed": feed_key(product.store_updated_at, product.external_id),
        **search_fields(store),
    }


@dataclass(frozen=True)
class Search:
    """A `search` term: which products it matches, and the token to look them up by."""

    term: str

    @classmethod
    def of(cls, text: str | None) -> Search | None:
        term = (text or "").strip().casefold()
        return cls(term) if term else None

    @property
    def token(self) -> str | None:
        """The search token every match holds (None: too short to have one).

        A word of the term followed by more of it is a whole word of the match; the term's last word
        may be the start of one (its first three letters are a token). The longest one is used.
        """
        words = list(_WORD.finditer(self.term))
        choices: list[str] = []
        pairs: list[str] = []
        for n, word in enumerate(words):
            whole = word.end() < len(self.term)
            if whole:
                choices.append(word.group())
            elif len(word.group()) >= 3:
                choices.append(word.group()[:3])
            if n and len(word.group()) >= PAIR_LETTERS:
                pairs.append(f"{words[n - 1].group()} {word.group()[:PAIR_LETTERS]}")
        # Two words of letters: a phrase token is far rarer than either word ("linen tee" is a few
        # products; "linen" thousands). With digits a single part is rarer ("sku-48213": "482", not "sku 48").
        lettered = [p for p in pairs if not any(c.isdigit() for c in p)]
        if lettered:
            return max(lettered, key=len)
        # Longer is rarer; with a digit, rarer still (a SKU's number rather than its common prefix).
        return max(choices, key=lambda t: (len(t), any(c.isdigit() for c in t))) if choices else None

    def matcher(self, status: str | None) -> Callable[[Doc], bool]:
        """Whether a stored product (not removed, of `status`) matches: the term begins a word of its title,
        or one of its SKUs begins with it."""
        begins_word = re.compile(r"(?<![^\W_])" + re.escape(self.term))
        term = self.term

        def matches(doc: Doc) -> bool:
            if doc.get("removed") or (status is not None and doc.get("status") != status):
                return False
            if begins_word.search(doc.get("search_title") or ""):
                return True
            return any(sku.startswith(term) for sku in doc.get("search_skus") or ())

        return matches


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


def _sizing(counts: Sequence[ProductCounts], expect: int) -> dict[str, Any]:
    """What the counts say about where a list begins and how dense it is (gateway.storage.keyset)."""
    newest = [c.newest for c in counts if c.newest is not None]
    oldest = [c.oldest for c in counts if c.oldest is not None]
    if not newest or not oldest or max(newest) <= min(oldest) or not expect:
        return {"newest": max(newest) if newest else None}
    return {"newest": max(newest), "density": expect / (max(newest) - min(oldest))}


def _position(doc: Doc) -> tuple[Any, str]:
    """Where a product stands on the products' list key (newest first when sorted in reverse)."""
    return (doc["feed"], doc["_id"])


class ProductStore:
    """Account-scoped access to canonical products."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.counts = ProductCountStore(db)
        #: account id -> the counts of its stores with products, as its last all-stores search read them.
        self._account_stores: dict[str, list[ProductCounts]] = {}
        #: (integration, term, status) -> the share of the rows its token found that matched, last read.
        self._acceptance: dict[tuple[str, str, str | None], float] = {}

    # ---- reads --------------------------------------------------------------------------------
    async def existing(self, integration_id: str, external_ids: Sequence[str]) -> dict[str, Doc]:
        """Hash, version, flags, status and overlays of the given products, keyed by external id."""
        found = await self._existing([product_id(integration_id, e) for e in external_ids])
        return {doc["external_id"]: doc for doc in found.values()}

    async def _existing(self, pids: Sequence[str]) -> dict[str, Doc]:
        """`existing` by product id, of any integrations."""
        cursor = self.db.products.find(
            {"_id": {"$in": list(pids)}},
            {
                "external_id": 1,
                "hash": 1,
                "version": 1,
                "removed": 1,
                "status": 1,
                "overlays": 1,
                "created_run": 1,
                "updated_run": 1,
                "held_run": 1,
                "held_seen_run": 1,
                "removed_run": 1,
                "store_updated_at": 1,
                "removed_at": 1,
                "removal_version": 1,
            },
        )
        return {doc["_id"]: doc async for doc in cursor}

    async def any_stored(self, integration_id: str) -> bool:
        if (await self.counts.get(integration_id)).total:
            return True
        # None counted: all removed, or none at all (this query reads every one of them, so only then).
        return await self.db.products.find_one({"integration_id": integration_id}, {"_id": 1}) is not None

    async def get(self, account_id: str, pid: str) -> StoredProduct | None:
        doc = await self.db.products.find_one({"_id": pid, "account_id": account_id})
        return None if doc is None else StoredProduct.from_doc(doc)

    async def count(self, account_id: str, integration_id: str) -> int:
        """The integration's products (not removed), from its counts."""
        counts = await self.counts.get(integration_id)
        return counts.total if counts.account_id in (None, account_id) else 0

    async def counts_of(self, integration_ids: Iterable[str]) -> dict[str, ProductCounts]:
        """Counts by status of several integrations at once (one query)."""
        return await self.counts.of_integrations(integration_ids)

    async def repair_counts(self, integration_id: str) -> ProductCounts | None:
        """Recount the integration's products if its counts may have drifted (gateway.product_counts)."""
        return await self.counts.repair(integration_id)

    async def page(
        self,
        account_id: str,
        page: PageRequest,
        *,
        integration_id: str | None = None,
        search: str | None = None,
        status: str | None = None,
    ) -> Slice[StoredProduct]:
        """The account's products (not removed), newest store change first.

        `search` matches a title where the term begins a word, and a SKU from its start, case-insensitively
        (`Search`; no text index: the embedded server has none). The total is `total`, asked for apart.
        """
        at = self._key_page(page)
        term = Search.of(search)
        if term is None:
            found = await self._list(account_id, integration_id, status, at)
            rows = list(found.items)
        else:
            found = await self._search(account_id, integration_id, status, term, at, whole=True)
            rows = await self._whole(found.items)
        positions = [(doc["store_updated_at"], doc["_id"]) for doc in found.items]
        return Slice([StoredProduct.from_doc(d) for d in rows], positions, found.has_next)

    async def total(
        self,
        account_id: str,
        *,
        integration_id: str | None = None,
        search: str | None = None,
        status: str | None = None,
    ) -> int:
        """How many products `page` lists: from the counts; with `search`, counted up to SEARCH_COUNT_LIMIT."""
        term = Search.of(search)
        if term is not None:
            found = await self._search(account_id, integration_id, status, term, KeyPage(SEARCH_COUNT_LIMIT - 1))
            return len(found.items) + (1 if found.has_next else 0)
        if integration_id is None:
            return sum(c.of(status) for c in await self.counts.of_account(account_id))
        counts = await self.counts.get(integration_id)
        return counts.of(status) if counts.account_id == account_id else 0

    @staticmethod
    def _key_page(page: PageRequest) -> KeyPage:
        """The page on the list key: a cursor names (store_updated_at, id), the key is computed from them."""
        if page.after is None:
            return KeyPage(page.first)
        at, pid = page.after
        if at is None:  # never one of ours (every product has a store_updated_at)
            return KeyPage(page.first)
        return KeyPage(page.first, (feed_key(at, pid.split(":", 1)[-1]), pid))

    async def _list(self, account_id: str, integration_id: str | None, status: str | None, at: KeyPage) -> Slice[Doc]:
        eq: Doc = {"account_id": account_id, "removed": False}
        if integration_id is not None:
            eq["integration_id"] = integration_id
            counts = [await self.counts.get(integration_id)]
        else:
            counts = await self.counts.of_account(account_id)
        if status is not None:
            eq["status"] = status
        shape = {
            (True, False): PRODUCTS,
            (True, True): PRODUCTS_BY_STATUS,
            (False, False): ACCOUNT_PRODUCTS,
            (False, True): ACCOUNT_PRODUCTS_BY_STATUS,
        }[(integration_id is not None, status is not None)]
        expect = sum(c.of(status) for c in counts)
        return await read_page(self.db.products, shape, eq, at, expect=expect, **_sizing(counts, expect))

    async def _search(
        self,
        account_id: str,
        integration_id: str | None,
        status: str | None,
        term: Search,
        at: KeyPage,
        *,
        whole: bool = False,
    ) -> Slice[Doc]:
        """The matches of `term`: per integration, merged for the account. `whole`: a page to show, read as
        whole documents where that is cheaper (`_search_one`); otherwise only the fields deciding them.

        For the account, each store is first asked for its share of the page, and then only the store whose
        next rows could still belong on it is asked for more: every document read costs the embedded
        server a fetch and a decode, and asking every store for a whole page read k pages to show one.
        """
        if integration_id is not None:
            counts = await self.counts.get(integration_id)
            return await self._search_one(account_id, counts, status, term, at, whole=whole)
        need = at.first + 1

        def first_round(stores: list[ProductCounts]) -> list[tuple[ProductCounts, KeyPage]]:
            share = need if len(stores) < 2 else math.ceil(need / len(stores)) + SEARCH_SHARE_SLACK
            return [(c, KeyPage(share, at.after)) for c in stores]

        def ask(asking: list[tuple[ProductCounts, KeyPage]]) -> Awaitable[list[Slice[Doc]]]:
            return asyncio.gather(
                *(self._search_one(account_id, c, status, term, page, whole=whole) for c, page in asking)
            )

        # The stores the account had at its last search are asked while its counts are read (a round trip
        # less); the counts decide: when they name other stores, the first round is asked again. Only which
        # stores and the ranges' sizes come from them, never which rows match.
        guess = self._account_stores.get(account_id)
        guessing = first_round(guess) if guess else []
        guessed = asyncio.ensure_future(ask(guessing)) if guessing else None
        try:
            stores = [c for c in await self.counts.of_account(account_id) if c.total]
            early = await guessed if guessed is not None else None
        finally:
            if guessed is not None and not guessed.done():  # the counts failed: so will this, unread
                guessed.cancel()
        if len(self._account_stores) > ACCOUNTS_KEPT:
            self._account_stores.clear()
        self._account_stores[account_id] = stores
        asking = first_round(stores)
        if early is not None and {c.integration_id for c, _ in guessing} == {c.integration_id for c in stores}:
            asking = guessing  # what `early` answers, store by store
        else:
            early = None  # asked the wrong stores: ask the right ones
        share = asking[0][1].first if asking else need
        read: dict[str, list[Doc]] = {c.integration_id: [] for c in stores}
        more: dict[str, bool] = {}
        while True:
            parts = early if early is not None else await ask(asking)
            early = None
            for (c, _), part in zip(asking, parts, strict=True):
                read[c.integration_id].extend(part.items)
                more[c.integration_id] = part.has_next
            rows = sorted((d for docs in read.values() for d in docs), key=_position, reverse=True)
            # Every row not read yet lies below its store's last row read: what is above the highest of
            # those is complete, in order.
            frontier = max((_position(read[i][-1]) for i, has in more.items() if has), default=None)
            complete = rows if frontier is None else [d for d in rows if _position(d) >= frontier]
            if frontier is None or len(complete) >= need:
                break
            asking = [
                (c, KeyPage(share, _position(read[c.integration_id][-1])))
                for c in stores
                if more[c.integration_id] and _position(read[c.integration_id][-1]) == frontier
            ]
        kept = complete[: at.first]
        has_next = len(complete) > at.first or frontier is not None
        return Slice(kept, [_position(d) for d in kept], has_next)

    async def _search_one(
        self,
        account_id: str,
        counts: ProductCounts,
        status: str | None,
        term: Search,
        at: KeyPage,
        *,
        whole: bool = False,
    ) -> Slice[Doc]:
        """One store's matches of `term`.

        The rows of its token are read either whole (the page's documents come with them) or as the few
        fields deciding a match, with the matches' documents read after (`_whole`). Measured on 50,000
        products: the embedded server costs about the same per row either way, so when most rows of the
        token match (a word: "org" for "organic") reading them whole spares the second read, a third to
        40 % faster; when few do (a SKU's number: "482" for "sku-48213" finds a hundred rows to show one),
        decoding every row whole is a third slower. Which is the case is known from the term's last read
        in this process; a term never read is taken as a word unless it holds a digit.
        """
        token = term.token
        eq: Doc = {"account_id": account_id, "integration_id": counts.integration_id}
        shape: Paged
        if token is not None:
            eq["search_tokens"] = token
            shape = PRODUCTS_BY_TOKEN
        else:  # a term of a letter or two: most products match it, so reading them in order finds a page soon
            eq["removed"] = False
            shape = PRODUCTS
        key = (counts.integration_id, term.term, status)
        if whole:
            known = self._acceptance.get(key)
            whole = known >= WHOLE_ROWS_ACCEPTANCE if known is not None else not any(c.isdigit() for c in term.term)
        matches = term.matcher(status)
        tally = [0, 0]  # rows read, rows matching

        def accept(doc: Doc) -> bool:
            tally[0] += 1
            matched = matches(doc)
            tally[1] += matched
            return matched

        found = await read_page(
            self.db.products,
            shape,
            eq,
            at,
            projection=None if whole else {**_SEARCH_FIELDS, "store_updated_at": 1, "feed": 1},
            accept=accept,
            **_sizing([counts], counts.total),
        )
        if tally[0]:
            if len(self._acceptance) > ACCOUNTS_KEPT:
                self._acceptance.clear()
            self._acceptance[key] = tally[1] / tally[0]
        return found

    async def _whole(self, rows: Sequence[Doc]) -> list[Doc]:
        """The whole documents of `rows`, in their order (one query for those not read whole already)."""
        ids = [d["_id"] for d in rows if "store" not in d]  # those read whole already are
        found = {doc["_id"]: doc async for doc in self.db.products.find({"_id": {"$in": ids}})} if ids else {}
        return [d if "store" in d else found[d["_id"]] for d in rows if "store" in d or d["_id"] in found]

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
        #: Updates that change a count (a status changes, a removed product is back), by (status it had:
        #: None when removed, status it gets): each group is written apart, so its matches are counted.
        moves: dict[tuple[str | None, str], list[UpdateOne]] = {}
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
                op = self.update_op(integration_id, product, content_hash, version, run_id, store)
                before = None if old.get("removed") else old.get("status")
                if before == store["status"]:
                    updates.append(op)
                else:
                    moves.setdefault((before, store["status"]), []).append(op)
                guarded[external_id] = content_hash
                tally[external_id] = "added" if old.get("removed") else "updated"
                written.add(external_id)
            elif decision is Decision.CHECK_OVERLAYS:
                slow.append((product, content_hash))
        matched, collided = await self._counted_bulk(account_id, integration_id, inserts, updates, moves)
        # An insert that collided (a webhook inserted it between our read and our write), or an update
        # whose version moved (an Alana edit, a webhook): decided again, one by one.
        slow += [(products[d["external_id"]], d["hash"]) for d in inserts if d["_id"] in collided]
        if matched < len(guarded):
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
        if run_id is not None:
            # Inserted by an earlier attempt of this run (a worker died before it saved its counts): this run
            # added it, whatever this attempt found (older than a webhook's version, or changed again), as
            # a recount of the products it created says.
            for e, doc in existing.items():
                if doc.get("created_run") == run_id and e in tally:
                    tally[e] = "added"
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

    async def _counted_bulk(
        self,
        account_id: str,
        integration_id: str,
        inserts: list[Doc],
        updates: list[UpdateOne],
        moves: Mapping[tuple[str | None, str], list[UpdateOne]],
    ) -> tuple[int, set[str]]:
        """`bulk`, counting the inserts that succeeded and the status moves whose guard matched."""
        if not inserts and not moves:
            return await self.bulk(inserts, updates)  # nothing here can change a count
        async with self.counts.change(integration_id, account_id) as change:
            matched, collided = await self.bulk(inserts, updates)
            for doc in inserts:
                if doc["_id"] not in collided:
                    change.add(doc["status"], 1, doc["feed"])
            for (before, after), ops in moves.items():
                moved, _ = await self.bulk([], ops)
                matched += moved
                if before is not None:
                    change.remove(before, moved)
                change.add(after, moved)
        return matched, collided

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
            marks = {
                "removed": True,
                "removed_at": utcnow(),
                "removal_version": started_at,
                "removed_run": run_id,
                "removed_sweep": run_id,
            }
            removed += await self._remove(integration_id, ids, marks)
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
        """Insert new products and apply version-guarded updates, unordered, WRITE_CHUNK at a time.

        Returns how many updates matched, and the ids of inserts that hit an existing document (a
        concurrent writer got there first: the caller decides those again, one by one).
        """
        matched = 0
        collided: set[str] = set()
        for start in range(0, max(len(inserts), len(updates)), WRITE_CHUNK):
            part = inserts[start : start + WRITE_CHUNK]
            ops: list[InsertOne[Doc] | UpdateOne] = [InsertOne(doc) for doc in part]
            ops.extend(updates[start : start + WRITE_CHUNK])
            n, duplicates = await self._bulk_once(ops, part)
            matched += n
            collided |= duplicates
        return matched, collided

    async def _bulk_once(self, ops: list[InsertOne[Doc] | UpdateOne], inserts: list[Doc]) -> tuple[int, set[str]]:
        """One bulk write; `inserts` are its first ops."""
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

    async def write_changes(
        self, account_id: str, integration_id: str, products: Mapping[str, Product], run_id: str
    ) -> dict[str, WriteResult]:
        """Write the products a batch of webhook deliveries carried, each judged as `write_one(...,
        skip_older=True)` judges it, in one read and one bulk write (WRITE_CHUNK at a time) instead of
        two round trips a product: a merchant's bulk edit arrives as hundreds of deliveries a second.

        Products with an active Alana edit (conflicts to detect), and writes that lost a race (an insert
        that collided, an update whose version moved) are decided again one by one by `write_one`."""
        return (await self.write_changes_many([Changes(account_id, integration_id, products, run_id)]))[0]

    async def write_changes_many(self, batches: Sequence[Changes]) -> list[dict[str, WriteResult]]:
        """`write_changes` for several integrations at once (a webhook apply pass serves every store whose
        job runs at that moment): one read, one bulk write per WRITE_CHUNK and the counts' two writes for
        all of them, however many stores. One result dict per batch, in order; each integration at most
        once."""
        pids = [product_id(b.integration_id, e) for b in batches for e in b.products]
        plan = await self._plan_changes(batches, await self._existing(pids) if pids else {})
        index = {b.integration_id: i for i, b in enumerate(batches)}
        # Only writes that can change a count (inserts, status moves) are counted (gateway.product_counts).
        counted = {d["integration_id"]: batches[index[d["integration_id"]]].account_id for d in plan.inserts}
        counted.update({batches[i].integration_id: batches[i].account_id for i, _, _ in plan.moves})
        matched, collided = 0, set[str]()
        if plan.inserts or plan.updates or plan.moves:
            async with self.counts.change_many(counted) as tallies:
                matched, collided = await self.bulk(plan.inserts, plan.updates)
                for doc in plan.inserts:
                    if doc["_id"] not in collided:
                        tallies[doc["integration_id"]].add(doc["status"], 1, doc["feed"])
                for (i, before, after), ops in plan.moves.items():
                    moved, _ = await self.bulk([], ops)
                    matched += moved
                    tally = tallies[batches[i].integration_id]
                    if before is not None:
                        tally.remove(before, moved)
                    tally.add(after, moved)
        slow = plan.slow
        for doc in plan.inserts:
            if doc["_id"] in collided:
                i = index[doc["integration_id"]]
                slow.append((i, batches[i].products[doc["external_id"]], doc["hash"]))
        if matched < len(plan.guarded):
            now = await self._existing([product_id(batches[i].integration_id, e) for i, e in plan.guarded])
            slow += [
                (i, batches[i].products[e], h)
                for (i, e), (h, _) in plan.guarded.items()
                if now.get(product_id(batches[i].integration_id, e), {}).get("hash") != h
            ]
        results = plan.results
        for (i, external_id), (_, outcome) in plan.guarded.items():
            results[i][external_id] = WriteResult(outcome, product_id(batches[i].integration_id, external_id))
        for i, product, content_hash in slow:
            batch = batches[i]
            results[i][product.external_id] = await self.write_one(
                batch.account_id, batch.integration_id, product, content_hash, batch.run_id, skip_older=True
            )
        return results

    async def _plan_changes(self, batches: Sequence[Changes], existing: Mapping[str, Doc]) -> _ChangePlan:
        """Decide each carried product against what is stored (`existing`, by product id)."""
        plan = _ChangePlan([{} for _ in batches])
        n = 0
        for i, batch in enumerate(batches):
            integration_id, run_id = batch.integration_id, batch.run_id
            for external_id, product in batch.products.items():
                n += 1
                if not n % YIELD_EVERY:
                    await asyncio.sleep(0)  # hashing is CPU work: other jobs get the event loop in between
                pid = product_id(integration_id, external_id)
                store = product.to_document()
                content_hash = hash_document(store)
                old = existing.get(pid)
                if old is None:
                    plan.inserts.append(
                        self.new_document(batch.account_id, integration_id, product, content_hash, run_id, store)
                    )
                    plan.results[i][external_id] = WriteResult(Outcome.ADDED, pid)
                elif older(product.store_updated_at, old.get("store_updated_at")) or not newer_than_removal(
                    product.store_updated_at, old
                ):
                    plan.results[i][external_id] = WriteResult(Outcome.STALE, pid)
                elif old.get("hash") == content_hash and not old.get("removed"):
                    plan.results[i][external_id] = WriteResult(Outcome.UNCHANGED, pid)
                elif any(o.get("active") for o in old.get("overlays", [])):
                    plan.slow.append((i, product, content_hash))
                else:
                    op = self.update_op(integration_id, product, content_hash, old.get("version", 0), run_id, store)
                    before = None if old.get("removed") else old.get("status")
                    if before == store["status"]:
                        plan.updates.append(op)
                    else:
                        plan.moves.setdefault((i, before, store["status"]), []).append(op)
                    outcome = Outcome.ADDED if old.get("removed") else Outcome.UPDATED
                    plan.guarded[(i, external_id)] = (content_hash, outcome)
        return plan

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
                new = {**self.new_document(account_id, integration_id, product, content_hash, run_id), **marks}
                async with self.counts.change(integration_id, account_id) as change:
                    try:
                        await self.db.products.insert_one(new)
                    except DuplicateKeyError:
                        continue  # someone else inserted it first: decide again against theirs
                    change.add(new["status"], 1, new["feed"])
                    return WriteResult(Outcome.ADDED, pid)
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
            guard = {"_id": pid, "version": doc.get("version", 0)}
            before = None if doc.get("removed") else doc.get("status")
            if before == fields["status"]:
                result = await self.db.products.update_one(guard, update)
            else:  # it comes back, or changes status: counted if the guard matched
                async with self.counts.change(integration_id, account_id) as change:
                    result = await self.db.products.update_one(guard, update)
                    if result.matched_count:
                        if before is not None:
                            change.remove(before)
                        change.add(fields["status"], 1, fields["feed"])
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
        marks: Doc = {"removed": True, "removed_at": now, "removal_version": version or now, "removed_run": run_id}
        if held:
            marks["held_run"] = held
        return await self._remove(integration_id, ids, marks)

    async def _remove(self, integration_id: str, ids: list[str], marks: Doc) -> int:
        """Mark removed those of `ids` not removed yet; returns how many this call marked.

        Each product's update is guarded by the version read with its status, so what each one removed
        is counted exactly; one written meanwhile is read and decided again (the ones this call removed
        carry its `removed_by`, so one brought back since is never removed a second time).
        """
        marker = uuid.uuid4().hex
        update = {"$set": {**marks, "removed_by": marker}, "$inc": {"version": 1}}
        removed = 0
        query: Doc = {"_id": {"$in": ids}, "removed": {"$ne": True}}
        async with self.counts.change(integration_id, None) as change:
            for _ in range(20):
                by_status: dict[str | None, dict[str, UpdateOne]] = {}
                async for doc in self.db.products.find(query, {"status": 1, "version": 1}):
                    guard = {"_id": doc["_id"], "version": doc.get("version", 0), "removed": {"$ne": True}}
                    by_status.setdefault(doc.get("status"), {})[doc["_id"]] = UpdateOne(guard, update)
                missed: list[str] = []
                for status, ops in by_status.items():
                    result = await self.db.products.bulk_write(list(ops.values()), ordered=False)
                    removed += result.matched_count
                    if status is not None:
                        change.remove(status, result.matched_count)
                    if result.matched_count < len(ops):
                        missed += ops
                if not missed:
                    break
                query = {"_id": {"$in": missed}, "removed": {"$ne": True}, "removed_by": {"$ne": marker}}
        return removed

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
        await self.counts.delete(integration_id)

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
            result = await update_and_read(
                self.db.products,
                {"_id": pid, "account_id": account_id, "version": doc.get("version", 0)},
                {"$set": {"overlays": overlays}, "$inc": {"version": 1}},
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
