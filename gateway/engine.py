"""The sync engine: executes one run against any platform adapter.

For each page the adapter yields: map every product (a product that fails to map becomes a SyncError
and the run goes on), hash it, read the stored hashes of the page in one query, write only what
changed in one unordered bulk write, then checkpoint (cursor + counters, atomically with a lease
renewal) and publish progress. Memory holds one page at a time; the products seen by a full run are
remembered in a Redis set (not in memory) so removals can be found at the end, and a retried run
resumes from its last checkpoint with exactly the same result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pymongo import UpdateOne

from gateway import metrics
from gateway.adapter import Connection, FetchMode, FetchRequest, MappingContext, Page, PlatformAdapter
from gateway.conflicts import ConflictService
from gateway.domain import ActivityKind, EventKind, RunKind, RunStatus, Trigger
from gateway.errors import MappingError, StoreAuthError, StoreError
from gateway.integrations import CallCounter, IntegrationService, health_doc
from gateway.logs import bind_context
from gateway.model import Product, hash_document
from gateway.products import Outcome, product_id
from gateway.products import older as _older
from gateway.storage.mongo import Doc
from gateway.syncs import progress_message

if TYPE_CHECKING:
    from gateway.services import Gateway

log = logging.getLogger(__name__)

SEEN_TTL_SECONDS = 2 * 86_400
PRODUCT_EVENTS_PER_PAGE = 50
#: Pages fetched ahead while the current one is written: the store and MongoDB work in parallel,
#: and memory stays bounded (at most this many pages beyond the one being written).
PREFETCH_PAGES = 2


async def prefetch(pages: AsyncIterator[Page], ahead: int) -> AsyncIterator[Page]:
    """Yield from `pages` while a background task reads up to `ahead` pages in advance."""
    queue: asyncio.Queue[Page | BaseException | None] = asyncio.Queue(maxsize=ahead)

    async def produce() -> None:
        try:
            async for page in pages:
                await queue.put(page)
            await queue.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            await queue.put(exc)
        finally:
            closer = getattr(pages, "aclose", None)
            if closer is not None:
                with contextlib.suppress(BaseException):
                    await closer()

    producer = asyncio.get_running_loop().create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer


class Cancelled(Exception):
    pass


class LeaseLost(Exception):
    pass


@dataclass
class PageResult:
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[Doc] = field(default_factory=list)
    max_updated: datetime | None = None
    changed_ids: list[str] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def sync_error(external_id: str | None, code: str, message: str) -> Doc:
    return {"external_id": external_id, "code": code, "message": message[:500]}


def native_id(native: Mapping[str, Any]) -> str | None:
    value = native.get("id") if isinstance(native, Mapping) else None
    return None if value is None else str(value)


def map_one(gw: Gateway, adapter: PlatformAdapter, native: Mapping[str, Any], context: MappingContext) -> Product | Doc:
    """Map and enrich one native product; a SyncError document when it cannot be mapped."""
    try:
        product = adapter.map_product(native, context)
        result: Product = gw.registry.process_product(adapter.info.id, native, product)
        return result
    except MappingError as exc:
        return sync_error(exc.external_id or native_id(native), exc.code, exc.message)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return sync_error(native_id(native), "INVALID_PRODUCT", f"{where}: {first.get('msg')}")
    except Exception as exc:  # noqa: BLE001 - one bad product never fails a run
        log.warning("mapper crashed on a product", exc_info=True)
        return sync_error(native_id(native), "MAPPING_FAILED", f"{type(exc).__name__}: {exc}")


class SyncEngine:
    """Runs one sync run to its end (or to a lost lease / cancellation)."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.integrations = IntegrationService(gw)
        self.conflicts = ConflictService(gw)

    async def run(self, run_id: str) -> Doc | None:
        gw = self.gw
        run = await gw.runs.acquire_lease(run_id, gw.worker_id, gw.lease_seconds)
        if run is None:
            return None  # finished, cancelled, or another worker holds it
        integration = await self.integrations.get_any(run["integration_id"])
        if integration is None:
            return await gw.runs.finish(run_id, RunStatus.FAILED, "The integration was disconnected")
        execution = _Execution(self, run, integration)
        with bind_context(run_id=run_id, integration_id=integration["_id"]):
            return await execution.execute()


