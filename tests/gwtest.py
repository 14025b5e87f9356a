"""Helpers shared by the gateway's tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from typing import Any

import aiohttp

from gateway.auth import issue_token
from gateway.constants import account_channel, run_channel
from gateway.events import Event, RunEvent
from gateway.runs import Run
from gateway.services import Gateway
from gateway.settings import Settings

JWT_SECRET = "test-jwt-secret-0123456789abcdef"


def make_settings(mongodb_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "MONGODB_URL": mongodb_url,
        "REDIS_URL": redis_url,
        "MONGODB_DATABASE": f"test_{uuid.uuid4().hex[:12]}",
        "GATEWAY_JWT_SECRET": JWT_SECRET,
        "GATEWAY_SECRET_KEY": "test-secret-key-0123456789abcdef",
        "GATEWAY_ALLOW_PRIVATE_URLS": True,
        "GATEWAY_QUEUE_NAME": f"test:{uuid.uuid4().hex[:8]}",
        "GATEWAY_HTTP_BACKOFF_BASE": 0.01,
        "GATEWAY_WEBHOOK_COALESCE": 0.01,
        "GATEWAY_INCREMENTAL_OVERLAP": 0,
        "GATEWAY_EXTRA_PLUGINS": "gateway.testing.toy",
        "GATEWAY_RUN_LEASE_SECONDS": 5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Api:
    """A GraphQL client for the API under test."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    def token(self, account: str = "acct-1") -> str:
        return issue_token(JWT_SECRET, account, 3600)

    async def raw(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        account: str | None = "acct-1",
    ) -> dict[str, Any]:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        elif account is not None:
            headers["Authorization"] = f"Bearer {self.token(account)}"
        async with self.session.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        ) as response:
            body: dict[str, Any] = await response.json()
            return body

    async def query(self, query: str, variables: dict[str, Any] | None = None, account: str = "acct-1") -> Any:
        body = await self.raw(query, variables, account=account)
        assert not body.get("errors"), body["errors"]
        return body["data"]


CONNECT = """
mutation($input: ConnectIntegrationInput!) {
  connectIntegration(input: $input) { id platform name storeUrl settings { mode frequency } }
}"""


async def connect(api: Api, sim: Any, platform: str = "toy", account: str = "acct-1", **settings: Any) -> str:
    data = await api.query(
        CONNECT,
        {
            "input": {
                "platform": platform,
                "name": f"My {platform} store",
                "storeUrl": sim.store_url,
                "credentials": sim.credentials(),
                **({"settings": settings} if settings else {}),
            }
        },
        account,
    )
    return str(data["connectIntegration"]["id"])


async def wait_run(gw: Gateway, run_id: str, limit: float = 60.0) -> Run:
    """Wait for a run to end by following its progress channel (no polling sleeps)."""

    async def follow() -> Run:
        async with gw.hub.listen(run_channel(run_id)) as queue:
            while True:
                run = await gw.runs.get_any(run_id)
                assert run is not None
                if run.status.finished:
                    return run
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), timeout=2.0)

    return await asyncio.wait_for(follow(), limit)


async def wait_run_recorded(gw: Gateway, run_id: str, limit: float = 60.0) -> Run:
    """`wait_run`, then until the run's job has recorded its end (the activity entry, written a moment after
    the run is marked finished; the light follows it), so what a test does next comes after it."""
    run = await wait_run(gw, run_id, limit)

    async def entry() -> None:
        async with gw.hub.listen(account_channel(run.account_id)) as queue:
            while not await gw.db.activity.find_one({"run_id": run_id, "kind": {"$in": RUN_END_KINDS}}):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), 0.5)

    await asyncio.wait_for(entry(), limit)
    return run


RUN_END_KINDS = ["SYNC_SUCCEEDED", "SYNC_FAILED", "SYNC_CANCELLED"]


async def progress_of(queue: asyncio.Queue[Event]) -> int:
    """How many products a run has processed, by its next event on the run's channel."""
    event = await asyncio.wait_for(queue.get(), 60)
    return event.run.progress.processed if isinstance(event, RunEvent) else 0


def worker_env(gw: Gateway | Settings, plugins: str = "gateway.testing.toy", **extra: str) -> dict[str, str]:
    s = gw.settings if isinstance(gw, Gateway) else gw
    env = dict(os.environ)
    env.update(
        {
            "MONGODB_URL": s.effective_mongodb_url(),
            "REDIS_URL": s.effective_redis_url(),
            "MONGODB_DATABASE": s.mongodb_database,
            "GATEWAY_QUEUE_NAME": s.queue_name,
            "GATEWAY_JWT_SECRET": s.jwt_secret or "",
            "GATEWAY_SECRET_KEY": s.secret_key or "",
            "GATEWAY_EXTRA_PLUGINS": plugins,
            "GATEWAY_RUN_LEASE_SECONDS": "3",
            "GATEWAY_SCHEDULER_INTERVAL": "0.2",
            "GATEWAY_ALLOW_PRIVATE_URLS": "true",
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


async def start_worker(gw: Gateway, plugins: str = "gateway.testing.toy", **extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "worker",
        env=worker_env(gw, plugins, **extra),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
