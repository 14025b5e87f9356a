"""The toy platform with an install flow: the smallest plugin that offers one (and webhook repair).

The flow is gateway.installflow.OAuth2CodeFlow with two settings; the simulator adds the platform's
side to the toy store:
    GET  /oauth/authorize?response_type=code&client_id&redirect_uri&scope&state   the consent screen
    POST /oauth/authorize                        Approve -> redirect_uri?code&state; Deny -> ?error=access_denied&state
    POST /oauth/token (form)                     authorization_code and refresh_token grants; tokens
                                                 expire after `token_ttl` seconds and rotate
    GET  /api/hooks, PUT /api/hooks/{id} {"active": true}    hooks with an `active` flag; three failed
                                                 deliveries in a row deactivate one
The gateway's own tests use it; `alana-gateway new-plugin` writes the same shape.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from gateway.adapter import (
    Connection,
    ConnectMethod,
    HookState,
    HookStatus,
    WebhookRegistration,
    WebhookRepair,
)
from gateway.installflow import FlowConfig, InstallFlow, OAuth2CodeFlow, TokenSet
from gateway.simkit import AuthCodes, Hook, ScreenError, TokenStore, consent_page, found, message_page
from gateway.testing.toy import ToyAdapter, ToySimulator

#: Consecutive failed deliveries after which the toy store deactivates a hook.
FAILURES_BEFORE_DEACTIVATION = 3


class ToyInstallFlow(OAuth2CodeFlow):
    platform = "toy"
    scopes = ("products:read", "hooks:write")
    refreshes_tokens = True

    def credentials_from(self, payload: Mapping[str, Any], previous: TokenSet | None) -> dict[str, str]:
        # Keyed like the adapter's credential field ("token"), plus the refresh token.
        found = super().credentials_from(payload, previous)
        return {
            "token": found["access_token"],
            **({"refresh_token": found["refresh_token"]} if "refresh_token" in found else {}),
        }


class ToyAppAdapter(ToyAdapter):
    info = dataclasses.replace(ToyAdapter.info, connect_methods=(ConnectMethod.CREDENTIALS, ConnectMethod.INSTALL_FLOW))

    def install_flow(self, config: FlowConfig) -> InstallFlow | None:
        return ToyInstallFlow(config) if config.app.configured else None

    async def webhook_status(
        self, conn: Connection, registration: WebhookRegistration, callback_url: str
    ) -> list[HookStatus]:
        hooks = (await self.client(conn).get_json("/api/hooks"))["hooks"]
        ours = [h for h in hooks if h["url"] == callback_url]
        if not ours:
            return [HookStatus("product", HookState.MISSING, None, "the hook is gone")]
        hook = ours[0]
        if not hook["active"]:
            return [HookStatus("product", HookState.DISABLED, str(hook["id"]), "deactivated after failed deliveries")]
        return [HookStatus("product", HookState.ACTIVE, str(hook["id"]))]

    async def repair_webhooks(
        self, conn: Connection, registration: WebhookRegistration, callback_url: str
    ) -> WebhookRepair:
        repaired: list[HookStatus] = []
        hook_ids: list[str] = []
        for status in await self.webhook_status(conn, registration, callback_url):
            if status.state is HookState.DISABLED and status.hook_id:
                await self.client(conn).request("PUT", f"/api/hooks/{status.hook_id}", json_body={"active": True})
                hook_ids.append(status.hook_id)
            elif status.state is HookState.MISSING:
                body = {"url": callback_url, "secret": registration.secrets["hook_secret"]}
                hook_ids.append(
                    str((await self.client(conn).request("POST", "/api/hooks", json_body=body)).json()["id"])
                )
            else:
                hook_ids.append(str(status.hook_id))
                continue
            repaired.append(status)
        return WebhookRepair(WebhookRegistration(tuple(hook_ids), dict(registration.secrets)), tuple(repaired))

    @classmethod
    def simulator(cls) -> type[ToyAppSimulator]:
        return ToyAppSimulator


class ToyAppSimulator(ToySimulator):
    """The toy store, playing the toy platform's OAuth side too (see the module docstring)."""

    conformance_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, products: int = 100, *, seed: int = 1, **options: Any) -> None:
        super().__init__(products, seed=seed, **options)
        self.client_id = "toy-client"
        self.client_secret = "toy-secret-0123456789abcdef0123456789"
        self.codes = AuthCodes()
        self.tokens = TokenStore(prefix="toy_", access_ttl=float(options.get("token_ttl", 3600)))
        self.static_valid = True
        self.active: dict[str, bool] = {}
        self.failures: dict[str, int] = {}

    def app_credentials(self) -> dict[str, str]:
        return {"client_id": self.client_id, "client_secret": self.client_secret}

    def revoke_credentials(self) -> None:
        self.static_valid = False
        self.tokens.revoke_all()

    def _authorized(self, request: web.Request) -> bool:
        token = request.headers.get("X-Toy-Token", "")
        if self.static_valid and hmac.compare_digest(token, self.token):
            return True
        return self.tokens.accepts(token)

    def build_routes(self, app: web.Application) -> None:
        super().build_routes(app)
        app.router.add_get("/oauth/authorize", self._screen)
        app.router.add_post("/oauth/authorize", self._decision)
        app.router.add_post("/oauth/token", self._token)
        app.router.add_get("/api/hooks", self._list_hooks)
        app.router.add_put("/api/hooks/{id}", self._update_hook)

    # ---- the consent screen -------------------------------------------------------------------------
    def _check(self, query: Mapping[str, str]) -> None:
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            raise ScreenError("unknown client or response type")
        if not query.get("redirect_uri"):
            raise ScreenError("no redirect_uri")

    async def _screen(self, request: web.Request) -> web.Response:
        try:
            self._check(request.query)
        except ScreenError as exc:
            return message_page("Toy", "Error", exc.message, exc.status)
        return consent_page(
            platform="Toy",
            title="Authorize app",
            app_name="Alana",
            store_name="the toy store",
            permissions=request.query.get("scope", "").split(),
            action="/oauth/authorize",
            fields=dict(request.query),
        )

    async def _decision(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        try:
            location = self.decide(form, form.get("decision") == "approve")
        except ScreenError as exc:
            return message_page("Toy", "Error", exc.message, exc.status)
        return found(location)

    def decide(self, query: Mapping[str, str], approve: bool) -> str:
        self._check(query)
        redirect, state = query["redirect_uri"], query.get("state", "")
        if not approve:
            return f"{redirect}?error=access_denied&state={state}"
        code = self.codes.issue(scope=query.get("scope", ""), redirect_uri=redirect)
        return f"{redirect}?code={code}&state={state}"

    async def connect_decision(self, authorize_url: str, approve: bool) -> str | None:
        return self.decide(dict(parse_qsl(urlsplit(authorize_url).query)), approve)

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") == "refresh_token":
            issued = self.tokens.refresh(form.get("refresh_token", ""))
        else:
            grant = self.codes.redeem(form.get("code", ""))
            ok = grant is not None and grant["redirect_uri"] == form.get("redirect_uri")
            issued = self.tokens.issue(str(grant["scope"]).split()) if ok and grant else None
        if issued is None:
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = self.tokens.clock()
        return web.json_response(
            {
                "access_token": issued.access_token,
                "token_type": "bearer",
                "expires_in": issued.expires_in(now),
                "refresh_token": issued.refresh_token,
                "scope": " ".join(issued.scopes),
            }
        )

    # ---- hooks that deactivate ------------------------------------------------------------------------
    async def _add_hook(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "bad token"}, status=401)
        body = await request.json()
        hook_id = str(max([int(h) for h in self.hooks] + [0]) + 1)
        self.hooks[hook_id] = Hook(hook_id, "product", body["url"], secret=body.get("secret") or f"s{hook_id}x" * 8)
        self.active[hook_id] = True
        return web.json_response({"id": hook_id, "secret": self.hooks[hook_id].secret}, status=201)

    async def _list_hooks(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "bad token"}, status=401)
        rows = [{"id": h.id, "url": h.destination, "active": self.active.get(h.id, True)} for h in self.hooks.values()]
        return web.json_response({"hooks": rows})

    async def _update_hook(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "bad token"}, status=401)
        hook_id = request.match_info["id"]
        if hook_id not in self.hooks:
            return web.json_response({"error": "no such hook"}, status=404)
        self.active[hook_id] = bool((await request.json()).get("active"))
        self.failures[hook_id] = 0
        return web.json_response({"id": hook_id, "active": self.active[hook_id]})

    def _notify(self, event: str, product: dict[str, Any]) -> None:
        body = json.dumps({"event": event, "product": product}).encode()
        for hook in list(self.hooks.values()):
            if not self.active.get(hook.id, True):
                continue
            signature = hmac.new(hook.secret.encode(), body, "sha256").hexdigest()
            headers = {"X-Toy-Delivery": secrets.token_hex(8), "X-Toy-Signature": signature}
            self.deliver(hook.destination, body, headers, on_result=functools.partial(self._result, hook.id))

    def _result(self, hook_id: str, status: int | None) -> None:
        if status is not None and 200 <= status < 300:
            self.failures[hook_id] = 0
            return
        self.failures[hook_id] = self.failures.get(hook_id, 0) + 1
        if self.failures[hook_id] >= FAILURES_BEFORE_DEACTIVATION:
            self.active[hook_id] = False
