"""The simulated store's app side: BigCommerce's single-click app install, token endpoint and callbacks.

What it plays (docs/reference/CONNECT-FACTS.md section 2), on the simulator's own host standing in for
login.bigcommerce.com:
- `GET /app/{client_id}/install`: the install screen (Install / Cancel). Install opens the app's
  registered auth callback (`register_app`'s auth_callback_url) in the browser with `account_uuid,
  code, context=stores/{hash}, scope, external_install=1`; Cancel leaves the merchant on BigCommerce.
  `/app/{client_id}/install/succeeded` and `/failed` are the pages an external install ends on.
- `POST /oauth2/token`, JSON or form-encoded (the official Python client sends a form): single-use
  codes bound to the store and the registered redirect_uri; a token that does not expire, with the
  user, the owner and the context.
- App events (`app_event`): `load` (a URL the browser opens, with a signed_payload_jwt), `uninstall`
  (the app's token dies, its hooks are deleted, the uninstall callback is called server to server)
  and `remove_user` (user_id=...). The JWT: HS256 with the client secret, aud = client id, iss "bc",
  iat = nbf, exp = nbf + 24 h, a jti, sub = stores/{hash}, user, owner, url, channel_id.
Options: client_id, account_uuid.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from aiohttp import web

from gateway.simkit import AuthCodes, ScreenError, TokenStore, consent_page, found, message_page

if TYPE_CHECKING:
    from alana_bigcommerce.simulator import BigCommerceSimulator

PLATFORM = "BigCommerce"
SCOPES = ("store_v2_products_read_only", "store_v2_information_read_only")
SCOPE_NAMES = {
    "store_v2_products_read_only": "Products: read-only",
    "store_v2_information_read_only": "Information & settings: read-only",
}
APP_EVENTS = frozenset({"load", "uninstall", "remove_user"})
OWNER = {"id": 9001, "username": "owner", "email": "owner@example.com"}


class BigCommerceAppSide:
    def __init__(self, sim: BigCommerceSimulator, options: Mapping[str, Any]) -> None:
        self.sim = sim
        self.client_id = str(options.get("client_id") or f"simbcclient{sim.seed}")
        self.account_uuid = str(options.get("account_uuid") or uuid.UUID(int=sim.seed))
        self.codes = AuthCodes(ttl=600.0)
        # BigCommerce's app tokens do not expire.
        self.tokens = TokenStore(prefix="bc")
        self.static_token_valid = True
        self.installed = False
        #: Test lever: the API refuses the tokens the app is issued (a store that rejects them).
        self.reject_issued = False

    def accepts(self, token: str | None) -> bool:
        if token and token == self.sim.access_token:
            return self.static_token_valid
        return not self.reject_issued and self.tokens.accepts(token)

    # ---- routes -------------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/app/{client_id}/install", self._install_page)
        app.router.add_post("/app/{client_id}/install", self._decision)
        app.router.add_get("/app/{client_id}/install/{outcome:succeeded|failed}", self._outcome)
        app.router.add_post("/oauth2/token", self._token)

    def _check(self, client_id: str) -> str:
        if client_id != self.client_id:
            raise ScreenError("This app does not exist or is not available.", status=404)
        callback = self.sim.app_settings.get("auth_callback_url")
        if not callback:
            raise ScreenError("The app has no auth callback URL; the developer must set one.", status=409)
        return callback

    async def _install_page(self, request: web.Request) -> web.Response:
        try:
            self._check(request.match_info["client_id"])
        except ScreenError as exc:
            return message_page(PLATFORM, "Install app", exc.message, exc.status)
        return consent_page(
            platform=PLATFORM,
            title="Install app",
            app_name=self.sim.app_settings.get("app_name", "Alana"),
            store_name=f"Simulated BigCommerce Store (stores/{self.sim.store_hash})",
            permissions=[SCOPE_NAMES[s] for s in SCOPES],
            action=f"/app/{self.client_id}/install",
            fields={},
            approve_label="Install",
            deny_label="Cancel",
        )

    async def _decision(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            location = self.decide(request.match_info["client_id"], form.get("decision") == "approve")
        except ScreenError as exc:
            return message_page(PLATFORM, "Install app", exc.message, exc.status)
        if location is None:
            return message_page(PLATFORM, "Install app", "The installation was cancelled.")
        return found(location)

    async def _outcome(self, request: web.Request) -> web.Response:
        if request.match_info["outcome"] == "succeeded":
            return message_page(PLATFORM, "App installed", "The app was installed. You can close this window.")
        return message_page(PLATFORM, "Installation failed", "The app could not be installed.", status=200)

    def decide(self, client_id: str, approve: bool) -> str | None:
        callback = self._check(client_id)
        if not approve:
            return None
        scope = " ".join(SCOPES)
        code = self.codes.issue(context=f"stores/{self.sim.store_hash}", scope=scope, redirect_uri=callback)
        params = {
            "account_uuid": self.account_uuid,
            "code": code,
            "context": f"stores/{self.sim.store_hash}",
            "scope": scope,
            "external_install": "1",
        }
        return f"{callback}{'&' if '?' in callback else '?'}{urlencode(params)}"

    async def _token(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body: dict[str, Any]
        if request.content_type == "application/json":
            try:
                parsed = json.loads(raw or b"{}")
            except ValueError:
                parsed = None
            body = parsed if isinstance(parsed, dict) else {}
        else:
            body = dict(parse_qsl(raw.decode("utf-8", "replace")))
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.sim.client_secret:
            return web.json_response({"error": "Invalid client id or secret"}, status=401)
        if body.get("grant_type") != "authorization_code":
            return web.json_response({"error": "Invalid grant_type"}, status=400)
        grant = self.codes.redeem(str(body.get("code") or ""))
        if (
            grant is None
            or body.get("context") != grant["context"]
            or body.get("redirect_uri") != grant["redirect_uri"]
        ):
            return web.json_response({"error": "Invalid code, context or redirect_uri"}, status=400)
        issued = self.tokens.issue(grant["scope"].split(), expiring=False)
        self.installed = True
        return web.json_response(
            {
                "access_token": issued.access_token,
                "scope": grant["scope"],
                "user": OWNER,
                "owner": OWNER,
                "context": grant["context"],
                "account_uuid": self.account_uuid,
            }
        )

    # ---- lifecycle ----------------------------------------------------------------------------
    def signed_payload(self, user: Mapping[str, Any] | None = None, **overrides: Any) -> str:
        """A signed_payload_jwt as BigCommerce sends it (`overrides` replace claims: tests forge with them)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": self.client_id,
            "iss": "bc",
            "iat": now,
            "nbf": now,
            "exp": now + 86400,
            "jti": str(uuid.uuid4()),
            "sub": f"stores/{self.sim.store_hash}",
            "user": dict(user or {"id": OWNER["id"], "email": OWNER["email"], "locale": "en-US"}),
            "owner": {"id": OWNER["id"], "email": OWNER["email"]},
            "url": "/",
            "channel_id": None,
        }
        secret = str(overrides.pop("secret", self.sim.client_secret))
        claims.update(overrides)
        return jwt.encode(claims, secret, algorithm="HS256")

    def callback_url(self, event: str, token: str) -> str:
        url = self.sim.app_settings.get(f"{event}_callback_url")
        if not url:
            raise ScreenError(f"the app has no {event} callback URL (register_app)", status=409)
        return f"{url}{'&' if '?' in url else '?'}{urlencode({'signed_payload_jwt': token})}"

    def event(self, event: str, **params: Any) -> str | None:
        if event == "load":
            return self.callback_url("load", self.signed_payload())
        if event == "uninstall":
            url = self.callback_url("uninstall", self.signed_payload())
            self.uninstall()
            self.sim.deliver(url, b"", {}, method="GET")
            return None
        if event == "remove_user":
            user = {"id": int(params.get("user_id", 9002)), "email": "staff@example.com"}
            self.sim.deliver(self.callback_url("remove_user", self.signed_payload(user)), b"", {}, method="GET")
            return None
        raise ScreenError(f"BigCommerce has no app event {event!r}", status=404)

    def uninstall(self) -> None:
        """The app's token dies and BigCommerce deletes the app's webhooks."""
        self.tokens.revoke_all()
        self.installed = False
        self.sim.hooks.clear()

    def revoke(self) -> None:
        self.static_token_valid = False
        self.tokens.revoke_all()

    def owns(self, authorize_url: str) -> str:
        """The client id of an install URL on this host; ScreenError for any other URL."""
        parts = [p for p in urlsplit(authorize_url).path.split("/") if p]
        if len(parts) != 3 or parts[0] != "app" or parts[2] != "install":
            raise ScreenError(f"not a BigCommerce install URL: {urlsplit(authorize_url).path}", status=404)
        return parts[1]
