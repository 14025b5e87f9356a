"""Sync runs in MongoDB: queueing (one active run per integration), leases, checkpoints, summaries.

A run is worked on under a lease (`RunLease`: owner + expiry, renewed at every checkpoint and
heartbeat), so a worker that dies leaves a run another worker can take over from its last
checkpoint, and two workers can never process the same run at once. Reads return `Run` records.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from gateway.domain import ChangeOutcome, RunKind, RunStatus, SyncErrorCode, Trigger, utcnow
from gateway.errors import LeaseLost
from gateway.pagination import PageRequest, Slice
from gateway.storage.keyset import KeyPage, read_page
from gateway.storage.mongo import RUNS, Database, Doc, update_and_read

MAX_ERRORS_KEPT = 200
#: A summary in a list of runs carries its first errors (a run read alone carries all it kept), so a
#: list of a hundred runs stays small however many products failed.
LISTED_ERRORS = 20
#: Runs as lists read them.
_LISTED: Doc = {"errors": {"$slice": LISTED_ERRORS}}


def _executed(doc: Doc) -> bool:
    """A finished run a worker executed (not a queued or running one, not a webhook digest)."""
    return not doc.get("active") and doc.get("kind") != RunKind.DIGEST.value


#: Products listed in a run's held changes (the count is always exact).
MAX_CHANGES_KEPT = 200
#: What a run's progress says before a worker takes it, and when one does.
WAITING = "Waiting to start"
STARTING = "Starting"
CANCELLED_BEFORE_START = "Cancelled on request before it started; nothing was changed"
#: A digest's counters kept as recounts from its products, not tallies (RunStore.add_to_digest).
_RECOUNTED = frozenset({"added", "removed"})


# ---- records -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunCounts:
    """The merchant's counters: what a run did to the products."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    conflicts: int = 0

    def __add__(self, other: RunCounts) -> RunCounts:
        return RunCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> RunCounts:
        doc = doc or {}
        return cls(**{f.name: int(doc.get(f.name, 0)) for f in fields(cls)})


@dataclass(frozen=True)
class RunProgress:
    processed: int = 0
    total: int | None = None
    message: str | None = WAITING
    #: Grows with every save: a subscriber drops anything older than what it has shown.
    seq: int = 0

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return round(min(100.0, 100.0 * self.processed / self.total), 1)


@dataclass(frozen=True)
class Checkpoint:
    """Where a retried run resumes: the store cursor after the last page written, with its counters."""

    cursor: str | None = None
    #: The newest store change seen so far (the next incremental run starts there).
    max_updated: datetime | None = None
    #: The last page is written: a retry goes straight to the end-of-run work.
    complete: bool = False


@dataclass(frozen=True)
class SeenSet:
    """What the pages of a full run saw: the external ids, and how many store items those pages had."""

    ids: frozenset[str]
    #: Equals the run's `processed` when every checkpointed page is recorded (the set is complete).
    items: int


@dataclass(frozen=True)
class SyncError:
    """One product a run could not sync."""

    external_id: str | None
    code: str
    message: str


@dataclass(frozen=True)
class AppliedChange:
    """One product a batch of store changes touched, and what became of it."""

    external_id: str
    outcome: ChangeOutcome


@dataclass(frozen=True)
class Applied:
    """What applying a batch of store change notifications did (webhooks, or Sync Now applying what
    manual mode kept waiting): the summary's counters and errors, and each product's outcome."""

    counts: RunCounts = field(default_factory=RunCounts)
    errors: tuple[SyncError, ...] = ()
    changes: tuple[AppliedChange, ...] = ()
    #: Change notifications applied (several may concern one product).
    deliveries: int = 0
    #: Of those, the ones manual mode had kept waiting (what `pendingChanges` counted).
    held: int = 0
    #: Products added, updated or removed (PRODUCT_CHANGED events).
    changed_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class HeldChanges:
    """The store changes manual mode kept waiting, as a Sync Now applied them before reading the store.

    Their counters are in the run's counts already; a product they wrote (its `held_run`) is not
    counted again when the run then reads it from the store.
    """

    #: Change notifications applied: what `pendingChanges` counted.
    applied: int = 0
    #: The products they touched and what became of each (the first MAX_CHANGES_KEPT).
    changes: tuple[AppliedChange, ...] = ()
    #: Their share of the run's counters (a full run's sweep adds its removals to theirs).
    counts: RunCounts = field(default_factory=RunCounts)
    #: The `held_run` mark the attempt that counted them left on the products (`held_mark`); products
    #: marked by an attempt that died before saving this are counted by the run's walk instead.
    mark: str = ""

    @classmethod
    def of(cls, applied: Applied, mark: str) -> HeldChanges:
        return cls(applied.deliveries, applied.changes[:MAX_CHANGES_KEPT], applied.counts, mark)


