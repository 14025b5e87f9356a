"""Webhook deliveries in MongoDB: the dedupe log and the work queue (data access for gateway.webhooks).

The dedupe log keeps one small document per delivery id for a week, so a redelivery is recognised.
The work queue holds what waits to be applied and loses each entry once applied, so claiming stays
cheap however many deliveries came before.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
        )


@dataclass(frozen=True)
class Arrival:
    """A verified delivery on its way into the log and the queue."""

    account_id: str
    integration_id: str
    event: WebhookEvent
    received_at: datetime


def _queue_doc(arrival: Arrival, wall: float) -> Doc:
    event = arrival.event
    return {
        "account_id": arrival.account_id,
        "integration_id": arrival.integration_id,
        "delivery_id": event.delivery_id,
        "kind": event.kind.value,
        "external_id": event.external_id,
        "product": dict(event.product) if event.product is not None else None,
        "store_updated_at": event.store_updated_at,
        "triggered_at": event.triggered_at,
        "received_at": arrival.received_at,
        "received_mono": wall,
        "claim": None,
    }


class DeliveryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record_batch(self, deliveries: Sequence[Arrival]) -> list[bool]:
        """Log and queue many deliveries (the webhook endpoint's concurrent ones): one write to the dedupe
        log and one to the queue for the whole batch, in that order. Returns, per delivery, False when its
        (integration, delivery id) was seen before (it is not queued again)."""
        if not deliveries:
            return []
        logged = [
            {
                "account_id": d.account_id,
                "integration_id": d.integration_id,
                "delivery_id": d.event.delivery_id,
                "topic": d.event.topic,
                "external_id": d.event.external_id,
                "received_at": d.received_at,
            }
            for d in deliveries
        ]
        seen_before: set[int] = set()
        try:
            await self.db.deliveries.insert_many(logged, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            seen_before = {int(e["index"]) for e in errors}
        fresh = [n not in seen_before for n in range(len(deliveries))]
        wall = time.time()
        queued = [_queue_doc(d, wall) for d, new in zip(deliveries, fresh, strict=True) if new]
        if queued:
            await self.db.queue.insert_many(queued, ordered=False)
        return fresh

    async def waiting(self, integration_id: str) -> bool:
        """True when a delivery of the integration waits unclaimed."""
        return await self.db.queue.find_one({"integration_id": integration_id, "claim": None}, {"_id": 1}) is not None

    async def claim(self, integration_id: str, token: str, now: datetime) -> list[Delivery]:
        """Take every unclaimed delivery of the integration under `token`, oldest first."""
        await self.db.queue.update_many(
            {"integration_id": integration_id, "claim": None}, {"$set": {"claim": token, "claimed_at": now}}
        )
        claimed = {"integration_id": integration_id, "claim": token}
        return [Delivery.from_doc(d) async for d in self.db.queue.find(claimed).sort("received_at", 1)]

    async def done(self, integration_id: str, token: str) -> None:
        await self.db.queue.delete_many({"integration_id": integration_id, "claim": token})

    async def release_stale(self, cutoff: datetime) -> list[str]:
        """Claims older than `cutoff` (their worker died) go back to the queue; returns their integrations."""
        stale = {"claim": {"$ne": None}, "claimed_at": {"$lt": cutoff}}
        integrations = sorted({d["integration_id"] async for d in self.db.queue.find(stale, {"integration_id": 1})})
        if integrations:
            await self.db.queue.update_many(stale, {"$set": {"claim": None}})
        return integrations

    async def unclaimed_before(self, cutoff: datetime) -> list[str]:
        """Integrations with a delivery received before `cutoff` that nobody claimed yet: its apply job
        was lost (Redis lost it, or enqueueing failed after the delivery was stored), or the integration
        is in manual mode and keeps it for Sync Now on purpose."""
        old = {"claim": None, "received_at": {"$lt": cutoff}}
        return sorted(await self.db.queue.distinct("integration_id", old))

    async def drop_unclaimed(self, integration_id: str) -> None:
        """Forget what waits for an integration that may not call its store (a full sync catches it up)."""
        await self.db.queue.delete_many({"integration_id": integration_id, "claim": None})

    async def delete_integration(self, integration_id: str) -> None:
        await self.db.queue.delete_many({"integration_id": integration_id})
        await self.db.deliveries.delete_many({"integration_id": integration_id})
