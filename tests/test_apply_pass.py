"""Apply jobs running at one moment in a worker share one pass (`WebhookService._apply_pass`).

A steady stream of single deliveries to many stores used to cost MongoDB a dozen commands per store
and delivery (the integration, the claim, the products, the counts, the digest's recounts and write,
the activity entry, the queue), more than the database could serve while a big sync wrote. One pass
now serves every store whose job asked: each command once for all of them. What each store sees must
be exactly what a pass of its own gives, and one store's failure must stay its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gwtest import Api
from pymongo.errors import AutoReconnect
from test_automatic import product_title
from test_webhook_queue import connected, cut_off

from gateway.adapter import Connection, PlatformAdapter
from gateway.services import Gateway
from gateway.testing.toy import ToySimulator
from gateway.webhooks import digest_summary


async def stores_with_two_changes(gw: Gateway, api: Api, toy_store: ToySimulator, n: int) -> list[str]:
    """`n` integrations of the toy store (one account each; manual mode, so the deliveries wait for the
    test), each with the same two deliveries waiting: an edit and a new product."""
    ids = [await connected(gw, api, toy_store, account=f"acct-{i}", mode="MANUAL") for i in range(n)]
    toy_store.update_product("3", name="Edited for everyone")
    toy_store.create_product(name="New everywhere")
    await toy_store.drain_deliveries()
    await gw.webhooks.journal_settled()
    for integration_id in ids:
        assert await gw.db.queue.count_documents({"integration_id": integration_id}) == 2
    return ids


def record_passes(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    passes: list[list[str]] = []
    apply_pass = gw.webhooks._apply_pass

    async def recorded(integration_ids: list[str]) -> Any:
        passes.append(list(integration_ids))
        return await apply_pass(integration_ids)

    # The batcher holds the bound method: replace it there.
    monkeypatch.setattr(gw.webhooks._passes, "_flush", recorded)
    return passes


async def test_several_stores_applied_at_once_share_one_pass_and_each_is_recorded_as_its_own(
    gw: Gateway, api: Api, toy_store: ToySimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await stores_with_two_changes(gw, api, toy_store, 3)
    passes = record_passes(gw, monkeypatch)

    changed = await asyncio.gather(*(gw.webhooks.apply_pending(i) for i in ids))

    assert passes == [ids]
    assert changed == [2, 2, 2]
    for integration_id in ids:
        assert await product_title(gw, integration_id, "3") == "Edited for everyone"
        assert await gw.db.queue.count_documents({"integration_id": integration_id}) == 0
        assert await gw.products.count(f"acct-{ids.index(integration_id)}", integration_id) == 31
        digest = await gw.runs.get_any(
            (await gw.db.runs.find_one({"integration_id": integration_id, "kind": "DIGEST"}))["_id"]
        )
        assert digest is not None
        assert (digest.counts.added, digest.counts.updated, digest.progress.processed) == (1, 1, 2)
        entry = await gw.db.activity.find_one({"_id": digest.id})
        assert entry is not None and entry["message"] == digest_summary(digest)
        integration = await gw.webhooks.store.get_any(integration_id)
        assert integration is not None and integration.pending_changes == 0


async def test_one_stores_failure_in_a_shared_pass_fails_its_job_only(
    gw: Gateway, api: Api, toy_store: ToySimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await stores_with_two_changes(gw, api, toy_store, 3)
    broken = ids[1]
    mapping_context = gw.webhooks._mapping_context

    async def a_plugin_bug(adapter: PlatformAdapter, conn: Connection) -> Any:
        if conn.integration_id == broken:
            raise RuntimeError("a plugin bug")
        return await mapping_context(adapter, conn)

    monkeypatch.setattr(gw.webhooks, "_mapping_context", a_plugin_bug)
    passes = record_passes(gw, monkeypatch)
    results = await asyncio.gather(*(gw.webhooks.apply_pending(i) for i in ids), return_exceptions=True)

    assert passes == [ids]
    assert results[0] == 2 and results[2] == 2
    assert isinstance(results[1], RuntimeError)
    # The broken store's deliveries are back in the queue, unclaimed, and nothing of them was recorded.
    assert await gw.db.queue.count_documents({"integration_id": broken, "claim": None}) == 2
    assert await gw.db.runs.find_one({"integration_id": broken, "kind": "DIGEST"}) is None
    for integration_id in (ids[0], ids[2]):
        assert await gw.db.queue.count_documents({"integration_id": integration_id}) == 0

    monkeypatch.setattr(gw.webhooks, "_mapping_context", mapping_context)
    assert await gw.webhooks.apply_pending(broken) == 2
    assert await product_title(gw, broken, "3") == "Edited for everyone"


async def test_a_shared_write_that_fails_gives_every_claim_of_the_pass_back(
    gw: Gateway, api: Api, toy_store: ToySimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await stores_with_two_changes(gw, api, toy_store, 2)
    write = gw.products.write_changes_many

    cut_off(monkeypatch, gw.products, "write_changes_many")
    results = await asyncio.gather(*(gw.webhooks.apply_pending(i) for i in ids), return_exceptions=True)
    assert all(isinstance(r, AutoReconnect) for r in results)
    for integration_id in ids:
        assert await gw.db.queue.count_documents({"integration_id": integration_id, "claim": None}) == 2

    monkeypatch.setattr(gw.products, "write_changes_many", write)
    assert await asyncio.gather(*(gw.webhooks.apply_pending(i) for i in ids)) == [2, 2]