def held_mark(run: Run) -> str:
    """What one attempt of a Sync Now marks the products its held changes wrote with (`held_run`)."""
    return f"{run.id}#{run.attempts}"


@dataclass(frozen=True)
class RunSummary:
    counts: RunCounts
    errors: tuple[SyncError, ...]
    held: HeldChanges | None = None


@dataclass(frozen=True)
class Run:
    id: str
    account_id: str
    integration_id: str
    trigger: Trigger
    kind: RunKind
    status: RunStatus
    queued_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    product_ids: tuple[str, ...] = ()
    progress: RunProgress = field(default_factory=RunProgress)
    counts: RunCounts = field(default_factory=RunCounts)
    #: The first MAX_ERRORS_KEPT; in lists of runs, the first LISTED_ERRORS (RunStore.latest, page).
    errors: tuple[SyncError, ...] = ()
    checkpoint: Checkpoint | None = None
    attempts: int = 0
    cancel_requested: bool = False
    failure: str | None = None
    lease_owner: str | None = None
    #: Set once a Sync Now applied the changes manual mode kept waiting (None: nothing was held back,
    #: or the run has not got that far).
    held: HeldChanges | None = None

    @property
    def active(self) -> bool:
        return not self.status.finished

    @property
    def summary(self) -> RunSummary | None:
        """The merchant's summary of a finished run (None while it runs)."""
        return RunSummary(self.counts, self.errors, self.held) if self.status.finished else None

    @classmethod
    def from_doc(cls, doc: Doc) -> Run:
        progress = doc.get("progress") or {}
        checkpoint = doc.get("checkpoint")
        kind = RunKind(doc.get("kind", RunKind.FULL))
        processed = int(progress.get("processed") or 0)
        # A digest's message follows its count: said here, so adding a batch is one write, not two.
        message = digest_message(processed) if kind is RunKind.DIGEST else progress.get("message")
        return cls(
            id=doc["_id"],
            account_id=doc["account_id"],
            integration_id=doc["integration_id"],
            trigger=Trigger(doc["trigger"]),
            kind=kind,
            status=RunStatus(doc["status"]),
            queued_at=doc["queued_at"],
            started_at=doc.get("started_at"),
            finished_at=doc.get("finished_at"),
            product_ids=tuple(doc.get("product_ids") or ()),
            progress=RunProgress(
                processed=processed,
                total=progress.get("total"),
                message=message,
                seq=int(progress.get("seq") or 0),
            ),
            counts=RunCounts.from_doc(doc.get("counts")),
            errors=tuple(SyncError(e.get("external_id"), e["code"], e["message"]) for e in doc.get("errors") or ()),
            checkpoint=None
            if not checkpoint
            else Checkpoint(
                cursor=checkpoint.get("cursor"),
                max_updated=checkpoint.get("max_updated"),
                complete=bool(checkpoint.get("complete")),
            ),
            attempts=int(doc.get("attempts") or 0),
            cancel_requested=bool(doc.get("cancel_requested")),
            failure=doc.get("failure"),
            lease_owner=doc.get("lease_owner"),
            held=_held(doc.get("held")),
        )


def _held(doc: Doc | None) -> HeldChanges | None:
    if doc is None:
        return None
    changes = tuple(AppliedChange(c["external_id"], ChangeOutcome(c["outcome"])) for c in doc.get("changes") or ())
    return HeldChanges(
        int(doc.get("applied") or 0), changes, RunCounts.from_doc(doc.get("counts")), str(doc.get("mark") or "")
    )


def _held_doc(held: HeldChanges) -> Doc:
    return {
        "applied": held.applied,
        "changes": [{"external_id": c.external_id, "outcome": c.outcome.value} for c in held.changes],
        "counts": held.counts.as_dict(),
        "mark": held.mark,
    }


def run_failure(code: SyncErrorCode, message: str) -> SyncError:
    """The summary's entry saying why a run failed or stopped (no external id: it is about the run)."""
    return SyncError(None, code.value, message)


def digest_id(integration_id: str, at: datetime) -> str:
    """The WEBHOOK digest run of one integration for the UTC hour of `at`."""
    return f"{integration_id}-changes-{at.astimezone(UTC):%Y%m%d%H}"


