"""Product webhooks: subscribe, unsubscribe, verify a delivery's HMAC, parse its REST-shaped body.

Shopify signs every delivery with the app's client secret (X-Shopify-Hmac-Sha256 = base64 of
HMAC-SHA256 over the raw body), so registering returns no secret of its own: `verify_webhook` uses the
merchant's `client_secret`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

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
SECRET_KEY = "client_secret"


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


def verify(headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]) -> bool:
    """True when the delivery's HMAC matches the client secret (constant-time)."""
    secret = secrets.get(SECRET_KEY)
    given = header(headers, *HMAC_HEADERS)
    if not secret or not given:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), given.strip().encode())


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


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
    # Webhook-Id is stable across Shopify's retries of one delivery and unique otherwise; the event id
    # (shared by one merchant action) and a body digest are fallbacks for trimmed-down senders.
    delivery_id = header(headers, "X-Shopify-Webhook-Id", "shopify-webhook-id")
    if not delivery_id:
        event = header(headers, "X-Shopify-Event-Id", "shopify-event-id")
        digest = hashlib.sha256(body).hexdigest()[:32]
        delivery_id = f"{event}:{topic}" if event else f"{topic}:{digest}"
    triggered_at = _timestamp(header(headers, "X-Shopify-Triggered-At", "shopify-triggered-at"))
    if topic == "products/delete":
        return WebhookEvent(
            delivery_id=delivery_id,
            topic=topic,
            kind=ChangeKind.DELETE,
            external_id=product_id,
            triggered_at=triggered_at,
        )
    # REFRESH, not UPSERT: the REST-shaped body lacks the translations and the category that a sync
    # reads through GraphQL, so storing it would undo them until the next run (and every run would
    # then count the product as updated). The gateway re-reads the product by id, coalescing bursts.
    return WebhookEvent(
        delivery_id=delivery_id,
        topic=topic,
        kind=ChangeKind.REFRESH,
        external_id=product_id,
        product=payload,
        store_updated_at=_timestamp(payload.get("updated_at")),
        triggered_at=triggered_at,
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
