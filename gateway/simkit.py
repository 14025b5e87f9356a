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
and, for a simulator that plays its platform's install flow (see "Install flows" below):
    POST   /_sim/connect/approve|deny     -> {"url": <authorize URL>}: the merchant's decision without a
                                             browser; answers {"location": <where the browser goes> | null}
    POST   /_sim/app                      -> register the app's URLs (InstallFlow.app_registration())
    POST   /_sim/app/{event}              -> a lifecycle event on the platform's side (uninstall, ...):
                                             {"location": <URL a browser would open> | null}
    POST   /_sim/credentials/revoke       -> the merchant revokes the integration's access: the API answers 401

Install flows: a simulator plays its platform's side by serving the authorize screens as HTML pages a
person can click (`consent_page`), the token endpoint (`AuthCodes`, `TokenStore`: codes, expiring
tokens, rotation, invalid_grant), signed lifecycle callbacks (`app_event`), and by disabling webhooks
after failed deliveries the way its platform does (`deliver(..., on_result=...)`,
`deliver_with_retries`).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import random
import secrets
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

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
    #: The lifecycle events `app_event` plays (e.g. "uninstall"); empty when it plays no install flow.
    app_events: ClassVar[frozenset[str]] = frozenset()

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
        self._retry_tasks: set[asyncio.Task[None]] = set()
        #: When False, catalog changes do not fire webhooks (simulates dropped deliveries).
        self.deliver_webhooks = True
        #: Deliveries answered with a failure status or not answered at all.
        self.deliveries_failed = 0
        #: The app's URLs as registered with the platform (`register_app`), e.g. its auth callback.
        self.app_settings: dict[str, str] = {}

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

    # ---- install flows (optional) --------------------------------------------------------------
    def app_credentials(self) -> dict[str, str] | None:
        """The platform app's `client_id` and `client_secret` this simulated platform knows (the
        gateway's GATEWAY_<PLATFORM>_CLIENT_ID / _SECRET); None when the platform has no app credentials."""
        return None

    @property
    def install_store(self) -> str:
        """What a merchant types as beginConnect's `store` for this store (default: the store URL)."""
        return self.store_url

    def register_app(self, settings: Mapping[str, str]) -> None:
        """Record the app's URLs, as an operator enters them in the platform's app dashboard."""
        self.app_settings.update({str(k): str(v) for k, v in settings.items()})

    @property
    def plays_install_flow(self) -> bool:
        return type(self).connect_decision is not Simulator.connect_decision

    async def connect_decision(self, authorize_url: str, approve: bool) -> str | None:
        """The merchant approves (or declines) on the authorize screen at `authorize_url`, the URL the
        install flow built. Return where the platform then sends the browser, or None when it sends it
        nowhere the app controls. Raise ScreenError for an authorize request the platform refuses."""
        raise ScreenError("this simulator plays no install flow", status=404)

    async def app_event(self, event: str, **params: Any) -> str | None:
        """Play a lifecycle event on the platform's side (one of `app_events`): server-to-server
        callbacks are delivered in the background (await drain_deliveries()); a browser event returns
        the URL the platform opens in the merchant's browser."""
        raise ScreenError(f"this simulator plays no app event {event!r}", status=404)

    def revoke_credentials(self) -> None:
        """The merchant revokes the integration's access on the store: every API call answers 401."""
        raise NotImplementedError(f"{type(self).__name__} cannot revoke credentials")

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
        tasks = [*self._delivery_tasks, *self._retry_tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
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

    def deliver(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        on_result: Callable[[int | None], None] | None = None,
        method: str = "POST",
    ) -> None:
        """Send one webhook delivery in the background (like a platform's delivery queue).

        `on_result` gets the answer's status (None when nothing answered): the platform's bookkeeping
        of failed deliveries hangs off it.
        """
        if not self.deliver_webhooks:
            return
        task = asyncio.get_running_loop().create_task(self._send_one(method, url, body, dict(headers), on_result))
        self._delivery_tasks.add(task)
        task.add_done_callback(self._delivery_tasks.discard)

    def deliver_with_retries(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        schedule: Sequence[float],
        on_give_up: Callable[[], None],
        succeeded: Callable[[int | None], bool] | None = None,
    ) -> None:
        """Deliver, and after a failure try again after each delay of `schedule` (seconds); when the
        last try fails too, call `on_give_up` (BigCommerce deactivates the hook, Shopify removes the
        subscription). Retries run apart from first tries: drain_deliveries(retries=True) waits for them."""
        ok = succeeded or is_success

        def first(status: int | None) -> None:
            if not ok(status):
                task = asyncio.get_running_loop().create_task(
                    self._retry(url, body, dict(headers), list(schedule), ok, on_give_up)
                )
                self._retry_tasks.add(task)
                task.add_done_callback(self._retry_tasks.discard)

        self.deliver(url, body, headers, on_result=first)

    async def _retry(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        schedule: list[float],
        ok: Callable[[int | None], bool],
        on_give_up: Callable[[], None],
    ) -> None:
        for delay in schedule:
            await asyncio.sleep(delay)
            if ok(await self._post(url, body, headers)):
                return
        on_give_up()

    async def request_now(
        self, url: str, body: bytes, headers: Mapping[str, str], *, method: str = "POST"
    ) -> int | None:
        """Send one request and wait for the answer's status (None: no answer), for a platform that acts on
        it before going on (WooCommerce posts the keys, then redirects or shows "Access denied")."""
        return await self._post(url, body, dict(headers), method)

    async def _send_one(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        on_result: Callable[[int | None], None] | None,
    ) -> None:
        status = await self._post(url, body, headers, method)
        if on_result is not None:
            on_result(status)

    async def _post(self, url: str, body: bytes, headers: dict[str, str], method: str = "POST") -> int | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._session.request(
                method, url, data=body or None, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                self.deliveries_sent += 1
                if not is_success(response.status):
                    self.deliveries_failed += 1
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:  # a platform just logs and retries later
            log.info("simulated webhook delivery failed: %s", type(exc).__name__)
            self.deliveries_failed += 1
            return None

    async def drain_deliveries(self, *, retries: bool = False) -> None:
        """Wait until every delivery sent so far has been answered (for tests); with `retries`, also
        every retry scheduled meanwhile (use a short retry schedule, or this waits for it)."""
        while self._delivery_tasks or (retries and self._retry_tasks):
            pending = list(self._delivery_tasks) + (list(self._retry_tasks) if retries else [])
            await asyncio.gather(*pending, return_exceptions=True)

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
        self._add_install_routes(app)

    def _add_install_routes(self, app: web.Application) -> None:
        async def decide(request: web.Request) -> web.Response:
            body = await _json_body(request)
            url = body.get("url")
            if not isinstance(url, str) or not url:
                return web.json_response({"error": 'send {"url": <the authorize URL>}'}, status=400)
            try:
                location = await self.connect_decision(url, request.match_info["decision"] == "approve")
            except ScreenError as exc:
                return web.json_response({"error": exc.message}, status=exc.status)
            return web.json_response({"location": location})

        async def register(request: web.Request) -> web.Response:
            body = await _json_body(request)
            self.register_app({str(k): str(v) for k, v in body.items()})
            return web.json_response(self.app_settings)

        async def event(request: web.Request) -> web.Response:
            params = await _json_body(request)
            try:
                location = await self.app_event(request.match_info["event"], **params)
            except ScreenError as exc:
                return web.json_response({"error": exc.message}, status=exc.status)
            return web.json_response({"location": location})

        async def revoke(request: web.Request) -> web.Response:
            try:
                self.revoke_credentials()
            except NotImplementedError as exc:
                return web.json_response({"error": str(exc)}, status=404)
            return web.json_response({"ok": True})

        app.router.add_post("/_sim/connect/{decision:approve|deny}", decide)
        app.router.add_post("/_sim/app", register)
        app.router.add_post("/_sim/app/{event}", event)
        app.router.add_post("/_sim/credentials/revoke", revoke)


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def is_success(status: int | None) -> bool:
    """A 2xx answer: what every platform counts as a delivered webhook."""
    return status is not None and 200 <= status < 300


# ---- install flows: screens, codes and tokens -------------------------------------------------------
class ScreenError(Exception):
    """An authorize request the platform refuses; shown as the platform's error page."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;color:#1f2937}}
.box{{border:1px solid #d1d5db;border-radius:.5rem;padding:1.5rem}}button{{font-size:1rem;padding:.5rem 1.25rem;
margin-right:.5rem;border-radius:.375rem;border:1px solid #9ca3af;cursor:pointer}}
button[value=approve]{{background:#111827;color:#fff}}small{{color:#6b7280}}</style></head>
<body><div class="box"><p><small>{platform}</small></p><h1>{title}</h1>{body}</div></body></html>
"""


def html_page(platform: str, title: str, body_html: str, status: int = 200) -> web.Response:
    """A small page of the simulated platform (what a person sees in the browser)."""
    text = _PAGE.format(platform=html.escape(platform), title=html.escape(title), body=body_html)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def message_page(platform: str, title: str, message: str, status: int = 200) -> web.Response:
    return html_page(platform, title, f"<p>{html.escape(message)}</p>", status)


def consent_page(
    *,
    platform: str,
    title: str,
    app_name: str,
    store_name: str,
    permissions: Sequence[str],
    action: str,
    fields: Mapping[str, str],
    approve_label: str = "Approve",
    deny_label: str = "Deny",
) -> web.Response:
    """The platform's authorize screen: who asks, for which store, for what; one form whose two buttons
    post `decision=approve|deny` (with `fields` as hidden inputs) to `action` on the simulator."""
    items = "".join(f"<li>{html.escape(p)}</li>" for p in permissions)
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k, quote=True)}" value="{html.escape(v, quote=True)}">'
        for k, v in fields.items()
    )
    body = (
        f"<p><strong>{html.escape(app_name)}</strong> would like to connect to "
        f"<strong>{html.escape(store_name)}</strong>.</p>"
        f"<p>It will be able to:</p><ul>{items}</ul>"
        f'<form method="post" action="{html.escape(action, quote=True)}">{hidden}'
        f'<button type="submit" name="decision" value="approve">{html.escape(approve_label)}</button>'
        f'<button type="submit" name="decision" value="deny">{html.escape(deny_label)}</button></form>'
    )
    return html_page(platform, title, body)


