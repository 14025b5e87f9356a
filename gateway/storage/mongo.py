"""The MongoDB connection and the indexes every collection relies on.

Collections (every document carries `account_id`; repositories always filter by it):
    integrations       one connected store
    products           canonical products, unique per (integration_id, external_id)
    sync_runs          runs with progress, summary and checkpoint; one active run per integration
    run_seen           the external ids each page of a full run saw (its removal detection), until it ends
    conflicts          store-won conflicts and their re-application
    activity           the merchant-facing activity log
    webhook_deliveries received deliveries, unique per (integration_id, delivery_id): the dedupe log
    webhook_queue      deliveries waiting to be applied (removed once applied, so it stays small)
    api_call_days      store API calls per integration per day, by hour (for apiCallsLast24h); replaced
                       `api_calls` (one document per hour: a card read 24 of them, in a query per store)
    product_counts     each integration's product count per status, kept by every product write
    connect_attempts   install-flow attempts (beginConnect, reconnectIntegration, platform-begun installs)
    pending_installs   installs begun on a platform's side, sealed, waiting an hour to be claimed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from gateway.storage.keyset import Axis, Paged

Doc = dict[str, Any]

#: The products' list key (`feed`, gateway.products.feed_key) counts 2**FEED_HASH_BITS per millisecond of
#: `store_updated_at`: the low bits are a hash of the product's store id, so thousands of products changed
#: in the same millisecond (a bulk import) still spread over a range that can be read a page at a time.
FEED_HASH_BITS = 20
FEED = Axis("feed", 1 << FEED_HASH_BITS)

# ---- the lists the API pages through (gateway.storage.keyset): each has its index, made below ----
#: Products not removed, newest store change first: of one integration / the account, with a status or not.
PRODUCTS = Paged("products", ("account_id", "integration_id", "removed"), "feed", FEED)
PRODUCTS_BY_STATUS = Paged("products", ("account_id", "integration_id", "removed", "status"), "feed", FEED)
ACCOUNT_PRODUCTS = Paged("products", ("account_id", "removed"), "feed", FEED)
ACCOUNT_PRODUCTS_BY_STATUS = Paged("products", ("account_id", "removed", "status"), "feed", FEED)
#: One integration's products holding one search token (gateway.products.search_tokens; removed ones too).
PRODUCTS_BY_TOKEN = Paged("products", ("account_id", "integration_id", "search_tokens"), "feed", FEED)
RUNS = Paged("sync_runs", ("integration_id",), "queued_at")
CONFLICTS = Paged("conflicts", ("account_id",), "detected_at")
CONFLICTS_BY_STATUS = Paged("conflicts", ("account_id", "status"), "detected_at")
INTEGRATION_CONFLICTS = Paged("conflicts", ("account_id", "integration_id"), "detected_at")
INTEGRATION_CONFLICTS_BY_STATUS = Paged("conflicts", ("account_id", "integration_id", "status"), "detected_at")
PRODUCT_CONFLICTS = Paged("conflicts", ("account_id", "product_id"), "detected_at")
PRODUCT_CONFLICTS_BY_STATUS = Paged("conflicts", ("account_id", "product_id", "status"), "detected_at")
ACTIVITY = Paged("activity", ("account_id",), "at")
INTEGRATION_ACTIVITY = Paged("activity", ("account_id", "integration_id"), "at")

PAGED = (
    PRODUCTS,
    PRODUCTS_BY_STATUS,
    ACCOUNT_PRODUCTS,
    ACCOUNT_PRODUCTS_BY_STATUS,
    PRODUCTS_BY_TOKEN,
    RUNS,
    CONFLICTS,
    CONFLICTS_BY_STATUS,
    INTEGRATION_CONFLICTS,
    INTEGRATION_CONFLICTS_BY_STATUS,
    PRODUCT_CONFLICTS,
    PRODUCT_CONFLICTS_BY_STATUS,
    ACTIVITY,
    INTEGRATION_ACTIVITY,
)

#: Indexes an earlier release made that a list index above replaced (dropped at start-up: every index
#: costs every write).
SUPERSEDED = {
    "products": ("account_id_1_store_updated_at_-1__id_-1", "integration_id_1_store_updated_at_-1__id_-1"),
    "sync_runs": ("integration_id_1_queued_at_-1",),
    "conflicts": ("account_id_1_integration_id_1_detected_at_-1",),
    "activity": ("account_id_1_integration_id_1_at_-1",),
}


@dataclass
class Database:
    client: AsyncMongoClient[Doc]
    db: AsyncDatabase[Doc]

    @property
    def integrations(self) -> AsyncCollection[Doc]:
        return self.db["integrations"]

    @property
    def products(self) -> AsyncCollection[Doc]:
        return self.db["products"]

    @property
    def runs(self) -> AsyncCollection[Doc]:
        return self.db["sync_runs"]

    @property
    def run_seen(self) -> AsyncCollection[Doc]:
        return self.db["run_seen"]

    @property
    def conflicts(self) -> AsyncCollection[Doc]:
        return self.db["conflicts"]

    @property
    def activity(self) -> AsyncCollection[Doc]:
        return self.db["activity"]

    @property
    def deliveries(self) -> AsyncCollection[Doc]:
        return self.db["webhook_deliveries"]

    @property
    def queue(self) -> AsyncCollection[Doc]:
        return self.db["webhook_queue"]

    @property
    def api_calls(self) -> AsyncCollection[Doc]:
        """Before api_call_days: folded into it by migration 0003, then dropped."""
        return self.db["api_calls"]

    @property
    def api_call_days(self) -> AsyncCollection[Doc]:
        return self.db["api_call_days"]

    @property
    def product_counts(self) -> AsyncCollection[Doc]:
        return self.db["product_counts"]

    @property
    def connect_attempts(self) -> AsyncCollection[Doc]:
        return self.db["connect_attempts"]

    @property
    def pending_installs(self) -> AsyncCollection[Doc]:
        return self.db["pending_installs"]

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def close(self) -> None:
        await self.client.close()


async def update_and_read(
    collection: AsyncCollection[Doc],
    query: Doc,
    update: Doc | list[Doc],
    *,
    projection: Doc | None = None,
    upsert: bool = False,
) -> Doc | None:
    """`findAndModify` returning the document after the update, as an update by `_id` and a read by `_id`.

    Why: the embedded server (SecantusDB) answers `findAndModify` by scanning the whole collection under
    its write lock, whatever the filter: measured 45-55 ms on 5,000 documents, against 3-5 ms for
    `update_one` and 0.6 ms for `find_one` by `_id`. A run's lease saves and a webhook batch's digest
    are such updates, and the runs collection only grows: every run and every webhook apply waited
    behind those scans. `query` names the `_id` (the one document it may change) and no `$or` (which
    makes even `update_one` scan there). None when nothing matched (and nothing was upserted).

    What is read is the document as it is just after the update: a write by another process in between
    may show too (the callers' documents are written by one holder at a time, and what others may add,
    a cancel request, is what they want to see anyway).
    """
    if "_id" not in query or "$or" in query:
        raise ValueError("update_and_read changes one document by _id, without $or")
    result = await collection.update_one(query, update, upsert=upsert)
    if not result.matched_count and result.upserted_id is None:
        return None
    return await collection.find_one({"_id": query["_id"]}, projection)


def connect(url: str, database: str, **kwargs: Any) -> Database:
    """A lazily connecting client; nothing is sent until the first command."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=kwargs.pop("serverSelectionTimeoutMS", 5000), **kwargs
    )
    return Database(client=client, db=client[database])