class _Execution:
    def __init__(self, engine: SyncEngine, run: Doc, integration: Doc) -> None:
        self.engine = engine
        self.gw = engine.gw
        self.run = run
        self.run_id: str = run["_id"]
        self.integration = integration
        self.account_id: str = integration["account_id"]
        self.integration_id: str = integration["_id"]
        self.adapter = self.gw.registry.adapter(integration["platform"])
        self.counter = CallCounter(self.integration_id)
        self.kind = RunKind(run["kind"])
        progress = run.get("progress") or {}
        self.processed: int = progress.get("processed", 0)
        self.total: int | None = progress.get("total")
        self.seq: int = progress.get("seq", 0)
        self.message = "Starting"
        self.lock = asyncio.Lock()
        checkpoint = run.get("checkpoint") or {}
        self.max_updated: datetime | None = checkpoint.get("max_updated")
        self.nothing_stored = False

    # ---- progress -------------------------------------------------------------------------------
    async def save(
        self, *, extra: Doc | None = None, inc: dict[str, int] | None = None, errors: list[Doc] | None = None
    ) -> Doc:
        async with self.lock:
            self.seq += 1
            progress = {
                "processed": self.processed,
                "total": self.total,
                "message": self.message,
                "seq": self.seq,
            }
            doc = await self.gw.runs.save_progress(
                self.run_id, self.gw.worker_id, self.gw.lease_seconds, progress, extra, inc, errors
            )
            if doc is None:
                raise LeaseLost()
            await self.gw.publisher.run_progress(self.run_id, progress_message(doc))
            await self.gw.publisher.account_event(
                self.account_id,
                {
                    "kind": EventKind.RUN_PROGRESS.value,
                    "integration_id": self.integration_id,
                    "at": self.gw.now(),
                    "run": doc,
                },
            )
            self.run = doc
            return doc

    async def heartbeat(self) -> None:
        """Progress at least once a second, even while one page takes long; renews the lease."""
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.save()
            except LeaseLost:
                return

    # ---- the run --------------------------------------------------------------------------------
    async def execute(self) -> Doc | None:
        gw = self.gw
        first_attempt = self.run.get("attempts", 1) <= 1
        if first_attempt:
            await gw.activity.record(
                self.account_id,
                ActivityKind.SYNC_STARTED,
                "Sync started",
                integration_id=self.integration_id,
                run_id=self.run_id,
            )
        await self.save()
        await gw.publisher.account_event(
            self.account_id,
            {
                "kind": EventKind.RUN_STARTED.value,
                "integration_id": self.integration_id,
                "at": gw.now(),
                "run": self.run,
            },
        )
        conn = self.engine.integrations.connection(self.integration, self.counter)
        beat = asyncio.get_running_loop().create_task(self.heartbeat())
        try:
            if self.run.get("trigger") == Trigger.MANUAL.value:
                # Sync Now applies the changes that manual mode kept waiting.
                from gateway.webhooks import WebhookService

                await WebhookService(gw).apply_pending(self.integration_id, self.run_id)
            await self.walk(conn)
            status, message, failure = RunStatus.SUCCEEDED, self.done_message(), None
        except Cancelled:
            status, message, failure = RunStatus.CANCELLED, "Cancelled: products saved so far are kept", None
        except LeaseLost:
            if await gw.db.integrations.count_documents({"_id": self.integration_id}) == 0:
                # Disconnected mid-run: the page written after the disconnect must not linger.
                await gw.db.products.delete_many({"integration_id": self.integration_id})
            else:
                log.warning("lost the lease of run %s: another worker took it over", self.run_id)
            return None
        except StoreAuthError as exc:
            status, message, failure = RunStatus.FAILED, "The store refused Alana's credentials", exc.message
            from gateway.lifecycle import LifecycleService

            await LifecycleService(gw).credentials_rejected(self.integration, exc.message)
        except StoreError as exc:
            status, message, failure = RunStatus.FAILED, "The store could not be read", exc.message
        except Exception as exc:  # noqa: BLE001 - record the failure, never leave a run RUNNING
            log.exception("sync run %s crashed", self.run_id)
            status, message, failure = (
                RunStatus.FAILED,
                "Internal error",
                f"internal error ({type(exc).__name__})",
            )
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            await conn.close()
            await self.counter.flush(gw)
        return await self.finish(status, message, failure)

    def done_message(self) -> str:
        return f"Done: {self.processed} products checked"

    async def walk(self, conn: Connection) -> None:
        checkpoint = self.run.get("checkpoint") or {}
        request = self.fetch_request(checkpoint.get("cursor"))
        if not checkpoint and self.kind is RunKind.FULL:
            # An integration's first load: nothing is stored yet, so no page needs to read what is. A
            # product that appears meanwhile (a webhook) makes its insert collide and is decided again.
            self.nothing_stored = (
                await self.gw.db.products.find_one({"integration_id": self.integration_id}, {"_id": 1}) is None
            )
        context = await self.adapter.mapping_context(conn)
        if self.total is None and request.cursor is None:
            with contextlib.suppress(StoreError):
                self.total = await self.adapter.count_products(conn, request)
        # A retry after the last page was checkpointed goes straight to the end-of-run work.
        if not checkpoint.get("complete"):
            self.message = "Reading products from the store"
            async for page in prefetch(self.adapter.fetch_products(conn, request), PREFETCH_PAGES):
                await self.process_page(page, context)
        if self.kind is RunKind.FULL:
            await self.detect_removed()

    def fetch_request(self, cursor: str | None) -> FetchRequest:
        if self.kind is RunKind.PRODUCTS:
            return FetchRequest(mode=FetchMode.IDS, ids=tuple(self.run.get("product_ids", [])), cursor=cursor)
        if self.kind is RunKind.INCREMENTAL:
            since = self.integration.get("sync_cursor")
            overlap = timedelta(seconds=self.gw.settings.incremental_overlap_seconds)
            return FetchRequest(mode=FetchMode.SINCE, since=since - overlap if since else None, cursor=cursor)
        return FetchRequest(mode=FetchMode.FULL, cursor=cursor)

    async def process_page(self, page: Page, context: MappingContext) -> None:
        gw = self.gw
        if page.total is not None:
            self.total = page.total
        result = PageResult()
        mapped: dict[str, Product] = {}
        for native in page.items:
            outcome = map_one(gw, self.adapter, native, context)
            if isinstance(outcome, Product):
                mapped[outcome.external_id] = outcome  # a duplicate id in one page: the last one wins
            else:
                result.errors.append(outcome)
                result.add("failed")
        await self.write(mapped, result)
        if page.missing_ids and self.kind is RunKind.PRODUCTS:
            removed = await gw.products.mark_removed(self.integration_id, page.missing_ids, self.run_id)
            result.add("removed", removed)
        if self.kind is RunKind.FULL and (mapped or result.errors):
            seen = list(mapped) + [e["external_id"] for e in result.errors if e.get("external_id")]
            key = f"gw:seen:{self.run_id}"
            await gw.redis.sadd(key, *seen)  # type: ignore[misc]
            await gw.redis.expire(key, SEEN_TTL_SECONDS)
        self.processed += len(page.items)
        total = f" of {self.total}" if self.total else ""
        self.message = f"Checked {self.processed}{total} products"
        await self.counter.flush(gw)
        doc = await self.save(
            extra={
                "checkpoint": {
                    "cursor": page.cursor,
                    "max_updated": self.max_updated,
                    "complete": page.cursor is None,
                }
            },
            inc=result.counts,
            errors=result.errors,
        )
        # Small pages of changes (incremental and product runs) announce each product; a full
        # catalog load announces itself through RUN_PROGRESS instead of thousands of events.
        if len(result.changed_ids) <= PRODUCT_EVENTS_PER_PAGE:
            for pid in result.changed_ids:
                await gw.publisher.account_event(
                    self.account_id,
                    {
                        "kind": EventKind.PRODUCT_CHANGED.value,
                        "integration_id": self.integration_id,
                        "at": gw.now(),
                        "product_id": pid,
                        "run_id": self.run_id,
                    },
                )
        if doc.get("cancel_requested"):
            raise Cancelled()

    async def write(self, mapped: dict[str, Product], result: PageResult) -> None:
        gw = self.gw
        if not mapped:
            return
        existing = {} if self.nothing_stored else await gw.products.existing(self.integration_id, list(mapped))
        inserts: list[Doc] = []
        updates: list[UpdateOne] = []
        guarded: dict[str, str] = {}
        slow: list[tuple[Product, str]] = []
        for external_id, product in mapped.items():
            store = product.to_document()  # dumped once: hashed and stored as is
            content_hash = hash_document(store)
            if self.max_updated is None or product.store_updated_at > self.max_updated:
                self.max_updated = product.store_updated_at
            old = existing.get(external_id)
            decision = self.classify(product, content_hash, old)
            if decision == "insert":
                inserts.append(
                    gw.products.new_document(
                        self.account_id, self.integration_id, product, content_hash, self.run_id, store
                    )
                )
                result.add("added")
                result.changed_ids.append(product_id(self.integration_id, external_id))
            elif decision == "update":
                assert old is not None
                updates.append(
                    gw.products.update_op(
                        self.integration_id, product, content_hash, old.get("version", 0), self.run_id, store
                    )
                )
                guarded[external_id] = content_hash
                result.add("added" if old.get("removed") else "updated")
                result.changed_ids.append(product_id(self.integration_id, external_id))
            elif decision == "slow":
                slow.append((product, content_hash))
            else:
                result.add(decision)
        matched, collided = await gw.products.bulk(inserts, updates)
        for doc in inserts:
            if doc["_id"] in collided:
                # Someone (a webhook) inserted it between our read and our write: decide again.
                result.add("added", -1)
                slow.append((mapped[doc["external_id"]], doc["hash"]))
        if matched < len(updates):
            # A concurrent write (an Alana edit, a webhook) moved some versions: redo those one by one.
            now = await gw.products.existing(self.integration_id, list(guarded))
            for external_id, content_hash in guarded.items():
                if now.get(external_id, {}).get("hash") != content_hash:
                    slow.append((mapped[external_id], content_hash))
        await self.write_slowly(slow, guarded, result)

    def classify(self, product: Product, content_hash: str, old: Doc | None) -> str:
        """insert / update / slow (overlays: conflict checks) or the counter an unwritten product adds to."""
        if old is None:
            return "insert"
        if _older(product.store_updated_at, old.get("store_updated_at")):
            return "unchanged"  # a newer version already arrived (a webhook overtook this run): keep it
        if old.get("hash") == content_hash and not old.get("removed"):
            # Written by an earlier attempt of this same run: count it as that attempt did.
            if old.get("created_run") == self.run_id:
                return "added"
            return "updated" if old.get("updated_run") == self.run_id else "unchanged"
        if any(o.get("active") for o in old.get("overlays", [])):
            return "slow"
        return "update"

    async def write_slowly(self, slow: list[tuple[Product, str]], guarded: dict[str, str], result: PageResult) -> None:
        """Version-guarded writes one by one, with three-way conflict detection on Alana's overlays."""
        for product, content_hash in slow:
            outcome = await self.gw.products.write_one(
                self.account_id, self.integration_id, product, content_hash, self.run_id, skip_older=True
            )
            if outcome.outcome in (Outcome.UNCHANGED, Outcome.STALE):
                result.add("unchanged")
            elif product.external_id not in guarded:
                result.add("added" if outcome.outcome is Outcome.ADDED else "updated")
                result.changed_ids.append(outcome.product_id)
            for found in outcome.conflicts:
                await self.engine.conflicts.record(
                    self.account_id, self.integration_id, outcome.product_id, found, self.run_id
                )
                result.add("conflicts")

    async def detect_removed(self) -> None:
        """A full run saw every product the store has: the rest are gone (marked, not deleted)."""
        key = f"gw:seen:{self.run_id}"
        removed = 0
        async for batch in self.gw.products.active_external_ids(self.integration_id):
            flags = await self.gw.redis.smismember(key, batch)  # type: ignore[misc]
            gone = [external_id for external_id, seen in zip(batch, flags, strict=True) if not seen]
            removed += await self.gw.products.mark_removed(self.integration_id, gone, self.run_id)
        if removed:
            await self.save(inc={"removed": removed})
        await self.gw.redis.delete(key)

    async def finish(self, status: RunStatus, message: str, failure: str | None) -> Doc | None:
        gw = self.gw
        extra: Doc = {"failure": failure} if failure else {}
        run = await gw.runs.finish(self.run_id, status, message, extra)
        if run is None:
            return None
        metrics.RUNS.labels(status=status.value).inc()
        now = gw.now()
        if status is RunStatus.SUCCEEDED:
            update: Doc = {"last_sync_at": now, "credentials_rejected": False}
            if self.kind is RunKind.FULL:
                update["last_full_sync_at"] = now
            cursor = self.integration.get("sync_cursor")
            if self.max_updated is not None and self.kind is not RunKind.PRODUCTS:
                update["sync_cursor"] = max(cursor, self.max_updated) if cursor else self.max_updated
            if run.get("trigger") == Trigger.MANUAL.value:
                update["pending_changes"] = 0
            if run.get("trigger") == Trigger.SCHEDULED.value and self.kind is RunKind.INCREMENTAL:
                # With webhooks working, the store's changes are already applied when the scheduled
                # run looks: changes it still finds are changes the webhooks missed.
                counts = run.get("counts", {})
                registered = self.integration.get("webhooks", {}).get("state") == "REGISTERED"
                update["webhooks.silent"] = registered and counts.get("added", 0) + counts.get("updated", 0) > 0
            await gw.db.integrations.update_one({"_id": self.integration_id}, {"$set": update})
        counts = run.get("counts", {})
        kind = {
            RunStatus.SUCCEEDED: ActivityKind.SYNC_SUCCEEDED,
            RunStatus.FAILED: ActivityKind.SYNC_FAILED,
            RunStatus.CANCELLED: ActivityKind.SYNC_CANCELLED,
        }[status]
        text = {
            RunStatus.SUCCEEDED: "Sync finished: {added} added, {updated} updated, {unchanged} unchanged, "
            "{removed} removed, {failed} failed".format(
                **{**dict.fromkeys(("added", "updated", "unchanged", "removed", "failed"), 0), **counts}
            ),
            RunStatus.FAILED: f"Sync failed: {failure}",
            RunStatus.CANCELLED: "Sync cancelled; products saved so far are kept",
        }[status]
        await gw.activity.record(self.account_id, kind, text, integration_id=self.integration_id, run_id=self.run_id)
        await gw.publisher.run_progress(self.run_id, progress_message(run))
        await gw.publisher.account_event(
            self.account_id,
            {
                "kind": EventKind.RUN_FINISHED.value,
                "integration_id": self.integration_id,
                "at": now,
                "run": run,
            },
        )
        integration = await self.engine.integrations.get_any(self.integration_id)
        if integration is not None:
            health = await self.engine.integrations.health(integration)
            await gw.publisher.account_event(
                self.account_id,
                {
                    "kind": EventKind.HEALTH_CHANGED.value,
                    "integration_id": self.integration_id,
                    "at": now,
                    "health": health_doc(health),
                },
            )
        log.info("sync run finished", extra={"run_id": self.run_id, "status": status.value, **counts})
        return run
