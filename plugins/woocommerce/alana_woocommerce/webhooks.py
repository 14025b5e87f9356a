"""WooCommerce webhook deliveries: signatures, the creation ping, and parsing into WebhookEvents.

Facts (docs/reference/PLATFORMS.md section B, WooCommerce core class-wc-webhook.php):
- X-WC-Webhook-Signature is base64(HMAC-SHA256(secret, exact raw body)).
- X-WC-Webhook-Delivery-ID is wp_hash(webhook id + current second): two deliveries of one hook within
  the same second share it, so the dedupe key adds a digest of the body (which carries
  date_modified_gmt, so two different changes never collide).
- On creation WooCommerce POSTs an unsigned ping, form body `webhook_id=<id>` with no X-WC-Webhook-*
  headers. It must be answered 2xx, so `is_ping` deliveries verify without a signature; they carry no
  data and parse to None.
- product.* topics also fire for variations, with the variation as the body; and a variable product's
  body lists only variation ids. Both become REFRESH events (fetch the parent by id) rather than an
  UPSERT that would drop every variant.
- Every event carries the body's modification time (date_modified_gmt, else date_created_gmt, as UTC)
  as `store_updated_at`, so the gateway can refuse a late or replayed body older than what it stored;
  a product body without one is a REFRESH (the store's current version is read instead).
- product.deleted (body `{"id": N}`, no time) is a REFRESH too: the product is marked removed only when
  the store no longer lists it, so a replayed deletion of a product restored since removes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.adapter import ChangeKind, WebhookEvent
from gateway.errors import MappingError

TOPICS = ("product.created", "product.updated", "product.deleted")
#: The key under which register_webhooks stores the hooks' secret (WebhookRegistration.secrets).
SECRET_KEY = "webhook_secret"

_PING = re.compile(rb"^webhook_id=\d+$")


def sign(secret: str, body: bytes) -> str:
    """WooCommerce's signature of a body: base64 of the raw HMAC-SHA256 digest."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def is_ping(headers: Mapping[str, str], body: bytes) -> bool:
    """True for the unsigned creation ping (form body `webhook_id=N`, no topic, no signature)."""
    return (
        not headers.get("X-WC-Webhook-Topic")
        and not headers.get("X-WC-Webhook-Signature")
        and _PING.match(body.strip()) is not None
    )


def verify(headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]) -> bool:
    """Constant-time check of X-WC-Webhook-Signature against every webhook secret we hold."""
    if is_ping(headers, body):
        return True
    received = headers.get("X-WC-Webhook-Signature")
    if not received:
        return False
    candidates = [v for k, v in secrets.items() if k.startswith(SECRET_KEY) and v]
    ok = False
    for secret in candidates:
        # No early exit: every candidate is compared, so timing does not reveal which one matched.
        ok |= hmac.compare_digest(sign(secret, body).encode(), received.strip().encode())
    return ok


def delivery_key(headers: Mapping[str, str], body: bytes) -> str:
    """The dedupe key: the platform's delivery id plus a body digest (the id repeats within a second)."""
    digest = hashlib.sha256(body).hexdigest()[:16]
    delivery = headers.get("X-WC-Webhook-Delivery-ID") or f"hook-{headers.get('X-WC-Webhook-ID', '')}"
    return f"{delivery}:{digest}"


def parse(headers: Mapping[str, str], body: bytes) -> WebhookEvent | None:
    """A verified delivery as a WebhookEvent; None for pings and non-product topics."""
    if is_ping(headers, body):
        return None
    topic = (headers.get("X-WC-Webhook-Topic") or "").strip()
    if not topic.startswith("product."):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        raise MappingError(f"the {topic} delivery body is not JSON", code="WEBHOOK_INVALID") from None
    if not isinstance(payload, dict) or payload.get("id") in (None, "", 0):
        raise MappingError(f"the {topic} delivery has no product id", code="WEBHOOK_INVALID")
    external_id = str(payload["id"])
    key = delivery_key(headers, body)
    updated_at = _gmt(payload.get("date_modified_gmt")) or _gmt(payload.get("date_created_gmt"))
    if topic == "product.deleted":
        return WebhookEvent(
            delivery_id=key, topic=topic, kind=ChangeKind.REFRESH, external_id=external_id, store_updated_at=updated_at
        )
    parent_id = payload.get("parent_id")
    if payload.get("type") == "variation" or (parent_id and "images" not in payload):
        return WebhookEvent(
            delivery_id=key,
            topic=topic,
            kind=ChangeKind.REFRESH,
            external_id=str(parent_id),
            store_updated_at=updated_at,
        )
    if payload.get("type") == "variable" or updated_at is None:
        return WebhookEvent(
            delivery_id=key,
            topic=topic,
            kind=ChangeKind.REFRESH,
            external_id=external_id,
            store_updated_at=updated_at,
        )
    return WebhookEvent(
        delivery_id=key,
        topic=topic,
        kind=ChangeKind.UPSERT,
        external_id=external_id,
        product=payload,
        store_updated_at=updated_at,
    )


def _gmt(raw: Any) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
