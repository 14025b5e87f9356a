"""Building blocks for platform simulators, and the contract every simulator honours.

A simulator is a real HTTP server (aiohttp) that imitates one platform's API closely enough for the
plugin's client to be tested against it: auth, pagination, rate limits, webhooks with signed
deliveries, and injected faults. Tests, benchmarks, `make demo` and the plugin conformance suite
(gateway.testing) drive simulators only through the `Simulator` interface below.

Control endpoints every simulator serves (under `/_sim/`, no auth, for the CLI and demo):
    GET    /_sim/products                 -> {"ids": [...]}
    POST   /_sim/products                 -> create a product, {"id": ...}
    POST   /_sim/products/{id}/touch      -> edit a product (title, price), fires webhooks
    DELETE /_sim/products/{id}            -> delete a product, fires webhooks
    POST   /_sim/faults                   -> set faults, body = FaultPlan fields
    GET    /_sim/stats                    -> request counts
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)


@dataclass
class FaultPlan:
    """Faults a simulator injects into API requests (control endpoints are never faulted).

    every_nth_429: every Nth API request answers 429 (with Retry-After `retry_after`).
    burst_500: the next N API requests answer 500.
    slow_ms: every API request is delayed this long.
    malformed_ids: products whose payload is served broken (the plugin must isolate them).
    truncate_next: the next N API responses are cut short (invalid JSON).
    """

    every_nth_429: int = 0
    retry_after: float = 0.05
    burst_500: int = 0
    slow_ms: int = 0
    malformed_ids: list[str] = field(default_factory=list)
    truncate_next: int = 0


class FaultInjector:
    """Applies a FaultPlan as aiohttp middleware and counts requests."""

    def __init__(self) -> None:
        self.plan = FaultPlan()
        self.requests = 0
        self.api_requests = 0
        self.injected_429 = 0
        self.injected_500 = 0
        self.paths: list[str] = []

    def set(self, **changes: Any) -> None:
        for key, value in changes.items():
            if not hasattr(self.plan, key):
                raise ValueError(f"unknown fault {key!r}")
            setattr(self.plan, key, value)

    def reset(self) -> None:
        self.plan = FaultPlan()

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests += 1
        if request.path.startswith("/_sim/"):
            return await handler(request)
        self.api_requests += 1
        self.paths.append(request.path_qs)
        plan = self.plan
        if plan.slow_ms:
            await asyncio.sleep(plan.slow_ms / 1000)
        if plan.burst_500 > 0:
            plan.burst_500 -= 1
            self.injected_500 += 1
            return web.json_response({"message": "Internal Server Error (injected)"}, status=500)
        if plan.every_nth_429 and self.api_requests % plan.every_nth_429 == 0:
            self.injected_429 += 1
            return web.json_response(
                {"message": "Too Many Requests (injected)"},
                status=429,
                headers={"Retry-After": str(plan.retry_after)},
            )
        response = await handler(request)
        if plan.truncate_next > 0 and isinstance(response, web.Response) and response.body:
            plan.truncate_next -= 1
            body = bytes(response.body)  # type: ignore[arg-type]
            return web.Response(
                body=body[: max(1, len(body) // 2)], status=response.status, content_type="application/json"
            )
        return response


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Hook:
    """A webhook registered on a simulated store."""

    id: str
    topic: str
    destination: str
    secret: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class Simulator(ABC):
    """A simulated store. Subclasses build the platform's API in `build_routes`.

    Lifecycle: `await sim.start()` serves on 127.0.0.1 (a free port unless given), `sim.store_url` is
    the URL to connect an integration to, `sim.credentials()` the valid credentials, `await sim.stop()`
    shuts down. Catalog changes made through `create_product` / `update_product` / `delete_product`
    (or the /_sim/ control endpoints) fire signed webhook deliveries to registered hooks.
    """

    platform: str = ""

    def __init__(self, products: int = 100, *, seed: int = 1, **options: Any) -> None:
        self.products_requested = products
        self.seed = seed
        self.options = options
        self.random = random.Random(seed)
        self.faults = FaultInjector()
        self.hooks: dict[str, Hook] = {}
        self.deliveries_sent = 0
        self.port: int = 0
        self.host = "127.0.0.1"
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._delivery_tasks: set[asyncio.Task[None]] = set()
        #: When False, catalog changes do not fire webhooks (simulates dropped deliveries).
        self.deliver_webhooks = True

    # ---- what a platform implements ----------------------------------------------------------
    @abstractmethod
    def build_routes(self, app: web.Application) -> None:
        """Add the platform's API routes to `app`."""

    @abstractmethod
    def credentials(self) -> dict[str, str]:
        """Credentials the simulated store accepts, keyed as the plugin's credentialFields."""

    @abstractmethod
    def product_ids(self) -> list[str]:
        """External ids of the products the store has now."""

    @abstractmethod
    def create_product(self, **fields: Any) -> str:
        """Add a product (fires the created webhook); return its external id."""

    @abstractmethod
    def update_product(self, external_id: str, **changes: Any) -> None:
        """Edit a product: with no changes, edit the title and price; fires the updated webhook."""

    @abstractmethod
    def delete_product(self, external_id: str) -> None:
        """Remove a product; fires the deleted webhook."""

    # ---- shared machinery --------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def store_url(self) -> str:
        """The URL an integration connects to (platforms may add a path)."""
        return self.base_url

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self.faults.middleware], client_max_size=8 * 1024 * 1024)
        self._add_control_routes(app)
        self.build_routes(app)
        return app

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        self.host = host
        self.port = port or free_port()
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, self.port).start()
        return self.store_url

    async def stop(self) -> None:
        for task in list(self._delivery_tasks):
            task.cancel()
        if self._delivery_tasks:
            await asyncio.gather(*self._delivery_tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def deliver(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        """Send one webhook delivery in the background (like a platform's delivery queue)."""
        if not self.deliver_webhooks:
            return
        task = asyncio.get_running_loop().create_task(self._post(url, body, dict(headers)))
        self._delivery_tasks.add(task)
        task.add_done_callback(self._delivery_tasks.discard)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                await response.read()
                self.deliveries_sent += 1
        except (aiohttp.ClientError, TimeoutError) as exc:  # a platform just logs and retries later
            log.info("simulated webhook delivery failed: %s", type(exc).__name__)

    async def drain_deliveries(self) -> None:
        """Wait until every delivery sent so far has been answered (for tests)."""
        while self._delivery_tasks:
            await asyncio.gather(*list(self._delivery_tasks), return_exceptions=True)

    def _add_control_routes(self, app: web.Application) -> None:
        async def list_products(request: web.Request) -> web.Response:
            return web.json_response({"ids": self.product_ids()})

        async def create(request: web.Request) -> web.Response:
            fields = await request.json() if request.can_read_body else {}
            return web.json_response({"id": self.create_product(**fields)})

        async def touch(request: web.Request) -> web.Response:
            changes = await request.json() if request.can_read_body else {}
            self.update_product(request.match_info["id"], **changes)
            return web.json_response({"ok": True})

        async def delete(request: web.Request) -> web.Response:
            self.delete_product(request.match_info["id"])
            return web.json_response({"ok": True})

        async def faults(request: web.Request) -> web.Response:
            try:
                self.faults.set(**(await request.json()))
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response(asdict(self.faults.plan))

        async def stats(request: web.Request) -> web.Response:
            return web.json_response(
                {
                    "requests": self.faults.api_requests,
                    "injected_429": self.faults.injected_429,
                    "injected_500": self.faults.injected_500,
                    "deliveries_sent": self.deliveries_sent,
                    "hooks": len(self.hooks),
                }
            )

        app.router.add_get("/_sim/products", list_products)
        app.router.add_post("/_sim/products", create)
        app.router.add_post("/_sim/products/{id}/touch", touch)
        app.router.add_delete("/_sim/products/{id}", delete)
        app.router.add_post("/_sim/faults", faults)
        app.router.add_get("/_sim/stats", stats)


async def serve_forever(sim: Simulator, port: int = 0, host: str = "127.0.0.1") -> None:
    """Run a simulator until cancelled (the `simulate` CLI command)."""
    url = await sim.start(port=port, host=host)
    # One JSON line first (tools and benchmarks read it), then a line for people.
    print(json.dumps({"platform": sim.platform, "store_url": url, "credentials": sim.credentials()}), flush=True)
    print(f"{sim.platform} simulator at {url} (control endpoints under {sim.base_url}/_sim/)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