def found(location: str) -> web.Response:
    """A 302 to `location` (what platforms answer to send the browser on)."""
    return web.Response(status=302, headers={"Location": location})


def random_token(prefix: str = "", size: int = 24) -> str:
    return prefix + secrets.token_hex(size)


class AuthCodes:
    """Single-use authorization codes that expire (`ttl` seconds), each bound to what was granted."""

    def __init__(self, *, ttl: float = 600.0, prefix: str = "", clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.prefix = prefix
        self.clock = clock
        self._codes: dict[str, tuple[float, dict[str, Any]]] = {}
        self.redeemed = 0

    def issue(self, **grant: Any) -> str:
        code = random_token(self.prefix, 16)
        self._codes[code] = (self.clock() + self.ttl, dict(grant))
        return code

    def redeem(self, code: str) -> dict[str, Any] | None:
        """The grant behind `code`, once; None for an unknown, used or expired code."""
        entry = self._codes.pop(code, None)
        if entry is None or entry[0] < self.clock():
            return None
        self.redeemed += 1
        return entry[1]


@dataclass
class IssuedToken:
    access_token: str
    scopes: tuple[str, ...]
    expires_at: float | None = None
    refresh_token: str | None = None
    refresh_expires_at: float | None = None

    def expires_in(self, now: float) -> int | None:
        return None if self.expires_at is None else max(0, round(self.expires_at - now))

    def refresh_expires_in(self, now: float) -> int | None:
        return None if self.refresh_expires_at is None else max(0, round(self.refresh_expires_at - now))


@dataclass
class _Refresh:
    expires_at: float | None
    scopes: tuple[str, ...]
    parent: str | None
    first_used: float | None = None
    dead: bool = False


class TokenStore:
    """Access tokens a simulated platform issued, and refresh tokens that rotate.

    `issue(expiring=True)` gives an access token living `access_ttl` seconds and a refresh token living
    `refresh_ttl`. Refreshing gives a new pair; the refresh token used stays usable until one of its
    replacements is used, and at most `previous_grace` seconds after its first use (Shopify since
    2026-08-28: until the replacement is used, max 30 days), so two workers refreshing at once both
    succeed. An unknown, expired, superseded or revoked refresh token gets None (invalid_grant). Old
    access tokens live until their own expiry. `clock` is injectable.
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        access_ttl: float = 3600.0,
        refresh_ttl: float | None = 90 * 86400.0,
        previous_grace: float = 30 * 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.previous_grace = previous_grace
        self.clock = clock
        self._access: dict[str, float | None] = {}
        self._refresh: dict[str, _Refresh] = {}
        self.issued = 0
        self.refreshes = 0

    def issue(self, scopes: Sequence[str] = (), *, expiring: bool = True, parent: str | None = None) -> IssuedToken:
        now = self.clock()
        self.issued += 1
        access = random_token(self.prefix, 16)
        if not expiring:
            self._access[access] = None
            return IssuedToken(access, tuple(scopes))
        refresh = random_token(self.prefix + "r_", 16)
        access_expiry = now + self.access_ttl
        refresh_expiry = None if self.refresh_ttl is None else now + self.refresh_ttl
        self._access[access] = access_expiry
        self._refresh[refresh] = _Refresh(refresh_expiry, tuple(scopes), parent)
        return IssuedToken(access, tuple(scopes), access_expiry, refresh, refresh_expiry)

    def refresh(self, refresh_token: str) -> IssuedToken | None:
        now = self.clock()
        record = self._refresh.get(refresh_token)
        if record is None or record.dead:
            return None
        if record.expires_at is not None and record.expires_at < now:
            return None
        if record.first_used is not None and now - record.first_used > self.previous_grace:
            return None
        if record.first_used is None:
            record.first_used = now
        if record.parent is not None and record.parent in self._refresh:
            # Using a replacement retires the token it replaced.
            self._refresh[record.parent].dead = True
        self.refreshes += 1
        return self.issue(record.scopes, parent=refresh_token)

    def accepts(self, access_token: str | None) -> bool:
        if not access_token or access_token not in self._access:
            return False
        expiry = self._access[access_token]
        return expiry is None or expiry > self.clock()

    def known(self, access_token: str | None) -> bool:
        """Issued here (whether or not it still works)."""
        return bool(access_token) and access_token in self._access

    def expire_access(self) -> None:
        """Every access token issued so far expires now (refresh tokens keep working)."""
        now = self.clock()
        for token, expiry in self._access.items():
            if expiry is not None:
                self._access[token] = min(expiry, now - 1)

    def snapshot(self) -> dict[str, Any]:
        """Every token issued so far, as JSON (the demo keeps them across restarts)."""
        return {
            "access": dict(self._access),
            "refresh": {token: asdict(record) for token, record in self._refresh.items()},
            "issued": self.issued,
            "refreshes": self.refreshes,
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Take back the tokens `snapshot` holds (what a restarted simulator still accepts)."""
        self._access.update({str(k): None if v is None else float(v) for k, v in snapshot.get("access", {}).items()})
        for token, fields in snapshot.get("refresh", {}).items():
            self._refresh[str(token)] = _Refresh(**{**fields, "scopes": tuple(fields.get("scopes", ()))})
        self.issued = int(snapshot.get("issued", self.issued))
        self.refreshes = int(snapshot.get("refreshes", self.refreshes))

    def revoke_all(self) -> None:
        """Every token dies (an uninstall, a revoked app)."""
        self._access.clear()
        for record in self._refresh.values():
            record.dead = True


async def serve_forever(sim: Simulator, port: int = 0, host: str = "127.0.0.1") -> None:
    """Run a simulator until cancelled (the `simulate` CLI command)."""
    url = await sim.start(port=port, host=host)
    # One JSON line first (tools and benchmarks read it), then a line for people.
    info: dict[str, Any] = {"platform": sim.platform, "store_url": url, "credentials": sim.credentials()}
    app = sim.app_credentials()
    if app is not None:
        # What GATEWAY_<PLATFORM>_CLIENT_ID / _CLIENT_SECRET / _AUTH_URL must be to connect through its screens.
        info["app"] = {**app, "auth_url": sim.base_url, "install_store": sim.install_store}
    print(json.dumps(info), flush=True)
    print(f"{sim.platform} simulator at {url} (control endpoints under {sim.base_url}/_sim/)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
