"""The HTTP surface (docs/reference/RUNTIME.md): GraphQL over HTTP and websocket, webhooks, health, metrics."""

from __future__ import annotations

import gc
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import web
from cross_web import HTTPException
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError
from strawberry.aiohttp.views import GraphQLView
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from gateway import metrics
from gateway.api import connect as connect_routes
from gateway.api import pages
from gateway.api.context import Context
from gateway.api.cors import OriginPolicy, cors_middleware
from gateway.api.permissions import public
from gateway.api.schema import build_schema
from gateway.api.websocket import ExpiringSessionHandler
from gateway.errors import GatewayError
from gateway.logs import bind_context
from gateway.services import Gateway
from gateway.settings import Settings

log = logging.getLogger(__name__)

GATEWAY_KEY = web.AppKey("gateway", Gateway)


class GatewayGraphQLView(GraphQLView[Context, None]):
    """Strawberry's aiohttp view with our typed context, our origin rule (gateway/api/cors.py), websocket
    sessions that end with their token (gateway/api/websocket.py; graphql-transport-ws only, per
    docs/reference/RUNTIME.md), and a cap on the size of every response."""

    graphql_transport_ws_handler_class = ExpiringSessionHandler

    def __init__(self, gw: Gateway, origins: OriginPolicy, **kwargs: Any) -> None:
        kwargs.setdefault("subscription_protocols", (GRAPHQL_TRANSPORT_WS_PROTOCOL,))
        super().__init__(**kwargs)
        self.gw = gw
        self.origins = origins

    def is_websocket_origin_allowed(self, request: Any, origin: str) -> bool:
        # The CORS middleware refused other origins already; this keeps strawberry's own check in step.
        return self.origins.allows(origin, request.host)

    def encode_json(self, data: object) -> str:
        """JSON for an HTTP response or a websocket message; one over GATEWAY_MAX_RESPONSE_BYTES is replaced by
        an error in the same place (the query's cost bounds how large it gets; this bounds what is sent)."""
        encoded = json.dumps(data, separators=(",", ":"))
        limit = self.gw.settings.max_response_bytes
        if len(encoded) <= limit:
            return encoded
        error = {
            "message": f"the response is {len(encoded):,} bytes, over the limit of {limit:,}: ask for fewer items "
            "(first) or fields",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
        refused: dict[str, Any] = {"data": None, "errors": [error]}
        if isinstance(data, dict) and data.get("type") == "next":
            refused = {"id": data.get("id"), "type": "next", "payload": refused}
        return json.dumps(refused, separators=(",", ":"))

    def parse_json(self, data: str | bytes) -> Any:
        """The request body: a JSON object (one operation) or a list (a batch, which strawberry refuses);
        anything else (`42`, `null`, a string) is a 400 like any other malformed body."""
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "the request body must be a JSON object with a `query`")
        return parsed

    async def get_context(self, request: web.Request, response: Any) -> Context:
        return Context(gw=self.gw, request=request, response=response)

    async def on_ws_connect(self, context: Context) -> Any:
        # The token is checked per operation, so a bad one yields a GraphQL error with
        # extensions.code UNAUTHENTICATED rather than a bare close code.
        if context.connection_params is None:
            context.connection_params = {}
        return await super().on_ws_connect(context)


def _json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"errors": [{"message": message, "extensions": {"code": code}}]}, status=status)


async def _read_body(request: web.Request, limit: int) -> tuple[web.Request, bytes | None]:
    """The body, up to `limit` bytes whether or not a Content-Length announced it (a chunked body has none);
    None when it is longer. The request returned serves the same bytes to whoever reads it next."""
    if (request.content_length or 0) > limit:
        return request, None  # refused before reading
    limited = request.clone(client_max_size=limit)
    try:
        return limited, await limited.read()
    except web.HTTPRequestEntityTooLarge:
        return limited, None


