"""Webhooks end to end: register on the simulator, change the catalog, verify and parse what arrives."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from alana_bigcommerce.adapter import BigCommerceAdapter
from alana_bigcommerce.webhooks import SCOPES, SECRET_HEADER

from gateway.adapter import ChangeKind, FetchMode, FetchRequest, WebhookRegistration

Factory = Callable[..., Any]


async def registered(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, url: str
) -> tuple[Any, Any, WebhookRegistration]:
    sim = await make_sim(200)
    conn = make_conn(sim)
    registration = await adapter.register_webhooks(conn, url)
    return sim, conn, registration


async def test_register_creates_one_hook_per_scope_with_the_secret_header(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, receiver: Any
) -> None:
    sim, _, registration = await registered(make_sim, make_conn, adapter, receiver.url)

    secret = registration.secrets["webhook_secret"]
    assert len(secret) >= 32
    assert len(registration.hook_ids) == len(SCOPES) == len(sim.hooks)
    assert {h.topic for h in sim.hooks.values()} == set(SCOPES)
    assert {"store/product/updated", "store/sku/inventory/updated", "store/sku/updated"} <= set(SCOPES)
    assert all(h.destination == receiver.url and h.headers == {SECRET_HEADER: secret} for h in sim.hooks.values())


async def test_change_delivers_a_verifiable_refresh(
    make_sim: Factory,
    make_conn: Factory,
    adapter: BigCommerceAdapter,
    receiver: Any,
    api_calls: Callable[..., int],
) -> None:
    sim, conn, registration = await registered(make_sim, make_conn, adapter, receiver.url)

    sim.update_product("42")
    await sim.drain_deliveries()

    [delivery] = receiver.take()
    assert adapter.verify_webhook(delivery.headers, delivery.body, registration.secrets)
    event = adapter.parse_webhook(delivery.headers, delivery.body)
    assert event is not None
    assert (event.topic, event.kind, event.external_id) == ("store/product/updated", ChangeKind.REFRESH, "42")
    assert event.product is None and event.triggered_at is not None
    payload = json.loads(delivery.body)
    assert set(payload) == {"scope", "store_id", "data", "hash", "created_at", "producer"}
    assert payload["data"] == {"type": "product", "id": 42}

    # The gateway then fetches the product by id: one product request (plus its category and brand
    # names, once per run).
    before = api_calls(sim, "/catalog/products")
    pages = [p async for p in adapter.fetch_products(conn, FetchRequest(mode=FetchMode.IDS, ids=("42",)))]
    assert api_calls(sim, "/catalog/products") - before == 1
    assert api_calls(sim, "/catalog/categories") <= 1 and api_calls(sim, "/catalog/brands") <= 1
    assert pages[0].items[0]["name"].endswith("edit 1")


async def test_create_delete_and_inventory_events(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, receiver: Any
) -> None:
    sim, _, registration = await registered(make_sim, make_conn, adapter, receiver.url)

    created = sim.create_product(title="New jar")
    sim.delete_product("7")
    sim.update_product("8", inventory_level=3)
    await sim.drain_deliveries()

    events = [adapter.parse_webhook(d.headers, d.body) for d in receiver.take()]
    summary = sorted((e.topic, e.kind, e.external_id) for e in events if e is not None)
    assert summary == sorted(
        [
            ("store/product/created", ChangeKind.REFRESH, created),
            # Confirmed with the store before anything is removed (issue 11, finding 8).
            ("store/product/deleted", ChangeKind.REFRESH, "7"),
            ("store/product/updated", ChangeKind.REFRESH, "8"),
            ("store/product/inventory/updated", ChangeKind.REFRESH, "8"),
        ]
    )
    assert len({e.delivery_id for e in events if e is not None}) == 4


async def test_variant_only_edits_fire_sku_events_without_moving_date_modified(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, receiver: Any
) -> None:
    sim, _, registration = await registered(make_sim, make_conn, adapter, receiver.url)
    product_id = next(p["id"] for p in sim.catalog.iter_products() if len(p["variants"]) > 1)
    modified = sim.catalog.modified_at(product_id)

    variant_id = sim.update_variant_inventory(str(product_id), level=11)
    sim.update_variant(str(product_id), variant_id, price=12.5)
    await sim.drain_deliveries()

    assert sim.catalog.modified_at(product_id) == modified
    deliveries = receiver.take()
    assert all(adapter.verify_webhook(d.headers, d.body, registration.secrets) for d in deliveries)
    events = [adapter.parse_webhook(d.headers, d.body) for d in deliveries]
    assert sorted((e.topic, e.kind, e.external_id) for e in events if e is not None) == [
        ("store/sku/inventory/updated", ChangeKind.REFRESH, str(product_id)),
        ("store/sku/updated", ChangeKind.REFRESH, str(product_id)),
    ]


async def test_delivery_without_the_secret_is_rejected(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, receiver: Any
) -> None:
    sim, _, registration = await registered(make_sim, make_conn, adapter, receiver.url)
    sim.update_product("5")
    await sim.drain_deliveries()
    [delivery] = receiver.take()

    stripped = {k: v for k, v in delivery.headers.items() if k.lower() != SECRET_HEADER.lower()}
    assert not adapter.verify_webhook(stripped, delivery.body, registration.secrets)
    forged = {**stripped, SECRET_HEADER: registration.secrets["webhook_secret"][:-1] + "x"}
    assert not adapter.verify_webhook(forged, delivery.body, registration.secrets)
    assert not adapter.verify_webhook(delivery.headers, delivery.body, {})
    lowercase = {k.lower(): v for k, v in delivery.headers.items()}
    assert adapter.verify_webhook(lowercase, delivery.body, registration.secrets)


async def test_redelivery_keeps_its_id_and_two_changes_do_not_share_one(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, receiver: Any
) -> None:
    sim, _, _ = await registered(make_sim, make_conn, adapter, receiver.url)
    sim.update_product("9")
    sim.update_product("9")
    await sim.drain_deliveries()
    first, second = receiver.take()

    event = adapter.parse_webhook(first.headers, first.body)
    again = adapter.parse_webhook(first.headers, first.body)
    other = adapter.parse_webhook(second.headers, second.body)
    assert event is not None and again is not None and other is not None
    assert event.delivery_id == again.delivery_id
    assert event.delivery_id != other.delivery_id


async def test_register_again_updates_the_hooks_in_place(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, receiver: Any
) -> None:
    sim, conn, first = await registered(make_sim, make_conn, adapter, receiver.url)
    second = await adapter.register_webhooks(conn, receiver.url)

    assert len(sim.hooks) == len(SCOPES)
    assert set(second.hook_ids) == set(first.hook_ids)
    assert all(h.headers[SECRET_HEADER] == second.secrets["webhook_secret"] for h in sim.hooks.values())


async def test_remove_deletes_the_hooks_and_tolerates_missing_ones(
    make_sim: Factory, make_conn: Factory, adapter: BigCommerceAdapter, receiver: Any
) -> None:
    sim, conn, registration = await registered(make_sim, make_conn, adapter, receiver.url)
    await adapter.remove_webhooks(conn, registration)
    assert sim.hooks == {}
    await adapter.remove_webhooks(conn, registration)  # already gone: 404s are fine

    sim.update_product("3")
    await sim.drain_deliveries()
    assert receiver.take() == []


# ---- parsing the documented payloads -------------------------------------------------------------
def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("payload", "kind", "external_id"),
    [
        (
            {
                "scope": "store/product/updated",
                "store_id": "1025646",
                "data": {
                    "type": "product",
                    "id": 205,
                    "properties": ["warranty", "is_featured", "custom_fields"],
                    "context": {"channel_id": 2, "locale": "fr"},
                },
                "hash": "a833a57fadd56a32dc752fb6ca0841dc9602a495",
                "created_at": 1561479233,
                "producer": "stores/{store_hash}",
            },
            ChangeKind.REFRESH,
            "205",
        ),
        (
            {
                "scope": "store/product/inventory/updated",
                "store_id": "1025646",
                "data": {
                    "type": "product",
                    "id": 167,
                    "inventory": {"product_id": 167, "method": "absolute", "value": 100000000},
                },
                "hash": "cba9eef399fbd6d384489bca6cacad24794b1086",
                "created_at": 1561478843,
                "producer": "stores/{store_hash}",
            },
            ChangeKind.REFRESH,
            "167",
        ),
        (
            {
                "scope": "store/sku/created",
                "store_id": "1025646",
                "data": {"type": "sku", "id": 461, "sku": {"product_id": 206, "variant_id": 509}},
                "hash": "7a0866943b1f46cfda31c3218931f5aab83a4c73",
                "created_at": 1561480465,
                "producer": "stores/{store_hash}",
            },
            ChangeKind.REFRESH,
            "206",
        ),
        (
            {
                "scope": "store/sku/inventory/updated",
                "store_id": "1025646",
                "data": {
                    "type": "sku",
                    "id": 461,
                    "inventory": {"product_id": 206, "method": "absolute", "value": 5, "variant_id": 509},
                },
                "hash": "116ddb29d7bc1b2322cc1a4dc295221ee3637d4b",
                "created_at": 1561480673,
                "producer": "stores/{store_hash}",
            },
            ChangeKind.REFRESH,
            "206",
        ),
        (
            {
                "scope": "store/product/deleted",
                "store_id": "1025646",
                "data": {"type": "product", "id": 205},
                "hash": "a833a57fadd56a32dc752fb6ca0841dc9602a495",
                "created_at": 1561479233,
                "producer": "stores/{store_hash}",
            },
            ChangeKind.REFRESH,  # the store confirms the deletion (a fetch that misses it) first
            "205",
        ),
    ],
)
def test_documented_payloads_parse(
    adapter: BigCommerceAdapter, payload: dict[str, Any], kind: ChangeKind, external_id: str
) -> None:
    event = adapter.parse_webhook({}, body(payload))
    assert event is not None
    assert (event.kind, event.external_id, event.topic) == (kind, external_id, payload["scope"])
    assert event.delivery_id.startswith(payload["hash"])
    assert event.triggered_at is not None and int(event.triggered_at.timestamp()) == payload["created_at"]


def test_payloads_without_a_product_change_are_ignored(adapter: BigCommerceAdapter) -> None:
    metafield = {
        "scope": "store/product/metafield/created",
        "store_id": "1",
        "data": {"metafield_id": 12, "resource_id": "118", "resource_type": "product"},
        "hash": "60f4",
        "created_at": 1683305167,
        "producer": "stores/x",
    }
    assert adapter.parse_webhook({}, body(metafield)) is None
    assert adapter.parse_webhook({}, body({"scope": "store/order/created", "data": {"id": 1}})) is None
    assert adapter.parse_webhook({}, b"not json") is None
    sku_without_product = {"scope": "store/sku/updated", "data": {"type": "sku", "id": 1}}
    assert adapter.parse_webhook({}, body(sku_without_product)) is None


def test_delivery_id_falls_back_to_a_body_digest(adapter: BigCommerceAdapter) -> None:
    one = {"scope": "store/product/updated", "data": {"type": "product", "id": 1}, "created_at": 1}
    two = {**one, "created_at": 2}
    first, second = adapter.parse_webhook({}, body(one)), adapter.parse_webhook({}, body(two))
    assert first is not None and second is not None
    assert len(first.delivery_id) == 64 and first.delivery_id != second.delivery_id
