"""Hostile GraphQL documents and alias attacks (issue 11, findings 1 and 5), against the API as it was and as
it is.

Two API processes serve the same database of synced WooCommerce products: `guarded` is the gateway's
app; `unguarded` is the same schema with the extensions it had before the query guard (strawberry's
QueryDepthLimiter and the error codes) behind a plain strawberry view, which is what the probe met.
Measured over HTTP, as a client sees it:
- the probe's fragment bomb: refusal time by depth, and how long /healthz waits meanwhile;
- a corpus of hostile documents under 1 MB each: the slowest refusal (target: under 100 ms);
- 1,000 aliases of products(first: 250), and 100 aliases selecting storeVersion: time, response size,
  the API process's memory, and another tenant's query sent meanwhile.
The unguarded bomb is measured up to the depth that finishes within a few minutes; the time doubles
with each level, so deeper ones are extrapolated (and marked so).

`python -m benchmarks.hostile serve guarded|unguarded PORT` runs one API process (used by the benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pymongo.errors import AutoReconnect

from benchmarks.common import ROOT, gateway, settings_for, simulator
from benchmarks.sync import run_once
from gateway.auth import issue_token
from gateway.settings import Settings
from gateway.simkit import free_port

ACCOUNT = "bench"
OTHER = "bench-other"


def fragment_bomb(depth: int) -> str:
    parts = ["fragment F0 on Query { __typename }"]
    parts += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, depth + 1)]
    return f"query {{ ...F{depth} }}\n" + "\n".join(parts)


def hostile_documents() -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """Each under 1 MB (as sent): every shape that costs graphql-core more than its size."""
    for depth in (22, 26, 30):
        yield f"fragment bomb {depth}", fragment_bomb(depth), None
    nested = ["fragment T0 on __Type { name }"]
    nested += [
        f"fragment T{i} on __Type {{ a: ofType {{ ...T{i - 1} }} b: ofType {{ ...T{i - 1} }} }}" for i in range(1, 23)
    ]
    yield "nested alias bomb 22", '{ __type(name: "Product") { ...T22 } }\n' + "\n".join(nested), None
    yield "deep nesting (5,000)", "{ " + "a { " * 5_000 + "b" + " }" * 5_000 + " }", None
    yield "deep nesting (150)", "{ " + "a { " * 150 + "b" + " }" * 150 + " }", None
    yield "10k aliases", "{ " + " ".join(f"a{i}: __typename" for i in range(10_000)) + " }", None
    products = "products(first: 250) { totalCount }"
    yield "10k aliases of products", "{ " + " ".join(f"a{i}: {products}" for i in range(10_000)) + " }", None
    yield "900 same-name fields", "{ " + "platforms { id } " * 900 + "}", None
    yield "directives (2,000)", "{ __typename" + " @skip(if: false)" * 2_000 + " }", None
    yield "directives (300)", "{ __typename" + " @include(if: true)" * 300 + " }", None
    yield "variables (5,000)", "query(" + ", ".join(f"$v{i}: Int" for i in range(5_000)) + ") { __typename }", None
    yield "variables (600)", "query(" + ", ".join(f"$v{i}: Int" for i in range(600)) + ") { __typename }", None
    yield "operations (300)", " ".join(f"query Q{i} {{ __typename }}" for i in range(300)), None
    yield "1 MB string", '{ products(search: "' + "a" * 998_000 + '") { totalCount } }', None
    yield "1 MB comment", "#" + "c" * 998_000 + "\n{ __typename }", None
    yield "50k comments", "#\n" * 50_000 + "{ __typename }", None
    yield "500k tokens", "{ " + "a " * 498_000 + "}", None
    yield "fragment cycle", "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }", None
    ids = 'mutation($ids: [String!]) { syncNow(integrationId: "i", productExternalIds: $ids) { id } }'
    yield "200k variable values", ids, {"ids": ["a"] * 200_000}


def aliases(n: int, selection: str, first: int | None = 250) -> str:
    args = f"(first: {first})" if first else ""
    return "{ " + " ".join(f"a{i}: products{args} {{ edges {{ node {{ {selection} }} }} }}" for i in range(n)) + " }"


# ---- the two API processes -----------------------------------------------------------------------
def unguarded_app(gw: Any) -> web.Application:
    """The API before the query guard: the same types, strawberry's depth limiter, no cost or size limits."""
    from strawberry.aiohttp.views import GraphQLView
    from strawberry.extensions import QueryDepthLimiter

    from gateway.api.context import Context
    from gateway.api.schema import ErrorCodes, GatewaySchema, Mutation, Query, Subscription

    schema = GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[lambda: QueryDepthLimiter(max_depth=gw.settings.max_query_depth), ErrorCodes],
    )

    class View(GraphQLView[Context, None]):
        async def get_context(self, request: web.Request, response: Any) -> Context:
            return Context(gw=gw, request=request, response=response)

    view = View(schema=schema, allow_queries_via_get=False)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=gw.settings.max_webhook_bytes)
    app.router.add_route("*", "/graphql", view)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(kind: str, port: int) -> None:
    from gateway.api.app import create_app
    from gateway.services import Gateway

    gw = await Gateway.create(Settings())
    runner = web.AppRunner(create_app(gw) if kind == "guarded" else unguarded_app(gw), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await gw.close()


class ApiProcess:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"

    def memory_mb(self) -> dict[str, float]:
        """Resident memory now and the process's peak so far."""
        found: dict[str, float] = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = round(int(value.split()[0]) / 1024, 1)
        return {"rss_mb": found.get("VmRSS", 0.0), "peak_mb": found.get("VmHWM", 0.0)}


@contextlib.asynccontextmanager
async def api_process(kind: str, settings: Settings) -> AsyncIterator[ApiProcess]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "MONGODB_URL": settings.effective_mongodb_url(),
            "REDIS_URL": settings.effective_redis_url(),
            "MONGODB_DATABASE": settings.mongodb_database,
            "GATEWAY_JWT_SECRET": settings.jwt_secret or "",
            "GATEWAY_SECRET_KEY": settings.secret_key or "",
            "GATEWAY_LOG_LEVEL": "CRITICAL",
        }
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.hostile", "serve", kind, str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        await asyncio.wait_for(process.stdout.readline(), timeout=120)
        yield ApiProcess(process, port)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


