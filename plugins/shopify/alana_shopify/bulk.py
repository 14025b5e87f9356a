"""Full reads of large catalogs through a bulk operation, streamed from its JSONL result.

Flow: `bulkOperationRunQuery` -> poll `node(id:)` until the operation ends -> download the JSONL at
`url` in chunks (never the whole file in memory) -> stitch child lines (variants, media) onto their
parents by `__parentId` -> release complete products in pages as the download goes.

Stitching. Shopify writes a child after its parent, but "not necessarily directly after" it. The
plugin asks for `groupObjects: true` (children grouped under their parent) and still keeps a window of
the last `lookback` parents open: a parent is released only once `lookback` newer parents have
started, so children arriving a little late still find it. A child whose parent was already released
is not lost: its parent's id is remembered and, after the download, that product is read again through
the paginated API and yielded once more, complete. Memory stays bounded by the window, whatever the
catalog's size. (Shopify's 2026 docs say grouping slows an operation down; `bulk_group_objects=False`
turns it off, and the window plus the re-read keep the result complete either way.)

Downloading. The result URL comes from the store's answer, so it is fetched through the connection's
guarded client (`HttpClient.download`): only from Shopify's result host (`RESULT_ORIGINS`) or the
store's own origin (the simulator), redirects only between those, never to a private address, within
size and time limits, and without the access token. 429 / 5xx / dropped connections are retried with
the connection's backoff, and a download cut off midway skips the lines it already handed out.

Resuming. A page's cursor is `bulk:<operation gid>:<products released so far>`. Resuming re-reads the
same operation's result (kept 7 days), stitches from the start and skips the products already
released; when the operation is gone or failed, the adapter restarts with paginated queries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from alana_shopify.client import ShopifyGraphQL
from alana_shopify.fetch import normalize
from alana_shopify.queries import BULK_POLL, BULK_RUN
from gateway.errors import StoreError, StoreHTTPError, StorePayloadError, StoreRequestRefused, StoreUnreachable
from gateway.httpclient import MAX_DOWNLOAD_BYTES, RETRY_STATUSES, backoff_delay, origin, retry_after_seconds

log = logging.getLogger(__name__)

FINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELED", "EXPIRED"})
#: Global-id type of a child line -> the parent's connection it belongs to.
CHILD_KEYS = {
    "ProductVariant": "variants",
    "MediaImage": "media",
    "Video": "media",
    "ExternalVideo": "media",
    "Model3d": "media",
}
CHUNK = 64 * 1024
DOWNLOAD_TRIES = 6
#: Where Shopify serves bulk results: signed Google Cloud Storage URLs (shopify.dev bulk-operations/queries,
#: "url": "https://storage.googleapis.com/shopify/...").
RESULT_ORIGINS = ("https://storage.googleapis.com",)


class BulkUnavailable(StoreError):
    """No bulk result to read (another operation runs, it failed, or it expired): read paginated."""


@dataclass
class BulkOperation:
    id: str
    status: str
    url: str | None = None
    error_code: str | None = None
    object_count: int = 0


def parse_cursor(cursor: str) -> tuple[str, int] | None:
    """(operation gid, products already released) from a `bulk:` cursor."""
    if not cursor.startswith("bulk:"):
        return None
    gid, _, done = cursor[len("bulk:") :].rpartition(":")
    if not gid or not done.isdigit():
        return None
    return gid, int(done)


def child_key(child: dict[str, Any]) -> str:
    """The parent connection a child line belongs to, from its global id's type."""
    gid = str(child.get("id") or "")
    kind = gid.split("/")[3] if gid.startswith("gid://") and gid.count("/") >= 4 else ""
    return CHILD_KEYS.get(kind, "children")


@dataclass
class Stitcher:
    """Attaches child lines to open parents; releases parents once `lookback` newer ones started."""

    lookback: int = 100
    late_parents: set[str] = field(default_factory=set)
    _open: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)

    def add(self, line: dict[str, Any]) -> list[dict[str, Any]]:
        parent_id = line.pop("__parentId", None)
        if parent_id is None:
            self._open[str(line.get("id"))] = line
            released = []
            while len(self._open) > self.lookback:
                released.append(self._release(self._open.popitem(last=False)[1]))
            return released
        parent = self._open.get(str(parent_id))
        if parent is None:
            self.late_parents.add(str(parent_id))
            return []
        bucket = parent.setdefault(child_key(line), {"nodes": []})
        bucket["nodes"].append(line)
        return []

    def finish(self) -> list[dict[str, Any]]:
        released = [self._release(p) for p in self._open.values()]
        self._open.clear()
        return released

    @staticmethod
    def _release(parent: dict[str, Any]) -> dict[str, Any]:
        for key in ("variants", "media"):
            parent.setdefault(key, {"nodes": []})
        return normalize(parent)


