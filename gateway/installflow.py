"""Install flows: a merchant connects a store by approving the app on the platform's own page.

A platform adapter offers one through `PlatformAdapter.install_flow(config)` (None when it has none, or
when the app is not configured) and says so in `PlatformInfo.connect_methods`. The flow does the
platform's part of the handshake; the gateway's core keeps everything stateful. Who does what:

    core (connect service, HTTP routes)                 plugin (InstallFlow)
    ------------------------------------------------    --------------------------------------------
    beginConnect: new attempt + single-use `state`   -> authorize(state, store): URL, store URL/key,
      (store the redirect on the attempt)                  BadInput / ConnectRefused for a bad store
    GET /connect/{p}/start/{id}: bind the browser,
      302 to the stored authorize URL
    GET|POST /connect/{p}/callback                   -> verify_callback(request): Granted | Returned |
      (no I/O, nothing stored before this says so)         Declined | Rejected (pure: no I/O)
    find the attempt by `correlation` (or the
      browser binding when the flow has none);
      refuse unknown / used / expired ones
    exchange, once per attempt                       -> complete(granted, http, store_url=attempt's):
                                                           Installation (credentials to seal)
    check_credentials, seal, register webhooks,
      first sync, redirect to returnUrl (or to
      landing_url(...) when the platform wants one)
    before a token expires, one refresh at a time    -> refresh(tokens, store_url, http): TokenSet,
      per integration across processes                     CredentialsRejected on invalid_grant
    GET /apps/{p}/{event}                            -> verify_app_request(event, request)
    POST /webhooks/{p}/app                           -> verify_app_webhook(request)
      act on the LifecycleEvent (claim flow,               LifecycleEvent | Rejected (pure)
      uninstall, redaction), answer `status` on a
      Rejected

Every verify_* is pure and side-effect free: a Rejected outcome means nothing may be stored or changed
(its `claimed_correlation` is unverified and only good for picking an error page). Every outbound call
goes through the HttpClient the core passes in (its factory applies the SSRF guard and call counting).
Secrets never appear in messages, reprs or logs: `Granted.grant`, `TokenSet.credentials` and
`AppCredentials.client_secret` are left out of reprs.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from multidict import CIMultiDict

from gateway.adapter import ConnectMethod, PlatformAdapter
from gateway.errors import ConnectRefused, CredentialsRejected, StoreHTTPError
from gateway.httpclient import HttpClient, Response
from gateway.settings import AppCredentials as AppCredentials  # re-exported: part of the plugin interface
from gateway.urls import check_store_url

__all__ = [
    "REFRESH_LEAD",
    "AppCredentials",
    "AppEndpoints",
    "AuthorizeRedirect",
    "CallbackOutcome",
    "ConnectMethod",
    "Declined",
    "FlowConfig",
    "FlowFailure",
    "FlowRequest",
    "Granted",
    "InstallFlow",
    "Installation",
    "LifecycleEvent",
    "LifecycleKind",
    "LifecycleOutcome",
    "OAuth2CodeFlow",
    "Rejected",
    "Returned",
    "StoreInput",
    "TokenSet",
    "connect_methods",
    "new_state",
    "now_utc",
]

#: Refresh an expiring token this long before it expires (Shopify's live 60 minutes).
REFRESH_LEAD = timedelta(minutes=5)


class FlowFailure(StrEnum):
    """Why an install-flow step failed (ConnectRefused.failure, Rejected.failure)."""

    #: A signature (query HMAC, body HMAC, JWT) is missing or does not match: answer 401.
    FORGED = "FORGED"
    #: A timestamp too far from now, an expired or not-yet-valid JWT.
    STALE = "STALE"
    #: A required parameter is missing or unreadable.
    MALFORMED = "MALFORMED"
    #: Not a store of this platform (a shop that is not a shop domain), or not the store the attempt is for.
    BAD_STORE = "BAD_STORE"
    #: The merchant declined.
    DENIED = "DENIED"
    #: The platform's token endpoint refused the authorization code.
    CODE_REJECTED = "CODE_REJECTED"
    #: The platform only calls back over HTTPS and GATEWAY_PUBLIC_URL is not HTTPS.
    INSECURE_CALLBACK = "INSECURE_CALLBACK"
    #: This flow has no such callback or event.
    UNSUPPORTED = "UNSUPPORTED"


class StoreInput(StrEnum):
    """What `beginConnect(store:)` must carry for this flow."""

    REQUIRED = "REQUIRED"  # Shopify's shop, WooCommerce's site URL
    OPTIONAL = "OPTIONAL"
    IGNORED = "IGNORED"  # BigCommerce: the merchant picks the store on the platform's side


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_state() -> str:
    """A single-use nonce for an attempt (unguessable, URL-safe, no padding)."""
    return secrets.token_urlsafe(32)


# ---- configuration the core passes in -------------------------------------------------------------------
@dataclass(frozen=True)
class AppEndpoints:
    """Where the platform reaches the gateway: the paths of docs/reference/RUNTIME.md under GATEWAY_PUBLIC_URL."""

    #: GET, POST /connect/{platform}/callback: redirect_uri, auth callback, WooCommerce callback_url and return_url.
    callback_url: str
    #: GET /apps/{platform}/{event}: without the event.
    app_base_url: str
    #: POST /webhooks/{platform}/app: app-level webhooks (Shopify's compliance topics, app/uninstalled).
    app_webhook_url: str

    @classmethod
    def for_gateway(cls, public_url: str, platform: str) -> AppEndpoints:
        base = public_url.strip().rstrip("/")
        return cls(
            callback_url=f"{base}/connect/{platform}/callback",
            app_base_url=f"{base}/apps/{platform}",
            app_webhook_url=f"{base}/webhooks/{platform}/app",
        )

    def app_event_url(self, event: str) -> str:
        return f"{self.app_base_url}/{event}"

    @property
    def secure(self) -> bool:
        """True when every endpoint is HTTPS (what WooCommerce and the app stores require)."""
        urls = (self.callback_url, self.app_base_url, self.app_webhook_url)
        return all(url.lower().startswith("https://") for url in urls)


@dataclass(frozen=True)
class FlowConfig:
    """Everything a flow is built from. `allow_private_urls` is GATEWAY_ALLOW_PRIVATE_URLS: it admits
    simulator and LAN store URLs and relaxes the HTTPS requirement on the gateway's own endpoints."""

    app: AppCredentials
    endpoints: AppEndpoints
    allow_private_urls: bool = False


