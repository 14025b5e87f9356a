"""Product webhooks: subscribe, unsubscribe, verify a delivery's HMAC, parse its REST-shaped body.

Shopify signs every delivery with the app's client secret (X-Shopify-Hmac-Sha256 = base64 of
HMAC-SHA256 over the raw body), so registering returns no secret of its own: `verify_webhook` uses the
merchant's `client_secret`.

Only the body is signed; every header can be changed by whoever captured a delivery. So:
- the dedupe key is a digest of the body, which Shopify keeps unchanged across its retries ("original
  payload", docs/reference/CONNECT-FACTS.md 1d), not X-Shopify-Webhook-Id or X-Shopify-Event-Id: a new
  header value would re-admit a captured delivery;
- a delivery must carry a valid X-Shopify-Triggered-At within Shopify's retry window (8 retries over
  4 h) and not in the future, so a captured delivery cannot be replayed once it has left the dedupe log;
- X-Shopify-Shop-Domain must be the integration's shop (`from_store`): one app secret signs the
  deliveries of every shop that installed the app;
- nothing is taken from the topic header on trust: deletions, like updates, are REFRESH events (the
  gateway fetches the product and marks it removed only when the store no longer has it), so a signed
  update body replayed as products/delete removes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from alana_shopify.client import ShopifyGraphQL
from alana_shopify.mapper import numeric_id
from alana_shopify.queries import WEBHOOK_CREATE, WEBHOOK_DELETE, WEBHOOK_FIND
from gateway.adapter import ChangeKind, WebhookEvent, WebhookRegistration
from gateway.errors import MappingError, StorePayloadError

#: GraphQL topic -> the topic string deliveries carry in X-Shopify-Topic.
TOPICS = {
    "PRODUCTS_CREATE": "products/create",
    "PRODUCTS_UPDATE": "products/update",
    "PRODUCTS_DELETE": "products/delete",
}
HMAC_HEADERS = ("X-Shopify-Hmac-Sha256", "shopify-hmac-sha256")
TRIGGERED_HEADERS = ("X-Shopify-Triggered-At", "shopify-triggered-at")
DOMAIN_HEADERS = ("X-Shopify-Shop-Domain", "shopify-shop-domain")
SECRET_KEY = "client_secret"
#: Shopify retries a failed delivery 8 times over 4 hours (since 2024-09-10); an hour more for queues.
MAX_AGE = timedelta(hours=5)
#: Clock difference tolerated between Shopify and the gateway.
MAX_SKEW = timedelta(minutes=5)


def header(headers: Mapping[str, str], *names: str) -> str | None:
    """A header by any of `names`, case-insensitively, whatever mapping the caller passes."""
    for name in names:
        value = headers.get(name)
        if value is not None:
            return value
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value is not None:
            return value
    return None


def sign(secret: str, body: bytes) -> str:
    """Shopify's signature of a body: base64(HMAC-SHA256(secret, body))."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str], now: datetime | None = None) -> bool:
    """True when the HMAC matches the client secret (constant-time) and the delivery is recent.

    Recent: X-Shopify-Triggered-At is present, parses with a time zone (Shopify always sends one; a
    time without a zone could be any of 26 hours, so it is refused like an unparseable one), is at most
    MAX_SKEW in the future and at most MAX_AGE in the past.
    """
    secret = secrets.get(SECRET_KEY)
    given = header(headers, *HMAC_HEADERS)
    if not secret or not given:
        return False
    if not hmac.compare_digest(sign(secret, body).encode(), given.strip().encode()):
        return False
    triggered = _timestamp(header(headers, *TRIGGERED_HEADERS), zoned=True)
    if triggered is None:
        return False
    now = now or datetime.now(UTC)
    return now - MAX_AGE <= triggered <= now + MAX_SKEW


