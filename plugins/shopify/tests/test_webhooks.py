"""Webhooks end to end: subscribe on the simulator, change products, a receiver verifies and parses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
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
    # A deletion is confirmed with the store before anything is removed (issue 11, finding 9).
    assert (gone.kind, gone.external_id, gone.product) == (ChangeKind.REFRESH, doomed, None)
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
    now = datetime.now(UTC).isoformat()
    assert adapter.verify_webhook({"x-shopify-hmac-sha256": signature, "x-shopify-triggered-at": now}, body, secrets)
    assert adapter.verify_webhook({"shopify-hmac-sha256": signature, "shopify-triggered-at": now}, body, secrets)
    assert not adapter.verify_webhook({"X-Shopify-Hmac-Sha256": signature, "X-Shopify-Triggered-At": now}, body, {})
    assert not adapter.verify_webhook(
        {"X-Shopify-Hmac-Sha256": "bm9wZQ==", "X-Shopify-Triggered-At": now}, body, secrets
    )
    event = adapter.parse_webhook({"x-shopify-topic": "products/update", "x-shopify-webhook-id": "w-1"}, body)
    assert event is not None and event.delivery_id.startswith("sha256:") and event.external_id == "1"
    assert adapter.parse_webhook({"X-Shopify-Topic": "app/uninstalled"}, b"{}") is None


# ---- replays and other shops' deliveries (issue 11, finding 9) ------------------------------------------
BODY = b'{"id": 632910392, "title": "IPod Nano", "updated_at": "2026-03-01T09:30:00-05:00"}'
SECRETS = {"client_secret": "app-secret"}


def delivery_headers(triggered: str | None, **extra: str) -> dict[str, str]:
    headers = {
        "X-Shopify-Topic": "products/update",
        "X-Shopify-Hmac-Sha256": sign("app-secret", BODY),
        "X-Shopify-Shop-Domain": "shop-a.myshopify.com",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        **extra,
    }
    if triggered is not None:
        headers["X-Shopify-Triggered-At"] = triggered
    return headers


@pytest.mark.parametrize(
    ("triggered", "accepted"),
    [
        (timedelta(0), True),
        (-timedelta(hours=4, minutes=30), True),  # Shopify's last retry, 4 h after the change
        (timedelta(minutes=2), True),  # a little clock skew
        (-timedelta(hours=6), False),  # past the retry window: a replay
        (-timedelta(days=5), False),
        (timedelta(hours=1), False),  # from the future: made up
        (None, False),  # missing
        ("yesterday", False),  # unparseable
        ("naive", False),  # no time zone: which hour it names is anyone's guess
        ("", False),
    ],
)
def test_a_delivery_must_carry_a_recent_triggered_at(
    adapter: ShopifyAdapter, triggered: timedelta | str | None, accepted: bool
) -> None:
    value = (datetime.now(UTC) + triggered).isoformat() if isinstance(triggered, timedelta) else triggered
    if value == "naive":
        value = datetime.now(UTC).replace(tzinfo=None).isoformat()
    assert adapter.verify_webhook(delivery_headers(value), BODY, SECRETS) is accepted


def test_the_dedupe_key_ignores_headers_a_replayer_can_change(adapter: ShopifyAdapter) -> None:
    now = datetime.now(UTC).isoformat()
    first = adapter.parse_webhook(delivery_headers(now), BODY)
    replayed = adapter.parse_webhook(
        delivery_headers(
            now, **{"X-Shopify-Webhook-Id": "a-new-id", "X-Shopify-Event-Id": "another", "X-Shopify-Name": "x"}
        ),
        BODY,
    )
    assert first is not None and replayed is not None
    assert first.delivery_id == replayed.delivery_id  # recorded once by the gateway
    other = BODY.replace(b"09:30:00", b"09:31:00")
    second_change = adapter.parse_webhook(delivery_headers(now), other)
    assert second_change is not None and second_change.delivery_id != first.delivery_id


def test_a_topic_header_changed_to_delete_removes_nothing_unconfirmed(adapter: ShopifyAdapter) -> None:
    event = adapter.parse_webhook(delivery_headers(None, **{"X-Shopify-Topic": "products/delete"}), BODY)
    assert event is not None and event.kind is ChangeKind.REFRESH  # the store is asked; nothing is removed blindly
    assert event.external_id == "632910392"


def test_store_updated_at_is_utc(adapter: ShopifyAdapter) -> None:
    event = adapter.parse_webhook(delivery_headers(None), BODY)
    assert event is not None and event.store_updated_at == datetime(2026, 3, 1, 14, 30, tzinfo=UTC)
    assert event.store_updated_at.utcoffset() == timedelta(0)


def test_the_shop_domain_must_be_the_integrations(adapter: ShopifyAdapter) -> None:
    headers = delivery_headers(None)
    assert adapter.webhook_from_store(headers, BODY, "https://shop-a.myshopify.com")
    assert adapter.webhook_from_store(headers, BODY, "https://Shop-A.myshopify.com/")
    # One app secret signs every shop's deliveries: shop A's must not be accepted at shop B's URL.
    assert not adapter.webhook_from_store(headers, BODY, "https://shop-b.myshopify.com")
    missing = {k: v for k, v in headers.items() if k != "X-Shopify-Shop-Domain"}
    assert not adapter.webhook_from_store(missing, BODY, "https://shop-a.myshopify.com")
    assert adapter.webhook_from_store(
        {"shopify-shop-domain": "shop-a.myshopify.com"}, BODY, "https://shop-a.myshopify.com"
    )
    # A store reached by IP address (the simulator) has no shop domain to compare with.
    assert adapter.webhook_from_store(headers, BODY, "http://127.0.0.1:8123")
