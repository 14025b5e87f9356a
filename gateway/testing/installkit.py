"""The harness the install-flow checks (conformance_install.py) and plugin tests drive a flow with.

- `GatewayStandIn`: a real HTTP server on 127.0.0.1 with the gateway's connect paths (docs/reference/
  RUNTIME.md: /connect/{platform}/start/{id}, /connect/{platform}/callback, /apps/{platform}/{event},
  /webhooks/{platform}/app) doing the core's part the simplest way: attempts in memory, single-use
  state, the browser bound by a cookie, the code exchanged once, the credentials checked with
  `check_credentials`, the browser sent to a return page with `connectAttempt` and `status`. It
  records every request the platform made, so a check can replay or tamper with them.
- `Browser`: what a merchant's browser does: follows redirects, keeps cookies, submits the forms of
  the platform's screens.
- `FlowKit`: the simulator, the stand-in, the flow built for them, and a browser, closed together.

This is test scaffolding, not the gateway's connect service: it keeps nothing across processes.
"""

from __future__ import annotations

import html.parser
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway.adapter import Connection, PlatformAdapter
from gateway.errors import GatewayError, StoreError
from gateway.httpclient import HttpClient
from gateway.installflow import (
    AppCredentials,
    AppEndpoints,
    AuthorizeRedirect,
    Declined,
    FlowConfig,
    FlowRequest,
    Granted,
    Installation,
    InstallFlow,
    LifecycleEvent,
    Rejected,
    Returned,
    new_state,
)
from gateway.simkit import Simulator, free_port

COOKIE = "alana_connect"


def fast_client(base_url: str, **kwargs: Any) -> HttpClient:
    """An HttpClient with the backoff the suite uses (faults stay quick), allowed to reach the simulators on
    127.0.0.1 (the outbound guard refuses private addresses unless told otherwise)."""
    return HttpClient(base_url, **{"backoff_base": 0.01, "backoff_cap": 0.05, "allow_private": True, **kwargs})


# ---- the gateway's side ---------------------------------------------------------------------------------
@dataclass
class Attempt:
    id: str
    state: str
    redirect: AuthorizeRedirect
    status: str = "PENDING"
    error: str | None = None
    installation: Installation | None = None
    completions: int = 0


@dataclass
class Recorded:
    """One request the platform (or the browser) made to the stand-in, and what the flow made of it."""

    endpoint: str
    request: FlowRequest
    outcome: Any
    answered: int


