"""Webhook health for WooCommerce: our hooks' status, and reactivating or recreating them.

WooCommerce counts consecutive failed deliveries per hook (anything but 200-302, or no answer) and on
the 7th sets the hook's status to `disabled` (class-wc-webhook.php `failed_delivery`; docs/reference/
CONNECT-FACTS.md 3b). An administrator can also `pause` a hook. Neither deletes it, and nothing is
redelivered. Repairing sets the status back to `active` (the failure count is not reset by that, so
the first good delivery resets it) and recreates missing hooks with the registration's secret, so
deliveries keep verifying.
"""

from __future__ import annotations

from typing import Any

from alana_woocommerce.client import WooClient
from alana_woocommerce.webhooks import SECRET_KEY, TOPICS
from gateway.adapter import HookState, HookStatus, WebhookRegistration, WebhookRepair
from gateway.errors import StorePayloadError

DETAILS = {
    "disabled": "WooCommerce disabled the hook after repeated failed deliveries",
    "paused": "an administrator paused the hook",
}
MISSING = "the hook is gone from the store"


async def _ours(client: WooClient, callback_url: str, hook_name: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for hook in await client.list_webhooks():
        if hook.get("delivery_url") == callback_url and str(hook.get("name", "")).startswith(hook_name):
            found.setdefault(str(hook.get("topic")), hook)
    return found


async def status(client: WooClient, callback_url: str, hook_name: str) -> list[HookStatus]:
    hooks = await _ours(client, callback_url, hook_name)
    found: list[HookStatus] = []
    for topic in TOPICS:
        hook = hooks.get(topic)
        if hook is None:
            found.append(HookStatus(topic, HookState.MISSING, None, MISSING))
            continue
        state = str(hook.get("status") or "")
        if state == "active":
            found.append(HookStatus(topic, HookState.ACTIVE, str(hook["id"])))
        else:
            detail = DETAILS.get(state, f"the hook's status is {state[:20]!r}")
            found.append(HookStatus(topic, HookState.DISABLED, str(hook["id"]), detail))
    return found


async def repair(
    client: WooClient, registration: WebhookRegistration, callback_url: str, hook_name: str
) -> WebhookRepair:
    secret = registration.secrets.get(SECRET_KEY)
    if not secret:
        raise StorePayloadError("the WooCommerce webhook registration has no secret to re-register hooks with")
    repaired: list[HookStatus] = []
    hook_ids: list[str] = []
    for current in await status(client, callback_url, hook_name):
        if current.state is HookState.ACTIVE and current.hook_id is not None:
            hook_ids.append(current.hook_id)
            continue
        if current.hook_id is not None:
            await client.request("PUT", f"webhooks/{current.hook_id}", json_body={"status": "active"})
            hook_ids.append(current.hook_id)
        else:
            hook_ids.append(
                await client.create_webhook(
                    name=f"{hook_name} ({current.topic})", topic=current.topic, delivery_url=callback_url, secret=secret
                )
            )
        repaired.append(current)
    return WebhookRepair(
        registration=WebhookRegistration(hook_ids=tuple(hook_ids), secrets=dict(registration.secrets)),
        repaired=tuple(repaired),
    )
