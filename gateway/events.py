"""Live events: one small class per kind of event, and their stream over Redis pub/sub.

Every event is about one integration of one account. A service builds the event and calls
`publish(event)`; the publisher puts it on the account's channel, and a run's progress on the run's
own channel too; the API maps events to GraphQL in one place (gateway.api.types.IntegrationEvent).

    Event                  kind               carries
    ├── RunQueued          RUN_QUEUED         run (QUEUED, "Waiting to start")
    ├── RunStarted         RUN_STARTED        run (RUNNING)
    ├── RunProgressed      RUN_PROGRESS       run (its progress and counters so far)   + run channel
    ├── RunFinished        RUN_FINISHED       run (its summary)                        + run channel
    ├── HealthChanged      HEALTH_CHANGED     health: once per transition (gateway.healthwatch)
    ├── ConflictDetected   CONFLICT           conflict
    ├── ProductChanged     PRODUCT_CHANGED    product_id (and the run that wrote it)
    └── ConnectFinished    CONNECT_FINISHED   attempt: a connect attempt ended (CONNECTED, FAILED, EXPIRED);
                                              integration_id is "" when it connected nothing

Pub/sub keeps nothing, so subscribers that join late read the current state from MongoDB first (the
run document holds its latest progress) and then take only newer events (`seq`). Each API process
holds one Redis subscription and fans events out to its local subscribers' queues. Channels are
named in gateway.constants.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from gateway.conflict_store import ConflictRecord
from gateway.connectstore import AttemptView
from gateway.constants import account_channel, run_channel
from gateway.domain import EventKind
from gateway.health import Health
from gateway.runs import Run

log = logging.getLogger(__name__)


# ---- the events ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """Something that happened to one integration (the shape of datasette's events)."""

    kind: ClassVar[EventKind]
    account_id: str
    integration_id: str
    at: datetime


@dataclass(frozen=True)
class RunEvent(Event):
    run: Run


@dataclass(frozen=True)
class RunQueued(RunEvent):
    kind = EventKind.RUN_QUEUED


@dataclass(frozen=True)
class RunStarted(RunEvent):
    kind = EventKind.RUN_STARTED


@dataclass(frozen=True)
class RunProgressed(RunEvent):
    kind = EventKind.RUN_PROGRESS


@dataclass(frozen=True)
class RunFinished(RunEvent):
    kind = EventKind.RUN_FINISHED


@dataclass(frozen=True)
class HealthChanged(Event):
    kind = EventKind.HEALTH_CHANGED
    health: Health


@dataclass(frozen=True)
class ConflictDetected(Event):
    kind = EventKind.CONFLICT
    conflict: ConflictRecord


@dataclass(frozen=True)
class ProductChanged(Event):
    kind = EventKind.PRODUCT_CHANGED
    product_id: str
    #: The run that wrote it; None for a webhook.
    run_id: str | None = None


@dataclass(frozen=True)
class ConnectFinished(Event):
    kind = EventKind.CONNECT_FINISHED
    attempt: AttemptView


EVENTS: dict[EventKind, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunQueued,
        RunStarted,
        RunProgressed,
        RunFinished,
        HealthChanged,
        ConflictDetected,
        ProductChanged,
        ConnectFinished,
    )
}
_ADAPTERS: dict[type[Event], TypeAdapter[Any]] = {cls: TypeAdapter(cls) for cls in EVENTS.values()}


def run_event(kind: EventKind, run: Run, at: datetime) -> RunEvent:
    """The event of `kind` about `run` (one of the four run events)."""
    cls = EVENTS[kind]
    assert issubclass(cls, RunEvent)
    return cls(account_id=run.account_id, integration_id=run.integration_id, at=at, run=run)


def encode(event: Event) -> str:
    data = _ADAPTERS[type(event)].dump_python(event, mode="json")
    return json.dumps({"kind": event.kind.value, **data}, separators=(",", ":"))


def decode(raw: str | bytes) -> Event:
    """The event `encode` made; ValueError for anything else."""
    data = json.loads(raw)
    try:
        cls = EVENTS[EventKind(data.pop("kind"))]
        event: Event = _ADAPTERS[cls].validate_python(data)
    except (KeyError, TypeError, ValidationError) as exc:
        raise ValueError(f"not an event: {exc}") from exc
    return event


class EventPublisher:
    """Publishing side (workers and the API both publish)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def publish(self, event: Event) -> None:
        """Best effort: the state is in MongoDB, and late subscribers read it there first."""
        message = encode(event)
        for channel in _channels(event):
            try:
                await self.redis.publish(channel, message)
            except Exception:  # noqa: BLE001 - live events are best effort; state is in MongoDB
                log.warning("could not publish an event on %s", channel, exc_info=True)

    async def publish_many(self, events: Sequence[Event]) -> None:
        """Several events in order, in one round trip (a webhook batch's PRODUCT_CHANGED events)."""
        if not events:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in events:
                    message = encode(event)
                    for channel in _channels(event):
                        pipe.publish(channel, message)
                await pipe.execute()
        except Exception:  # noqa: BLE001 - live events are best effort; state is in MongoDB
            log.warning("could not publish %d events", len(events), exc_info=True)


def _channels(event: Event) -> list[str]:
    channels = [account_channel(event.account_id)]
    if isinstance(event, RunProgressed | RunFinished):
        channels.append(run_channel(event.run.id))
    return channels


class EventHub:
    """Subscribing side: one Redis subscription per process, fanned out to local queues."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._queues: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
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
    async def listen(self, channel: str) -> AsyncIterator[asyncio.Queue[Event]]:
        """A queue receiving every event on `channel` while the context is open."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
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