class GatewayStandIn:
    """The gateway's connect endpoints for one platform, backed by an InstallFlow (see the module doc)."""

    def __init__(self, adapter: PlatformAdapter, *, fail_product_webhooks: bool = False) -> None:
        self.adapter = adapter
        self.platform = adapter.info.id
        self.flow: InstallFlow | None = None
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.attempts: dict[str, Attempt] = {}
        self.pending_installs: list[Installation] = []
        self.recorded: list[Recorded] = []
        self.lifecycle: list[LifecycleEvent] = []
        self.returns: list[dict[str, str]] = []
        #: Product webhooks arriving at /webhooks/{platform}/{integration}; answered 500 while failing.
        self.product_deliveries: list[tuple[CIMultiDict[str], bytes]] = []
        self.fail_product_webhooks = fail_product_webhooks
        self._runner: web.AppRunner | None = None
        self._clients: list[HttpClient] = []

    @property
    def endpoints(self) -> AppEndpoints:
        return AppEndpoints.for_gateway(self.base_url, self.platform)

    @property
    def return_url(self) -> str:
        return f"{self.base_url}/return"

    def product_webhook_url(self, integration_id: str = "it") -> str:
        return f"{self.base_url}/webhooks/{self.platform}/{integration_id}"

    def client(self) -> HttpClient:
        made = fast_client(self.base_url)
        self._clients.append(made)
        return made

    async def start(self) -> None:
        app = web.Application()
        p = self.platform
        app.router.add_get(f"/connect/{p}/start/{{attempt}}", self._start)
        app.router.add_route("*", f"/connect/{p}/callback", self._callback)
        app.router.add_get(f"/apps/{p}/{{event}}", self._app_event)
        app.router.add_post(f"/webhooks/{p}/app", self._app_webhook)
        app.router.add_post(f"/webhooks/{p}/{{integration}}", self._product_webhook)
        app.router.add_get("/return", self._return)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- beginConnect ----------------------------------------------------------------------------
    def begin(self, store: str | None) -> Attempt:
        """What beginConnect does: a new attempt with a single-use state, and the flow's redirect."""
        assert self.flow is not None, "set GatewayStandIn.flow first"
        state = new_state()
        attempt = Attempt(id=secrets.token_hex(8), state=state, redirect=self.flow.authorize(state, store))
        self.attempts[attempt.id] = attempt
        return attempt

    def start_url(self, attempt: Attempt) -> str:
        return f"{self.base_url}/connect/{self.platform}/start/{attempt.id}"

    def by_state(self, state: str | None) -> Attempt | None:
        return next((a for a in self.attempts.values() if state is not None and a.state == state), None)

    def records(self, endpoint: str) -> list[Recorded]:
        return [r for r in self.recorded if r.endpoint == endpoint]

    # ---- handlers ----------------------------------------------------------------------------------
    async def _start(self, request: web.Request) -> web.StreamResponse:
        attempt = self.attempts.get(request.match_info["attempt"])
        if attempt is None or attempt.status != "PENDING":
            return web.Response(status=404, text="no such connect attempt")
        response = web.Response(status=302, headers={"Location": attempt.redirect.url})
        response.set_cookie(COOKIE, attempt.id, httponly=True, samesite="Lax")
        return response

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        assert self.flow is not None
        flow_request = FlowRequest.of(request.method, request.query.items(), request.headers, await request.read())
        outcome = self.flow.verify_callback(flow_request)
        response = await self._settle(outcome, request.cookies.get(COOKIE))
        self.recorded.append(Recorded("callback", flow_request, outcome, response.status))
        return response

    async def _settle(self, outcome: Any, bound: str | None) -> web.StreamResponse:
        assert self.flow is not None
        if isinstance(outcome, Rejected):
            return web.Response(status=outcome.status, text=outcome.message)
        attempt = self.by_state(outcome.correlation) if outcome.correlation else self.attempts.get(bound or "")
        if isinstance(outcome, Declined):
            if attempt is not None and attempt.status == "PENDING":
                attempt.status, attempt.error = "FAILED", outcome.message
            return self._land(outcome, attempt, connected=False)
        if isinstance(outcome, Returned):
            return self._land(outcome, attempt, connected=attempt is not None and attempt.status == "CONNECTED")
        assert isinstance(outcome, Granted)
        if attempt is None and outcome.correlation is not None:
            return web.Response(status=404, text="no connect attempt has this state")
        if attempt is not None and attempt.status != "PENDING":
            return web.Response(status=409, text="this connect attempt has already ended")
        try:
            installation = await self.flow.complete(
                outcome, self.client(), store_url=attempt.redirect.store_url if attempt else None
            )
            await self.check(installation)
        except (GatewayError, StoreError) as exc:
            if attempt is not None:
                attempt.status, attempt.error = "FAILED", str(exc)
            if not outcome.browser:
                return web.Response(status=400, text=str(exc))
            return self._land(outcome, attempt, connected=False)
        if attempt is None:
            self.pending_installs.append(installation)
        else:
            attempt.status, attempt.installation = "CONNECTED", installation
            attempt.completions += 1
        if not outcome.browser:
            return web.Response(status=outcome.reply_status)
        return self._land(outcome, attempt, connected=True)

    async def check(self, installation: Installation) -> None:
        conn = Connection(
            integration_id="stand-in",
            store_url=installation.store_url,
            credentials=dict(installation.tokens.credentials),
            http_factory=fast_client,
        )
        try:
            await self.adapter.check_credentials(conn)
        finally:
            await conn.close()

    def _land(
        self, outcome: Granted | Returned | Declined, attempt: Attempt | None, *, connected: bool
    ) -> web.Response:
        assert self.flow is not None
        target = self.flow.landing_url(outcome, connected=connected)
        if target is None:
            status = attempt.status if attempt is not None else ("CONNECTED" if connected else "FAILED")
            query = {"connectAttempt": attempt.id if attempt else "", "status": status}
            target = f"{self.return_url}?{urlencode(query)}"
        return web.Response(status=302, headers={"Location": target})

    async def _app_event(self, request: web.Request) -> web.StreamResponse:
        assert self.flow is not None
        flow_request = FlowRequest.of("GET", request.query.items(), request.headers)
        outcome = self.flow.verify_app_request(request.match_info["event"], flow_request)
        status = outcome.status if isinstance(outcome, Rejected) else 200
        if isinstance(outcome, LifecycleEvent):
            self.lifecycle.append(outcome)
        self.recorded.append(Recorded(f"app:{request.match_info['event']}", flow_request, outcome, status))
        return web.Response(status=status, text="ok" if status == 200 else "refused")

    async def _app_webhook(self, request: web.Request) -> web.StreamResponse:
        assert self.flow is not None
        flow_request = FlowRequest.of("POST", request.query.items(), request.headers, await request.read())
        outcome = self.flow.verify_app_webhook(flow_request)
        status = outcome.status if isinstance(outcome, Rejected) else 200
        if isinstance(outcome, LifecycleEvent):
            self.lifecycle.append(outcome)
        self.recorded.append(Recorded("app-webhook", flow_request, outcome, status))
        return web.Response(status=status)

    async def _product_webhook(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.fail_product_webhooks:
            return web.Response(status=500)
        self.product_deliveries.append((CIMultiDict(request.headers), body))
        return web.Response(status=200)

    async def _return(self, request: web.Request) -> web.StreamResponse:
        self.returns.append(dict(request.query))
        return web.Response(text=f"connect {request.query.get('status', '')}", content_type="text/plain")


# ---- the merchant's browser --------------------------------------------------------------------------------
@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Page:
    url: str
    status: int
    text: str
    location: str | None
    forms: list[Form]
    #: Every URL the browser was sent through to get here (redirects included).
    trail: list[str] = field(default_factory=list)


class _FormParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(action=found.get("action", ""), method=found.get("method", "get").upper()))
        elif self.forms and tag == "input" and found.get("type", "text") != "submit" and found.get("name"):
            self.forms[-1].fields[found["name"]] = found.get("value", "")
        elif self.forms and tag in ("button", "input") and found.get("name"):
            self.forms[-1].buttons.append((found["name"], found.get("value", "")))