# ---- what the platform sends ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FlowRequest:
    """One request the platform (or the merchant's browser) made to a gateway endpoint.

    Build it with `FlowRequest.of(request.method, request.query.items(), request.headers, body)`: the
    query keeps repeated keys and order, the headers are case-insensitive.
    """

    method: str
    query: tuple[tuple[str, str], ...] = ()
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes = b""

    @classmethod
    def of(
        cls,
        method: str,
        query: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> FlowRequest:
        pairs = query.items() if isinstance(query, Mapping) else query
        return cls(
            method=method.upper(),
            query=tuple((str(k), str(v)) for k, v in pairs),
            headers=CIMultiDict(headers or {}),
            body=body,
        )

    @classmethod
    def from_url(
        cls, url: str, method: str = "GET", headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> FlowRequest:
        """The request a browser makes when it follows `url` (its query string decoded)."""
        return cls.of(method, parse_qsl(urlsplit(url).query, keep_blank_values=True), headers, body)

    def param(self, name: str) -> str | None:
        """The first value of a query parameter."""
        return next((v for k, v in self.query if k == name), None)

    def params(self) -> dict[str, str]:
        """The query as a dict (the first value of each key)."""
        found: dict[str, str] = {}
        for key, value in self.query:
            found.setdefault(key, value)
        return found

    def repeated(self) -> set[str]:
        """Keys that appear more than once (no platform sends any: a sign of tampering)."""
        seen: set[str] = set()
        twice: set[str] = set()
        for key, _ in self.query:
            (twice if key in seen else seen).add(key)
        return twice

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


# ---- what a flow answers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuthorizeRedirect:
    """Where to send the merchant's browser, and what the attempt is already known to be for.

    Keep `store_url` and `store_key` on the attempt: pass `store_url` back to `complete`, and compare
    `store_key` with lifecycle events. Both are None when the merchant picks the store on the platform.
    """

    url: str
    store_url: str | None = None
    store_key: str | None = None


@dataclass(frozen=True)
class Granted:
    """The platform granted access. Find the attempt by `correlation` (None: the platform carries no
    state, e.g. BigCommerce; use the browser binding, or treat it as an install begun on the platform),
    then call `complete`, at most once per attempt.

    `browser` says who is waiting: a browser (redirect it) or a server (answer `reply_status`, e.g.
    WooCommerce's key POST, which must get exactly 200 or the key is deleted). `grant` is opaque to the
    core and holds secrets (an authorization code, WooCommerce's keys).
    """

    correlation: str | None
    store_key: str | None
    browser: bool
    grant: Mapping[str, str] = field(default_factory=dict, repr=False)
    reply_status: int = 200


@dataclass(frozen=True)
class Returned:
    """The merchant's browser is back after a grant that arrived separately (WooCommerce's return_url
    with success=1): finish the attempt if its credentials came, else wait for them (or fail it)."""

    correlation: str
    browser: bool = True


@dataclass(frozen=True)
class Declined:
    """The merchant said no. Fail the attempt (FAILED with `message`) and redirect the browser."""

    correlation: str | None
    message: str
    browser: bool = True
    failure: FlowFailure = FlowFailure.DENIED


@dataclass(frozen=True)
class Rejected:
    """The request failed verification: store and change nothing. Answer `status` (401 for a bad
    signature, as Shopify requires of compliance webhooks), or for a browser an error page saying
    `message`. `claimed_correlation` is unverified."""

    failure: FlowFailure
    message: str
    status: int = 400
    claimed_correlation: str | None = None
    browser: bool = False


CallbackOutcome = Granted | Returned | Declined | Rejected


@dataclass(frozen=True)
class TokenSet:
    """Credentials to seal, keyed like the adapter's credential fields (plus e.g. `refresh_token`),
    with their lifetime. `expires_at` None: they do not expire."""

    credentials: Mapping[str, str] = field(repr=False)
    expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    scopes: tuple[str, ...] = ()

    @property
    def expiring(self) -> bool:
        return self.expires_at is not None

    def due(self, now: datetime | None = None, lead: timedelta = REFRESH_LEAD) -> bool:
        """True when the access token should be refreshed now (it expires within `lead`)."""
        if self.expires_at is None:
            return False
        return (now or now_utc()) >= self.expires_at - lead


@dataclass(frozen=True)
class Installation:
    """A completed handshake: the store to connect and its credentials.

    `store_key` is the platform's stable name of the store (Shopify's shop domain, BigCommerce's store
    hash, WooCommerce's site URL): keep it on the integration, lifecycle events name stores by it.
    `account` holds non-secret facts about who installed (BigCommerce's owner and user ids).
    """

    store_url: str
    store_key: str
    tokens: TokenSet
    store_name: str | None = None
    account: Mapping[str, str] = field(default_factory=dict)


class LifecycleKind(StrEnum):
    """What an app-lifecycle callback or app-level webhook means for the core."""

    #: An install begun on the platform (Shopify's App URL): start an attempt without an account and
    #: redirect to authorize(state, store=event.store_key); it ends as a pending install to claim.
    INSTALL_REQUESTED = "INSTALL_REQUESTED"
    #: The merchant opened the app from the platform (BigCommerce `load`): show the integration.
    OPENED = "OPENED"
    #: The app was removed: stop syncing, health RED "the app was removed from your store", RECONNECT.
    UNINSTALLED = "UNINSTALLED"
    #: A store user lost access to the app (BigCommerce `remove_user`): log it.
    USER_REMOVED = "USER_REMOVED"
    #: Compliance (Shopify): acknowledge and log; the gateway holds no customer data.
    CUSTOMER_DATA_REQUEST = "CUSTOMER_DATA_REQUEST"
    CUSTOMER_REDACT = "CUSTOMER_REDACT"
    #: Compliance (Shopify): delete everything held for the store, in every account.
    SHOP_REDACT = "SHOP_REDACT"


@dataclass(frozen=True)
class LifecycleEvent:
    """A verified lifecycle callback. `store_key` matches Installation.store_key; `event_id` dedupes
    redeliveries; `browser` says a person is waiting (answer with a page or a redirect, else 200);
    `user` and `details` hold non-personal facts only (ids, never emails of customers)."""

    kind: LifecycleKind
    store_key: str
    event_id: str | None = None
    browser: bool = False
    user: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, str] = field(default_factory=dict)


LifecycleOutcome = LifecycleEvent | Rejected


# ---- the interface ----------------------------------------------------------------------------------------
class InstallFlow(ABC):
    """One platform's install flow. Build it with `PlatformAdapter.install_flow(config)`.

    Class attributes describe the flow to the core and to the conformance suite:
    `correlates` (callbacks echo the attempt's state), `store_input` (what beginConnect's store must
    be), `refreshes_tokens` (issues expiring tokens: schedule `refresh`), `signed_callbacks` (the
    callback carries a signature `verify_callback` checks), `reports_denial` (a declining merchant is
    sent back to the callback), `app_events` (the {event} names of /apps/{platform}/{event} it
    answers) and `app_webhooks` (it answers POST /webhooks/{platform}/app).
    """

    platform: ClassVar[str] = ""
    correlates: ClassVar[bool] = True
    store_input: ClassVar[StoreInput] = StoreInput.REQUIRED
    refreshes_tokens: ClassVar[bool] = False
    signed_callbacks: ClassVar[bool] = False
    reports_denial: ClassVar[bool] = False
    app_events: ClassVar[frozenset[str]] = frozenset()
    app_webhooks: ClassVar[bool] = False

    def __init__(self, config: FlowConfig) -> None:
        self.config = config

    @property
    def app(self) -> AppCredentials:
        return self.config.app

    @property
    def endpoints(self) -> AppEndpoints:
        return self.config.endpoints

    # ---- 1. begin ---------------------------------------------------------------------------------------
    @abstractmethod
    def authorize(self, state: str, store: str | None = None) -> AuthorizeRedirect:
        """The URL that starts the platform's side for an attempt whose single-use nonce is `state`.

        Raise BadInput(field="store") for a store that is not one of this platform's, and
        ConnectRefused(INSECURE_CALLBACK) when the platform cannot call the gateway back as configured.
        No I/O.
        """

    # ---- 2. callbacks ------------------------------------------------------------------------------------
    @abstractmethod
    def verify_callback(self, request: FlowRequest, *, now: datetime | None = None) -> CallbackOutcome:
        """Verify one request to /connect/{platform}/callback. Pure: no I/O, no side effects."""

    @abstractmethod
    async def complete(self, granted: Granted, http: HttpClient, *, store_url: str | None = None) -> Installation:
        """Turn a grant into credentials (the code exchange, where the platform has one).

        `store_url` is the attempt's AuthorizeRedirect.store_url (None for installs begun on the
        platform). Raise ConnectRefused(CODE_REJECTED) when the platform refuses the code,
        ConnectRefused(BAD_STORE) when the grant is for another store than the attempt's; StoreErrors
        from `http` pass through. The core checks the credentials against the store afterwards.
        """

    def landing_url(self, outcome: Granted | Returned | Declined, *, connected: bool) -> str | None:
        """Where the platform wants the browser after a callback (BigCommerce's install succeeded /
        failed pages for external installs); None: the attempt's returnUrl."""
        return None

    # ---- 3. tokens ---------------------------------------------------------------------------------------
    async def refresh(
        self, tokens: TokenSet, store_url: str, http: HttpClient, *, now: datetime | None = None
    ) -> TokenSet:
        """A fresh TokenSet for expiring credentials (the platform rotates the refresh token: seal the
        whole new set). Raise CredentialsRejected when the platform answers invalid_grant."""
        # Only flows that issue expiring credentials (TokenSet.expires_at) are ever asked to refresh them.
        raise NotImplementedError(f"the {self.platform} install flow issues no expiring credentials")

    # ---- 4. app lifecycle ----------------------------------------------------------------------------------
    def verify_app_request(self, event: str, request: FlowRequest, *, now: datetime | None = None) -> LifecycleOutcome:
        """Verify GET /apps/{platform}/{event} (Shopify's App URL `install`; BigCommerce's `load`,
        `uninstall`, `remove_user`). Pure. Unknown events: Rejected(UNSUPPORTED, status 404)."""
        return unsupported(f"no app callback {event!r}")

    def verify_app_webhook(self, request: FlowRequest, *, now: datetime | None = None) -> LifecycleOutcome:
        """Verify POST /webhooks/{platform}/app (Shopify's compliance topics and app/uninstalled).
        Pure. The core may also offer it per-integration deliveries that parse_webhook ignored."""
        return unsupported("no app-level webhooks")

    # ---- 5. operating it ----------------------------------------------------------------------------------
    def app_registration(self) -> dict[str, str]:
        """What an operator enters in the platform's app settings (URLs named as the platform's
        dashboard names them), and what a simulator's `register_app` takes."""
        return {}

    def store_key_for(self, store_url: str) -> str | None:
        """The store_key of a store connected by URL (pasted keys), when the URL alone says."""
        return None


def unsupported(message: str) -> Rejected:
    return Rejected(FlowFailure.UNSUPPORTED, message, status=404)


def connect_methods(adapter: PlatformAdapter, config: FlowConfig) -> tuple[ConnectMethod, ...]:
    """What PlatformInfo.connectMethods shows: the declared methods, INSTALL_FLOW only when a flow can be
    built with this configuration (e.g. Shopify without GATEWAY_SHOPIFY_CLIENT_ID offers pasted keys only)."""
    declared = adapter.info.connect_methods
    if ConnectMethod.INSTALL_FLOW in declared and adapter.install_flow(config) is None:
        return tuple(m for m in declared if m is not ConnectMethod.INSTALL_FLOW)
    return declared


def expires_at(seconds: Any, now: datetime) -> datetime | None:
    """`now + seconds` for a token response's *_expires_in, None when absent or unreadable."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float, str)):
        return None
    try:
        value = float(seconds)
    except ValueError:
        return None
    return now + timedelta(seconds=value) if value > 0 else None


def token_error(response: Response) -> str:
    """The OAuth `error` code of a token endpoint's answer ('' when it has none)."""
    try:
        body = response.json()
    except Exception:  # noqa: BLE001 - any unreadable body has no error code
        return ""
    if isinstance(body, Mapping):
        for key in ("error", "errors"):
            value = body.get(key)
            if isinstance(value, str):
                return value
    return ""


# ---- a standard OAuth 2.0 authorization-code flow, for platforms that follow RFC 6749 ---------------------
class OAuth2CodeFlow(InstallFlow):
    """RFC 6749's authorization-code grant with `state`, for a platform that follows it plainly.

    Subclass it and set `platform`, `scopes`, and where the endpoints live (`authorize_path` and
    `token_path`, under AppCredentials.auth_url or `default_auth_url`, else under the store URL the
    merchant gives). The callback carries `code` and `state` (or `error=access_denied` and `state`);
    the token endpoint takes a form-encoded body and answers {access_token, refresh_token?,
    expires_in?, scope?}. Override `credentials_from` to key the credentials like your adapter's
    credential fields.
    """

    scopes: ClassVar[tuple[str, ...]] = ()
    scope_separator: ClassVar[str] = " "
    authorize_path: ClassVar[str] = "/oauth/authorize"
    token_path: ClassVar[str] = "/oauth/token"
    default_auth_url: ClassVar[str | None] = None
    reports_denial = True

    def auth_base(self, store_url: str | None) -> str:
        base = self.app.auth_url or self.default_auth_url or store_url
        if not base:
            raise ConnectRefused(
                f"the {self.platform} install flow does not know where to authorize: give the store's URL",
                failure=FlowFailure.MALFORMED,
                field="store",
            )
        return base.rstrip("/")

    def normalize_store(self, store: str | None) -> str | None:
        """The store URL an attempt is for; raise BadInput(field="store") when it cannot be one."""
        if not store:
            if self.store_input is StoreInput.REQUIRED:
                raise ConnectRefused(
                    f"give the {self.platform} store's URL to connect", failure=FlowFailure.MALFORMED, field="store"
                )
            return None
        url = check_store_url(store, allow_private=self.config.allow_private_urls)
        return url

    def authorize(self, state: str, store: str | None = None) -> AuthorizeRedirect:
        store_url = self.normalize_store(store)
        query = {
            "response_type": "code",
            "client_id": self.app.client_id,
            "redirect_uri": self.endpoints.callback_url,
            "scope": self.scope_separator.join(self.scopes),
            "state": state,
        }
        url = f"{self.auth_base(store_url)}{self.authorize_path}?{urlencode(query)}"
        return AuthorizeRedirect(url=url, store_url=store_url, store_key=store_url)

    def verify_callback(self, request: FlowRequest, *, now: datetime | None = None) -> CallbackOutcome:
        state = request.param("state")
        if request.repeated():
            return Rejected(FlowFailure.MALFORMED, "the callback repeats a parameter", claimed_correlation=state)
        if not state:
            return Rejected(FlowFailure.MALFORMED, "the callback carries no state", browser=True)
        error = request.param("error")
        if error:
            if error == "access_denied":
                return Declined(state, f"The request to connect was declined on {self.platform_name}.")
            return Rejected(
                FlowFailure.MALFORMED,
                f"{self.platform_name} reported an error ({error[:60]})",
                claimed_correlation=state,
                browser=True,
            )
        code = request.param("code")
        if not code:
            return Rejected(
                FlowFailure.MALFORMED, "the callback carries no code", claimed_correlation=state, browser=True
            )
        return Granted(correlation=state, store_key=None, browser=True, grant={"code": code})

    @property
    def platform_name(self) -> str:
        return self.platform.replace("_", " ").title()

    async def complete(self, granted: Granted, http: HttpClient, *, store_url: str | None = None) -> Installation:
        if store_url is None and self.store_input is StoreInput.REQUIRED:
            raise ConnectRefused("this install has no store to connect", failure=FlowFailure.MALFORMED, field="store")
        body = {
            "grant_type": "authorization_code",
            "code": granted.grant.get("code", ""),
            "redirect_uri": self.endpoints.callback_url,
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret,
        }
        payload = await self._token_request(http, store_url, body)
        if payload is None:
            raise ConnectRefused(
                f"{self.platform_name} refused the authorization (the code was invalid, used or expired): "
                "please connect again",
                failure=FlowFailure.CODE_REJECTED,
            )
        tokens = self.tokens_from(payload, now_utc())
        target = store_url or self.auth_base(None)
        return Installation(store_url=target, store_key=target, tokens=tokens)

    async def refresh(
        self, tokens: TokenSet, store_url: str, http: HttpClient, *, now: datetime | None = None
    ) -> TokenSet:
        refresh_token = tokens.credentials.get("refresh_token")
        if not refresh_token:
            raise CredentialsRejected(f"the {self.platform_name} credentials carry no refresh token: reconnect")
        body = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret,
        }
        payload = await self._token_request(http, store_url, body)
        if payload is None:
            raise CredentialsRejected(
                f"{self.platform_name} no longer accepts this connection's credentials: reconnect the store"
            )
        return self.tokens_from(payload, now or now_utc(), previous=tokens)

    async def _token_request(
        self, http: HttpClient, store_url: str | None, body: Mapping[str, str]
    ) -> Mapping[str, Any] | None:
        """POST the token endpoint; None when it refused the grant (invalid_grant or any 4xx)."""
        response = await http.request(
            "POST",
            f"{self.auth_base(store_url)}{self.token_path}",
            data=urlencode(body).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            allow=(400, 401, 403),
        )
        if response.status >= 400:
            return None
        payload = response.json()
        if not isinstance(payload, Mapping) or not payload.get("access_token"):
            raise StoreHTTPError(f"{self.platform_name}'s token endpoint answered without an access token")
        return payload

    def tokens_from(self, payload: Mapping[str, Any], now: datetime, previous: TokenSet | None = None) -> TokenSet:
        scopes = tuple(s for s in str(payload.get("scope") or "").replace(",", " ").split() if s)
        return TokenSet(
            credentials=self.credentials_from(payload, previous),
            expires_at=expires_at(payload.get("expires_in"), now),
            refresh_expires_at=expires_at(payload.get("refresh_token_expires_in"), now),
            scopes=scopes or (previous.scopes if previous else ()),
        )

    def credentials_from(self, payload: Mapping[str, Any], previous: TokenSet | None) -> dict[str, str]:
        """The credentials to seal; by default `access_token` and `refresh_token` (kept when not rotated)."""
        found = {"access_token": str(payload["access_token"])}
        refresh_token = payload.get("refresh_token") or (
            previous.credentials.get("refresh_token") if previous else None
        )
        if refresh_token:
            found["refresh_token"] = str(refresh_token)
        return found
