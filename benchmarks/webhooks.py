"""Webhook received -> product stored -> event delivered, and the endpoint's own response time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from benchmarks.common import gateway, percentile, settings_for, simulator, worker_process
from gateway.api.app import create_app
from gateway.constants import account_channel
from gateway.events import ProductChanged
from gateway.simkit import free_port


async def webhook_latency(
    mongodb_url: str, redis_url: str, platform: str, deliveries: int, rate_per_second: float
) -> dict[str, Any]:
    port = free_port()
    settings = settings_for(
        mongodb_url, redis_url, GATEWAY_PUBLIC_URL=f"http://127.0.0.1:{port}", GATEWAY_WEBHOOK_COALESCE=0.0
    )
    response_times: list[float] = []

    @web.middleware
    async def timer(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        if request.path.startswith("/webhooks/"):
            response_times.append(time.perf_counter() - started)
        return response

    async with simulator(platform, 200, {}) as sim, gateway(settings) as gw:
        app = create_app(gw)
        app.middlewares.append(timer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with worker_process(settings, GATEWAY_WEBHOOK_COALESCE="0"):
            integration = await gw.integrations.connect("bench", platform, "bench", sim.store_url, sim.credentials)
            first = (await gw.runs.latest(integration.id, 1))[0]
            await gw.engine.run(first.id)  # the catalog is in place before deliveries start
            ids = (await sim.control("GET", "products"))["ids"]
            sent: dict[str, float] = {}
            latencies: list[float] = []
            done = asyncio.Event()

            async def listen() -> None:
                async with gw.hub.listen(account_channel("bench")) as queue:
                    ready.set()
                    while not (sending_done and not sent):
                        event = await queue.get()
                        if not isinstance(event, ProductChanged):
                            continue
                        external_id = event.product_id.split(":", 1)[1]
                        started = sent.pop(external_id, None)
                        if started is not None:
                            latencies.append(time.perf_counter() - started)
                done.set()

            sending_done = False

            ready = asyncio.Event()
            listener = asyncio.ensure_future(listen())
            await ready.wait()
            interval = 1.0 / rate_per_second
            start = time.perf_counter()
            for n in range(deliveries):
                target = start + n * interval
                await asyncio.sleep(max(0.0, target - time.perf_counter()))
                external_id = str(ids[n % len(ids)])
                if external_id in sent:  # one change in flight per product, so each is measured
                    continue
                sent[external_id] = time.perf_counter()
                await sim.control("POST", f"products/{external_id}/touch", {})
            sending_done = True
            if not sent:
                done.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 60)
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        await runner.cleanup()
        ms = [x * 1000 for x in latencies]
        rt = [x * 1000 for x in response_times]
        return {
            "platform": platform,
            "deliveries_planned": deliveries,
            "measured": len(ms),
            "skipped_in_flight": deliveries - len(ms) - len(sent),
            "unanswered": len(sent),
            "rate_per_second": rate_per_second,
            "end_to_end_ms": {
                "p50": round(percentile(ms, 50), 1),
                "p99": round(percentile(ms, 99), 1),
                "max": round(max(ms), 1) if ms else None,
            },
            "endpoint_response_ms": {"p50": round(percentile(rt, 50), 2), "p99": round(percentile(rt, 99), 2)},
        }
