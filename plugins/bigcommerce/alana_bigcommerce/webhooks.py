"""BigCommerce webhooks: registration through /v3/hooks, verification and parsing of deliveries.

BigCommerce does not sign deliveries with anything the gateway can check for certain (the Standard
Webhooks signature its newer docs mention has unconfirmed header names), but it sends the custom
`headers` given at registration with every delivery. The gateway registers each hook with a random
secret in `X-Alana-Webhook-Secret` and accepts only deliveries that carry it.

Deliveries name the product and nothing more (`{"scope","store_id","data":{"type","id"},"hash",
"created_at","producer"}`), so every change is a REFRESH: the gateway fetches the product by id and
stores what the store answers, with the store's own date_modified as its version. That includes
`store/product/deleted`: the body is not signed, so whoever learned the secret header could otherwise
mark any product removed; fetched instead, a product is marked removed only when the store answers
that it no longer has it (Page.missing_ids). The body carries no modification time, only the event's
(`created_at`, the event's trigger time).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from alana_bigcommerce.client import BigCommerceAPI
from gateway.adapter import ChangeKind, WebhookEvent, WebhookRegistration

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Alana-Webhook-Secret"
SECRET_KEY = "webhook_secret"
#: Product events, plus the variant (SKU) ones: variant edits do not fire store/product/updated.
SCOPES = (
    "store/product/created",
    "store/product/updated",
    "store/product/deleted",
    "store/product/inventory/updated",
    "store/product/inventory/order/updated",
    "store/sku/created",
    "store/sku/updated",
    "store/sku/deleted",
    "store/sku/inventory/updated",
    "store/sku/inventory/order/updated",
)


async def register(api: BigCommerceAPI, callback_url: str) -> WebhookRegistration:
    """Create (or re-point) one hook per scope at `callback_url`, all carrying a fresh secret header.

    BigCommerce allows one hook per scope and destination, so hooks left from an earlier connection
    are updated in place with the new secret rather than duplicated. If any call fails, the hooks
    created so far are removed again.
    """
    secret = secrets.token_urlsafe(32)
    body: dict[str, Any] = {
        "destination": callback_url,
        "is_active": True,
        "headers": {SECRET_HEADER: secret},
    }
    existing = {hook["scope"]: hook["id"] for hook in await _hooks_at(api, callback_url)}
    created: list[str] = []
    hook_ids: list[str] = []
    try:
        for scope in SCOPES:
            if scope in existing:
                response = await api.http.request("PUT", api.v3(f"hooks/{existing[scope]}"), json_body=body)
            else:
                response = await api.http.request("POST", api.v3("hooks"), json_body={**body, "scope": scope})
                created.append(str(response.json()["data"]["id"]))
            hook_ids.append(str(response.json()["data"]["id"]))
    except BaseException:
        with contextlib.suppress(Exception):
            await remove(api, created)
        raise
    return WebhookRegistration(hook_ids=tuple(hook_ids), secrets={SECRET_KEY: secret})


async def _hooks_at(api: BigCommerceAPI, destination: str) -> list[dict[str, Any]]:
    hooks: list[dict[str, Any]] = []
    page_number, pages = 1, 1
    while page_number <= pages:
        page = await api.list_page("hooks", {"destination": destination, "limit": 250}, page_number)
        hooks.extend(h for h in page.items if h.get("destination") == destination and h.get("scope") in SCOPES)
        pages = page.total_pages
        page_number += 1
    return hooks


async def remove(api: BigCommerceAPI, hook_ids: tuple[str, ...] | list[str]) -> None:
    """Delete hooks; one already gone (404) is fine."""
    for hook_id in hook_ids:
        await api.http.request("DELETE", api.v3(f"hooks/{hook_id}"), allow=(404,))


def verify(headers: Mapping[str, str], secrets_: Mapping[str, str]) -> bool:
    """True when the delivery carries the secret header we registered (constant-time comparison)."""
    expected = secrets_.get(SECRET_KEY)
    received = _header(headers, SECRET_HEADER)
    if not expected or received is None:
        return False
    return hmac.compare_digest(received.encode(), expected.encode())


def parse(body: bytes) -> WebhookEvent | None:
    """The product change a delivery announces; None for scopes that change no product."""
    try:
        payload = json.loads(body)
    except ValueError:
        log.info("BigCommerce webhook body is not JSON; ignored")
        return None
    if not isinstance(payload, dict):
        return None
    scope = payload.get("scope")
    data = payload.get("data")
    if not isinstance(scope, str) or not isinstance(data, dict):
        return None
    product_id = _product_id(scope, data)
    if product_id is None:
        log.info("BigCommerce webhook without a product id ignored", extra={"scope": scope})
        return None
    created_at = payload.get("created_at")
    triggered = None
    if isinstance(created_at, (int, float)) and not isinstance(created_at, bool):
        triggered = datetime.fromtimestamp(created_at, UTC)
    return WebhookEvent(
        delivery_id=_delivery_id(payload, body),
        topic=scope,
        kind=ChangeKind.REFRESH,
        external_id=product_id,
        triggered_at=triggered,
    )


def _product_id(scope: str, data: Mapping[str, Any]) -> str | None:
    if scope.startswith("store/product/") and "metafield" not in scope:
        candidate = data.get("id")
        if candidate is None and isinstance(data.get("inventory"), Mapping):
            candidate = data["inventory"].get("product_id")
    elif scope.startswith("store/sku/"):
        candidate = None
        for key in ("inventory", "sku"):
            nested = data.get(key)
            if isinstance(nested, Mapping) and nested.get("product_id") is not None:
                candidate = nested["product_id"]
                break
    else:
        return None
    if candidate is None or isinstance(candidate, bool) or str(candidate).strip() == "":
        return None
    return str(candidate)


def _delivery_id(payload: Mapping[str, Any], body: bytes) -> str:
    # BigCommerce's `hash` identifies the event and is the same on a redelivery. Its docs call it a hash
    # of the "payload data", so two edits of one product could share it: `created_at` keeps them apart.
    digest = payload.get("hash")
    if isinstance(digest, str) and digest:
        return f"{digest}:{payload.get('created_at', '')}"
    return hashlib.sha256(body).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None