def digest_message(changes: int) -> str:
    return f"{changes} change{'' if changes == 1 else 's'} applied from store notifications"


def _progress_doc(progress: RunProgress) -> Doc:
    return {"processed": progress.processed, "total": progress.total, "message": progress.message, "seq": progress.seq}


def _error_doc(error: SyncError) -> Doc:
    return {"external_id": error.external_id, "code": error.code, "message": error.message[:500]}


def _new_run(
    account_id: str, integration_id: str, trigger: Trigger, kind: RunKind, product_ids: list[str] | None, now: datetime
) -> Doc:
    return {
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
        "progress": _progress_doc(RunProgress()),
        "counts": RunCounts().as_dict(),
        "errors": [],
        "checkpoint": None,
        "attempts": 0,
        "cancel_requested": False,
    }


def _one(doc: Doc | None) -> Run | None:
    return None if doc is None else Run.from_doc(doc)


# ---- the store -----------------------------------------------------------------------------------
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
    ) -> tuple[Run, bool]:
        """Queue a run, or return the integration's queued or running one (created=False)."""
        doc = _new_run(account_id, integration_id, trigger, kind, product_ids, utcnow())
        for _ in range(5):
            try:
                await self.db.runs.insert_one(doc)
                return Run.from_doc(doc), True
            except DuplicateKeyError:
                active = await self.db.runs.find_one({"integration_id": integration_id, "active": True})
                if active is not None:
                    return Run.from_doc(active), False
        raise RuntimeError("could not queue a run")  # pragma: no cover - the active run kept flipping

    async def create_many(self, wanted: Sequence[tuple[str, str, RunKind]], trigger: Trigger) -> list[Run]:
        """Queue a run for each (account, integration, kind) that has no active run, in one write;
        returns the runs created (an integration whose run is still going gets none)."""
        now = utcnow()
        docs = [_new_run(account, integration, trigger, kind, None, now) for account, integration, kind in wanted]
        if not docs:
            return []
        refused: set[int] = set()
        try:
            await self.db.runs.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            refused = {int(e["index"]) for e in errors}  # an active run already: the partial unique index
        return [Run.from_doc(doc) for n, doc in enumerate(docs) if n not in refused]

    async def get(self, account_id: str, run_id: str) -> Run | None:
        return _one(await self.db.runs.find_one({"_id": run_id, "account_id": account_id}))

    async def get_any(self, run_id: str) -> Run | None:
        """For workers, which act on behalf of whichever account queued the run."""
        return _one(await self.db.runs.find_one({"_id": run_id}))

    async def active(self, integration_id: str) -> Run | None:
        return _one(await self.db.runs.find_one({"integration_id": integration_id, "active": True}))

    async def active_of(self, integration_ids: Sequence[str]) -> dict[str, Run]:
        """The queued or running run of each of the integrations that has one (one query)."""
        if not integration_ids:
            return {}
        query: Doc = {"integration_id": {"$in": list(integration_ids)}, "active": True}
        return {doc["integration_id"]: Run.from_doc(doc) async for doc in self.db.runs.find(query)}

    async def latest(
        self, integration_id: str, limit: int = 10, finished_only: bool = False, *, since: datetime | None = None
    ) -> list[Run]:
        """The newest runs, with their first LISTED_ERRORS errors. `finished_only`: the newest runs a worker
        executed (the light's last run), without the WEBHOOK digests. `since`: no run is older (e.g. the
        integration's creation); it only saves queries."""
        found = await read_page(
            self.db.runs,
            RUNS,
            {"integration_id": integration_id},
            KeyPage(limit),
            projection=_LISTED,
            accept=_executed if finished_only else None,
            floor=since,
        )
        return [Run.from_doc(doc) for doc in found.items]

    async def acquire_lease(self, run_id: str, owner: str, ttl: float) -> Run | None:
        """Take the run if it is queued, or running under an expired (or our own) lease."""
        now = utcnow()
        acquirable = {"_id": run_id, "status": {"$in": [RunStatus.QUEUED.value, RunStatus.RUNNING.value]}}
        # A pipeline update: started_at keeps the first attempt's time (null sorts before dates, so
        # $min cannot do it), attempts counts every lease taken. The message changes with the
        # status, so no reader ever sees RUNNING with "Waiting to start".
        take = [
            {
                "$set": {
                    "status": RunStatus.RUNNING.value,
                    "lease_owner": owner,
                    "lease_until": now + timedelta(seconds=ttl),
                    "attempts": {"$add": [{"$ifNull": ["$attempts", 0]}, 1]},
                    "started_at": {"$ifNull": ["$started_at", now]},
                    # A new seq: subscribers show the RUNNING state (they skip what is not newer).
                    "progress": {
                        "$mergeObjects": [
                            "$progress",
                            {"message": STARTING, "seq": {"$add": [{"$ifNull": ["$progress.seq", 0]}, 1]}},
                        ]
                    },
                }
            }
        ]
        # Free (no lease yet: missing or null), expired, or already ours: one conditional update each, in
        # the order they are likely, rather than one with $or (which the embedded server answers by
        # scanning the collection; see update_and_read).
        for lease in ({"lease_until": None}, {"lease_until": {"$lt": now}}, {"lease_owner": owner}):
            doc = await update_and_read(self.db.runs, {**acquirable, **lease}, take)
            if doc is not None:
                return Run.from_doc(doc)
        return None

    async def save_progress(
        self,
        run_id: str,
        owner: str,
        ttl: float,
        progress: RunProgress,
        *,
        checkpoint: Checkpoint | None = None,
        add: RunCounts | None = None,
        set_counts: Mapping[str, int] | None = None,
        errors: Sequence[SyncError] = (),
        held: HeldChanges | None = None,
    ) -> Run | None:
        """Persist progress (and a checkpoint with its counters, atomically), renew the lease.

        None when the lease was lost. `set_counts` overwrites counters (a recount that must stay exact
        whatever attempt makes it); `add` increments them. `held` records the held changes a Sync Now
        applied, with their counters in `add`, in the same update.
        """
        fields_set: Doc = {"progress": _progress_doc(progress), "lease_until": utcnow() + timedelta(seconds=ttl)}
        if held is not None:
            fields_set["held"] = _held_doc(held)
        if checkpoint is not None:
            fields_set["checkpoint"] = {
                "cursor": checkpoint.cursor,
                "max_updated": checkpoint.max_updated,
                "complete": checkpoint.complete,
            }
        for name, value in (set_counts or {}).items():
            fields_set[f"counts.{name}"] = value
        update: Doc = {"$set": fields_set}
        increments = {f"counts.{k}": v for k, v in (add.as_dict() if add else {}).items() if v}
        if increments:
            update["$inc"] = increments
        if errors:
            update["$push"] = {"errors": {"$each": [_error_doc(e) for e in errors], "$slice": MAX_ERRORS_KEPT}}
        doc = await update_and_read(
            self.db.runs,
            {"_id": run_id, "lease_owner": owner, "status": RunStatus.RUNNING.value},
            update,
            projection={"errors": 0},
        )
        return _one(doc)

    async def finish(
        self, run_id: str, status: RunStatus, message: str, failure: str | None = None, errors: Iterable[SyncError] = ()
    ) -> Run | None:
        """End the run (the status and its message together); None when it had already ended. A failed or
        cancelled run comes with its `failure` and a run-level entry in `errors` (see `run_failure`)."""
        fields_set: Doc = {"status": status.value, "finished_at": utcnow(), "progress.message": message}
        if failure:
            fields_set["failure"] = failure
        update: Doc = {"$set": fields_set, "$unset": {"active": "", "lease_owner": "", "lease_until": ""}}
        extra = [_error_doc(e) for e in errors]
        if extra:
            update["$push"] = {"errors": {"$each": extra, "$slice": MAX_ERRORS_KEPT}}
        doc = await update_and_read(self.db.runs, {"_id": run_id, "active": True}, update)
        return _one(doc)

    async def request_cancel(self, account_id: str, run_id: str) -> Run | None:
        """Cancel a queued run at once; flag a running one (it stops at the next page boundary)."""
        queued = await self.finish_if(account_id, run_id, RunStatus.QUEUED)
        if queued is not None:
            return queued
        doc = await self.db.runs.find_one_and_update(
            {"_id": run_id, "account_id": account_id, "status": RunStatus.RUNNING.value},
            {"$set": {"cancel_requested": True}},
            return_document=ReturnDocument.AFTER,
        )
        return _one(doc)

    async def finish_if(self, account_id: str, run_id: str, expected: RunStatus) -> Run | None:
        why = CANCELLED_BEFORE_START
        doc = await self.db.runs.find_one_and_update(
            {"_id": run_id, "account_id": account_id, "status": expected.value, "active": True},
            {
                "$set": {
                    "status": RunStatus.CANCELLED.value,
                    "finished_at": utcnow(),
                    "progress.message": "Cancelled before it started",
                    "failure": why,
                },
                "$push": {"errors": _error_doc(run_failure(SyncErrorCode.CANCELLED, why))},
                "$unset": {"active": ""},
            },
            return_document=ReturnDocument.AFTER,
        )
        return _one(doc)

    async def orphaned(self, now: datetime | None = None) -> list[Run]:
        """Running runs whose lease expired (their worker died)."""
        now = now or utcnow()
        cursor = self.db.runs.find(
            {"status": RunStatus.RUNNING.value, "active": True, "lease_until": {"$lt": now}}, {"errors": 0}
        )
        return [Run.from_doc(doc) async for doc in cursor]

    async def queued_before(self, before: datetime) -> list[Run]:
        """Runs still waiting for a worker that were queued before `before`."""
        cursor = self.db.runs.find(
            {"status": RunStatus.QUEUED.value, "active": True, "queued_at": {"$lt": before}}, {"errors": 0}
        )
        return [Run.from_doc(doc) async for doc in cursor]

    # ---- the WEBHOOK digests ---------------------------------------------------------------------
    async def add_to_digest(
        self, account_id: str, integration_id: str, run_id: str, at: datetime, applied: Applied
    ) -> Run:
        """Add one batch of webhook changes to its hour's digest run (`digest_id`), created by the first.

        The digest is a finished (SUCCEEDED) run from the start, never active: it shows in the history
        and nowhere a worker looks. Counters are incremented in one update, so batches applied at once
        by several workers add up; its message follows the count (`Run.from_doc`).
        """
        return (await self.add_to_digests([DigestBatch(account_id, integration_id, run_id, at, applied)]))[0]

    async def add_to_digests(self, batches: Sequence[DigestBatch]) -> list[Run]:
        """`add_to_digest` for the batches of several integrations (one each) at once: two recounts, one
        write and one read for all of them (a webhook apply pass serves every store whose job runs)."""
        run_ids = [b.run_id for b in batches]
        # added and removed are not tallied but recounted, from the products the hour's batches wrote (a
        # tally is wrong both ways: a worker killed between a batch's writes and this update leaves those
        # products to its retry, which finds them written; a product a run inserted first is decided
        # again and may be tallied by both). Counted after this batch's writes and set with $max in the
        # same update as the counters: concurrent recounts never go back, and a batch is one write.
        added = await self._count_by("created_run", run_ids)
        removed = await self._count_by("removed_run", run_ids)
        ops = [
            UpdateOne(
                {"_id": b.run_id},
                _digest_update(b, added.get(b.run_id, 0), removed.get(b.run_id, 0)),
                upsert=True,
            )
            for b in batches
        ]
        for _ in range(3):
            try:
                await self.db.runs.bulk_write(ops, ordered=False)
                break
            except BulkWriteError as exc:
                # Two first batches of the hour at once: the other one created it; the rest were written.
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                ops = [ops[e["index"]] for e in errors]
        else:  # pragma: no cover - the upserts kept colliding
            raise RuntimeError("could not record the webhook digest")
        docs = {d["_id"]: d async for d in self.db.runs.find({"_id": {"$in": run_ids}}, {"errors": 0})}
        return [Run.from_doc(docs[run_id]) for run_id in run_ids]

    async def _count_by(self, field_name: str, run_ids: Sequence[str]) -> dict[str, int]:
        """How many products carry each of these runs in `field_name` (one query)."""
        if len(run_ids) == 1:
            return {run_ids[0]: await self.db.products.count_documents({field_name: run_ids[0]})}
        pipeline: list[Doc] = [
            {"$match": {field_name: {"$in": list(run_ids)}}},
            {"$group": {"_id": f"${field_name}", "n": {"$sum": 1}}},
        ]
        return {doc["_id"]: int(doc["n"]) async for doc in await self.db.products.aggregate(pipeline)}

    async def delete_integration(self, integration_id: str) -> None:
        await self.db.runs.delete_many({"integration_id": integration_id})
        await self.db.run_seen.delete_many({"integration_id": integration_id})

    # ---- what a full run has seen -------------------------------------------------------------
    async def record_seen(
        self, run_id: str, integration_id: str, read_from: str | None, external_ids: Sequence[str], items: int
    ) -> None:
        """Keep, with the run, the ids one page of a full run saw (before its checkpoint is saved).

        Keyed by the cursor the page was read from, so a page read again after a retry replaces its
        own record: the records of a run always add up to its checkpointed pages. One small document
        a page: cheaper by far than touching every product the run saw.
        """
        key = f"{run_id}:{read_from or ''}"
        record = {"run_id": run_id, "integration_id": integration_id, "at": utcnow(), "ids": list(external_ids)}
        await self.db.run_seen.replace_one({"_id": key}, {**record, "items": items}, upsert=True)

    async def seen(self, run_id: str) -> SeenSet:
        ids: set[str] = set()
        items = 0
        async for page in self.db.run_seen.find({"run_id": run_id}, {"ids": 1, "items": 1}):
            ids.update(page["ids"])
            items += int(page["items"])
        return SeenSet(frozenset(ids), items)

    async def forget_seen(self, run_id: str) -> None:
        await self.db.run_seen.delete_many({"run_id": run_id})

    async def page(
        self, account_id: str, integration_id: str, page: PageRequest, *, since: datetime | None = None
    ) -> Slice[Run]:
        found = await read_page(
            self.db.runs,
            RUNS,
            {"integration_id": integration_id},
            KeyPage(page.first, page.after),
            projection=_LISTED,
            accept=lambda doc: doc.get("account_id") == account_id,
            floor=since,
        )
        return Slice([Run.from_doc(d) for d in found.items], found.positions, found.has_next)


