"""The simulated shop's app side: Shopify's grant screen, token endpoint and app lifecycle.

What it plays (docs/reference/CONNECT-FACTS.md section 1):
- `GET /admin/oauth/authorize?client_id&scope&redirect_uri&state`: the grant screen, a real page
  with Install / Cancel buttons. An unknown client_id, a scope Shopify does not have or a redirect_uri
  the app did not register (when it registered any, `register_app`) gets Shopify's error page.
  Install sends the browser to `redirect_uri?code&hmac&host&shop&state&timestamp` (signed with the
  app's client secret); Cancel goes back to the shop's admin, so the app hears nothing.
- `POST /admin/oauth/access_token` (JSON or form): the code grant (single-use codes, 10 minutes;
  `expiring: "1"` gives a 60-minute access token with a rotating refresh token) and the refresh grant
  (TokenStore: the previous refresh token stays usable until its replacement is used; unknown,
  superseded or revoked ones get 400 invalid_grant).
- App events (`app_event`): `install` (the App URL install request a browser opens, signed),
  `uninstall` (every app token dies, the app's webhook subscriptions go, APP_UNINSTALLED is delivered
  to the registered app_uninstalled_webhook_url), and the compliance topics `customers/data_request`,
  `customers/redact`, `shop/redact` (delivered to compliance_webhooks_url), all HMAC-signed.
Options: client_id, client_secret (the app's; it also signs webhooks), token_ttl (3600),
refresh_ttl (90 days), previous_refresh_grace (30 days).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

from alana_shopify.install import sign_query
from alana_shopify.webhooks import sign
from gateway.simkit import AuthCodes, ScreenError, TokenStore, consent_page, found, message_page

if TYPE_CHECKING:
    from alana_shopify.simulator import ShopifySimulator

PLATFORM = "Shopify"
#: The access scopes the simulated Shopify knows, with what its grant screen says about each.
KNOWN_SCOPES = {
    "read_products": "View products, variants and collections",
    "write_products": "Manage products, variants and collections",
    "read_inventory": "View inventory and locations",
    "read_translations": "View translations",
    "read_locales": "View available locales",
    "read_markets_home": "View markets",
}
APP_EVENTS = frozenset({"install", "uninstall", "customers/data_request", "customers/redact", "shop/redact"})


class ShopifyAppSide:
    """Shopify's OAuth and app-lifecycle endpoints for one simulated shop."""

    def __init__(self, sim: ShopifySimulator, options: Mapping[str, Any]) -> None:
        self.sim = sim
        self.client_id = str(options.get("client_id") or f"sim-client-{sim.seed}")
        self.codes = AuthCodes(ttl=600.0)
        self.tokens = TokenStore(
            prefix="shpat_",
            access_ttl=float(options.get("token_ttl", 3600)),
            refresh_ttl=float(options.get("refresh_ttl", 90 * 86400)),
            previous_grace=float(options.get("previous_refresh_grace", 30 * 86400)),
        )
        #: Whether the pasted custom-app token (ShopifySimulator.access_token) still works.
        self.static_token_valid = True
        self.installed = False
        #: Test lever: the Admin API refuses the tokens the app is issued (a store that rejects them).
        self.reject_issued = False

    # ---- tokens the Admin API accepts --------------------------------------------------------------
    def accepts(self, token: str | None) -> bool:
        if token and token == self.sim.access_token:
            return self.static_token_valid
        return not self.reject_issued and self.tokens.accepts(token)

    # ---- routes --------------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/oauth/authorize", self._authorize_page)
        app.router.add_post("/admin/oauth/authorize/decision", self._decision)
        app.router.add_get("/admin/apps", self._admin_apps)
        app.router.add_post("/admin/oauth/access_token", self._access_token)

    def _check(self, query: Mapping[str, str]) -> list[str]:
        """The authorize request's scopes; ScreenError for one Shopify would refuse."""
        if query.get("client_id") != self.client_id:
            raise ScreenError("Oauth error invalid_request: The client_id provided is invalid", status=400)
        redirect = query.get("redirect_uri") or ""
        if urlsplit(redirect).scheme not in ("http", "https"):
            raise ScreenError("Oauth error invalid_request: The redirect_uri is missing or not a URL", status=400)
        allowed = [u for u in self.sim.app_settings.get("redirect_urls", "").split(",") if u.strip()]
        if allowed and redirect not in (u.strip() for u in allowed):
            raise ScreenError("Oauth error invalid_request: The redirect_uri is not whitelisted", status=400)
        scopes = [s for s in (query.get("scope") or "").split(",") if s]
        unknown = [s for s in scopes if s not in KNOWN_SCOPES]
        if unknown:
            raise ScreenError(f"Oauth error invalid_scope: {', '.join(unknown)}", status=400)
        return scopes

    async def _authorize_page(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        try:
            scopes = self._check(query)
        except ScreenError as exc:
            return message_page(PLATFORM, "Oauth error", exc.message, exc.status)
        return consent_page(
            platform=PLATFORM,
            title="Install app",
            app_name=self.sim.app_settings.get("app_name", "Alana"),
            store_name=self.sim.shop_domain,
            permissions=[KNOWN_SCOPES[s] for s in scopes],
            action="/admin/oauth/authorize/decision",
            fields={k: query[k] for k in ("client_id", "scope", "redirect_uri", "state") if k in query},
            approve_label="Install",
            deny_label="Cancel",
        )

    async def _decision(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        query = {k: str(v) for k, v in form.items() if k != "decision"}
        try:
            location = self.decide(query, form.get("decision") == "approve")
        except ScreenError as exc:
            return message_page(PLATFORM, "Oauth error", exc.message, exc.status)
        return found(location or f"{self.sim.base_url}/admin/apps")

    async def _admin_apps(self, request: web.Request) -> web.Response:
        return message_page(PLATFORM, "Apps", "The app was not installed.")

    def decide(self, query: Mapping[str, str], approve: bool) -> str | None:
        """Where the browser goes after Install (the signed redirect) or Cancel (nowhere the app sees)."""
        scopes = self._check(query)
        if not approve:
            return None
        code = self.codes.issue(client_id=self.client_id, scopes=scopes)
        params = {
            "code": code,
            "host": base64.b64encode(f"admin.shopify.com/store/{self.store_handle}".encode()).decode().rstrip("="),
            "shop": self.sim.shop_domain,
            "timestamp": str(int(time.time())),
        }
        if query.get("state"):
            params["state"] = query["state"]
        signed = sign_query(params, self.sim.client_secret)
        redirect = query["redirect_uri"]
        return f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(signed)}"

    @property
    def store_handle(self) -> str:
        return self.sim.shop_domain.split(".", 1)[0]

    async def _access_token(self, request: web.Request) -> web.Response:
        body = await _body(request)
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.sim.client_secret:
            return web.json_response(
                {"error": "invalid_client", "error_description": "Client credentials are invalid"}, status=401
            )
        if body.get("grant_type") == "refresh_token":
            issued = self.tokens.refresh(str(body.get("refresh_token") or ""))
            if issued is None:
                return web.json_response(
                    {
                        "error": "invalid_grant",
                        "error_description": "The refresh token is invalid, expired, revoked or was already replaced.",
                    },
                    status=400,
                )
        else:
            grant = self.codes.redeem(str(body.get("code") or ""))
            if grant is None:
                return web.json_response(
                    {
                        "error": "invalid_request",
                        "error_description": "The authorization code was not found or was already used",
                    },
                    status=400,
                )
            expiring = str(body.get("expiring", "0")) == "1"
            issued = self.tokens.issue(grant["scopes"], expiring=expiring)
            self.installed = True
        now = self.tokens.clock()  # after issuing: expires_in is the whole lifetime, not a second less
        payload: dict[str, Any] = {"access_token": issued.access_token, "scope": ",".join(issued.scopes)}
        if issued.refresh_token is not None:
            payload.update(
                expires_in=issued.expires_in(now),
                refresh_token=issued.refresh_token,
                refresh_token_expires_in=issued.refresh_expires_in(now),
            )
        return web.json_response(payload)

    # ---- lifecycle ----------------------------------------------------------------------------
    def event(self, event: str, **params: Any) -> str | None:
        if event == "install":
            url = self.sim.app_settings.get("application_url")
            if not url:
                raise ScreenError("register the app's application_url first (register_app)", status=409)
            query = {
                "host": base64.b64encode(f"admin.shopify.com/store/{self.store_handle}".encode()).decode().rstrip("="),
                "shop": self.sim.shop_domain,
                "timestamp": str(int(time.time())),
            }
            return f"{url}?{urlencode(sign_query(query, self.sim.client_secret))}"
        if event == "uninstall":
            self.uninstall()
            return None
        if event in ("customers/data_request", "customers/redact", "shop/redact"):
            self.send_app_webhook("compliance_webhooks_url", event, self._compliance_body(event, params))
            return None
        raise ScreenError(f"Shopify has no app event {event!r}", status=404)

    def uninstall(self) -> None:
        """The merchant removes the app: its tokens die, its subscriptions go, APP_UNINSTALLED is sent."""
        self.tokens.revoke_all()
        self.installed = False
        self.sim.hooks.clear()
        shop = self.sim.shop_view()
        body = {"id": 1, "name": shop["name"], "email": shop["email"], "domain": self.sim.shop_domain}
        self.send_app_webhook("app_uninstalled_webhook_url", "app/uninstalled", body)

    def revoke(self) -> None:
        self.static_token_valid = False
        self.tokens.revoke_all()

    def _compliance_body(self, topic: str, params: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"shop_id": 1, "shop_domain": self.sim.shop_domain}
        customer = {"id": int(params.get("customer_id", 4242)), "email": "customer@example.com", "phone": "555-0100"}
        if topic == "customers/data_request":
            body.update(orders_requested=[101, 102], customer=customer, data_request={"id": 9999})
        elif topic == "customers/redact":
            body.update(customer=customer, orders_to_redact=[101])
        return body

    def send_app_webhook(self, setting: str, topic: str, body: Mapping[str, Any]) -> None:
        url = self.sim.app_settings.get(setting)
        if not url:
            return
        raw = json.dumps(body).encode()
        now = datetime.now(UTC)
        self.sim.deliver(
            url,
            raw,
            {
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": sign(self.sim.client_secret, raw),
                "X-Shopify-Shop-Domain": self.sim.shop_domain,
                "X-Shopify-API-Version": "2026-01",
                "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                "X-Shopify-Triggered-At": now.isoformat().replace("+00:00", "Z"),
            },
        )


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if request.content_type == "application/json":
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return dict(parse_qsl(raw.decode("utf-8", "replace")))
