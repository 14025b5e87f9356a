"""The live event stream from workers to every API process, over Redis pub/sub.

Pub/sub keeps nothing, so subscribers that join late read the current state from MongoDB first (the
run document holds its latest progress) and then take only newer events (`seq`). Each API process
holds one Redis subscription and fans messages out to its local subscribers' queues.

Channels (named in gateway.constants): one per account (its integration events, never another's) and
one per run (its progress).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from bson import json_util
from pydantic import TypeAdapter
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from gateway.constants import account_channel, run_channel
from gateway.runs import Run

log = logging.getLogger(__name__)

_JSON_OPTIONS = json_util.JSONOptions(json_mode=json_util.JSONMode.RELAXED, tz_aware=True)


T = TypeVar("T")
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(kind: Any) -> TypeAdapter[Any]:
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


def to_wire(record: object) -> dict[str, Any]:
    """A record (a frozen dataclass) as JSON-safe data, for an event payload."""
    data: dict[str, Any] = _adapter(type(record)).dump_python(record, mode="json")
    return data


def from_wire(kind: type[T], data: Any) -> T:
    """The record `to_wire` made."""
    record: T = _adapter(kind).validate_python(data)
    return record


def progress_message(run: Run) -> dict[str, Any]:
    """The run's progress as published on its channel (and read first by late subscribers)."""
    return {
        "run_id": run.id,
        "status": run.status.value,
        "processed": run.progress.processed,
        "total": run.progress.total,
        "message": run.progress.message,
        "seq": run.progress.seq,
    }


def encode(message: dict[str, Any]) -> str:
    return json_util.dumps(message, json_options=_JSON_OPTIONS)


def decode(raw: str | bytes) -> dict[str, Any]:
    result: dict[str, Any] = json_util.loads(raw, json_options=_JSON_OPTIONS)
    return result


class EventPublisher:
    """Publishing side (workers and the API both publish)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        try:
            await self.redis.publish(channel, encode(message))
        except Exception:  # noqa: BLE001 - live events are best effort; state is in MongoDB
            log.warning("could not publish an event on %s", channel, exc_info=True)

    async def account_event(self, account_id: str, message: dict[str, Any]) -> None:
        await self.publish(account_channel(account_id), message)

    async def run_progress(self, run_id: str, message: dict[str, Any]) -> None:
        await self.publish(run_channel(run_id), message)


class EventHub:
    """Subscribing side: one Redis subscription per process, fanned out to local queues."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._lock = asyncio.Lock()
        self._listeners_changed = asyncio.Condition()
        #: Set while any channel has a listener: an idle process's reader waits on it, not a timer.
        self._active = asyncio.Event()

    async def _ensure_reader(self) -> PubSub:
        if self._pubsub is None:
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read(self._pubsub))
        return self._pubsub

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            if not pubsub.subscribed:
                if not self._queues:
                    await self._active.wait()
                else:
                    await asyncio.sleep(0.01)  # a first subscribe is on its way to Redis
                continue
            try:
                message = await pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the reader alive across Redis blips
                log.warning("event reader error", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            try:
                payload = decode(message["data"])
            except ValueError:
                continue
            for queue in list(self._queues.get(channel, ())):
                queue.put_nowait(payload)

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """A queue receiving every message on `channel` while the context is open."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        async with self._lock:
            pubsub = await self._ensure_reader()
            first = not self._queues[channel]
            self._queues[channel].add(queue)
            if first:
                await pubsub.subscribe(channel)
            self._active.set()
        async with self._listeners_changed:
            self._listeners_changed.notify_all()
        try:
            yield queue
        finally:
            async with self._lock:
                self._queues[channel].discard(queue)
                if not self._queues[channel]:
                    del self._queues[channel]
                    with contextlib.suppress(Exception):
                        await pubsub.unsubscribe(channel)
                if not self._queues:
                    self._active.clear()

    async def wait_for_listener(self, channel: str) -> None:
        """Return once this process has a subscriber on `channel` (tests and tools use it)."""
        async with self._listeners_changed:
            await self._listeners_changed.wait_for(lambda: bool(self._queues.get(channel)))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        self._pubsub = None
        self._reader = None