def from_store(headers: Mapping[str, str], store_url: str) -> bool:
    """True when X-Shopify-Shop-Domain names the shop at `store_url`.

    A store URL that is an IP address (a simulator or a proxy, which only GATEWAY_ALLOW_PRIVATE_URLS
    or a merchant's own odd setup allows) has no shop domain to compare with, so it is not checked.
    """
    host = (urlsplit(store_url).hostname or "").rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    domain = (header(headers, *DOMAIN_HEADERS) or "").strip().rstrip(".").lower()
    return bool(domain) and hmac.compare_digest(domain.encode(), host.encode())


def _timestamp(value: Any, *, zoned: bool = False) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (no offset means UTC, unless `zoned` asks for an offset);
    None when absent or invalid."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None if zoned else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse(headers: Mapping[str, str], body: bytes) -> WebhookEvent | None:
    """A verified delivery as a WebhookEvent; None for topics that carry no product change."""
    topic = (header(headers, "X-Shopify-Topic", "shopify-topic") or "").strip().lower()
    if topic not in TOPICS.values():
        return None
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise MappingError(f"a {topic} delivery body is not JSON") from exc
    if not isinstance(payload, dict):
        raise MappingError(f"a {topic} delivery body is not an object")
    product_id = numeric_id(payload.get("id"))
    if product_id is None:
        raise MappingError(f"a {topic} delivery names no product id")
    delivery_id = "sha256:" + hashlib.sha256(body).hexdigest()
    # REFRESH, not UPSERT: the REST-shaped body lacks the translations and the category that a sync
    # reads through GraphQL, so storing it would undo them until the next run (and every run would
    # then count the product as updated). The gateway re-reads the product by id, coalescing bursts.
    # A deletion is a REFRESH too: the read finds the product gone (Page.missing_ids) before it is
    # marked removed, so a delivery whose topic header was changed removes nothing.
    return WebhookEvent(
        delivery_id=delivery_id,
        topic=topic,
        kind=ChangeKind.REFRESH,
        external_id=product_id,
        product=payload if topic != "products/delete" else None,
        store_updated_at=_timestamp(payload.get("updated_at")),
        triggered_at=_timestamp(header(headers, *TRIGGERED_HEADERS)),
    )


async def register(gql: ShopifyGraphQL, callback_url: str) -> WebhookRegistration:
    """Subscribe the three product topics to `callback_url`; an existing subscription is reused."""
    hook_ids: list[str] = []
    for topic in TOPICS:
        data = await gql.execute(
            WEBHOOK_CREATE,
            {"topic": topic, "sub": {"callbackUrl": callback_url, "format": "JSON"}},
            mutation=True,
        )
        payload = data.get("webhookSubscriptionCreate") or {}
        subscription = payload.get("webhookSubscription") or {}
        if subscription.get("id"):
            hook_ids.append(str(subscription["id"]))
            continue
        existing = await _find(gql, topic, callback_url)
        if existing is None:
            errors = "; ".join(str(e.get("message")) for e in payload.get("userErrors") or [])
            raise StorePayloadError(f"Shopify refused the {TOPICS[topic]} webhook: {errors or 'no reason given'}")
        hook_ids.append(existing)
    return WebhookRegistration(hook_ids=tuple(hook_ids), secrets={})


async def _find(gql: ShopifyGraphQL, topic: str, callback_url: str) -> str | None:
    """The id of a subscription for `topic` at `callback_url` (e.g. left by an earlier connect)."""
    data = await gql.execute(WEBHOOK_FIND, {"topics": [topic], "url": callback_url})
    found: list[Any] = ((data.get("webhookSubscriptions") or {}).get("nodes")) or []
    for node in found:
        if isinstance(node, dict) and node.get("id"):
            return str(node["id"])
    return None


async def remove(gql: ShopifyGraphQL, registration: WebhookRegistration) -> None:
    """Delete the subscriptions; one already gone is no error."""
    for hook_id in registration.hook_ids:
        await gql.execute(WEBHOOK_DELETE, {"id": hook_id}, mutation=True)
