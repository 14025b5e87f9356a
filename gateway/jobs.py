"""arq jobs and the worker's settings: sync runs, webhook application, the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker, func
from prometheus_client import start_http_server

from gateway import metrics
from gateway.constants import APPLY_JOB, RUN_JOB, worker_health_check_key
from gateway.logs import configure_logging
from gateway.services import Gateway
from gateway.settings import get_settings

log = logging.getLogger(__name__)


async def run_sync(ctx: dict[str, Any], run_id: str) -> str | None:
    gw: Gateway = ctx["gateway"]
    # A Sync Now run first applies the changes manual mode kept waiting: a step the job hands over.
    run = await gw.engine.run(run_id, before=[gw.webhooks.apply_held])
    return None if run is None else run.status.value


async def apply_webhooks(ctx: dict[str, Any], integration_id: str) -> int:
    gw: Gateway = ctx["gateway"]
    return await gw.webhooks.apply_pending(integration_id)


async def _scheduler_loop(gw: Gateway) -> None:
    """Tick the scheduler every few seconds (claims in MongoDB keep several workers from doubling up)."""
    while True:
        try:
            await gw.scheduler.tick()
            metrics.QUEUE_DEPTH.set(await gw.redis.zcard(gw.settings.queue_name))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a bad tick must not stop scheduling
            log.exception("scheduler tick failed")
        await asyncio.sleep(gw.settings.scheduler_interval)


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    gw = ctx.get("gateway") or await Gateway.create(settings)
    ctx["gateway"] = gw
    if gw.settings.worker_metrics_port:
        # Runs, webhook application and latency happen here, not in the API: they are scraped here.
        start_http_server(gw.settings.worker_metrics_port, addr=gw.settings.host)
    ctx["scheduler_task"] = asyncio.get_running_loop().create_task(_scheduler_loop(gw))


async def shutdown(ctx: dict[str, Any]) -> None:
    task = ctx.get("scheduler_task")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    gw = ctx.get("gateway")
    if gw is not None and ctx.get("owns_gateway", True):
        await gw.close()


async def stop_worker(worker: Worker, task: asyncio.Future[Any]) -> None:
    """Stop an in-process worker (demo, tests) and release everything it holds.

    arq's own close() gathers the jobs it just cancelled and so raises CancelledError before it
    closes its Redis pool or runs on_shutdown; wait for them here first.
    """
    worker.handle_sig(signal.SIGUSR1)
    await asyncio.gather(task, *worker.tasks.values(), return_exceptions=True)
    worker.tasks.clear()
    await worker.close()


def worker_settings(settings: Any = None, **overrides: Any) -> dict[str, Any]:
    """arq Worker keyword arguments (the `worker` CLI and tests build workers from this)."""
    settings = settings or get_settings()
    options: dict[str, Any] = {
        "functions": [
            func(run_sync, name=RUN_JOB, keep_result=60, max_tries=3),
            func(apply_webhooks, name=APPLY_JOB, keep_result=0, max_tries=3),
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.effective_redis_url()),
        "queue_name": settings.queue_name,
        # A queued run should start within ~100 ms on an idle worker (arq's default is 0.5 s).
        "poll_delay": settings.worker_poll_delay,
        "max_jobs": 8,
        "job_timeout": 6 * 3600,
        "keep_result": 60,
        "handle_signals": True,
        # `alana-gateway worker --check` (the container healthcheck) reads this key.
        "health_check_interval": 30,
        "health_check_key": worker_health_check_key(settings.queue_name, socket.gethostname()),
    }
    options.update(overrides)
    return options
