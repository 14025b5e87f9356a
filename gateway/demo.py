"""`alana-gateway demo`: embedded servers, API, worker and three simulated stores in one process.

Secrets for the demo are generated once and kept under GATEWAY_DATA_DIR, so a restart can still open
the credentials it stored. The simulated stores keep changing (a few edits a minute, now and then a
new or deleted product) so a person watching sees real-time sync and the history fill up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
from pathlib import Path

from aiohttp import web
from arq.worker import Worker

from gateway.api.app import create_app
from gateway.auth import issue_token
from gateway.embedded import EmbeddedServers
from gateway.integrations import IntegrationService
from gateway.jobs import stop_worker, worker_settings
from gateway.logs import configure_logging
from gateway.services import Gateway
from gateway.settings import Settings
from gateway.simkit import Simulator

log = logging.getLogger(__name__)

DEMO_ACCOUNT = "demo"


def demo_secrets(data_dir: Path) -> dict[str, str]:
    path = data_dir / "demo-secrets.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    data_dir.mkdir(parents=True, exist_ok=True)
    values = {"jwt": secrets.token_urlsafe(32), "key": secrets.token_urlsafe(32)}
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


async def run_demo(port: int = 8000, products: int = 200, change_every: float = 8.0) -> None:
    base = Settings()
    configure_logging(base.log_level)
    data_dir = base.data_dir.resolve()
    generated = demo_secrets(data_dir)
    servers = EmbeddedServers(
        mongodb_url=base.mongodb_url, redis_url=base.redis_url, persistent_dir=data_dir / "servers"
    )
    await asyncio.to_thread(servers.start)
    stack = contextlib.AsyncExitStack()
    try:
        stack.callback(servers.close)
        settings = base.model_copy(
            update={
                "mongodb_url": servers.mongodb_url,
                "redis_url": servers.redis_url,
                "jwt_secret": base.jwt_secret or generated["jwt"],
                "secret_key": base.secret_key or generated["key"],
                "public_url": f"http://127.0.0.1:{port}",
                "allow_private_urls": True,
            }
        )
        gw = await Gateway.create(settings)
        stack.push_async_callback(gw.close)
        runner = web.AppRunner(create_app(gw), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", port).start()

        worker = Worker(**worker_settings(settings, ctx={"gateway": gw, "owns_gateway": False}, handle_signals=False))
        worker_task = asyncio.ensure_future(worker.async_run())
        stack.push_async_callback(stop_worker, worker, worker_task)

        sims = await start_simulators(gw, products, stack)
        await connect_demo_stores(gw, sims)
        ttl = min(7 * 86_400, settings.max_token_ttl)
        token = issue_token(settings.jwt_secret or "", DEMO_ACCOUNT, ttl, settings.max_token_ttl)
        print(
            f"\nAlana Integration Gateway demo\n"
            f"  GraphQL:  http://127.0.0.1:{port}/graphql\n"
            f"  Console:  http://127.0.0.1:{port}/\n"
            f"  Token:    {token}\n"
            f"  (send it as 'Authorization: Bearer <token>')\n"
            f"  Stores:   " + ", ".join(f"{s.platform} {s.store_url}" for s in sims) + "\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        await keep_changing(sims, change_every)
    finally:
        await stack.aclose()


async def start_simulators(gw: Gateway, products: int, stack: contextlib.AsyncExitStack) -> list[Simulator]:
    sims: list[Simulator] = []
    for platform, adapter in sorted(gw.registry.adapters.items()):
        try:
            cls = adapter.simulator()
            if cls is None:
                continue
            sim = cls(products=products, seed=7)
            await sim.start()
        except Exception:  # noqa: BLE001 - one broken simulator must not stop the demo
            log.exception("could not start the %s simulator", platform)
            continue
        stack.push_async_callback(sim.stop)
        sims.append(sim)
    return sims


async def connect_demo_stores(gw: Gateway, sims: list[Simulator]) -> None:
    service = IntegrationService(gw)
    # Simulated stores live in memory: integrations left from an earlier demo point at stores that
    # are gone, so they are replaced.
    for old in await service.list(DEMO_ACCOUNT):
        with contextlib.suppress(Exception):
            await service.disconnect(DEMO_ACCOUNT, old["_id"])
    for sim in sims:
        try:
            await service.connect(
                DEMO_ACCOUNT, sim.platform, f"Demo {sim.platform} store", sim.store_url, sim.credentials()
            )
        except Exception:  # noqa: BLE001
            log.exception("could not connect the %s demo store", sim.platform)


async def keep_changing(sims: list[Simulator], every: float) -> None:
    rng = random.Random(os.getpid())
    while True:
        await asyncio.sleep(every)
        if not sims:
            continue
        sim = rng.choice(sims)
        try:
            ids = sim.product_ids()
            roll = rng.random()
            if roll < 0.08 or not ids:
                sim.create_product()
            elif roll < 0.12 and len(ids) > 10:
                sim.delete_product(rng.choice(ids))
            else:
                sim.update_product(rng.choice(ids))
        except Exception:  # noqa: BLE001
            log.warning("demo change failed on %s", sim.platform, exc_info=True)
