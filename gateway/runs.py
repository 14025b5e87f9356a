"""Sync runs in MongoDB: queueing (one active run per integration), leases, checkpoints, summaries.

A run is worked on under a lease (owner + expiry, renewed at every checkpoint and heartbeat), so a
worker that dies leaves a run another worker can take over from its last checkpoint, and two workers
can never process the same run at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from gateway.domain import RunKind, RunStatus, Trigger, utcnow
from gateway.pagination import PageRequest, Slice
from gateway.storage.mongo import Database, Doc, find_page

MAX_ERRORS_KEPT = 200
COUNTERS = ("added", "updated", "unchanged", "removed", "failed", "conflicts")


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


def summary_of(run: Doc) -> Doc | None:
    """The merchant's summary of a finished run (None while it runs)."""
    if not RunStatus(run["status"]).finished:
        return None
    counts = {**empty_counts(), **run.get("counts", {})}
    return {**counts, "errors": run.get("errors", [])}


def percent(processed: int, total: int | None) -> float | None:
    if not total:
        return None
    return round(min(100.0, 100.0 * processed / total), 1)


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_or_get_active(
        self,
        account_id: str,
        integration_id: str,
        trigger: Trigger,
        kind: RunKind,
        product_ids: list[str] | None = None,
    ) -> tuple[Doc, bool]:
        """Queue a run, or return the integration's queued or running one (created=False)."""
        now = utcnow()
        doc: Doc = {
            "_id": uuid.uuid4().hex,
            "account_id": account_id,
            "integration_id": integration_id,
            "trigger": trigger.value,
            "kind": kind.value,
            "product_ids": product_ids or [],
            "status": RunStatus.QUEUED.value,
            "active": True,
            "queued_at": now,
            "started_at": None,
            "finished_at": None,
            "progress": {"processed": 0, "total": None, "message": "Waiting to start", "seq": 0},
            "counts": empty_counts(),
            "errors": [],
            "checkpoint": None,
            "attempts": 0,
            "cancel_requested": False,
        }
        for _ in range(5):
            try:
                await self.db.runs.insert_one(doc)
                return doc, True
            except DuplicateKeyError:
                active = await self.db.runs.find_one({"integration_id": integration_id, "active": True})
                if active is not None:
                    return active, False
        raise RuntimeError("could not queue a run")  # pragma: no cover - the active run kept flipping

    async def get(self, account_id: str, run_id: str) -> Doc | None:
        return await self.db.runs.find_one({"_id": run_id, "account_id": account_id})

    async def get_any(self, run_id: str) -> Doc | None:
        """For workers, which act on behalf of whichever account queued the run."""
        return await self.db.runs.find_one({"_id": run_id})

    async def active(self, integration_id: str) -> Doc | None:
        return await self.db.runs.find_one({"integration_id": integration_id, "active": True})

    async def latest(self, integration_id: str, limit: int = 10, finished_only: bool = False) -> list[Doc]:
        query: Doc = {"integration_id": integration_id}
        if finished_only:
            query["active"] = {"$ne": True}
        cursor = self.db.runs.find(query, {"errors": 0}).sort([("queued_at", -1), ("_id", -1)]).limit(limit)
        return [doc async for doc in cursor]

    async def acquire_lease(self, run_id: str, owner: str, ttl: float) -> Doc | None:
        """Take the run if it is queued, or running under an expired (or our own) lease."""
        now = utcnow()
        return await self.db.runs.find_one_and_update(
            {
                "_id": run_id,
                "status": {"$in": [RunStatus.QUEUED.value, RunStatus.RUNNING.value]},
                "$or": [
                    {"lease_until": {"$exists": False}},
                    {"lease_until": None},
                    {"lease_until": {"$lt": now}},
                    {"lease_owner": owner},
                ],
            },
            # A pipeline update: started_at keeps the first attempt's time (null sorts before dates, so
            # $min cannot do it), attempts counts every lease taken.
            [
                {
                    "$set": {
                        "status": RunStatus.RUNNING.value,
                        "lease_owner": owner,
                        "lease_until": now + timedelta(seconds=ttl),
                        "attempts": {"$add": [{"$ifNull": ["$attempts", 0]}, 1]},
                        "started_at": {"$ifNull": ["$started_at", now]},
                    }
                }
            ],
            return_document=ReturnDocument.AFTER,
        )

    async def save_progress(
        self,
        run_id: str,
        owner: str,
        ttl: float,
        progress: Doc,
        extra: Doc | None = None,
        inc: dict[str, int] | None = None,
        errors: list[Doc] | None = None,
    ) -> Doc | None:
        """Persist progress (and a checkpoint), renew the lease; None when the lease was lost."""
        update: Doc = {
            "$set": {
                "progress": progress,
                "lease_until": utcnow() + timedelta(seconds=ttl),
                **(extra or {}),
            }
        }
        if inc:
            update["$inc"] = {f"counts.{k}": v for k, v in inc.items() if v}
        if errors:
            update["$push"] = {"errors": {"$each": errors, "$slice": MAX_ERRORS_KEPT}}
        if not update.get("$inc"):
            update.pop("$inc", None)
        return await self.db.runs.find_one_and_update(
            {"_id": run_id, "lease_owner": owner, "status": RunStatus.RUNNING.value},
            update,
            projection={"errors": 0},
            return_document=ReturnDocument.AFTER,
        )

    async def finish(self, run_id: str, status: RunStatus, message: str, extra: Doc | None = None) -> Doc | None:
        now = utcnow()
        return await self.db.runs.find_one_and_update(
            {"_id": run_id, "active": True},
            {
                "$set": {
                    "status": status.value,
                    "finished_at": now,
                    "progress.message": message,
                    **(extra or {}),
                },
                "$unset": {"active": "", "lease_owner": "", "lease_until": ""},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def request_cancel(self, account_id: str, run_id: str) -> Doc | None:
        """Cancel a queued run at once; flag a running one (it stops at the next page boundary)."""
        queued = await self.finish_if(account_id, run_id, RunStatus.QUEUED)
        if queued is not None:
            return queued
        return await self.db.runs.find_one_and_update(
            {"_id": run_id, "account_id": account_id, "status": RunStatus.RUNNING.value},
            {"$set": {"cancel_requested": True}},
            return_document=ReturnDocument.AFTER,
        )

    async def finish_if(self, account_id: str, run_id: str, expected: RunStatus) -> Doc | None:
        return await self.db.runs.find_one_and_update(
            {"_id": run_id, "account_id": account_id, "status": expected.value, "active": True},
            {
                "$set": {
                    "status": RunStatus.CANCELLED.value,
                    "finished_at": utcnow(),
                    "progress.message": "Cancelled before it started",
                },
                "$unset": {"active": ""},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def orphaned(self, now: datetime | None = None) -> list[Doc]:
        """Running runs whose lease expired (their worker died) and queued runs nobody took."""
        now = now or utcnow()
        cursor = self.db.runs.find(
            {"status": RunStatus.RUNNING.value, "active": True, "lease_until": {"$lt": now}}, {"errors": 0}
        )
        return [doc async for doc in cursor]

    async def delete_integration(self, integration_id: str) -> None:
        await self.db.runs.delete_many({"integration_id": integration_id})

    async def page(self, account_id: str, integration_id: str, page: PageRequest) -> Slice[Doc]:
        query: Doc = {"account_id": account_id, "integration_id": integration_id}
        return await find_page(self.db.runs, query, "queued_at", page)


def progress_message(run: Doc) -> Doc:
    """The run's progress as published on its channel (and read first by late subscribers)."""
    progress = run.get("progress", {})
    return {
        "run_id": run["_id"],
        "status": run["status"],
        "processed": progress.get("processed", 0),
        "total": progress.get("total"),
        "message": progress.get("message"),
        "seq": progress.get("seq", 0),
    }
