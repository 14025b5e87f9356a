"""Webhooks end to end: register on the simulator, receive signed deliveries, verify, parse, remove."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from alana_woocommerce import webhooks
from alana_woocommerce.adapter import WooCommerceAdapter
from multidict import CIMultiDict

from gateway.adapter import ChangeKind, MappingContext, WebhookRegistration
from gateway.errors import MappingError, StoreHTTPError


async def registered(adapter: WooCommerceAdapter, sim: Any, conn: Any, receiver: Any) -> WebhookRegistration:
    registration = await adapter.register_webhooks(conn, receiver.url)
    await sim.drain_deliveries()
    receiver.take()  # the creation pings
    return registration


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def test_register_creates_three_hooks_with_one_secret(
    make_sim: Any, make_conn: Any, receiver: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(20)
    registration = await adapter.register_webhooks(make_conn(sim), receiver.url)
    assert len(registration.hook_ids) == 3
    secret = registration.secrets[webhooks.SECRET_KEY]
    assert len(secret) >= 40
    assert sorted(h.topic for h in sim.hooks.values()) == sorted(webhooks.TOPICS)
    assert {h.secret for h in sim.hooks.values()} == {secret}
    assert {h.destination for h in sim.hooks.values()} == {receiver.url}
    await sim.drain_deliveries()
    pings = receiver.take()
    assert sorted(p.body for p in pings) == sorted(f"webhook_id={i}".encode() for i in registration.hook_ids)
    for ping in pings:
        assert "X-WC-Webhook-Signature" not in ping.headers
        assert adapter.verify_webhook(ping.headers, ping.body, {}) is True
        assert adapter.parse_webhook(ping.headers, ping.body) is None


async def test_secrets_differ_per_registration(
    make_sim: Any, make_conn: Any, receiver: Any, adapter: WooCommerceAdapter
) -> None:
    sim_a, sim_b = await make_sim(1), await make_sim(1, seed=8)
    first = await adapter.register_webhooks(make_conn(sim_a), receiver.url)
    second = await adapter.register_webhooks(make_conn(sim_b), receiver.url)
    assert first.secrets[webhooks.SECRET_KEY] != second.secrets[webhooks.SECRET_KEY]


async def test_update_delivers_a_verifiable_upsert(
    make_sim: Any, make_conn: Any, receiver: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(40)
    registration = await registered(adapter, sim, make_conn(sim), receiver)
    pid = next(p for p in sim.product_ids() if sim.products[int(p)]["type"] == "simple")
    sim.update_product(pid)
    await sim.drain_deliveries()
    (delivery,) = receiver.take()
    headers = delivery.headers
    assert headers["X-WC-Webhook-Topic"] == "product.updated"
    assert headers["X-WC-Webhook-Resource"] == "product" and headers["X-WC-Webhook-Event"] == "updated"
    assert headers["X-WC-Webhook-ID"] in registration.hook_ids
    assert headers["X-WC-Webhook-Source"] == sim.store_url + "/"
    assert headers["User-Agent"].startswith("WooCommerce/")
    assert adapter.verify_webhook(headers, delivery.body, registration.secrets) is True
    event = adapter.parse_webhook(headers, delivery.body)
    assert event is not None and event.kind is ChangeKind.UPSERT and event.external_id == pid
    assert event.topic == "product.updated"
    native = sim.products[int(pid)]
    assert event.store_updated_at == datetime.fromisoformat(native["date_modified_gmt"]).replace(tzinfo=UTC)
    assert event.delivery_id.startswith(headers["X-WC-Webhook-Delivery-ID"] + ":")
    assert event.product is not None
    product = adapter.map_product(event.product, MappingContext())
    assert product.title == native["name"] and "(edit " in product.title


async def test_variable_update_asks_for_a_refresh(
    make_sim: Any, make_conn: Any, receiver: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(40)
    registration = await registered(adapter, sim, make_conn(sim), receiver)
    pid = next(p for p in sim.product_ids() if sim.products[int(p)]["type"] == "variable")
    sim.update_product(pid)
    await sim.drain_deliveries()
    (delivery,) = receiver.take()
    assert adapter.verify_webhook(delivery.headers, delivery.body, registration.secrets)
    event = adapter.parse_webhook(delivery.headers, delivery.body)
    assert event is not None and event.kind is ChangeKind.REFRESH and event.external_id == pid
    assert event.product is None


async def test_create_and_delete_deliveries(
    make_sim: Any, make_conn: Any, receiver: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(10)
    registration = await registered(adapter, sim, make_conn(sim), receiver)
    new_id = sim.create_product(name="Brand-new Mug", regular_price="12.50")
    sim.delete_product(new_id)
    await sim.drain_deliveries()
    events = []
    for delivery in receiver.take():
        assert adapter.verify_webhook(delivery.headers, delivery.body, registration.secrets)
        events.append(adapter.parse_webhook(delivery.headers, delivery.body))
    by_topic = {e.topic: e for e in events if e is not None}
    created, deleted = by_topic["product.created"], by_topic["product.deleted"]
    assert created.kind is ChangeKind.UPSERT and created.external_id == new_id
    assert created.product is not None and created.product["name"] == "Brand-new Mug"
    # A deletion is confirmed with the store (the product must be gone when fetched) before removal.
    assert deleted.kind is ChangeKind.REFRESH and deleted.external_id == new_id
    assert new_id not in sim.product_ids()


async def test_two_changes_in_one_second_get_different_delivery_ids(
    make_sim: Any, make_conn: Any, receiver: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(10, examples=False)
    await registered(adapter, sim, make_conn(sim), receiver)
    pid = sim.product_ids()[0]
    sim.update_product(pid, regular_price="10.00")
    sim.update_product(pid, regular_price="11.00")
    await sim.drain_deliveries()
    deliveries = receiver.take()
    assert len(deliveries) == 2
    keys = {adapter.parse_webhook(d.headers, d.body).delivery_id for d in deliveries}  # type: ignore[union-attr]
    assert len(keys) == 2


def test_delivery_id_is_stable_for_a_redelivery_and_distinct_for_another_body() -> None:
    headers = CIMultiDict({"X-WC-Webhook-Topic": "product.updated", "X-WC-Webhook-Delivery-ID": "abc123"})
    first = json.dumps({"id": 5, "name": "A", "date_modified_gmt": "2024-01-01T00:00:01"}).encode()
    second = json.dumps({"id": 5, "name": "A", "date_modified_gmt": "2024-01-01T00:00:02"}).encode()
    event = webhooks.parse(headers, first)
    again = webhooks.parse(headers, first)
    other = webhooks.parse(headers, second)
    assert event is not None and again is not None and other is not None
    assert event.delivery_id == again.delivery_id != other.delivery_id


async def test_forged_and_tampered_deliveries_are_rejected(
    make_sim: Any, make_conn: Any, receiver: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(10)
    registration = await registered(adapter, sim, make_conn(sim), receiver)
    sim.update_product(sim.product_ids()[0])
    await sim.drain_deliveries()
    (delivery,) = receiver.take()
    secrets = registration.secrets
    assert adapter.verify_webhook(delivery.headers, delivery.body, secrets)
    assert not adapter.verify_webhook(delivery.headers, delivery.body + b" ", secrets)
    assert not adapter.verify_webhook(delivery.headers, delivery.body, {webhooks.SECRET_KEY: "guess"})
    assert not adapter.verify_webhook(delivery.headers, delivery.body, {})
    forged = CIMultiDict(delivery.headers)
    forged["X-WC-Webhook-Signature"] = sign("attacker-secret", delivery.body)
    assert not adapter.verify_webhook(forged, delivery.body, secrets)
    unsigned = CIMultiDict(delivery.headers)
    del unsigned["X-WC-Webhook-Signature"]
    assert not adapter.verify_webhook(unsigned, delivery.body, secrets)
    # The merchant's API secret is not a webhook secret.
    api_signed = CIMultiDict(delivery.headers)
    api_signed["X-WC-Webhook-Signature"] = sign(sim.consumer_secret, delivery.body)
    assert not adapter.verify_webhook(api_signed, delivery.body, {**secrets, **sim.credentials()})


def test_a_fake_ping_with_a_product_body_is_not_a_ping() -> None:
    body = b'{"id": 5}'
    assert not webhooks.verify(CIMultiDict(), body, {webhooks.SECRET_KEY: "s"})
    assert not webhooks.verify(CIMultiDict({"X-WC-Webhook-Topic": "product.deleted"}), b"webhook_id=3", {})


def test_lower_case_headers_verify() -> None:
    body = b'{"id": 9, "name": "x", "date_modified_gmt": "2024-05-01T10:00:00"}'
    headers = CIMultiDict({"x-wc-webhook-signature": sign("s3cret", body), "x-wc-webhook-topic": "product.updated"})
    assert webhooks.verify(headers, body, {webhooks.SECRET_KEY: "s3cret"})
    event = webhooks.parse(headers, body)
    assert event is not None and event.external_id == "9"
    assert event.store_updated_at == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_variation_payloads_refresh_their_parent() -> None:
    body = json.dumps({"id": 733, "type": "variation", "parent_id": 22, "date_modified_gmt": "2024-01-01T00:00:00"})
    event = webhooks.parse(CIMultiDict({"X-WC-Webhook-Topic": "product.updated"}), body.encode())
    assert event is not None and event.kind is ChangeKind.REFRESH and event.external_id == "22"


# ---- the body's modification time on every event (issue 11, plugin side of finding 7) ----------------
@pytest.mark.parametrize(
    ("payload", "kind", "expected"),
    [
        ({"id": 5, "type": "simple", "date_modified_gmt": "2026-02-03T04:05:06"}, ChangeKind.UPSERT, "04:05:06"),
        ({"id": 5, "type": "simple", "date_modified_gmt": "2026-02-03T04:05:06Z"}, ChangeKind.UPSERT, "04:05:06"),
        # date_modified (local, no offset) is never used: with date_created_gmt alone, that one is.
        (
            {
                "id": 5,
                "type": "simple",
                "date_modified": "2026-02-03T09:00:00",
                "date_created_gmt": "2026-02-01T00:00:00",
            },
            ChangeKind.UPSERT,
            "00:00:00",
        ),
        ({"id": 5, "type": "variable", "date_modified_gmt": "2026-02-03T04:05:06"}, ChangeKind.REFRESH, "04:05:06"),
        (
            {"id": 7, "type": "variation", "parent_id": 5, "date_modified_gmt": "2026-02-03T04:05:06"},
            ChangeKind.REFRESH,
            "04:05:06",
        ),
        # Without any time the body cannot be ordered against the stored version: read the store instead.
        ({"id": 5, "type": "simple", "date_modified_gmt": None}, ChangeKind.REFRESH, None),
        ({"id": 5, "type": "simple", "date_modified_gmt": "garbage"}, ChangeKind.REFRESH, None),
    ],
)
def test_every_product_event_carries_the_bodys_gmt_modification_time(
    payload: dict[str, Any], kind: ChangeKind, expected: str | None
) -> None:
    event = webhooks.parse(CIMultiDict({"X-WC-Webhook-Topic": "product.updated"}), json.dumps(payload).encode())
    assert event is not None and event.kind is kind
    if expected is None:
        assert event.store_updated_at is None and event.product is None
    else:
        assert event.store_updated_at is not None and event.store_updated_at.tzinfo is UTC
        assert event.store_updated_at.strftime("%H:%M:%S") == expected
    if kind is ChangeKind.UPSERT:
        assert event.store_updated_at is not None  # what the gateway's older-version guard compares


def test_a_replayed_deletion_is_confirmed_with_the_store() -> None:
    event = webhooks.parse(CIMultiDict({"X-WC-Webhook-Topic": "product.deleted"}), b'{"id": 31}')
    assert event is not None and event.kind is ChangeKind.REFRESH and event.external_id == "31"


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"name": "no id"}'])
def test_unreadable_product_deliveries_raise(body: bytes) -> None:
    with pytest.raises(MappingError):
        webhooks.parse(CIMultiDict({"X-WC-Webhook-Topic": "product.updated"}), body)


def test_other_topics_are_ignored() -> None:
    assert webhooks.parse(CIMultiDict({"X-WC-Webhook-Topic": "order.created"}), b'{"id": 1}') is None


async def test_reregistering_replaces_the_old_hooks(
    make_sim: Any, make_conn: Any, receiver: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(5)
    conn = make_conn(sim)
    first = await adapter.register_webhooks(conn, receiver.url)
    second = await adapter.register_webhooks(conn, receiver.url)
    assert sorted(sim.hooks) == sorted(second.hook_ids)
    assert not set(first.hook_ids) & set(second.hook_ids)


async def test_remove_webhooks_removes_them_and_tolerates_gone_ones(
    make_sim: Any, make_conn: Any, receiver: Any, adapter: WooCommerceAdapter
) -> None:
    sim = await make_sim(5)
    conn = make_conn(sim)
    registration = await registered(adapter, sim, conn, receiver)
    await adapter.remove_webhooks(conn, registration)
    assert sim.hooks == {}
    await adapter.remove_webhooks(conn, registration)  # already gone: 404s are fine
    sim.update_product(sim.product_ids()[0])
    await sim.drain_deliveries()
    assert receiver.take() == []


async def test_a_failed_registration_leaves_no_hooks(
    make_sim: Any, make_conn: Any, receiver: Any, adapter: WooCommerceAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = await make_sim(5)
    monkeypatch.setattr(webhooks, "TOPICS", ("product.created", "product.updated", "product.exploded"))
    with pytest.raises(StoreHTTPError):
        await adapter.register_webhooks(make_conn(sim), receiver.url)
    assert sim.hooks == {}
