"""Webhook health for BigCommerce: which hooks at the callback URL are active, and reactivating them.

BigCommerce retries a failing delivery for about 48 hours and then sets the hook's `is_active` to
false; hooks also deactivate after 90 days without events, and uninstalling the app deletes them
(docs/reference/CONNECT-FACTS.md 2a, 2b). A hook is visible only with the token that created it.
Repairing sets `is_active: true` again (Update a webhook) and recreates missing hooks with the
registration's secret header, so deliveries keep verifying with the secret already stored.
"""

from __future__ import annotations

from typing import Any

from alana_bigcommerce.client import BigCommerceAPI
from alana_bigcommerce.webhooks import SCOPES, SECRET_HEADER, SECRET_KEY
from gateway.adapter import HookState, HookStatus, WebhookRegistration, WebhookRepair
from gateway.errors import StorePayloadError

DISABLED = "BigCommerce deactivated the hook (deliveries failed for about 48 hours, or 90 days without events)"
MISSING = "the hook is gone from the store"


async def _hooks(api: BigCommerceAPI, destination: str) -> dict[str, dict[str, Any]]:
    """Our hooks at `destination`, by scope."""
    found: dict[str, dict[str, Any]] = {}
    page_number, pages = 1, 1
    while page_number <= pages:
        page = await api.list_page("hooks", {"destination": destination, "limit": 250}, page_number)
        for hook in page.items:
            if hook.get("destination") == destination and hook.get("scope") in SCOPES:
                found.setdefault(str(hook["scope"]), hook)
        pages = page.total_pages
        page_number += 1
    return found


async def status(api: BigCommerceAPI, callback_url: str) -> list[HookStatus]:
    hooks = await _hooks(api, callback_url)
    found: list[HookStatus] = []
    for scope in SCOPES:
        hook = hooks.get(scope)
        if hook is None:
            found.append(HookStatus(scope, HookState.MISSING, None, MISSING))
        elif hook.get("is_active") is False:
            found.append(HookStatus(scope, HookState.DISABLED, str(hook.get("id")), DISABLED))
        else:
            found.append(HookStatus(scope, HookState.ACTIVE, str(hook.get("id"))))
    return found


async def repair(api: BigCommerceAPI, registration: WebhookRegistration, callback_url: str) -> WebhookRepair:
    secret = registration.secrets.get(SECRET_KEY)
    if not secret:
        raise StorePayloadError("the BigCommerce webhook registration has no secret to re-register hooks with")
    body: dict[str, Any] = {"destination": callback_url, "is_active": True, "headers": {SECRET_HEADER: secret}}
    repaired: list[HookStatus] = []
    hook_ids: list[str] = []
    for current in await status(api, callback_url):
        if current.state is HookState.ACTIVE and current.hook_id is not None:
            hook_ids.append(current.hook_id)
            continue
        if current.state is HookState.DISABLED and current.hook_id is not None:
            response = await api.http.request("PUT", api.v3(f"hooks/{current.hook_id}"), json_body=body)
        else:
            response = await api.http.request("POST", api.v3("hooks"), json_body={**body, "scope": current.topic})
        hook_ids.append(str(response.json()["data"]["id"]))
        repaired.append(current)
    return WebhookRepair(
        registration=WebhookRegistration(hook_ids=tuple(hook_ids), secrets=dict(registration.secrets)),
        repaired=tuple(repaired),
    )