# ---- the lease -----------------------------------------------------------------------------------
class RunLease:
    """A worker's hold on one run. Every save renews it; a save after another worker took the run
    over (or after the run was deleted) raises LeaseLost, so two workers never write one run."""

    def __init__(self, store: RunStore, run: Run, owner: str, seconds: float) -> None:
        self.store = store
        self.run = run
        self.owner = owner
        self.seconds = seconds
        self._lock = asyncio.Lock()

    @classmethod
    async def acquire(cls, store: RunStore, run_id: str, owner: str, seconds: float) -> RunLease | None:
        """The lease, or None when the run is finished or another worker holds it."""
        run = await store.acquire_lease(run_id, owner, seconds)
        return None if run is None else cls(store, run, owner, seconds)

    async def save(
        self,
        total: int | None,
        message: str,
        *,
        processed: int | None = None,
        checkpoint: Checkpoint | None = None,
        add: RunCounts | None = None,
        set_counts: Mapping[str, int] | None = None,
        errors: Sequence[SyncError] = (),
        held: HeldChanges | None = None,
    ) -> Run:
        """Save progress (with the page's checkpoint and counters, atomically) under a new `seq`.

        `processed` changes only with the checkpoint of the pages it counts; other saves (the
        heartbeat) keep the saved value, read under the lock, so it never runs ahead of the
        checkpoint or goes back.
        """
        async with self._lock:  # the heartbeat and the page writer save in turn: seq never goes back
            counted = self.run.progress.processed if processed is None else processed
            progress = RunProgress(counted, total, message, self.run.progress.seq + 1)
            run = await self.store.save_progress(
                self.run.id,
                self.owner,
                self.seconds,
                progress,
                checkpoint=checkpoint,
                add=add,
                set_counts=set_counts,
                errors=errors,
                held=held,
            )
            if run is None:
                raise LeaseLost()
            self.run = run
            return run


