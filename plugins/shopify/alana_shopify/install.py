"""Shopify's install flow: the authorization code grant with expiring offline tokens.

Facts and sources: docs/reference/CONNECT-FACTS.md section 1.
- Authorize: `{shop}/admin/oauth/authorize?client_id&scope&redirect_uri&state` (offline access: no
  `grant_options[]`). The callback GET carries `code, hmac, host, shop, state, timestamp`.
- Every request Shopify signs this way (the callback, the App URL install request) is checked: the
  query HMAC (`query_hmac`), the shop domain, the timestamp, and, by the core, the single-use state.
- Code exchange: POST `{shop}/admin/oauth/access_token` JSON `{client_id, client_secret, code,
  expiring: "1"}` gives a 60-minute access token, a refresh token and their lifetimes. Refresh: the
  same endpoint with `grant_type: refresh_token`; the refresh token rotates on every use; a refused
  refresh answers 400 `invalid_grant` (CredentialsRejected: only reconnecting helps).
- App-level webhooks (compliance topics, app/uninstalled) are signed like product webhooks,
  base64(HMAC-SHA256(client secret, raw body)); a bad signature must be answered 401.

When AppCredentials.auth_url is set (a simulator), the shop's admin host is that URL, and so is the
store URL: the simulated shop still names itself by its myshopify.com domain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from alana_shopify.webhooks import sign
from gateway.errors import BadInput, ConnectRefused, CredentialsRejected, StoreHTTPError
from gateway.httpclient import HttpClient
from gateway.installflow import (
    AuthorizeRedirect,
    CallbackOutcome,
    FlowFailure,
    FlowRequest,
    Granted,
    Installation,
    InstallFlow,
    LifecycleEvent,
    LifecycleKind,
    LifecycleOutcome,
    Rejected,
    StoreInput,
    TokenSet,
    expires_at,
    now_utc,
    token_error,
    unsupported,
)

#: Shopify's own recommendation, anchored (docs/reference/CONNECT-FACTS.md 1a, "Shop domain check").
SHOP_DOMAIN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com$")
#: What the adapter reads: products and variants, inventory items, translations, shop locales.
SCOPES = ("read_products", "read_inventory", "read_translations", "read_locales")
#: How far a signed request's timestamp may be from now. The SDKs disagree (90 s, 24 h); five minutes
#: absorbs clock skew while the single-use state stops replays within it.
TIMESTAMP_TOLERANCE = timedelta(minutes=5)
COMPLIANCE = {
    "customers/data_request": LifecycleKind.CUSTOMER_DATA_REQUEST,
    "customers/redact": LifecycleKind.CUSTOMER_REDACT,
    "shop/redact": LifecycleKind.SHOP_REDACT,
}
APP_TOPICS = {"app/uninstalled": LifecycleKind.UNINSTALLED, **COMPLIANCE}
FORGED = "The request did not come from Shopify (its signature does not match), so nothing was changed."


def _escape(text: str, *, key: bool) -> str:
    # shopify_python_api's escaping: a delimiter inside a value cannot forge another pair.
    text = text.replace("%", "%25").replace("&", "%26")
    return text.replace("=", "%3D") if key else text


def signing_string(params: Iterable[tuple[str, str]]) -> str:
    """The message Shopify signs: every parameter but `hmac` and `signature`, sorted by key, k=v joined by &."""
    pairs = sorted((k, v) for k, v in params if k not in ("hmac", "signature"))
    return "&".join(f"{_escape(k, key=True)}={_escape(v, key=False)}" for k, v in pairs)


def query_hmac(params: Iterable[tuple[str, str]], secret: str) -> str:
    """The lowercase hex HMAC-SHA256 of the signing string, keyed with the app's client secret."""
    return hmac.new(secret.encode(), signing_string(params).encode(), hashlib.sha256).hexdigest()


def sign_query(params: Mapping[str, str], secret: str) -> dict[str, str]:
    """`params` plus their `hmac` (what Shopify sends; the simulator signs with it)."""
    return {**params, "hmac": query_hmac(params.items(), secret)}


def valid_shop(shop: str | None) -> bool:
    return bool(shop) and SHOP_DOMAIN.fullmatch(str(shop)) is not None


def _timestamp(raw: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(raw or ""), UTC)
    except (ValueError, OverflowError, OSError):
        return None