async def _receive(gw: Gateway, request: web.Request, body: bytes) -> tuple[int, str]:
    try:
        return await gw.webhooks.receive(
            request.match_info["platform"], request.match_info["integration_id"], request.headers, body
        )
    except GatewayError as exc:
        return 503, exc.message
    except (PyMongoError, RedisError, OSError) as exc:
        # A dependency is down: nothing was logged for dedupe, so the platform's retry is taken in full.
        log.warning("a delivery could not be received: %s", type(exc).__name__)
        return 503, "the gateway cannot store deliveries right now: send it again later"


def create_app(gw: Gateway) -> web.Application:
    settings = gw.settings
    origins = OriginPolicy.from_settings(settings)
    app = web.Application(
        client_max_size=max(settings.max_body_bytes, settings.max_webhook_bytes),
        middlewares=[request_id_middleware, cors_middleware(origins)],
    )
    app[GATEWAY_KEY] = gw
    view = GatewayGraphQLView(
        gw,
        origins,
        schema=build_schema(settings.max_query_depth),
        connection_init_wait_timeout=timedelta(seconds=settings.ws_auth_timeout),
        allow_queries_via_get=False,
    )

    @public("GraphQL: every root field declares its own permission classes (IsAuthenticated)")
    async def graphql(request: web.Request) -> web.StreamResponse:
        if pages.wants_explorer(request):
            return await pages.explorer(request)
        if request.method == "POST":
            request, body = await _read_body(request, settings.max_body_bytes)
            if body is None:
                return _json_error(413, "BAD_USER_INPUT", f"request body over {settings.max_body_bytes} bytes")
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                return _json_error(400, "BAD_USER_INPUT", "the request body is not valid UTF-8")
        response: web.StreamResponse = await view(request)
        metrics.HTTP_REQUESTS.labels(status=str(response.status)).inc()
        return response

    @public("a store's delivery: verified with the integration's webhook secret before anything is stored")
    async def webhook(request: web.Request) -> web.Response:
        started = time.perf_counter()
        request, body = await _read_body(request, settings.max_webhook_bytes)
        if body is None:
            return web.json_response({"error": "payload too large"}, status=413)
        status, message = await _receive(gw, request, body)
        metrics.WEBHOOK_RESPONSE.observe(time.perf_counter() - started)
        return web.json_response({"status": message}, status=status)

    @public("liveness probe: says nothing but ok")
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    @public("readiness probe: dependency names and installed platforms, no account data")
    async def readyz(request: web.Request) -> web.Response:
        problems: list[str] = []
        try:
            await gw.db.client.admin.command("ping")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"mongodb: {type(exc).__name__}")
        try:
            await gw.redis.ping()
        except Exception as exc:  # noqa: BLE001
            problems.append(f"redis: {type(exc).__name__}")
        if problems:
            return web.json_response({"status": "unavailable", "reasons": problems}, status=503)
        plugins = sorted(gw.registry.adapters)
        return web.json_response({"status": "ready", "platforms": plugins, "plugin_errors": gw.registry.load_errors})

    @public("Prometheus metrics: counters labelled by platform and outcome, no account data")
    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    connect_routes.add_routes(app, gw)  # before /webhooks/{platform}/{integration_id}: it claims .../app
    app.router.add_route("*", "/graphql", graphql)
    app.router.add_post("/webhooks/{platform}/{integration_id}", webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus)
    pages.add_routes(app)
    return app


@web.middleware
async def request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
    with bind_context(request_id=request_id):
        response = await handler(request)
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    return response


async def serve(settings: Settings, host: str, port: int) -> None:
    """Run the API until cancelled."""
    gw = await Gateway.create(settings)
    runner = web.AppRunner(create_app(gw), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    # What startup made (the schema, the plugins, the connections) lives as long as the process: frozen out
    # of the collector's reach, a full collection no longer walks it. Measured under a product list's
    # load: full collections of 70-80 ms landed in the requests they fell on; about 1.5 ms frozen.
    gc.collect()
    gc.freeze()
    log.info("gateway listening", extra={"url": f"http://{host}:{port}/graphql"})
    try:
        import asyncio

        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await gw.close()