async def ensure_indexes(database: Database) -> None:
    """Create every index (idempotent; safe for several processes at start-up)."""
    for collection, names in SUPERSEDED.items():
        for name in names:
            try:
                await database.db[collection].drop_index(name)
            except OperationFailure:
                pass  # never made, or dropped already
    for shape in PAGED:
        await database.db[shape.collection].create_indexes([IndexModel(shape.index, name=shape.index_name)])
    await database.integrations.create_indexes(
        [
            IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING)]),
            IndexModel([("next_sync_at", ASCENDING)]),
            # One integration per store and account (gateway.integrations: connecting a store twice is
            # CONFLICT). Integrations saved before the field existed are checked by the service instead.
            IndexModel(
                [("account_id", ASCENDING), ("store_identity", ASCENDING)],
                unique=True,
                partialFilterExpression={"store_identity": {"$type": "string"}},
                name="one_integration_per_store",
            ),
        ]
    )
    await database.products.create_indexes(
        [
            IndexModel([("integration_id", ASCENDING), ("external_id", ASCENDING)], unique=True),
            # A webhook digest recounts what it added and removed after each batch (RunStore.add_to_digest).
            IndexModel([("created_run", ASCENDING)]),
            IndexModel([("removed_run", ASCENDING)], sparse=True),
        ]
    )
    await database.product_counts.create_indexes(
        [IndexModel([("account_id", ASCENDING)]), IndexModel([("pending.at", ASCENDING)])]
    )
    await database.runs.create_indexes(
        [
            # One queued-or-running run per integration: the database enforces it, not a lock.
            IndexModel(
                [("integration_id", ASCENDING)],
                unique=True,
                partialFilterExpression={"active": True},
                name="one_active_run",
            ),
            IndexModel([("status", ASCENDING), ("lease_until", ASCENDING)]),
        ]
    )
    await database.run_seen.create_indexes(
        [
            IndexModel([("run_id", ASCENDING)]),
            IndexModel([("integration_id", ASCENDING)]),
            # A run deletes its pages when it ends; these outlive only a run that never ends.
            IndexModel([("at", ASCENDING)], expireAfterSeconds=7 * 86_400),
        ]
    )
    await database.deliveries.create_indexes(
        [
            IndexModel([("integration_id", ASCENDING), ("delivery_id", ASCENDING)], unique=True),
            # Kept a week (longer than any platform retries a delivery), so redeliveries are still
            # recognised; then they expire.
            IndexModel([("received_at", ASCENDING)], expireAfterSeconds=7 * 86_400),
        ]
    )
    await database.queue.create_indexes(
        [
            IndexModel([("integration_id", ASCENDING), ("claim", ASCENDING)]),
            IndexModel([("claimed_at", ASCENDING)]),
            IndexModel([("claim_expires", ASCENDING)]),
            IndexModel([("claim", ASCENDING), ("received_at", ASCENDING)]),
        ]
    )
    await database.api_call_days.create_indexes([IndexModel([("integration_id", ASCENDING)])])
    await database.connect_attempts.create_indexes(
        [
            IndexModel(
                [("state_hash", ASCENDING)], unique=True, partialFilterExpression={"state_hash": {"$type": "string"}}
            ),
            IndexModel([("status", ASCENDING), ("expires_at", ASCENDING)]),
            # Ended attempts are kept a week for connectAttempt(id), then expire.
            IndexModel([("created_at", ASCENDING)], expireAfterSeconds=7 * 86_400),
        ]
    )
    await database.pending_installs.create_indexes(
        [
            IndexModel([("platform", ASCENDING), ("store_key", ASCENDING)]),
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0),
        ]
    )
    await database.integrations.create_indexes([IndexModel([("platform", ASCENDING), ("store_key", ASCENDING)])])
