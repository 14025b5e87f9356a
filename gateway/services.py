"""The service container: one object holding every dependency, built once per process.

The API process and the worker both build a `Gateway`; GraphQL resolvers, HTTP handlers and arq
jobs receive it and call the services on it. Nothing here knows about HTTP or GraphQL.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool

from gateway.activity import ActivityLog
from gateway.crypto import SecretBox
from gateway.domain import utcnow
from gateway.events import EventHub, EventPublisher
from gateway.migrations import run_migrations
from gateway.plugins import PluginRegistry, load_plugins
from gateway.products import ProductStore
from gateway.runs import RunStore
from gateway.settings import Settings
from gateway.storage.mongo import Database, connect, ensure_indexes

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    settings: Settings
    db: Database
    redis: ArqRedis
    registry: PluginRegistry
    box: SecretBox
    publisher: EventPublisher
    hub: EventHub
    products: ProductStore
    runs: RunStore
    activity: ActivityLog
    clock: Callable[[], datetime] = utcnow
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    #: Lease length for runs; a run whose worker stops renewing is taken over after this.
    lease_seconds: float = 30.0
    #: Store-wide mapping facts (currency, locales) per integration, reused by webhook batches for a
    #: few minutes instead of asking the store on every delivery. Sync runs always ask afresh.
    mapping_contexts: dict[str, tuple[float, Any]] = field(default_factory=dict)
    #: Integrations as the webhook endpoint last read them, for a couple of seconds: a burst of
    #: deliveries costs one read, not one each. Settings changes in this process drop the entry.
    webhook_integrations: dict[str, tuple[float, Any]] = field(default_factory=dict)

    @classmethod
    async def create(
        cls,
        settings: Settings,
        registry: PluginRegistry | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> Gateway:
        if not settings.secret_key:
            raise RuntimeError("GATEWAY_SECRET_KEY is not set: it encrypts store credentials at rest")
        db = connect(settings.effective_mongodb_url(), settings.mongodb_database)
        await ensure_indexes(db)
        await run_migrations(db)
        redis = await create_pool(
            RedisSettings.from_dsn(settings.effective_redis_url()), default_queue_name=settings.queue_name
        )
        if registry is None:
            extra = [importlib.import_module(m.strip()) for m in (settings.extra_plugins or "").split(",") if m.strip()]
            registry = load_plugins(settings.plugin_allowlist, extra=extra)
        for problem in registry.load_errors:
            log.error(problem)
        return cls(
            settings=settings,
            db=db,
            redis=redis,
            registry=registry,
            box=SecretBox(settings.secret_key),
            publisher=EventPublisher(redis),
            hub=EventHub(redis),
            products=ProductStore(db),
            runs=RunStore(db),
            activity=ActivityLog(db),
            clock=clock,
            lease_seconds=settings.run_lease_seconds,
        )

    def now(self) -> datetime:
        return self.clock()

    async def enqueue(
        self, function: str, *args: Any, job_id: str | None = None, defer_by: float | None = None
    ) -> None:
        await self.redis.enqueue_job(function, *args, _job_id=job_id, _defer_by=defer_by)

    async def close(self) -> None:
        await self.hub.close()
        # arq builds the pool itself, so closing the client alone would leave its sockets open.
        await self.redis.aclose(close_connection_pool=True)
        await self.db.close()
