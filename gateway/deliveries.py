"""Webhook deliveries in MongoDB: the dedupe log and the work queue (data access for gateway.webhooks).

The dedupe log keeps one small document per delivery id for a week, so a redelivery is recognised.
The work queue holds what waits to be applied and loses each entry once applied, so claiming stays
cheap however many deliveries came before.

A worker claims an integration's waiting deliveries under a lease (`claim_expires`) that it renews
while it applies them; claims whose lease ran out (the worker died, froze, or lost MongoDB half-way)
go back to the queue (`release_expired`). Deliveries of a manual-mode integration are `held` for
Sync Now; any other delivery waiting unclaimed for long has lost its apply job (`waiting_since`).

The webhook endpoint's concurrent deliveries are written together (`record_batch`: one write to the
queue, one to the log, whatever their number), which is what keeps a merchant's bulk edit from
queueing up behind MongoDB round trips.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import bson
from bson.errors import InvalidDocument
from pymongo.errors import BulkWriteError

from gateway.adapter import ChangeKind, WebhookEvent
from gateway.storage.mongo import Database, Doc


@dataclass(frozen=True)
class Delivery:
    """A verified change notification waiting to be applied."""

    integration_id: str
    delivery_id: str
    kind: ChangeKind
    external_id: str
    #: The product as the delivery carried it (native shape), when it did.
    product: Mapping[str, Any] | None
    store_updated_at: datetime | None
    triggered_at: datetime | None
    received_at: datetime
    #: time.time() at receipt, for latency when the store gives no trigger time.
    received_mono: float
    #: Kept for Sync Now when it arrived (manual mode): counted in the integration's `pending_changes`.
    held: bool = False

    @classmethod
    def from_doc(cls, doc: Doc) -> Delivery:
        return cls(
            integration_id=doc["integration_id"],
            delivery_id=doc["delivery_id"],
            kind=ChangeKind(doc["kind"]),
            external_id=doc["external_id"],
            product=doc.get("product"),
            store_updated_at=doc.get("store_updated_at"),
            triggered_at=doc.get("triggered_at"),
            received_at=doc["received_at"],
            received_mono=float(doc.get("received_mono") or 0.0),
            held=bool(doc.get("held")),
        )


@dataclass(frozen=True)
class Arrival:
    """A verified delivery on its way into the log and the queue."""

    account_id: str
    integration_id: str
    event: WebhookEvent
    received_at: datetime
    #: Kept for Sync Now (manual mode).
    held: bool = False
    #: time.time() at receipt, when it was taken before the delivery reached MongoDB (gateway.journal).
    wall: float | None = None

    def to_doc(self, wall: float) -> Doc:
        """The queue's document (and the journal's entry): `wall` is time.time() now, for an arrival
        that has none of its own."""
        event = self.event
        return {
            "account_id": self.account_id,
            "integration_id": self.integration_id,
            "delivery_id": event.delivery_id,
            "topic": event.topic,
            "kind": event.kind.value,
            "external_id": event.external_id,
            "product": dict(event.product) if event.product is not None else None,
            "store_updated_at": event.store_updated_at,
            "triggered_at": event.triggered_at,
            "received_at": self.received_at,
            "received_mono": self.wall if self.wall is not None else wall,
            "held": self.held,
            "claim": None,
        }

    @classmethod
    def from_doc(cls, doc: Doc) -> Arrival:
        event = WebhookEvent(
            delivery_id=doc["delivery_id"],
            topic=doc.get("topic", ""),
            kind=ChangeKind(doc["kind"]),
            external_id=doc["external_id"],
            product=doc.get("product"),
            store_updated_at=doc.get("store_updated_at"),
            triggered_at=doc.get("triggered_at"),
        )
        wall = doc.get("received_mono")
        return cls(
            doc["account_id"],
            doc["integration_id"],
            event,
            doc["received_at"],
            bool(doc.get("held")),
            float(wall) if wall is not None else None,
        )


def storable(event: WebhookEvent) -> bool:
    """False when the delivery's body holds what BSON cannot store (an integer past 64 bits)."""
    if event.product is None:
        return True
    try:
        bson.encode({"product": dict(event.product)})
    except (OverflowError, InvalidDocument):
        return False
    return True


class DeliveryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record_batch(self, arrivals: Sequence[Arrival]) -> list[bool]:
        """Queue and log many deliveries (the webhook endpoint's concurrent ones): one write to the queue
        and one to the dedupe log for the whole batch. Returns, per delivery, False when its
        (integration, delivery id) was seen before (it is taken back off the queue).

        Queued first, then logged: a crash (or a MongoDB outage) between the two leaves queued changes
        without their log entries, and the platform's retries queue them again (applying twice is
        harmless). The other order would answer those retries "duplicate" and lose the changes."""
        if not arrivals:
            return []
        queued = await self.enqueue_many(arrivals)
        fresh = await self.record_many(arrivals)
        again = [queue_id for queue_id, new in zip(queued, fresh, strict=True) if not new]
        if again:
            await self.db.queue.delete_many({"_id": {"$in": again}})
        return fresh

    async def enqueue_many(self, arrivals: Sequence[Arrival]) -> list[Any]:
        """Queue deliveries to be applied (their bodies `storable`); returns their queue ids, in order."""
        wall = time.time()
        result = await self.db.queue.insert_many([a.to_doc(wall) for a in arrivals])
        return list(result.inserted_ids)

    async def record_many(self, arrivals: Sequence[Arrival]) -> list[bool]:
        """Log deliveries for dedupe; per delivery, False when its (integration, delivery id) was seen before."""
        logged = [
            {
                "account_id": a.account_id,
                "integration_id": a.integration_id,
                "delivery_id": a.event.delivery_id,
                "topic": a.event.topic,
                "external_id": a.event.external_id,
                "received_at": a.received_at,
            }
            for a in arrivals
        ]
        seen_before: set[int] = set()
        try:
            await self.db.deliveries.insert_many(logged, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            seen_before = {int(e["index"]) for e in errors}
        return [n not in seen_before for n in range(len(arrivals))]

    async def enqueue(
        self, account_id: str, integration_id: str, event: WebhookEvent, now: datetime, *, held: bool = False
    ) -> Any:
        """Queue one delivery (its body `storable`); returns its queue id. `held`: kept for Sync Now."""
        return (await self.enqueue_many([Arrival(account_id, integration_id, event, now, held)]))[0]

    async def record(self, account_id: str, integration_id: str, event: WebhookEvent, now: datetime) -> bool:
        """Log one delivery; False when its (integration, delivery id) was seen before."""
        return (await self.record_many([Arrival(account_id, integration_id, event, now)]))[0]

    async def any_waiting(self, integration_id: str) -> bool:
        """True when a delivery of the integration waits unclaimed (and not held for Sync Now)."""
        return integration_id in await self.waiting_of([integration_id])

    async def waiting_of(self, integration_ids: Sequence[str]) -> set[str]:
        """Which of these integrations have a delivery waiting unclaimed (and not held for Sync Now): one
        query for all of them."""
        query = {"integration_id": _one_of(integration_ids), "claim": None, "held": {"$ne": True}}
        found = await self.db.queue.distinct("integration_id", query)
        return {str(i) for i in found}

    async def claim(
        self,
        integration_id: str,
        token: str,
        now: datetime,
        lease: timedelta,
        external_ids: Sequence[str] | None = None,
    ) -> list[Delivery]:
        """Take every unclaimed delivery of the integration (of these products only, when given) under
        `token` for `lease`, oldest first."""
        return (await self.claim_many([integration_id], token, now, lease, external_ids)).get(integration_id, [])

    async def claim_many(
        self,
        integration_ids: Sequence[str],
        token: str,
        now: datetime,
        lease: timedelta,
        external_ids: Sequence[str] | None = None,
    ) -> dict[str, list[Delivery]]:
        """`claim` for several integrations under one token (one update and one read for all of them: an
        apply pass serves every integration whose job runs at that moment). By integration, oldest first."""
        unclaimed: Doc = {"integration_id": _one_of(integration_ids), "claim": None}
        if external_ids is not None:
            unclaimed["external_id"] = {"$in": list(external_ids)}
        await self.db.queue.update_many(
            unclaimed, {"$set": {"claim": token, "claimed_at": now, "claim_expires": now + lease}}
        )
        claimed: dict[str, list[Delivery]] = {}
        async for doc in self.db.queue.find({"claim": token}).sort("received_at", 1):
            delivery = Delivery.from_doc(doc)
            claimed.setdefault(delivery.integration_id, []).append(delivery)
        return claimed

    async def waiting(self, integration_id: str) -> int:
        """How many deliveries kept for Sync Now (held) wait, unclaimed, for the integration. (Others
        waiting are an apply job's a moment from now, not the merchant's to sync.)"""
        return await self.db.queue.count_documents({"integration_id": integration_id, "claim": None, "held": True})

    async def renew(self, integration_ids: str | Sequence[str], token: str, now: datetime, lease: timedelta) -> int:
        """Extend the lease of the claim `token`; returns how many deliveries it still holds."""
        result = await self.db.queue.update_many(
            {"integration_id": _one_of(integration_ids), "claim": token}, {"$set": {"claim_expires": now + lease}}
        )
        return result.matched_count

    async def release(self, integration_ids: str | Sequence[str], token: str) -> None:
        """Give the claim `token` back unapplied (its apply failed): another job takes it."""
        await self.db.queue.update_many(
            {"integration_id": _one_of(integration_ids), "claim": token}, {"$set": {"claim": None}}
        )

    async def done(self, integration_ids: str | Sequence[str], token: str) -> None:
        await self.db.queue.delete_many({"integration_id": _one_of(integration_ids), "claim": token})

    async def release_expired(self, now: datetime, legacy_cutoff: datetime) -> list[str]:
        """Claims whose lease ran out go back to the queue; returns their integrations. (A claim made by a
        release without leases counts as expired once claimed before `legacy_cutoff`.)"""
        expired = {
            "claim": {"$ne": None},
            "$or": [
                {"claim_expires": {"$lt": now}},
                {"claim_expires": {"$exists": False}, "claimed_at": {"$lt": legacy_cutoff}},
            ],
        }
        integrations = sorted({d["integration_id"] async for d in self.db.queue.find(expired, {"integration_id": 1})})
        if integrations:
            await self.db.queue.update_many(expired, {"$set": {"claim": None}})
        return integrations

    async def waiting_since(self, cutoff: datetime, limit: int = 1_000) -> list[str]:
        """Integrations with a delivery waiting unclaimed (and not held for Sync Now) since before `cutoff`:
        its apply job was lost (Redis was down when it was queued, or restarted without its data)."""
        waiting = {"claim": None, "held": {"$ne": True}, "received_at": {"$lt": cutoff}}
        found = self.db.queue.find(waiting, {"integration_id": 1}).limit(limit)
        return sorted({d["integration_id"] async for d in found})

    async def drop_unclaimed(self, integration_id: str) -> int:
        """Forget what waits for an integration that may not call its store (a full sync catches it up);
        returns how many were dropped."""
        result = await self.db.queue.delete_many({"integration_id": integration_id, "claim": None})
        return result.deleted_count

    async def delete_integration(self, integration_id: str) -> None:
        await self.db.queue.delete_many({"integration_id": integration_id})
        await self.db.deliveries.delete_many({"integration_id": integration_id})


def _one_of(ids: str | Sequence[str]) -> str | Doc:
    """A query value matching one id, or any of several."""
    if isinstance(ids, str):
        return ids
    return ids[0] if len(ids) == 1 else {"$in": list(ids)}
