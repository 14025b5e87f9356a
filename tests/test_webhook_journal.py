"""The webhook endpoint answers from a Redis journal and stores in MongoDB right behind the answer.

Every fault on its own keeps an answered delivery (gateway/journal.py): the answering process keeps it
in memory until MongoDB has it (Redis losing its data), the journal keeps it when that process dies
(a worker's maintenance moves it), and without Redis the endpoint stores in MongoDB before answering.
"""

from __future__ import annotations

import asyncio

import pytest
from gwtest import Api
from pymongo.errors import AutoReconnect
from redis.exceptions import ConnectionError as RedisConnectionError
from test_automatic import product_title, signed
from test_webhook_queue import connected, post_answer

from gateway.adapter import ChangeKind, WebhookEvent
from gateway.deliveries import Arrival
from gateway.journal import Journal, decode, encode
from gateway.services import Gateway
from gateway.testing.toy import ToySimulator


def upsert(toy_store: ToySimulator, external_id: str, name: str, delivery_id: str) -> tuple[bytes, dict[str, str]]:
    product = {**toy_store.catalog[external_id], "name": name}
    return signed(toy_store, {"event": "upsert", "product": product}, delivery_id)


async def queued(gw: Gateway, integration_id: str) -> int:
    return await gw.db.queue.count_documents({"integration_id": integration_id})


def test_an_entry_reads_back_as_the_delivery_it_was() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 12, 4, 10, 30, 15, 123000, tzinfo=UTC)
    event = WebhookEvent("d-9", "products/update", ChangeKind.UPSERT, "9", {"id": 9, "tags": ["a"]}, at, at)
    arrival = Arrival("acct", "int-1", event, at)
    back = decode(encode(arrival, 1234.5))
    assert back == Arrival("acct", "int-1", event, at, False, 1234.5)


async def test_an_answered_delivery_reaches_mongodb_and_a_redelivery_is_answered_duplicate(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store)
    toy_store.deliver_webhooks = False
    body, headers = upsert(toy_store, "3", "Journaled", "j-1")
    assert await post_answer(api, integration_id, body, headers) == (200, "ok")
    # Answered at the door from Redis's mark, whether or not it is in MongoDB yet.
    assert await post_answer(api, integration_id, body, headers) == (200, "duplicate delivery")
    await gw.webhooks.journal_settled()
    assert await gw.db.deliveries.count_documents({"integration_id": integration_id, "delivery_id": "j-1"}) == 1
    assert await queued(gw, integration_id) == 1
    assert await gw.webhooks.journal.length() == 0  # moved: off the journal
    await gw.webhooks.apply_pending(integration_id)
    assert await product_title(gw, integration_id, "3") == "Journaled"


async def test_a_delivery_still_moving_when_redis_loses_its_data_is_stored_from_memory(
    gw: Gateway, api: Api, toy_store: ToySimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration_id = await connected(gw, api, toy_store)
    toy_store.deliver_webhooks = False
    record_batch = gw.deliveries.record_batch
    tried = asyncio.Event()

    async def mongodb_away(*args: object, **kwargs: object) -> list[bool]:
        tried.set()
        raise AutoReconnect("connection closed")

    monkeypatch.setattr(gw.deliveries, "record_batch", mongodb_away)
    body, headers = upsert(toy_store, "4", "Kept in memory", "j-2")
    assert await post_answer(api, integration_id, body, headers) == (200, "ok")
    assert await gw.webhooks.journal.length() == 1
    await asyncio.wait_for(tried.wait(), 10)  # the mover tried, and keeps trying
    await gw.redis.delete(gw.webhooks.journal.key)  # Redis restarted without its data
    monkeypatch.setattr(gw.deliveries, "record_batch", record_batch)  # MongoDB is back
    await gw.webhooks.journal_settled()
    assert await queued(gw, integration_id) == 1
    await gw.webhooks.apply_pending(integration_id)
    assert await product_title(gw, integration_id, "4") == "Kept in memory"


async def test_what_a_dead_api_journaled_is_moved_by_the_maintenance_pass(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store)
    integration = await gw.integration_store.get_any(integration_id)
    assert integration is not None
    # Journaled by a process that died before moving it: in Redis only, in nobody's memory.
    journal = Journal(gw.redis, gw.webhooks.journal.key)
    event = WebhookEvent("j-3", "upsert", ChangeKind.UPSERT, "5", {**toy_store.catalog["5"], "name": "Orphaned"})
    entries = await journal.append([Arrival(integration.account_id, integration_id, event, gw.now())])
    assert entries[0] is not None
    assert await gw.webhooks.recover_journal() == 0  # young: its own process may still be moving it
    assert await queued(gw, integration_id) == 0
    assert await gw.webhooks.recover_journal(older_than=0) == 1
    assert await gw.webhooks.journal.length() == 0
    assert await queued(gw, integration_id) == 1
    # Moved again (both the slow owner and the maintenance pass did): the dedupe log keeps one.
    await journal.append([Arrival(integration.account_id, integration_id, event, gw.now())])  # marked: refused
    assert await gw.webhooks.journal.length() == 0
    await gw.webhooks._store_batch([Arrival(integration.account_id, integration_id, event, gw.now())])
    assert await queued(gw, integration_id) == 1
    await gw.webhooks.apply_pending(integration_id)
    assert await product_title(gw, integration_id, "5") == "Orphaned"


async def test_without_redis_the_delivery_is_in_mongodb_before_its_answer(
    gw: Gateway, api: Api, toy_store: ToySimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration_id = await connected(gw, api, toy_store)
    toy_store.deliver_webhooks = False

    async def redis_away(*args: object, **kwargs: object) -> object:
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(gw.webhooks.journal, "append", redis_away)
    body, headers = upsert(toy_store, "6", "Stored first", "j-4")
    assert await post_answer(api, integration_id, body, headers) == (200, "ok")
    # No waiting on the mover: it is already there.
    assert await gw.db.deliveries.count_documents({"integration_id": integration_id, "delivery_id": "j-4"}) == 1
    assert await queued(gw, integration_id) == 1


async def test_held_deliveries_are_in_mongodb_before_their_answer(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store, mode="MANUAL")
    toy_store.deliver_webhooks = False
    body, headers = upsert(toy_store, "7", "Waits for Sync Now", "j-5")
    assert await post_answer(api, integration_id, body, headers) == (200, "recorded for the next Sync Now")
    assert await queued(gw, integration_id) == 1  # the card's count can rely on it at once
    assert await gw.webhooks.journal.length() == 0
