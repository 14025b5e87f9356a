"""WooCommerce's install flow: key approval at `/wc-auth/v1/authorize`.

Facts and sources: docs/reference/CONNECT-FACTS.md section 3, WooCommerce's class-wc-auth.php.
- The merchant's browser goes to `{site}/wc-auth/v1/authorize?app_name&scope&user_id&return_url&
  callback_url`. `user_id` is ours and echoed back: the attempt's random, single-use state.
- On approval WooCommerce creates a key and POSTs JSON `{key_id, user_id, consumer_key,
  consumer_secret, key_permissions}` to `callback_url`. Anything but exactly 200 makes it delete the
  key and show "Access denied". The POST is unsigned: it is only trusted for a live attempt whose
  user_id it carries (the core's job), and the keys are checked against the store before use.
- Then the browser lands on `return_url?success=1&user_id=...`; the deny link lands on
  `return_url?success=0&user_id=...`.
- `callback_url` must be HTTPS ("The callback_url needs to be over SSL"), and WooCommerce posts with
  wp_safe_remote_post, which refuses loopback and private hosts: `authorize` says so when
  GATEWAY_PUBLIC_URL is not HTTPS, unless private URLs are allowed (tests, demo).

Scope: the gateway only reads the catalog, but it registers webhooks, and WooCommerce's REST
authentication refuses every POST / PUT / DELETE with a `read` key ("The API key provided does not
have write permissions", class-wc-rest-authentication.php `check_permissions`; the approve screen of
`read_write` lists "Create webhooks"). So the flow asks for `read_write`; a subclass may set
`scope = "read"` for deployments that sync on a schedule only.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from urllib.parse import urlencode

from gateway.errors import BadInput, ConnectRefused
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
    Rejected,
    Returned,
    StoreInput,
    TokenSet,
)
from gateway.urls import check_store_url

API_SUFFIX = re.compile(r"/wp-json(/wc/v\d+)?/?$")
INSECURE = (
    "WooCommerce sends the keys only to an HTTPS address, and this gateway's public URL is not HTTPS: set "
    "GATEWAY_PUBLIC_URL to the gateway's https:// address (or paste keys instead)"
)


def site_url(store: str, *, allow_private: bool) -> str:
    """The WordPress site URL of what the merchant typed (without a trailing /wp-json/wc/v3)."""
    try:
        url = check_store_url(store, allow_private=allow_private)
    except BadInput as exc:
        raise BadInput(exc.message.replace("storeUrl", "the store URL"), field="store") from None
    return API_SUFFIX.sub("", url).rstrip("/")


class WooCommerceInstallFlow(InstallFlow):
    platform = "woocommerce"
    correlates = True
    store_input = StoreInput.REQUIRED
    refreshes_tokens = False
    signed_callbacks = False
    reports_denial = True
    #: What the key may do; see the module docstring for why not "read".
    scope = "read_write"

    def store_key_for(self, store_url: str) -> str | None:
        return API_SUFFIX.sub("", store_url.strip()).rstrip("/") or None

    def authorize(self, state: str, store: str | None = None) -> AuthorizeRedirect:
        if not self.endpoints.callback_url.lower().startswith("https://") and not self.config.allow_private_urls:
            raise ConnectRefused(INSECURE, failure=FlowFailure.INSECURE_CALLBACK)
        if not store or not store.strip():
            raise BadInput("give the WooCommerce store's URL (the WordPress site address)", field="store")
        site = site_url(store, allow_private=self.config.allow_private_urls)
        query = (
            ("app_name", self.app.app_name),
            ("scope", self.scope),
            ("user_id", state),
            ("return_url", self.endpoints.callback_url),
            ("callback_url", self.endpoints.callback_url),
        )
        return AuthorizeRedirect(url=f"{site}/wc-auth/v1/authorize?{urlencode(query)}", store_url=site, store_key=site)

    def verify_callback(self, request: FlowRequest, *, now: datetime | None = None) -> CallbackOutcome:
        if request.method == "POST":
            return self._keys(request)
        if request.method != "GET":
            return Rejected(FlowFailure.UNSUPPORTED, "WooCommerce calls this address with GET or POST", status=405)
        user_id, success = request.param("user_id"), request.param("success")
        if not user_id or success not in ("0", "1"):
            return Rejected(
                FlowFailure.MALFORMED, "WooCommerce's answer carries no user_id or success flag", browser=True
            )
        if success == "0":
            return Declined(user_id, "The store's administrator declined to give Alana access.")
        return Returned(user_id)

    def _keys(self, request: FlowRequest) -> CallbackOutcome:
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return Rejected(FlowFailure.MALFORMED, "the keys POST is not a JSON object")
        user_id = body.get("user_id")
        key, secret = body.get("consumer_key"), body.get("consumer_secret")
        permissions = body.get("key_permissions")
        if user_id in (None, "") or isinstance(user_id, (dict, list, bool)):
            return Rejected(FlowFailure.MALFORMED, "the keys POST carries no user_id")
        correlation = str(user_id)
        if not (
            isinstance(key, str) and key.startswith("ck_") and isinstance(secret, str) and secret.startswith("cs_")
        ):
            return Rejected(
                FlowFailure.MALFORMED,
                "the keys POST carries no consumer key and secret",
                claimed_correlation=correlation,
            )
        if permissions != self.scope:
            return Rejected(
                FlowFailure.MALFORMED,
                f"the key grants {str(permissions)[:20]!r}, not the {self.scope!r} access asked for",
                claimed_correlation=correlation,
            )
        grant = {"consumer_key": key, "consumer_secret": secret, "key_permissions": permissions}
        if body.get("key_id") is not None:
            grant["key_id"] = str(body["key_id"])
        return Granted(correlation=correlation, store_key=None, browser=False, grant=grant, reply_status=200)

    async def complete(self, granted: Granted, http: HttpClient, *, store_url: str | None = None) -> Installation:
        key, secret = granted.grant.get("consumer_key"), granted.grant.get("consumer_secret")
        if not key or not secret:
            raise ConnectRefused("the grant carries no WooCommerce keys", failure=FlowFailure.MALFORMED)
        if not store_url:
            # The POST names no site: the keys are only usable with the attempt's store.
            raise ConnectRefused(
                "WooCommerce keys arrived for a connection that names no store", failure=FlowFailure.BAD_STORE
            )
        site = site_url(store_url, allow_private=self.config.allow_private_urls)
        account = {"key_id": granted.grant["key_id"]} if granted.grant.get("key_id") else {}
        return Installation(
            store_url=site,
            store_key=site,
            tokens=TokenSet(
                credentials={"consumer_key": key, "consumer_secret": secret},
                scopes=(granted.grant.get("key_permissions", self.scope),),
            ),
            account=account,
        )