# ---- measuring -----------------------------------------------------------------------------------
class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str | None) -> None:
        self.session = session
        self.url = url
        self.token = token

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> tuple[float, int, dict[str, Any]]:
        """Seconds, response bytes, and the decoded body."""
        headers = {"Authorization": f"Bearer {token or self.token}"} if (token or self.token) else {}
        started = time.perf_counter()
        async with self.session.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        ) as response:
            raw = await response.read()
        elapsed = time.perf_counter() - started
        try:
            body: dict[str, Any] = await asyncio.to_thread(_decode, raw)
        except ValueError:
            body = {"status": response.status}
        return elapsed, len(raw), body

    async def healthz(self) -> float:
        started = time.perf_counter()
        async with self.session.get(f"{self.url}/healthz") as response:
            await response.read()
        return time.perf_counter() - started


def _decode(raw: bytes) -> dict[str, Any]:
    import json

    result: dict[str, Any] = json.loads(raw)
    return result


def _code(body: dict[str, Any]) -> str:
    errors = body.get("errors") or []
    return str(errors[0].get("extensions", {}).get("code")) if errors else "OK"


async def _bomb(client: Client, depth: int) -> dict[str, Any]:
    """The bomb's time, and /healthz's sent just after it."""
    task = asyncio.ensure_future(client.post(fragment_bomb(depth)))
    await asyncio.sleep(0.05)
    health = await client.healthz()
    elapsed, size, body = await task
    return {"seconds": round(elapsed, 3), "healthz_seconds": round(health, 3), "code": _code(body)}


async def _attack(client: Client, api: ApiProcess, query: str) -> dict[str, Any]:
    """An attack by one tenant, with another tenant's small query sent 0.2 s into it."""
    before = api.memory_mb()
    task = asyncio.ensure_future(client.post(query))
    await asyncio.sleep(0.2)
    other, _, other_body = await client.post("{ integrations { id } }", token=issue_token(_SECRET, OTHER, 3600))
    elapsed, size, body = await task
    after = api.memory_mb()
    message = (body.get("errors") or [{}])[0].get("message", "")
    return {
        "seconds": round(elapsed, 3),
        "response_bytes": size,
        "code": _code(body),
        "message": message[:160],
        "api_rss_mb_before": before["rss_mb"],
        "api_peak_mb_after": after["peak_mb"],
        "other_tenant_seconds": round(other, 3),
        "other_tenant_code": _code(other_body),
    }


_SECRET = ""


