"""Webhook health for Shopify: which product subscriptions the shop still has, and putting back the rest.

Shopify has no "disabled" subscription: after deliveries keep failing (8 retries over 4 hours since
2024-09-10) it deletes the subscription, and an uninstall deletes them all (docs/reference/
CONNECT-FACTS.md 1c, 1d). So a topic is ACTIVE or MISSING, and repairing re-subscribes what is missing
(`webhooks.register` reuses what is still there). Shopify signs with the app's client secret, so the
registration's secrets do not change.
"""

from __future__ import annotations

from typing import Any

from alana_shopify import webhooks
from alana_shopify.client import ShopifyGraphQL
from alana_shopify.queries import WEBHOOK_FIND
from gateway.adapter import HookState, HookStatus, WebhookRegistration, WebhookRepair

MISSING = "Shopify no longer has this subscription (deliveries kept failing, or it was deleted)"


async def status(gql: ShopifyGraphQL, callback_url: str) -> list[HookStatus]:
    data = await gql.execute(WEBHOOK_FIND, {"topics": None, "url": callback_url})
    nodes: list[Any] = ((data.get("webhookSubscriptions") or {}).get("nodes")) or []
    present = {str(n["topic"]): str(n["id"]) for n in nodes if isinstance(n, dict) and n.get("id") and n.get("topic")}
    found: list[HookStatus] = []
    for enum_name, topic in webhooks.TOPICS.items():
        hook_id = present.get(enum_name)
        if hook_id is None:
            found.append(HookStatus(topic, HookState.MISSING, None, MISSING))
        else:
            found.append(HookStatus(topic, HookState.ACTIVE, hook_id))
    return found


async def repair(gql: ShopifyGraphQL, registration: WebhookRegistration, callback_url: str) -> WebhookRepair:
    broken = tuple(s for s in await status(gql, callback_url) if s.state is not HookState.ACTIVE)
    if not broken:
        return WebhookRepair(registration=registration)
    fresh = await webhooks.register(gql, callback_url)
    return WebhookRepair(
        registration=WebhookRegistration(hook_ids=fresh.hook_ids, secrets=dict(registration.secrets)),
        repaired=broken,
    )