class Browser:
    """A browser as far as install flows go: cookies, redirects (each inspected), HTML forms."""

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.session.close()

    async def open(
        self, url: str, *, method: str = "GET", data: Mapping[str, str] | None = None, follow: bool = True
    ) -> Page:
        """Request `url` and, with `follow`, every redirect after it (at most 10), like a browser."""
        trail: list[str] = []
        for _ in range(10):
            trail.append(url)
            async with self.session.request(method, url, data=data, allow_redirects=False) as response:
                text = await response.text(errors="replace")
                location = response.headers.get("Location")
                page = Page(url, response.status, text, urljoin(url, location) if location else None, [], trail)
            if not (follow and page.location and page.status in (301, 302, 303, 307)):
                parser = _FormParser()
                parser.feed(page.text)
                page.forms = [Form(urljoin(url, f.action or url), f.method, f.fields, f.buttons) for f in parser.forms]
                return page
            url, method, data = page.location, "GET", None
        raise AssertionError(f"more than 10 redirects from {trail[0]}")

    async def choose(self, page: Page, value: str, *, follow: bool = True) -> Page:
        """Press the button whose value is `value` ("approve", "deny") on the page's form."""
        for form in page.forms:
            for name, button_value in form.buttons:
                if button_value == value:
                    return await self.open(
                        form.action, method=form.method, data={**form.fields, name: button_value}, follow=follow
                    )
        raise AssertionError(f"no {value!r} button on {page.url} (forms: {page.forms})")


# ---- everything together ------------------------------------------------------------------------------------
class FlowKit:
    """A simulator playing the platform, a stand-in playing the gateway, the flow between them, a browser."""

    def __init__(self, adapter: PlatformAdapter, sim: Simulator, *, app: AppCredentials | None = None) -> None:
        self.adapter = adapter
        self.sim = sim
        self.gateway = GatewayStandIn(adapter)
        self.browser = Browser()
        self._app = app

    @property
    def app(self) -> AppCredentials:
        if self._app is not None:
            return self._app
        creds = self.sim.app_credentials() or {}
        return AppCredentials(
            client_id=creds.get("client_id", ""),
            client_secret=creds.get("client_secret", ""),
            auth_url=self.sim.base_url,
        )

    def config(self, app: AppCredentials | None = None) -> FlowConfig:
        return FlowConfig(app=app or self.app, endpoints=self.gateway.endpoints, allow_private_urls=True)

    def build(self, app: AppCredentials | None = None) -> InstallFlow | None:
        return self.adapter.install_flow(self.config(app))

    async def start(self) -> InstallFlow | None:
        await self.gateway.start()
        flow = self.build()
        self.gateway.flow = flow
        if flow is not None:
            self.sim.register_app(flow.app_registration())
        return flow

    @property
    def flow(self) -> InstallFlow:
        assert self.gateway.flow is not None, "the adapter built no install flow"
        return self.gateway.flow

    def begin(self) -> Attempt:
        return self.gateway.begin(self.sim.install_store)

    async def connect(self, *, approve: bool = True) -> tuple[Attempt, Page]:
        """The whole flow in the browser: start, the platform's screen, the merchant's choice, callbacks."""
        attempt = self.begin()
        screen = await self.browser.open(self.gateway.start_url(attempt))
        return attempt, await self.browser.choose(screen, "approve" if approve else "deny")

    async def decide(self, attempt: Attempt, *, approve: bool) -> str | None:
        """The control route's decision (no browser): where the platform would send the browser."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.sim.base_url}/_sim/connect/{'approve' if approve else 'deny'}",
                json={"url": attempt.redirect.url},
            ) as response,
        ):
            body = await response.json()
            if response.status != 200:
                raise AssertionError(f"the simulator refused the decision: {body}")
            location = body.get("location")
            return str(location) if location else None

    def connection(self, installation: Installation, **options: Any) -> Connection:
        return Connection(
            integration_id="flowkit",
            store_url=installation.store_url,
            credentials=dict(installation.tokens.credentials),
            http_factory=fast_client,
            options=options,
        )

    async def aclose(self) -> None:
        await self.browser.close()
        await self.gateway.close()

    async def __aenter__(self) -> FlowKit:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