@dataclass(frozen=True)
class DigestBatch:
    """One integration's batch of applied webhook changes, on its way into the hour's digest run."""

    account_id: str
    integration_id: str
    run_id: str
    at: datetime
    applied: Applied


def _digest_update(batch: DigestBatch, added: int, removed: int) -> Doc:
    applied = batch.applied
    increments: Doc = {f"counts.{k}": v for k, v in applied.counts.as_dict().items() if v and k not in _RECOUNTED}
    increments["progress.processed"] = applied.deliveries
    increments["progress.seq"] = 1
    update: Doc = {
        "$setOnInsert": {
            "account_id": batch.account_id,
            "integration_id": batch.integration_id,
            "trigger": Trigger.WEBHOOK.value,
            "kind": RunKind.DIGEST.value,
            "status": RunStatus.SUCCEEDED.value,
            "queued_at": batch.at,
            "started_at": batch.at,
            "product_ids": [],
            "progress.total": None,
            "attempts": 0,
            "cancel_requested": False,
        },
        "$max": {"finished_at": batch.at, "counts.added": added, "counts.removed": removed},
        "$inc": increments,
    }
    if applied.errors:
        update["$push"] = {"errors": {"$each": [_error_doc(e) for e in applied.errors], "$slice": MAX_ERRORS_KEPT}}
    return update
