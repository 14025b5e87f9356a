"""Shared benchmark plumbing: servers, a Gateway, simulators in their own processes, machine facts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gateway.services import Gateway
from gateway.settings import Settings
from gateway.simkit import free_port

ROOT = Path(__file__).resolve().parents[1]


def settings_for(mongodb_url: str, redis_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "MONGODB_URL": mongodb_url,
        "REDIS_URL": redis_url,
        "MONGODB_DATABASE": f"bench_{uuid.uuid4().hex[:8]}",
        "GATEWAY_JWT_SECRET": "bench-jwt-secret-0123456789abcdef",
        "GATEWAY_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "GATEWAY_ALLOW_PRIVATE_URLS": True,
        "GATEWAY_QUEUE_NAME": f"bench:{uuid.uuid4().hex[:8]}",
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_STORE_CONCURRENCY": 8,
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    gw = await Gateway.create(settings)
    try:
        yield gw
    finally:
        await gw.db.client.drop_database(settings.mongodb_database)
        await gw.close()


@dataclass
class SimProcess:
    platform: str
    store_url: str
    base_url: str
    credentials: dict[str, str]
    process: asyncio.subprocess.Process

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.base_url}/_sim/{path}", json=body) as response,
        ):
            return await response.json()


@contextlib.asynccontextmanager
async def simulator(
    platform_id: str, products: int, options: dict[str, Any] | None = None
) -> AsyncIterator[SimProcess]:
    """A simulator in its own process (the store is not on the gateway's cores in real life)."""
    port = free_port()
    env = dict(os.environ)
    if options:
        env["ALANA_SIM_OPTIONS"] = json.dumps(options)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.simserver",
        platform_id,
        str(port),
        str(products),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=300)
        info = json.loads(line)
        yield SimProcess(platform_id, info["store_url"], f"http://127.0.0.1:{port}", info["credentials"], process)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


def process_env(settings: Settings, **extra_env: str) -> dict[str, str]:
    """The environment of a real gateway process (`serve`, `worker`) configured like `settings`."""
    return {
        **os.environ,
        "MONGODB_URL": settings.effective_mongodb_url(),
        "REDIS_URL": settings.effective_redis_url(),
        "MONGODB_DATABASE": settings.mongodb_database,
        "GATEWAY_QUEUE_NAME": settings.queue_name,
        "GATEWAY_JWT_SECRET": settings.jwt_secret or "",
        "GATEWAY_SECRET_KEY": settings.secret_key or "",
        "GATEWAY_LOG_LEVEL": "WARNING",
        **extra_env,
    }


@contextlib.asynccontextmanager
async def worker_process(settings: Settings, **extra_env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real `alana-gateway worker` process configured like `settings` (stopped with SIGTERM)."""
    env = process_env(settings, **extra_env)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "worker",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "python": platform.python_version(),
        "os": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
