"""The simulated store's key approval: WooCommerce's `/wc-auth/v1/` endpoints and the keys it issues.

What it plays (WooCommerce's class-wc-auth.php; docs/reference/CONNECT-FACTS.md section 3), with the
administrator already logged in:
- `GET /wc-auth/v1/authorize?app_name&scope&user_id&return_url&callback_url`: the same validation as
  WooCommerce ("Missing parameter user_id", "Invalid scope ...", "The callback_url needs to be over
  SSL", as an "Access denied" page with status 401), then the approve screen listing what the scope
  allows, with Approve and Deny.
- Approve (`/wc-auth/v1/access_granted`): a new key with the scope's permissions is created and POSTed
  as JSON `{key_id, user_id, consumer_key, consumer_secret, key_permissions}` to callback_url; unless
  the answer is exactly 200 the key is deleted and the page says "Access denied" (401); otherwise
  302 to `return_url?success=1&user_id=...`. Deny: 302 to `return_url?success=0&user_id=...`.
- Keys work on the REST API with their permissions: a `read` key gets WooCommerce's 401 "The API key
  provided does not have write permissions." on POST, PUT and DELETE.
- `insecure_callbacks=True` (tests, demo) accepts an http:// callback_url on a loopback host, which a
  real store refuses twice over (the SSL check, and wp_safe_remote_post's refusal of private hosts).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

from gateway.simkit import ScreenError, consent_page, found, message_page

if TYPE_CHECKING:
    from alana_woocommerce.simulator import WooCommerceSimulator

PLATFORM = "WooCommerce"
PARAMS = ("app_name", "user_id", "return_url", "callback_url", "scope")
#: What WooCommerce's approve screen says each scope allows (WC_Auth::get_permissions_in_scope).
PERMISSIONS = {
    "read": ["View coupons", "View customers", "View orders and sales reports", "View products"],
    "write": ["Create webhooks", "Create coupons", "Create customers", "Create orders", "Create products"],
    "read_write": [
        "Create webhooks",
        "View and manage coupons",
        "View and manage customers",
        "View and manage orders and sales reports",
        "View and manage products",
    ],
}


@dataclass
class ApiKey:
    key_id: int
    consumer_secret: str
    permissions: str
    description: str


class WooAuthSide:
    def __init__(self, sim: WooCommerceSimulator, options: Mapping[str, Any]) -> None:
        self.sim = sim
        self.insecure_callbacks = bool(options.get("insecure_callbacks", False))
        self.keys: dict[str, ApiKey] = {}
        self._next_key = 1
        #: Key POSTs that were not answered 200 (the key was deleted again).
        self.refused_posts = 0
        #: Test lever: the REST API refuses approved keys (a store that rejects them).
        self.reject_issued = False

    def key(self, consumer_key: str | None) -> ApiKey | None:
        return None if self.reject_issued else self.keys.get(consumer_key or "")

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/wc-auth/v1/authorize", self._authorize_page)
        app.router.add_post("/wc-auth/v1/access_granted", self._decision)

    def validate(self, query: Mapping[str, str]) -> dict[str, str]:
        """WC_Auth::make_validation, plus the refusal wp_safe_remote_post would give a private host."""
        data: dict[str, str] = {}
        for name in PARAMS:
            if not query.get(name):
                raise ScreenError(f"Missing parameter {name}", status=401)
            data[name] = str(query[name])
        if data["scope"] not in PERMISSIONS:
            raise ScreenError(f"Invalid scope {data['scope']}", status=401)
        for name in ("return_url", "callback_url"):
            parts = urlsplit(data[name] if "://" in data[name] else f"https://{data[name]}")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ScreenError(f"The {name} is not a valid URL", status=401)
        if not data["callback_url"].lower().startswith("https://") and not self.insecure_callbacks:
            raise ScreenError("The callback_url needs to be over SSL", status=401)
        return data

    async def _authorize_page(self, request: web.Request) -> web.Response:
        try:
            data = self.validate(request.query)
        except ScreenError as exc:
            return message_page(PLATFORM, "Access denied", f"Error: {exc.message}.", exc.status)
        return consent_page(
            platform=PLATFORM,
            title=f"{data['app_name']} would like to connect to your store",
            app_name=data["app_name"],
            store_name=f"{self.sim.store_url} (logged in as admin)",
            permissions=PERMISSIONS[data["scope"]],
            action="/wc-auth/v1/access_granted",
            fields=data,
        )

    async def _decision(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        try:
            location = await self.decide(form, form.get("decision") == "approve")
        except ScreenError as exc:
            return message_page(PLATFORM, "Access denied", f"Error: {exc.message}.", exc.status)
        assert location is not None
        return found(location)

    async def decide(self, query: Mapping[str, str], approve: bool) -> str | None:
        data = self.validate(query)
        if not approve:
            return _with(data["return_url"], success="0", user_id=data["user_id"])
        consumer_key = f"ck_{secrets.token_hex(20)}"
        key = ApiKey(
            key_id=self._next_key,
            consumer_secret=f"cs_{secrets.token_hex(20)}",
            permissions=data["scope"],
            description=f"{data['app_name']} - API",
        )
        self._next_key += 1
        self.keys[consumer_key] = key
        payload = {
            "key_id": key.key_id,
            "user_id": data["user_id"],
            "consumer_key": consumer_key,
            "consumer_secret": key.consumer_secret,
            "key_permissions": key.permissions,
        }
        status = await self.sim.request_now(
            data["callback_url"],
            json.dumps(payload).encode(),
            {"Content-Type": "application/json;charset=UTF-8", "User-Agent": "WordPress/6.7.1"},
        )
        if status != 200:
            del self.keys[consumer_key]
            self.refused_posts += 1
            raise ScreenError(
                "An error occurred in the request and at the time were unable to send the consumer data", status=401
            )
        return _with(data["return_url"], success="1", user_id=data["user_id"])

    def revoke(self) -> None:
        self.keys.clear()


def _with(url: str, **params: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
