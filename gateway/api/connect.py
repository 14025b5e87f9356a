"""The connect routes (docs/reference/RUNTIME.md), thin over gateway.connect.ConnectService:

    GET       /connect/{platform}/start/{attempt_id}   where beginConnect's authorizeUrl points
    GET, POST /connect/{platform}/callback             the platform's return (redirect_uri, auth callback,
                                                       WooCommerce's keys POST and return_url)
    GET       /apps/{platform}/{event}                 app lifecycle callbacks (install, load, uninstall, ...)
    POST      /webhooks/{platform}/app                 app-level webhooks (Shopify's compliance topics)

Register them before `/webhooks/{platform}/{integration_id}`: `app` is a path of its own, not an id.
Every answer is uncached and sends no Referer onwards (callback URLs carry authorization codes).
"""

from __future__ import annotations

import html
import logging

from aiohttp import web

from gateway.api.permissions import public
from gateway.connect import Reply, cookie_name
from gateway.errors import GatewayError
from gateway.installflow import FlowRequest
from gateway.services import Gateway

log = logging.getLogger(__name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body><main><h1>{title}</h1><p>{message}</p>{back}</main></body></html>
"""


def render(reply: Reply, *, secure: bool) -> web.Response:
    if reply.location is not None:
        response = web.Response(status=302, headers={"Location": reply.location})
    elif reply.page:
        title = "Your store was not connected" if reply.status >= 400 else "Alana"
        back = f'<p><a href="{html.escape(reply.back, quote=True)}">Back to Alana</a></p>' if reply.back else ""
        text = _PAGE.format(title=html.escape(title), message=html.escape(reply.message), back=back)
        response = web.Response(status=reply.status, text=text, content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = "default-src 'none'; base-uri 'none'; form-action 'none'"
    else:
        response = web.Response(status=reply.status, text=reply.message, content_type="text/plain")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    cookie = reply.cookie
    if cookie is not None:
        if cookie.value is None:
            response.del_cookie(cookie.name, path=cookie.path)
        else:
            response.set_cookie(
                cookie.name,
                cookie.value,
                path=cookie.path,
                max_age=cookie.max_age,
                httponly=True,
                secure=secure,
                samesite="Lax",
            )
    return response


def add_routes(app: web.Application, gw: Gateway) -> None:
    secure = gw.settings.public_url.lower().startswith("https://")
    limit = gw.settings.max_webhook_bytes

    async def read(request: web.Request) -> bytes | None:
        if (request.content_length or 0) > limit:
            return None
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return None

    def answer(reply: Reply) -> web.Response:
        return render(reply, secure=secure)

    @public("a merchant's browser following beginConnect's authorizeUrl: the attempt id is the capability")
    async def start(request: web.Request) -> web.Response:
        platform = request.match_info["platform"]
        service = gw.connect
        return answer(
            await service.start(platform, request.match_info["attempt_id"], request.cookies.get(cookie_name(platform)))
        )

    @public("the platform's return: the flow verifies it (signature, single-use state, browser binding)")
    async def callback(request: web.Request) -> web.Response:
        if request.method not in ("GET", "POST"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        platform = request.match_info["platform"]
        body = await read(request)
        if body is None:
            return web.Response(status=413, text="payload too large")
        flow_request = FlowRequest.of(request.method, request.query.items(), request.headers, body)
        try:
            reply = await gw.connect.callback(platform, flow_request, request.cookies.get(cookie_name(platform)))
        except GatewayError as exc:
            log.warning("connect callback failed", extra={"platform": platform, "error": type(exc).__name__})
            reply = Reply(503, message="Alana could not finish connecting right now; please try again.", page=True)
        return answer(reply)

    @public("the platform's app callbacks: the flow verifies their signature")
    async def app_event(request: web.Request) -> web.Response:
        platform = request.match_info["platform"]
        flow_request = FlowRequest.of("GET", request.query.items(), request.headers)
        reply = await gw.connect.app_request(
            platform, request.match_info["event"], flow_request, request.cookies.get(cookie_name(platform))
        )
        return answer(reply)

    @public("the platform's app-level webhooks: the flow verifies them with the app's secret")
    async def app_webhook(request: web.Request) -> web.Response:
        body = await read(request)
        if body is None:
            return web.Response(status=413, text="payload too large")
        flow_request = FlowRequest.of("POST", request.query.items(), request.headers, body)
        return answer(await gw.connect.app_webhook(request.match_info["platform"], flow_request))

    app.router.add_get("/connect/{platform}/start/{attempt_id}", start)
    app.router.add_route("*", "/connect/{platform}/callback", callback)
    app.router.add_get("/apps/{platform}/{event}", app_event)
    app.router.add_post("/webhooks/{platform}/app", app_webhook)
