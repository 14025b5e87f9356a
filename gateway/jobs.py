"""arq jobs and the worker process: sync runs, webhook application, the scheduler; the worker itself.

A worker process serves every lane (gateway.constants.Lane) with an arq Worker of its own, each with
its own job slots, over one Gateway: a long full sync occupies a run slot, and however many of them
run, the Sync Now and webhook slots stay free for other stores.

Each of those Workers (`GatewayWorker`) outlives Redis outages: arq's poll loop raises a connection
error out of `Worker.main` when Redis goes away, and the process would end. Here it waits for Redis
instead and carries on: jobs that are running keep running (a sync run needs MongoDB, not Redis; live
events are best effort), their results are written once Redis is back, and what an outage cost (a
run's job, a delivery's apply job) is given back by the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.worker import Worker, func
from prometheus_client import start_http_server
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway import metrics
from gateway.constants import APPLY_JOB, RUN_JOB, Lane, lane_queue_name, worker_health_check_key
from gateway.logs import configure_logging
from gateway.services import Gateway
from gateway.settings import Settings, get_settings

log = logging.getLogger(__name__)


async def run_sync(ctx: dict[str, Any], run_id: str) -> str | None:
    gw: Gateway = ctx["gateway"]
    # A Sync Now run first applies the changes manual mode kept waiting: a step the job hands over.
    run = await gw.engine.run(run_id, before=[gw.webhooks.apply_held])
    return None if run is None else run.status.value


async def apply_webhooks(ctx: dict[str, Any], integration_id: str) -> int:
    gw: Gateway = ctx["gateway"]
    return await gw.webhooks.apply_queued(integration_id)


#: What a call to Redis raises while Redis is down or restarting.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
#: How long the worker waits between tries while Redis is down (doubling up to the most).
REDIS_RETRY_FIRST = 0.25
REDIS_RETRY_MOST = 5.0


async def _scheduler_loop(gw: Gateway) -> None:
    """Turn the scheduler (claims in MongoDB keep several workers from doubling up): every
    GATEWAY_SCHEDULER_INTERVAL, and sooner when a scheduled run falls due before that."""
    while True:
        try:
            pause = await gw.scheduler.step()
            depth = await gw.jobs.depth()
            metrics.QUEUE_DEPTH.set(sum(depth.values()))
            for lane, jobs in depth.items():
                metrics.LANE_DEPTH.labels(lane=lane.value).set(jobs)
        except asyncio.CancelledError:
            raise
        except REDIS_DOWN as exc:  # the tick after Redis is back does what this one could not
            log.warning("scheduler tick: Redis unavailable (%s)", type(exc).__name__)
            pause = gw.settings.scheduler_interval
        except Exception:  # noqa: BLE001 - a bad tick must not stop scheduling
            log.exception("scheduler tick failed")
            pause = gw.settings.scheduler_interval
        await asyncio.sleep(pause)


class GatewayWorker(Worker):
    """arq's Worker, made to wait out a Redis outage instead of exiting (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._redis_down_since: float | None = None
        self._retry_delay = REDIS_RETRY_FIRST
        self._stopping = False

    def handle_sig(self, signum: signal.Signals) -> None:
        self._stopping = True
        super().handle_sig(signum)

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_DOWN as exc:
            if self._redis_down_since is None:
                self._redis_down_since = asyncio.get_running_loop().time()
                log.warning("Redis is unavailable (%s): the worker waits for it; running jobs go on", exc)
            await asyncio.sleep(self._retry_delay)
            self._retry_delay = min(REDIS_RETRY_MOST, self._retry_delay * 2)
            return
        if self._redis_down_since is not None:
            down = asyncio.get_running_loop().time() - self._redis_down_since
            log.warning("Redis is back after %.1f s: the worker picks up jobs again", down)
            self._redis_down_since = None
            self._retry_delay = REDIS_RETRY_FIRST

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        try:
            await super().start_jobs(job_ids)
        except REDIS_DOWN:
            # arq took a slot (counter and semaphore) for the job it was starting and made no task that would
            # give it back: give it back here, or every outage would shrink the worker by a job.
            self.job_counter -= 1
            self.sem.release()
            raise

    async def run_job(self, job_id: str, score: int) -> None:
        try:
            await super().run_job(job_id, score)
        except REDIS_DOWN:
            # Redis went away as the job started: its in-progress key (if Redis kept it) would keep the job
            # from every worker for the whole job timeout. Drop it once Redis is back: the job runs again.
            log.warning("job %s could not start: Redis unavailable; it will run again", job_id)
            await self._when_redis_is_back(lambda: self.pool.delete(in_progress_key_prefix + job_id))

    async def finish_job(self, *args: Any, **kwargs: Any) -> None:
        finish = super().finish_job
        await self._when_redis_is_back(lambda: finish(*args, **kwargs))

    async def finish_failed_job(self, *args: Any, **kwargs: Any) -> None:
        finish = super().finish_failed_job
        await self._when_redis_is_back(lambda: finish(*args, **kwargs))

    async def _when_redis_is_back(self, call: Callable[[], Awaitable[Any]]) -> None:
        """`call` (a write to Redis), tried again while Redis is down, until it succeeds or the worker stops."""
        delay = REDIS_RETRY_FIRST
        while True:
            try:
                await call()
                return
            except REDIS_DOWN:
                if self._stopping:
                    log.warning("the worker stops with Redis unavailable: a job's bookkeeping is left to expire")
                    return
                await asyncio.sleep(delay)
                delay = min(REDIS_RETRY_MOST, delay * 2)