class ShopifyInstallFlow(InstallFlow):
    platform = "shopify"
    correlates = True
    store_input = StoreInput.REQUIRED
    refreshes_tokens = True
    signed_callbacks = True
    # Cancelling on Shopify's grant screen returns the merchant to the Shopify admin, not to the app.
    reports_denial = False
    app_events = frozenset({"install"})
    app_webhooks = True

    # ---- where things live ---------------------------------------------------------------------------
    def admin_base(self, shop: str | None) -> str:
        if self.app.auth_url:
            return self.app.auth_url.rstrip("/")
        return f"https://{shop}"

    def shop_for(self, store: str | None) -> str | None:
        """The shop domain beginConnect's `store` names; None for the configured simulator's URL."""
        text = (store or "").strip()
        if not text:
            raise BadInput("give the Shopify shop to connect (name.myshopify.com)", field="store")
        if self.app.auth_url and text.rstrip("/") == self.app.auth_url.rstrip("/"):
            return None
        host = urlsplit(text).hostname if "://" in text else text.rstrip("/")
        if not host or not valid_shop(host.lower()):
            raise BadInput(
                f"{text[:100]!r} is not a Shopify shop: give its myshopify.com domain (name.myshopify.com)",
                field="store",
            )
        return host.lower()

    def store_key_for(self, store_url: str) -> str | None:
        host = (urlsplit(store_url).hostname or "").lower()
        return host if valid_shop(host) else None

    def app_registration(self) -> dict[str, str]:
        """The Partner Dashboard / shopify.app.toml settings (application_url, redirect_urls,
        compliance and app/uninstalled webhook URLs)."""
        return {
            "application_url": self.endpoints.app_event_url("install"),
            "redirect_urls": self.endpoints.callback_url,
            "compliance_webhooks_url": self.endpoints.app_webhook_url,
            "app_uninstalled_webhook_url": self.endpoints.app_webhook_url,
        }

    # ---- 1. authorize ----------------------------------------------------------------------------------
    def authorize(self, state: str, store: str | None = None) -> AuthorizeRedirect:
        shop = self.shop_for(store)
        query = {
            "client_id": self.app.client_id,
            "scope": ",".join(SCOPES),
            "redirect_uri": self.endpoints.callback_url,
            "state": state,
        }
        url = f"{self.admin_base(shop)}/admin/oauth/authorize?{urlencode(query)}"
        return AuthorizeRedirect(url=url, store_url=self.admin_base(shop), store_key=shop)

    # ---- 2. callbacks ----------------------------------------------------------------------------------
    def verify_signed_query(self, request: FlowRequest, now: datetime | None) -> Rejected | str:
        """The checks every request Shopify signs in its query gets; the verified shop, or why not."""
        claimed = request.param("state")
        if request.method != "GET":
            return Rejected(FlowFailure.UNSUPPORTED, "Shopify calls this address with GET", status=405)
        if request.repeated():
            return Rejected(FlowFailure.MALFORMED, "the request repeats a parameter", claimed_correlation=claimed)
        given = request.param("hmac")
        if not given:
            return Rejected(FlowFailure.FORGED, FORGED, status=401, claimed_correlation=claimed, browser=True)
        expected = query_hmac(request.query, self.app.client_secret)
        if not hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
            return Rejected(FlowFailure.FORGED, FORGED, status=401, claimed_correlation=claimed, browser=True)
        shop = (request.param("shop") or "").strip().lower()
        if not valid_shop(shop):
            return Rejected(
                FlowFailure.BAD_STORE,
                "The request names a shop that is not a Shopify shop domain, so nothing was changed.",
                claimed_correlation=claimed,
                browser=True,
            )
        moment = _timestamp(request.param("timestamp"))
        if moment is None or abs((now or now_utc()) - moment) > TIMESTAMP_TOLERANCE:
            return Rejected(
                FlowFailure.STALE,
                "The request from Shopify is too old (or its clock is far off); please connect again.",
                claimed_correlation=claimed,
                browser=True,
            )
        return shop

    def verify_callback(self, request: FlowRequest, *, now: datetime | None = None) -> CallbackOutcome:
        verified = self.verify_signed_query(request, now)
        if isinstance(verified, Rejected):
            return verified
        state, code = request.param("state"), request.param("code")
        if not state or not code:
            missing = "state" if not state else "code"
            return Rejected(
                FlowFailure.MALFORMED,
                f"Shopify's answer carries no {missing}; please connect again.",
                claimed_correlation=state,
                browser=True,
            )
        return Granted(correlation=state, store_key=verified, browser=True, grant={"code": code, "shop": verified})

    async def complete(self, granted: Granted, http: HttpClient, *, store_url: str | None = None) -> Installation:
        shop = granted.grant.get("shop", "")
        if not valid_shop(shop):
            raise ConnectRefused("the grant names no Shopify shop", failure=FlowFailure.MALFORMED)
        asked = self.store_key_for(store_url) if store_url else None
        if asked is not None and asked != shop:
            raise ConnectRefused(
                f"Shopify approved the app for {shop}, but this connection was for {asked}: nothing was connected",
                failure=FlowFailure.BAD_STORE,
            )
        body = {
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret,
            "code": granted.grant.get("code", ""),
            "expiring": "1",
        }
        response = await http.request(
            "POST", f"{self.admin_base(shop)}/admin/oauth/access_token", json_body=body, allow=(400, 401, 403, 404)
        )
        if response.status >= 400:
            raise ConnectRefused(
                "Shopify refused the authorization (the code was invalid, already used or expired): please connect "
                "again",
                failure=FlowFailure.CODE_REJECTED,
            )
        tokens = self._tokens(response.json(), now_utc())
        return Installation(store_url=self.admin_base(shop), store_key=shop, tokens=tokens)

    def _tokens(self, payload: Any, now: datetime, previous: TokenSet | None = None) -> TokenSet:
        if not isinstance(payload, Mapping) or not payload.get("access_token"):
            raise StoreHTTPError("Shopify's token endpoint answered without an access token")
        credentials = {"access_token": str(payload["access_token"]), "client_secret": self.app.client_secret}
        refresh_token = payload.get("refresh_token")
        if refresh_token:
            credentials["refresh_token"] = str(refresh_token)
        scopes = tuple(s for s in str(payload.get("scope") or "").split(",") if s)
        return TokenSet(
            credentials=credentials,
            expires_at=expires_at(payload.get("expires_in"), now),
            refresh_expires_at=expires_at(payload.get("refresh_token_expires_in"), now),
            scopes=scopes or (previous.scopes if previous else ()),
        )

    # ---- 3. tokens -------------------------------------------------------------------------------------
    async def refresh(
        self, tokens: TokenSet, store_url: str, http: HttpClient, *, now: datetime | None = None
    ) -> TokenSet:
        refresh_token = tokens.credentials.get("refresh_token")
        if not refresh_token:
            raise CredentialsRejected("this Shopify connection has no refresh token: reconnect the store")
        body = {
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        }
        base = self.app.auth_url.rstrip("/") if self.app.auth_url else store_url.rstrip("/")
        response = await http.request("POST", f"{base}/admin/oauth/access_token", json_body=body, allow=(400, 401, 403))
        if response.status >= 400:
            error = token_error(response)
            if error == "invalid_grant" or response.status == 400:
                raise CredentialsRejected(
                    "Shopify no longer accepts this connection's credentials (the app may have been removed): "
                    "reconnect the store",
                    status=response.status,
                )
            raise StoreHTTPError(
                f"Shopify refused to refresh the token (HTTP {response.status})", status=response.status
            )
        return self._tokens(response.json(), now or now_utc(), previous=tokens)

    # ---- 4. lifecycle ----------------------------------------------------------------------------------
    def verify_app_request(self, event: str, request: FlowRequest, *, now: datetime | None = None) -> LifecycleOutcome:
        if event != "install":
            return unsupported(f"Shopify has no app callback {event!r}")
        verified = self.verify_signed_query(request, now)
        if isinstance(verified, Rejected):
            return verified
        details = {"host": request.param("host") or ""}
        return LifecycleEvent(LifecycleKind.INSTALL_REQUESTED, store_key=verified, browser=True, details=details)

    def verify_app_webhook(self, request: FlowRequest, *, now: datetime | None = None) -> LifecycleOutcome:
        if request.method != "POST":
            return Rejected(FlowFailure.UNSUPPORTED, "Shopify delivers webhooks with POST", status=405)
        given = request.header("X-Shopify-Hmac-Sha256")
        expected = sign(self.app.client_secret, request.body)
        if not given or not hmac.compare_digest(expected.encode(), given.strip().encode()):
            return Rejected(FlowFailure.FORGED, FORGED, status=401)
        topic = (request.header("X-Shopify-Topic") or "").strip().lower()
        kind = APP_TOPICS.get(topic)
        if kind is None:
            return unsupported(f"no app-level handling for the topic {topic[:60]!r}")
        try:
            payload = json.loads(request.body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return Rejected(FlowFailure.MALFORMED, f"the {topic} body is not a JSON object")
        shop = (request.header("X-Shopify-Shop-Domain") or str(payload.get("shop_domain") or "")).strip().lower()
        if not valid_shop(shop):
            return Rejected(FlowFailure.BAD_STORE, f"the {topic} delivery names no Shopify shop")
        return LifecycleEvent(
            kind, store_key=shop, event_id=request.header("X-Shopify-Webhook-Id"), details=_facts(topic, payload)
        )


def _facts(topic: str, payload: Mapping[str, Any]) -> dict[str, str]:
    """Ids worth logging; never a customer's email, phone or orders' contents."""
    facts = {"topic": topic}
    if payload.get("shop_id") is not None:
        facts["shop_id"] = str(payload["shop_id"])
    customer = payload.get("customer")
    if isinstance(customer, Mapping) and customer.get("id") is not None:
        facts["customer_id"] = str(customer["id"])
    request = payload.get("data_request")
    if isinstance(request, Mapping) and request.get("id") is not None:
        facts["data_request_id"] = str(request["id"])
    for key in ("orders_requested", "orders_to_redact"):
        if isinstance(payload.get(key), list):
            facts[key] = str(len(payload[key]))
    return facts
