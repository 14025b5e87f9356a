"""The service container: every part of the gateway, built once per process and wired explicitly.

As arq's `Worker` is built once and datasette's `Datasette` holds its parts, `Gateway.create` builds
each data-access class and each service once and hands every service its collaborators by name.
The API process and the worker both build one; GraphQL resolvers, HTTP handlers and arq jobs use the
services on it (`gw.integrations`, `gw.syncs`, ...), never build their own. Nothing here knows about
HTTP or GraphQL.

    data access (MongoDB documents in, records out)    workflows (the gateway's behaviour)
    integration_store  runs  products  conflict_store  integrations  syncs  engine  webhooks
    deliveries  activity  attempts  pending_installs   conflicts  scheduler  health  lifecycle
                                                       tokens  repairs  connect  (flows: install flows)
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime

from arq.connections import ArqRedis, RedisSettings, create_pool

from gateway.activity import ActivityLog
from gateway.conflict_store import ConflictStore
from gateway.conflicts import ConflictService
from gateway.connect import ConnectService
from gateway.connectstore import AttemptStore, PendingInstalls
from gateway.crypto import SecretBox
from gateway.deliveries import DeliveryStore
from gateway.domain import Clock, utcnow
from gateway.engine import SyncEngine
from gateway.events import EventHub, EventPublisher
from gateway.flows import Flows
from gateway.healthwatch import HealthWatch
from gateway.hookrepair import WebhookRepairService
from gateway.integration_store import IntegrationStore
from gateway.integrations import IntegrationService
from gateway.jobqueue import JobQueue
from gateway.lifecycle import LifecycleService
from gateway.migrations import run_migrations
from gateway.plugins import PluginRegistry, load_plugins
from gateway.products import ProductStore
from gateway.ratebudget import RedisRateState
from gateway.runs import RunStore
from gateway.scheduler import Scheduler
from gateway.settings import Settings
from gateway.storage.mongo import Database, connect, ensure_indexes
from gateway.syncs import SyncService
from gateway.tokens import TokenKeeper
from gateway.webhooks import WebhookService

log = logging.getLogger(__name__)


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def plugin_registry(settings: Settings) -> PluginRegistry:
    """The plugins this configuration loads: installed ones (GATEWAY_LOAD_PLUGINS), plus extra modules."""
    extra = [importlib.import_module(m.strip()) for m in (settings.extra_plugins or "").split(",") if m.strip()]
    return load_plugins(settings.plugin_allowlist, extra=extra)


class Gateway:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        redis: ArqRedis,
        registry: PluginRegistry,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not settings.secret_key:
            raise RuntimeError("GATEWAY_SECRET_KEY is not set: it encrypts store credentials at rest")
        self.settings = settings
        self.db = db
        self.redis = redis
        self.registry = registry
        self._clock = Clock(clock)
        self.worker_id = _worker_id()
        now = self._clock
        # Infrastructure.
        self.box = SecretBox(settings.secret_key)
        self.publisher = EventPublisher(redis)
        self.hub = EventHub(redis)
        self.jobs = JobQueue(redis, settings.queue_name)
        # Data access.
        self.integration_store = IntegrationStore(db)
        self.runs = RunStore(db)
        self.products = ProductStore(db)
        self.conflict_store = ConflictStore(db)
        self.deliveries = DeliveryStore(db)
        self.activity = ActivityLog(db)
        self.attempts = AttemptStore(db, self.box, now)
        self.pending_installs = PendingInstalls(db, self.box, now)
        # Workflows.
        self.flows = Flows(registry, settings)
        self.health = HealthWatch(self.integration_store, self.runs, self.publisher, now)
        self.syncs = SyncService(
            self.integration_store, self.runs, self.activity, self.publisher, self.health, self.jobs, now
        )
        self.conflicts = ConflictService(self.conflict_store, self.products, self.activity, self.publisher, now)
        self.lifecycle = LifecycleService(
            store=self.integration_store,
            runs=self.runs,
            products=self.products,
            conflicts=self.conflict_store,
            deliveries=self.deliveries,
            activity=self.activity,
            attempts=self.attempts,
            pending=self.pending_installs,
            health=self.health,
            syncs=self.syncs,
            box=self.box,
            settings=settings,
            clock=now,
        )
        self.tokens = TokenKeeper(
            store=self.integration_store,
            redis=redis,
            box=self.box,
            flows=self.flows,
            lifecycle=self.lifecycle,
            clock=now,
        )
        self.integrations = IntegrationService(
            store=self.integration_store,
            runs=self.runs,
            products=self.products,
            conflicts=self.conflict_store,
            deliveries=self.deliveries,
            activity=self.activity,
            health=self.health,
            syncs=self.syncs,
            tokens=self.tokens,
            registry=registry,
            flows=self.flows,
            box=self.box,
            settings=settings,
            rate_states=lambda store_url: RedisRateState.for_store(redis, store_url),
            clock=now,
        )
        self.webhooks = WebhookService(
            integrations=self.integrations,
            lifecycle=self.lifecycle,
            store=self.integration_store,
            deliveries=self.deliveries,
            products=self.products,
            runs=self.runs,
            conflicts=self.conflicts,
            activity=self.activity,
            publisher=self.publisher,
            health=self.health,
            jobs=self.jobs,
            redis=redis,
            registry=registry,
            settings=settings,
            clock=now,
        )
        self.engine = SyncEngine(
            runs=self.runs,
            products=self.products,
            integrations=self.integrations,
            lifecycle=self.lifecycle,
            conflicts=self.conflicts,
            activity=self.activity,
            publisher=self.publisher,
            health=self.health,
            registry=registry,
            settings=settings,
            clock=now,
            worker_id=self.worker_id,
            jobs=self.jobs,
        )
        self.repairs = WebhookRepairService(
            store=self.integration_store,
            integrations=self.integrations,
            lifecycle=self.lifecycle,
            syncs=self.syncs,
            activity=self.activity,
            health=self.health,
            box=self.box,
            registry=registry,
            settings=settings,
            clock=now,
        )
        self.connect = ConnectService(
            attempts=self.attempts,
            pending=self.pending_installs,
            integrations=self.integrations,
            lifecycle=self.lifecycle,
            flows=self.flows,
            activity=self.activity,
            publisher=self.publisher,
            registry=registry,
            settings=settings,
            clock=now,
        )
        self.scheduler = Scheduler(
            integrations=self.integration_store,
            runs=self.runs,
            deliveries=self.deliveries,
            syncs=self.syncs,
            repairs=self.repairs,
            connect=self.connect,
            jobs=self.jobs,
            clock=now,
            interval=settings.scheduler_interval,
            recover_journal=self.webhooks.recover_journal,
        )

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
            registry = plugin_registry(settings)
        for problem in registry.load_errors:
            log.error(problem)
        return cls(settings, db, redis, registry, clock)

    @property
    def clock(self) -> Callable[[], datetime]:
        """Where every service of this gateway reads the time (a test keeps it to put it back later)."""
        return self._clock.source

    @clock.setter
    def clock(self, source: Callable[[], datetime]) -> None:
        # Tests move time for every service at once: they all read the same Clock.
        self._clock.source = source

    def now(self) -> datetime:
        return self._clock()

    async def close(self) -> None:
        # Deliveries this process answered go to MongoDB before its connections close.
        await self.webhooks.close()
        await self.hub.close()
        # arq builds the pool itself, so closing the client alone would leave its sockets open.
        await self.redis.aclose(close_connection_pool=True)
        await self.db.close()