async def hostile_api(mongodb_url: str, redis_url: str, quick: bool) -> dict[str, Any]:
    global _SECRET
    settings = settings_for(mongodb_url, redis_url)
    _SECRET = settings.jwt_secret or ""
    products = 300 if not quick else 260
    async with simulator("woocommerce", products, {}) as sim, gateway(settings) as gw:
        integration = await gw.integrations.connect(ACCOUNT, "woocommerce", "bench", sim.store_url, sim.credentials)
        await run_once(gw, integration)
        token = issue_token(_SECRET, ACCOUNT, 3600)
        timeout = aiohttp.ClientTimeout(total=900)
        results: dict[str, Any] = {"products": await gw.db.products.count_documents({})}
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with api_process("guarded", settings) as api:
                results["guarded"] = await _measure_guarded(Client(session, api.url, token), api, quick)
            async with api_process("unguarded", settings) as api:
                results["unguarded"] = await _measure_unguarded(Client(session, api.url, token), api, quick)
        # This process's own connections sat idle through minutes of attacks, and the server may have closed
        # them: a failed ping resets the pool, so the cleanup's drop_database gets a fresh connection.
        with contextlib.suppress(AutoReconnect):
            await gw.db.client.admin.command("ping")
    return results


async def _measure_guarded(client: Client, api: ApiProcess, quick: bool) -> dict[str, Any]:
    anonymous = Client(client.session, client.url, None)
    out: dict[str, Any] = {}
    bombs: dict[str, Any] = {}
    for depth in (22, 26, 30):
        times = [(await anonymous.post(fragment_bomb(depth)))[0] for _ in range(5)]
        bombs[str(depth)] = {"median_ms": round(1000 * statistics.median(times), 2), **await _bomb(anonymous, depth)}
    out["fragment_bomb"] = bombs

    # Median of 5 per document: the machine is shared, and one preempted run says nothing about the code.
    corpus: dict[str, Any] = {}
    for name, query, variables in hostile_documents():
        runs = [await anonymous.post(query, variables) for _ in range(5)]
        corpus[name] = {
            "median_ms": round(1000 * statistics.median(r[0] for r in runs), 2),
            "max_ms": round(1000 * max(r[0] for r in runs), 2),
            "code": _code(runs[0][2]),
        }
    slowest = max(corpus, key=lambda name: corpus[name]["median_ms"])
    out["corpus"] = {"documents": corpus, "slowest": slowest, "slowest_median_ms": corpus[slowest]["median_ms"]}

    # /healthz while hostile documents keep arriving from 8 connections.
    stop = asyncio.Event()

    async def flood() -> None:
        while not stop.is_set():
            await anonymous.post(fragment_bomb(30))

    floods = [asyncio.ensure_future(flood()) for _ in range(8)]
    await asyncio.sleep(0.2)
    health = [await client.healthz() for _ in range(20)]
    stop.set()
    await asyncio.gather(*floods)
    out["healthz_during_flood_ms"] = {
        "median": round(1000 * statistics.median(health), 2),
        "max": round(1000 * max(health), 2),
    }

    out["aliases_1000"] = await _attack(client, api, aliases(1000, "id"))
    out["aliases_storeversion_100"] = await _attack(client, api, aliases(100, "storeVersion", first=None))
    # The most the per-request ceiling still allows: 7 x (10 + 1 + 250 x (1 + 50)) = 89,327.
    out["aliases_storeversion_7"] = await _attack(client, api, aliases(7, "storeVersion"))
    page = """{ products(first: 250) { totalCount edges { node { id title description tags storeVersion
      price { amount currencyCode } variants { externalId sku price { amount } } images { url alt } } } } }"""
    elapsed, size, body = await client.post(page)
    out["page_of_250"] = {"seconds": round(elapsed, 3), "response_bytes": size, "code": _code(body)}
    return out


async def _measure_unguarded(client: Client, api: ApiProcess, quick: bool) -> dict[str, Any]:
    anonymous = Client(client.session, client.url, None)
    out: dict[str, Any] = {}
    bombs: dict[str, Any] = {}
    deepest = 16 if quick else 22
    for depth in range(12, deepest + 1, 2):
        bombs[str(depth)] = await _bomb(anonymous, depth)
    # Each level doubles the work: extrapolate from the deepest measured.
    measured = bombs[str(deepest)]["seconds"]
    for depth in range(deepest + 2, 31, 2):
        bombs[str(depth)] = {"seconds": round(measured * 2 ** (depth - deepest), 1), "extrapolated": True}
    out["fragment_bomb"] = bombs
    out["aliases_storeversion_100"] = await _attack(
        client, api, aliases(100 if not quick else 20, "storeVersion", None)
    )
    out["aliases_1000"] = await _attack(client, api, aliases(1000 if not quick else 200, "id"))
    return out


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(sys.argv[2], int(sys.argv[3])))
    else:
        print(__doc__)
