"""BigCommerce's install flow: the single-click app.

Facts and sources: docs/reference/CONNECT-FACTS.md section 2.
- Installs begin at `https://login.bigcommerce.com/app/{client_id}/install` (the external install
  link; the marketplace and the control panel start the same flow). The merchant logs in, picks the
  store and approves; BigCommerce then opens the app's registered auth callback in the browser with
  `account_uuid, code, context=stores/{hash}, scope` (and `external_install` for the link). There is
  no `state`: the core correlates by the browser binding it set at /connect/{platform}/start, or
  treats the install as one begun on BigCommerce (pending install, claimed later).
- Code exchange: POST `https://login.bigcommerce.com/oauth2/token` JSON `{client_id, client_secret,
  code, context, scope, grant_type: authorization_code, redirect_uri}` gives a token that does not
  expire, with the user, the owner and the context.
- After an external install the app sends the browser to `/app/{client_id}/install/succeeded` or
  `/failed` on the login host (`landing_url`).
- `load`, `uninstall` and `remove_user` are GETs with `signed_payload_jwt`: HS256 with the client
  secret, audience = client id, `exp`/`nbf` honoured, `sub` = stores/{hash}.

When AppCredentials.auth_url is set (a simulator), both the login host and the API host are that URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from gateway.errors import ConnectRefused, StoreHTTPError
from gateway.httpclient import HttpClient
from gateway.installflow import (
    AuthorizeRedirect,
    CallbackOutcome,
    Declined,
    FlowFailure,
    FlowRequest,
    Granted,
    Installation,
    InstallFlow,
    LifecycleEvent,
    LifecycleKind,
    LifecycleOutcome,
    Rejected,
    Returned,
    StoreInput,
    TokenSet,
    now_utc,
    unsupported,
)

LOGIN_HOST = "https://login.bigcommerce.com"
API_HOST = "https://api.bigcommerce.com"
CONTEXT = re.compile(r"^stores/([a-z0-9]+)$")
STORE_IN_URL = re.compile(r"/stores/([a-z0-9]+)(?:/|$)")
#: Clock skew allowed on a callback JWT's nbf and exp.
JWT_LEEWAY = timedelta(seconds=60)
EVENTS = {
    "load": LifecycleKind.OPENED,
    "uninstall": LifecycleKind.UNINSTALLED,
    "remove_user": LifecycleKind.USER_REMOVED,
}
FORGED = "The request did not come from BigCommerce (its signature does not match), so nothing was changed."


def store_hash(context: str | None) -> str | None:
    match = CONTEXT.fullmatch((context or "").strip())
    return match.group(1) if match else None


class BigCommerceInstallFlow(InstallFlow):
    platform = "bigcommerce"
    correlates = False
    store_input = StoreInput.IGNORED
    refreshes_tokens = False
    # The auth callback is unsigned: the code exchange (which needs the client secret) is the proof.
    signed_callbacks = False
    # Cancelling leaves the merchant on BigCommerce; the app hears nothing.
    reports_denial = False
    app_events = frozenset(EVENTS)
    app_webhooks = False

    @property
    def login_base(self) -> str:
        return (self.app.auth_url or LOGIN_HOST).rstrip("/")

    @property
    def api_base(self) -> str:
        return (self.app.auth_url or API_HOST).rstrip("/")

    def app_registration(self) -> dict[str, str]:
        """The Developer Portal's technical settings."""
        return {
            "auth_callback_url": self.endpoints.callback_url,
            "load_callback_url": self.endpoints.app_event_url("load"),
            "uninstall_callback_url": self.endpoints.app_event_url("uninstall"),
            "remove_user_callback_url": self.endpoints.app_event_url("remove_user"),
        }

    def store_key_for(self, store_url: str) -> str | None:
        match = STORE_IN_URL.search(store_url)
        return match.group(1) if match else None

    # ---- 1. authorize ----------------------------------------------------------------------------------
    def authorize(self, state: str, store: str | None = None) -> AuthorizeRedirect:
        # The install link takes no state and no store: the merchant picks the store on BigCommerce.
        return AuthorizeRedirect(url=f"{self.login_base}/app/{self.app.client_id}/install")

    # ---- 2. callbacks ----------------------------------------------------------------------------------
    def verify_callback(self, request: FlowRequest, *, now: datetime | None = None) -> CallbackOutcome:
        if request.method != "GET":
            return Rejected(FlowFailure.UNSUPPORTED, "BigCommerce calls the auth callback with GET", status=405)
        if request.repeated():
            return Rejected(FlowFailure.MALFORMED, "the request repeats a parameter", browser=True)
        code, scope = request.param("code"), request.param("scope")
        if not code or not scope:
            return Rejected(
                FlowFailure.MALFORMED,
                f"BigCommerce's answer carries no {'code' if not code else 'scope'}; please install the app again.",
                browser=True,
            )
        hashed = store_hash(request.param("context"))
        if hashed is None:
            return Rejected(
                FlowFailure.BAD_STORE,
                "BigCommerce's answer names no store (context stores/{hash}), so nothing was changed.",
                browser=True,
            )
        grant = {"code": code, "scope": scope, "context": f"stores/{hashed}"}
        if request.param("account_uuid"):
            grant["account_uuid"] = request.param("account_uuid") or ""
        if request.param("external_install") is not None:
            grant["external_install"] = "1"
        return Granted(correlation=None, store_key=hashed, browser=True, grant=grant)

    async def complete(self, granted: Granted, http: HttpClient, *, store_url: str | None = None) -> Installation:
        hashed = store_hash(granted.grant.get("context"))
        if hashed is None:
            raise ConnectRefused("the grant names no BigCommerce store", failure=FlowFailure.MALFORMED)
        asked = self.store_key_for(store_url) if store_url else None
        if asked is not None and asked != hashed:
            raise ConnectRefused(
                f"BigCommerce installed the app on store {hashed}, but this connection was for store {asked}",
                failure=FlowFailure.BAD_STORE,
            )
        body = {
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret,
            "code": granted.grant.get("code", ""),
            "context": f"stores/{hashed}",
            "scope": granted.grant.get("scope", ""),
            "grant_type": "authorization_code",
            "redirect_uri": self.endpoints.callback_url,
        }
        response = await http.request("POST", f"{self.login_base}/oauth2/token", json_body=body, allow=(400, 401, 403))
        if response.status >= 400:
            raise ConnectRefused(
                "BigCommerce refused the authorization (the code was invalid, already used or expired): please "
                "install the app again",
                failure=FlowFailure.CODE_REJECTED,
            )
        payload = response.json()
        if not isinstance(payload, Mapping) or not payload.get("access_token"):
            raise StoreHTTPError("BigCommerce's token endpoint answered without an access token")
        if store_hash(str(payload.get("context") or "")) not in (None, hashed):
            raise ConnectRefused("BigCommerce issued a token for another store", failure=FlowFailure.BAD_STORE)
        tokens = TokenSet(
            credentials={"access_token": str(payload["access_token"]), "client_secret": self.app.client_secret},
            scopes=tuple(str(payload.get("scope") or granted.grant.get("scope", "")).split()),
        )
        account = {"account_uuid": str(payload.get("account_uuid") or granted.grant.get("account_uuid") or "")}
        for role in ("user", "owner"):
            person = payload.get(role)
            if isinstance(person, Mapping) and person.get("id") is not None:
                account[f"{role}_id"] = str(person["id"])
        return Installation(
            store_url=f"{self.api_base}/stores/{hashed}",
            store_key=hashed,
            tokens=tokens,
            account={k: v for k, v in account.items() if v},
        )

    def landing_url(self, outcome: Granted | Returned | Declined, *, connected: bool) -> str | None:
        if isinstance(outcome, Granted) and outcome.grant.get("external_install"):
            return f"{self.login_base}/app/{self.app.client_id}/install/{'succeeded' if connected else 'failed'}"
        return None

    # ---- 4. lifecycle ----------------------------------------------------------------------------------
    def verify_app_request(self, event: str, request: FlowRequest, *, now: datetime | None = None) -> LifecycleOutcome:
        kind = EVENTS.get(event)
        if kind is None:
            return unsupported(f"BigCommerce has no app callback {event!r}")
        token = request.param("signed_payload_jwt")
        if not token:
            return Rejected(FlowFailure.FORGED, "the callback carries no signed_payload_jwt", status=401, browser=True)
        claims = self.verify_jwt(token, now)
        if isinstance(claims, Rejected):
            return claims
        hashed = store_hash(str(claims.get("sub") or ""))
        if hashed is None:
            return Rejected(FlowFailure.BAD_STORE, "the callback names no store", browser=kind is LifecycleKind.OPENED)
        user = {}
        for role in ("user", "owner"):
            person = claims.get(role)
            if isinstance(person, Mapping) and person.get("id") is not None:
                user[f"{role}_id"] = str(person["id"])
        details = {k: str(claims[k]) for k in ("url", "channel_id") if claims.get(k) is not None}
        return LifecycleEvent(
            kind,
            store_key=hashed,
            event_id=str(claims.get("jti") or "") or None,
            browser=kind is LifecycleKind.OPENED,
            user=user,
            details=details,
        )

    def verify_jwt(self, token: str, now: datetime | None) -> dict[str, Any] | Rejected:
        """The claims of a genuine, current signed_payload_jwt; Rejected otherwise."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.app.client_secret,
                algorithms=["HS256"],
                audience=self.app.client_id,
                # exp / nbf are checked below against `now` (injectable), with the same leeway.
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "nbf", "sub"],
                },
            )
        except jwt.InvalidAudienceError:
            return Rejected(FlowFailure.FORGED, "The callback was signed for another app, so nothing was changed.", 401)
        except jwt.MissingRequiredClaimError as exc:
            return Rejected(FlowFailure.MALFORMED, f"the callback's JWT has no {exc.claim} claim", 401)
        except jwt.PyJWTError:
            return Rejected(FlowFailure.FORGED, FORGED, 401)
        moment = now or now_utc()
        try:
            not_before = datetime.fromtimestamp(float(claims["nbf"]), UTC)
            expires = datetime.fromtimestamp(float(claims["exp"]), UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            return Rejected(FlowFailure.MALFORMED, "the callback's JWT has unreadable times", 401)
        if moment + JWT_LEEWAY < not_before or moment - JWT_LEEWAY > expires:
            return Rejected(
                FlowFailure.STALE, "The callback from BigCommerce has expired, so nothing was changed.", 401
            )
        return claims
