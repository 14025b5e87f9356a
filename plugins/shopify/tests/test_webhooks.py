"""Webhooks end to end: subscribe on the simulator, change products, a receiver verifies and parses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp import web
from alana_shopify.adapter import ShopifyAdapter
from alana_shopify.simulator import ShopifySimulator
from alana_shopify.webhooks import sign

from gateway.adapter import ChangeKind, MappingContext, WebhookEvent
from gateway.simkit import free_port


@dataclass
class Receiver:
    """A tiny webhook endpoint doing what the gateway does: verify, then parse; 401 when forged."""

    adapter: ShopifyAdapter
    secrets: dict[str, str]
    url: str = ""
    events: list[WebhookEvent] = field(default_factory=list)
    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    rejected: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.adapter.verify_webhook(request.headers, body, self.secrets):
            self.rejected += 1
            return web.Response(status=401)
        kept = {k: v for k, v in request.headers.items() if k.lower().startswith(("x-shopify-", "content-type"))}
        self.raw.append((kept, body))
        event = self.adapter.parse_webhook(request.headers, body)
        if event is not None:
            self.events.append(event)
        return web.Response(text="ok")


@pytest_asyncio.fixture
async def shop(fast: dict[str, Any]) -> AsyncIterator[ShopifySimulator]:
    simulator = ShopifySimulator(20, **fast)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest_asyncio.fixture
async def receiver(adapter: ShopifyAdapter, shop: ShopifySimulator) -> AsyncIterator[Receiver]:
    target = Receiver(adapter, {"client_secret": shop.client_secret})
    app = web.Application()
    app.router.add_post("/hooks/shopify", target.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    target.url = f"http://127.0.0.1:{port}/hooks/shopify"
    yield target
    await runner.cleanup()


async def test_register_change_receive_remove(
    adapter: ShopifyAdapter, shop: ShopifySimulator, receiver: Receiver, connect: Any
) -> None:
    conn = connect(shop)
    registration = await adapter.register_webhooks(conn, receiver.url)
    assert len(registration.hook_ids) == 3 and registration.secrets == {}
    assert {h.topic for h in shop.hooks.values()} == {"PRODUCTS_CREATE", "PRODUCTS_UPDATE", "PRODUCTS_DELETE"}
    # Registering again (a reconnect) reuses the subscriptions instead of failing on "already taken".
    again = await adapter.register_webhooks(conn, receiver.url)
    assert set(again.hook_ids) == set(registration.hook_ids) and len(shop.hooks) == 3

    edited, doomed = shop.product_ids()[0], shop.product_ids()[1]
    shop.update_product(edited, title="Renamed mug", price="12.50")
    shop.update_product(edited)
    created = shop.create_product(title="Brand new")
    shop.delete_product(doomed)
    await shop.drain_deliveries()

    assert receiver.rejected == 0 and len(receiver.events) == 4
    first, second, new, gone = sorted(receiver.events, key=lambda e: str(e.triggered_at))
    assert (first.kind, first.topic, first.external_id) == (ChangeKind.REFRESH, "products/update", edited)
    assert first.store_updated_at is not None and second.store_updated_at is not None
    assert first.store_updated_at < second.store_updated_at  # the simulated clock moves per change
    assert json.loads(receiver.raw[0][1])["updated_at"].endswith("-05:00")  # REST bodies are shop-local
    assert first.delivery_id != second.delivery_id  # two changes are never collapsed
    assert first.triggered_at is not None and first.triggered_at.tzinfo is not None
    product = adapter.map_product(first.product or {}, MappingContext())
    assert product.title == "Renamed mug" and product.external_id == edited
    assert product.price is not None and str(product.price.amount) == "12.50"
    assert (new.kind, new.external_id, new.topic) == (ChangeKind.REFRESH, created, "products/create")
    assert (gone.kind, gone.external_id, gone.product) == (ChangeKind.DELETE, doomed, None)
    # Webhook and sync agree on the external id.
    assert {e.external_id for e in receiver.events} <= set(shop.product_ids()) | {doomed}

    await adapter.remove_webhooks(conn, registration)
    assert shop.hooks == {}
    shop.update_product(edited)
    await shop.drain_deliveries()
    assert len(receiver.events) == 4
    await adapter.remove_webhooks(conn, registration)  # already gone: no error


async def test_forged_truncated_and_wrongly_signed_deliveries_are_rejected(
    adapter: ShopifyAdapter, shop: ShopifySimulator, receiver: Receiver, connect: Any
) -> None:
    await adapter.register_webhooks(connect(shop), receiver.url)
    shop.update_product(shop.product_ids()[0])
    await shop.drain_deliveries()
    [(headers, body)] = receiver.raw
    async with aiohttp.ClientSession() as session:

        async def post(data: bytes, hdrs: dict[str, str]) -> int:
            async with session.post(receiver.url, data=data, headers=hdrs) as response:
                return response.status

        forged = body.replace(b"edit", b"hack")
        assert forged != body
        assert await post(forged, headers) == 401
        assert await post(body[:-7], headers) == 401
        assert await post(body, {**headers, "X-Shopify-Hmac-Sha256": sign("not-the-secret", body)}) == 401
        without = {k: v for k, v in headers.items() if k.lower() != "x-shopify-hmac-sha256"}
        assert await post(body, without) == 401
        # A redelivery of the genuine delivery is accepted again (the gateway dedupes on delivery_id).
        assert await post(body, headers) == 200
    assert receiver.rejected == 4
    assert receiver.events[0].delivery_id == receiver.events[1].delivery_id


def test_verify_is_case_insensitive_and_accepts_the_events_header(adapter: ShopifyAdapter) -> None:
    body = b'{"id": 1, "title": "x", "updated_at": "2026-01-01T00:00:00Z"}'
    secrets = {"client_secret": "s3cret"}
    signature = sign("s3cret", body)
    assert adapter.verify_webhook({"x-shopify-hmac-sha256": signature}, body, secrets)
    assert adapter.verify_webhook({"shopify-hmac-sha256": signature}, body, secrets)
    assert not adapter.verify_webhook({"X-Shopify-Hmac-Sha256": signature}, body, {})
    assert not adapter.verify_webhook({"X-Shopify-Hmac-Sha256": "bm9wZQ=="}, body, secrets)
    event = adapter.parse_webhook({"x-shopify-topic": "products/update", "x-shopify-webhook-id": "w-1"}, body)
    assert event is not None and event.delivery_id == "w-1" and event.external_id == "1"
    assert adapter.parse_webhook({"X-Shopify-Topic": "app/uninstalled"}, b"{}") is None