def worker_settings(settings: Settings | None = None, lane: Lane = Lane.RUNS, **overrides: Any) -> dict[str, Any]:
    """arq Worker keyword arguments for one lane (`worker --check` reads the RUNS lane's)."""
    settings = settings or get_settings()
    options: dict[str, Any] = {
        # Every lane knows every job, so a job an older release put on another queue still runs.
        "functions": [
            func(run_sync, name=RUN_JOB, keep_result=60, max_tries=3),
            func(apply_webhooks, name=APPLY_JOB, keep_result=0, max_tries=3),
        ],
        "redis_settings": RedisSettings.from_dsn(settings.effective_redis_url()),
        "queue_name": lane_queue_name(settings.queue_name, lane),
        # A queued run should start within ~100 ms on an idle worker (arq's default is 0.5 s).
        "poll_delay": settings.worker_poll_delay,
        "max_jobs": settings.lane_slots(lane),
        "job_timeout": 6 * 3600,
        "keep_result": 60,
        # The process handles signals once for every lane (Workers, serve_worker).
        "handle_signals": False,
        # `alana-gateway worker --check` (the container healthcheck) reads this key; every lane renews it.
        "health_check_interval": 30,
        "health_check_key": worker_health_check_key(settings.queue_name, socket.gethostname()),
    }
    options.update(overrides)
    return options


class Workers:
    """One arq Worker per lane over one Gateway, and the scheduler loop: a worker process, or the
    in-process worker of the demo and the tests."""

    def __init__(self, gw: Gateway, lanes: Sequence[Lane] | None = None, **overrides: Any) -> None:
        self.gw = gw
        self.lanes = list(lanes if lanes is not None else gw.settings.lanes)
        # Built inside the running loop: arq's Worker binds to the loop it finds.
        self.workers = {
            lane: GatewayWorker(**worker_settings(gw.settings, lane, ctx={"gateway": gw}, **overrides))
            for lane in self.lanes
        }
        self._tasks: dict[Lane, asyncio.Future[None]] = {}
        self._scheduler: asyncio.Task[None] | None = None

    def start(self) -> None:
        for lane, worker in self.workers.items():
            self._tasks[lane] = asyncio.ensure_future(worker.async_run())
        self._scheduler = asyncio.get_running_loop().create_task(_scheduler_loop(self.gw))

    async def wait(self) -> None:
        """Until one lane's poll loop ends (it raised: the process should stop and be restarted)."""
        done, _ = await asyncio.wait(self._tasks.values(), return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()

    async def running_jobs(self) -> None:
        """Until the jobs every lane is running now have finished (a test's "nothing in flight")."""
        await asyncio.gather(*(task for worker in self.workers.values() for task in list(worker.tasks.values())))

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
            self._scheduler = None
        await asyncio.gather(
            *(stop_worker(worker, self._tasks[lane]) for lane, worker in self.workers.items() if lane in self._tasks),
            return_exceptions=True,
        )
        self._tasks.clear()


async def stop_worker(worker: Worker, task: asyncio.Future[Any]) -> None:
    """Stop one arq Worker and release everything it holds.

    arq's own close() gathers the jobs it just cancelled and so raises CancelledError before it
    closes its Redis pool; wait for them here first.
    """
    worker.handle_sig(signal.SIGUSR1)
    await asyncio.gather(task, *worker.tasks.values(), return_exceptions=True)
    worker.tasks.clear()
    await worker.close()


async def serve_worker(settings: Settings) -> None:
    """`alana-gateway worker`: every lane of this process until cancelled (SIGINT / SIGTERM)."""
    configure_logging(settings.log_level)
    gw = await Gateway.create(settings)
    try:
        if settings.worker_metrics_port:
            # Runs, webhook application and latency happen here, not in the API: they are scraped here.
            start_http_server(settings.worker_metrics_port, addr=settings.host)
        workers = Workers(gw)
        workers.start()
        try:
            await workers.wait()
        finally:
            await workers.stop()
    finally:
        await gw.close()
