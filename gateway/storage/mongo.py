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
    api_calls          store API calls per integration per hour (for apiCallsLast24h)
    connect_attempts   install-flow attempts (beginConnect, reconnectIntegration, platform-begun installs)
    pending_installs   installs begun on a platform's side, sealed, waiting an hour to be claimed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from gateway.pagination import PageRequest, Slice

Doc = dict[str, Any]


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
        return self.db["api_calls"]

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


async def find_page(
    collection: AsyncCollection[Doc], query: Doc, key: str, page: PageRequest, projection: Doc | None = None
) -> Slice[Doc]:
    """One page of `query`, newest `key` first (ties by _id), after `page.after`: keyset pagination."""
    if page.after is not None:
        at, row_id = page.after
        keyset: Doc = {"$or": [{key: {"$lt": at}}, {key: at, "_id": {"$lt": row_id}}]}
        query = {"$and": [query, keyset]} if "$or" in query else {**query, **keyset}
    cursor = collection.find(query, projection).sort([(key, DESCENDING), ("_id", DESCENDING)]).limit(page.first + 1)
    rows = [doc async for doc in cursor]
    return Slice.of(rows, [(doc.get(key), doc["_id"]) for doc in rows], page)


def connect(url: str, database: str, **kwargs: Any) -> Database:
    """A lazily connecting client; nothing is sent until the first command."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=kwargs.pop("serverSelectionTimeoutMS", 5000), **kwargs
    )
    return Database(client=client, db=client[database])


async def ensure_indexes(database: Database) -> None:
    """Create every index (idempotent; safe for several processes at start-up)."""
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
            IndexModel([("account_id", ASCENDING), ("store_updated_at", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("integration_id", ASCENDING), ("store_updated_at", DESCENDING), ("_id", DESCENDING)]),
            # A webhook digest recounts what it added and removed after each batch (RunStore.add_to_digest).
            IndexModel([("created_run", ASCENDING)]),
            IndexModel([("removed_run", ASCENDING)], sparse=True),
        ]
    )
    await database.runs.create_indexes(
        [
            IndexModel([("integration_id", ASCENDING), ("queued_at", DESCENDING)]),
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
    await database.conflicts.create_indexes(
        [IndexModel([("account_id", ASCENDING), ("integration_id", ASCENDING), ("detected_at", DESCENDING)])]
    )
    await database.activity.create_indexes(
        [IndexModel([("account_id", ASCENDING), ("integration_id", ASCENDING), ("at", DESCENDING)])]
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
    await database.api_calls.create_indexes(
        [IndexModel([("integration_id", ASCENDING), ("hour", ASCENDING)], unique=True)]
    )
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