def download_origins(store_url: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The origins a result may be downloaded from: Shopify's result host, the store's own, and `extra`."""
    return (*RESULT_ORIGINS, origin(store_url), *extra)


def download_allowed(url: str, store_url: str, extra: Iterable[str] = ()) -> bool:
    """True when a result URL is on one of `download_origins` (the client enforces it again, per redirect)."""
    try:
        return origin(url) in {origin(o) for o in download_origins(store_url, extra)}
    except StoreRequestRefused:
        return False


class BulkReader:
    """Runs a bulk query for one shop and streams its result."""

    def __init__(
        self,
        gql: ShopifyGraphQL,
        store_url: str,
        *,
        poll_interval: float = 2.0,
        timeout: float = 6 * 3600.0,
        group_objects: bool = True,
        lookback: int = 100,
        extra_origins: Iterable[str] = (),
        max_bytes: int = MAX_DOWNLOAD_BYTES,
    ) -> None:
        self.gql = gql
        self.store_url = store_url
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.group_objects = group_objects
        self.lookback = lookback
        self.origins = download_origins(store_url, extra_origins)
        self.max_bytes = max_bytes

    async def start(self, query: str) -> str:
        """Start a bulk query; BulkUnavailable when the shop refuses (one is already running...)."""
        data = await self.gql.execute(BULK_RUN, {"query": query, "groupObjects": self.group_objects}, mutation=True)
        payload = data.get("bulkOperationRunQuery") or {}
        errors = payload.get("userErrors") or []
        if errors:
            message = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
            raise BulkUnavailable(message or "bulk operation refused")
        operation = payload.get("bulkOperation") or {}
        if not operation.get("id"):
            raise StorePayloadError("Shopify started a bulk operation without an id")
        return str(operation["id"])

    async def poll(self, gid: str) -> BulkOperation:
        data = await self.gql.execute(BULK_POLL, {"id": gid})
        node = data.get("node")
        if not isinstance(node, dict) or not node.get("status"):
            raise BulkUnavailable(f"bulk operation {gid} is gone")
        return BulkOperation(
            id=gid,
            status=str(node["status"]),
            url=node.get("url"),
            error_code=node.get("errorCode"),
            object_count=int(node.get("objectCount") or 0),
        )

    async def wait(self, gid: str) -> BulkOperation:
        """Poll until the operation ends; BulkUnavailable unless it COMPLETED."""
        deadline = time.monotonic() + self.timeout
        while True:
            operation = await self.poll(gid)
            if operation.status in FINAL_STATUSES:
                break
            if time.monotonic() > deadline:
                raise BulkUnavailable(f"bulk operation {gid} still {operation.status} after {self.timeout:.0f}s")
            await asyncio.sleep(self.poll_interval)
        if operation.status != "COMPLETED":
            raise BulkUnavailable(
                f"bulk operation {gid} ended {operation.status} ({operation.error_code or 'no error code'})"
            )
        return operation

    async def lines(self, url: str) -> AsyncIterator[dict[str, Any]]:
        """The result's JSON lines, read chunk by chunk.

        A 429 / 5xx or a broken connection is retried with the connection's backoff; a download cut
        off midway starts again and skips the lines already handed out. A URL or redirect the guard
        refuses raises StoreRequestRefused at once.
        """
        if not download_allowed(url, self.store_url, self.origins):
            raise StoreRequestRefused(
                "Shopify gave a bulk result URL that is neither on Shopify's storage nor the store"
            )
        http = self.gql.http
        done = 0
        for attempt in range(DOWNLOAD_TRIES):
            seen = 0
            wait: float | None = None
            try:
                async with http.download(url, origins=self.origins, max_bytes=self.max_bytes) as response:
                    if response.status in RETRY_STATUSES and attempt + 1 < DOWNLOAD_TRIES:
                        wait = retry_after_seconds(response.headers) or 0.0
                    elif response.status != 200:
                        raise StoreHTTPError(
                            f"the bulk result download answered HTTP {response.status}", status=response.status
                        )
                    else:
                        async for line in _split_lines(response.chunks(CHUNK)):
                            seen += 1
                            if seen <= done:
                                continue
                            done = seen
                            yield line
                        return
            except StoreUnreachable as exc:
                if attempt + 1 >= DOWNLOAD_TRIES:
                    raise StoreUnreachable(f"the bulk result download kept failing: {exc.message}") from exc
                log.info("bulk download interrupted, resuming", extra={"lines_done": done})
            await asyncio.sleep(max(wait or 0.0, backoff_delay(attempt, http.backoff_base, http.backoff_cap)))


async def _split_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            if raw.strip():
                yield _parse(raw)
    if pending.strip():
        yield _parse(pending)


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise StorePayloadError("a bulk result line is not JSON") from exc
    if not isinstance(value, dict):
        raise StorePayloadError("a bulk result line is not a JSON object")
    return value


def released_batches(lines: Iterable[dict[str, Any]], stitcher: Stitcher) -> Iterable[list[dict[str, Any]]]:
    """Pure helper for tests: feed lines, collect released parents in release order."""
    for line in lines:
        released = stitcher.add(line)
        if released:
            yield released
    final = stitcher.finish()
    if final:
        yield final
