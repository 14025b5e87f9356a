"""arq jobs and the worker process: sync runs, webhook application, the scheduler.

A worker process serves every lane (gateway.constants.Lane) with an arq Worker of its own, each with
its own job slots, over one Gateway: a long full sync occupies a run slot, and however many of them
run, the Sync Now and webhook slots stay free for other stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Sequence
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker, func
from prometheus_client import start_http_server

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
        except Exception:  # noqa: BLE001 - a bad tick must not stop scheduling
            log.exception("scheduler tick failed")
            pause = gw.settings.scheduler_interval
        await asyncio.sleep(pause)


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
            lane: Worker(**worker_settings(gw.settings, lane, ctx={"gateway": gw}, **overrides)) for lane in self.lanes
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
