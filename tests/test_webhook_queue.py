"""The webhook queue keeps every verified change until it is applied, whatever fails in between.

- A delivery is queued before it is logged for dedupe: when the second write fails (MongoDB went away,
  the API died), the platform's retry is taken in full instead of being answered "duplicate".
- Claims have a lease: deliveries a worker claimed and did not finish (it died, froze, or its apply
  failed) go back to the queue when the lease runs out, not after a fixed two minutes.
- A delivery waiting without an apply job (Redis was down when it arrived) gets one from the scheduler.
- Deliveries of an integration that is gone are deleted, not kept for ever.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from arq.constants import job_key_prefix
from gwtest import Api, connect
from pymongo.errors import AutoReconnect
from test_automatic import product_title, signed

from gateway.adapter import ChangeKind, WebhookEvent
from gateway.constants import apply_job_id
from gateway.domain import utcnow
from gateway.scheduler import STALE_WAITING
from gateway.services import Gateway
from gateway.testing.toy import ToySimulator


async def post_answer(api: Api, integration_id: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with api.session.post(f"{api.url}/webhooks/toy/{integration_id}", data=body, headers=headers) as r:
        return r.status, str((await r.json())["status"])


async def connected(gw: Gateway, api: Api, sim: ToySimulator, account: str = "acct-1", **settings: Any) -> str:
    """Connected, with its first sync run here (no worker: every job these tests queue stays queued)."""
    integration_id = await connect(api, sim, account=account, **settings)
    run = (await gw.runs.latest(integration_id, 1))[0]
    done = await gw.engine.run(run.id)
    assert done is not None and done.status == "SUCCEEDED"
    return integration_id


def cut_off(monkeypatch: pytest.MonkeyPatch, target: object, method: str) -> None:
    """`target.method` fails as a call does when MongoDB goes away in the middle of it."""

    async def lost_connection(*args: Any, **kwargs: Any) -> Any:
        raise AutoReconnect("connection closed")

    monkeypatch.setattr(target, method, lost_connection)


def later(gw: Gateway, seconds: float) -> None:
    """Set every service's clock `seconds` ahead of the real one."""
    gw.clock = lambda: utcnow() + timedelta(seconds=seconds)


@pytest.mark.parametrize("failing", ["enqueue_many", "record_many"])
async def test_a_retry_after_one_of_the_two_writes_failed_is_applied(
    gw: Gateway, api: Api, toy_store: ToySimulator, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    # Manual mode: deliveries wait for this test to apply them (no worker, no timing).
    integration_id = await connected(gw, api, toy_store, mode="MANUAL")
    toy_store.deliver_webhooks = False
    product = {**toy_store.catalog["5"], "name": "Sent twice"}
    body, headers = signed(toy_store, {"event": "upsert", "product": product}, "once-and-again")

    write = getattr(gw.deliveries, failing)

    cut_off(monkeypatch, gw.deliveries, failing)  # MongoDB goes away at one of the two writes
    assert (await post_answer(api, integration_id, body, headers))[0] == 503
    monkeypatch.setattr(gw.deliveries, failing, write)
    # The platform sends it again: taken in full, not answered "duplicate delivery".
    assert await post_answer(api, integration_id, body, headers) == (200, "recorded for the next Sync Now")
    assert await post_answer(api, integration_id, body, headers) == (200, "duplicate delivery")
    assert await gw.db.deliveries.count_documents({"integration_id": integration_id}) == 1

    await gw.webhooks.apply_pending(integration_id)
    assert await product_title(gw, integration_id, "5") == "Sent twice"
    assert await gw.db.queue.count_documents({"integration_id": integration_id}) == 0


async def test_a_delivery_mongodb_cannot_store_is_read_back_from_the_store(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store, mode="MANUAL")
    toy_store.deliver_webhooks = False
    toy_store.update_product("6", name="Changed in the store")
    product = {**toy_store.catalog["6"], "stock": 2**70}  # past int64: BSON cannot encode it
    body, headers = signed(toy_store, {"event": "upsert", "product": product}, "huge-number")
    assert await post_answer(api, integration_id, body, headers) == (200, "recorded for the next Sync Now")
    queued = await gw.db.queue.find_one({"integration_id": integration_id})
    assert queued is not None and queued["kind"] == ChangeKind.REFRESH.value and queued["product"] is None
    await gw.webhooks.apply_pending(integration_id)
    assert await product_title(gw, integration_id, "6") == "Changed in the store"


async def test_an_apply_that_fails_half_way_gives_its_claims_back(
    gw: Gateway, api: Api, toy_store: ToySimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration_id = await connected(gw, api, toy_store, mode="MANUAL")
    toy_store.update_product("7", name="Applied at the second try")
    await toy_store.drain_deliveries()
    write_changes = gw.products.write_changes_many

    cut_off(monkeypatch, gw.products, "write_changes_many")  # the batch's products are written together
    with pytest.raises(AutoReconnect):
        await gw.webhooks.apply_pending(integration_id)
    # Back in the queue at once, unclaimed: the next job applies it.
    assert await gw.db.queue.count_documents({"integration_id": integration_id, "claim": None}) == 1
    monkeypatch.setattr(gw.products, "write_changes_many", write_changes)
    await gw.webhooks.apply_pending(integration_id)
    assert await product_title(gw, integration_id, "7") == "Applied at the second try"
    assert await gw.db.queue.count_documents({"integration_id": integration_id}) == 0


async def test_a_batch_whose_digest_could_not_be_written_goes_back_and_is_recorded_by_its_retry(
    gw: Gateway, api: Api, toy_store: ToySimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the fault matrix (MongoDB stopped while webhooks were applied): the deliveries were forgotten
    before the hour's digest was written, so the digest never counted the products they added."""
    integration_id = await connected(gw, api, toy_store)
    toy_store.create_product(name="Added while MongoDB went away")
    await toy_store.drain_deliveries()
    add_to_digest = gw.runs.add_to_digests

    cut_off(monkeypatch, gw.runs, "add_to_digests")
    with pytest.raises(AutoReconnect):
        await gw.webhooks.apply_pending(integration_id)
    assert await gw.db.queue.count_documents({"integration_id": integration_id, "claim": None}) == 1
    monkeypatch.setattr(gw.runs, "add_to_digests", add_to_digest)
    await gw.webhooks.apply_pending(integration_id)
    assert await gw.db.queue.count_documents({"integration_id": integration_id}) == 0
    digest = await gw.db.runs.find_one({"integration_id": integration_id, "kind": "DIGEST"})
    assert digest is not None
    created = await gw.db.products.count_documents({"created_run": digest["_id"]})
    assert (digest["counts"]["added"], digest["progress"]["processed"], created) == (1, 1, 1)


async def test_claims_of_a_worker_that_stopped_are_released_when_their_lease_runs_out(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    integration_id = await connected(gw, api, toy_store, mode="MANUAL")
    toy_store.update_product("8", name="Claimed by a worker that died")
    await toy_store.drain_deliveries()
    lease = timedelta(seconds=gw.settings.run_lease_seconds)
    # A worker claims the delivery, then dies before applying it.
    claimed = await gw.deliveries.claim(integration_id, "dead-worker", gw.now(), lease)
    assert [d.external_id for d in claimed] == ["8"]
    job = job_key_prefix + apply_job_id(integration_id, "recover")

    await gw.scheduler.recover_webhooks()  # within the lease: still the dead worker's
    assert await gw.db.queue.count_documents({"integration_id": integration_id, "claim": "dead-worker"}) == 1
    assert not await gw.redis.exists(job)

    later(gw, lease.total_seconds() + 1)
    await gw.scheduler.recover_webhooks()
    assert await gw.db.queue.count_documents({"integration_id": integration_id, "claim": None}) == 1
    assert await gw.redis.exists(job)  # and a job to apply it
    await gw.webhooks.apply_pending(integration_id)
    assert await product_title(gw, integration_id, "8") == "Claimed by a worker that died"


async def test_a_claim_being_applied_keeps_its_lease(gw: Gateway, api: Api, toy_store: ToySimulator) -> None:
    integration_id = await connected(gw, api, toy_store, mode="MANUAL")
    toy_store.update_product("9", name="Slow to apply")
    await toy_store.drain_deliveries()
    lease = timedelta(seconds=gw.settings.run_lease_seconds)
    await gw.deliveries.claim(integration_id, "busy-worker", gw.now(), lease)
    later(gw, lease.total_seconds() * 0.9)
    assert await gw.deliveries.renew(integration_id, "busy-worker", gw.now(), lease) == 1
    later(gw, lease.total_seconds() * 1.5)  # past the first lease, within the renewed one (1.9 leases)
    await gw.scheduler.recover_webhooks()
    assert await gw.db.queue.count_documents({"integration_id": integration_id, "claim": "busy-worker"}) == 1


async def test_a_delivery_waiting_without_a_job_gets_one(gw: Gateway, api: Api, toy_store: ToySimulator) -> None:
    integration_id = await connected(gw, api, toy_store)
    # The same store in another account (one store is one integration per account).
    held = await connected(gw, api, toy_store, account="acct-2", mode="MANUAL")
    event = WebhookEvent("lost-job", "upsert", ChangeKind.REFRESH, "3")
    # Queued while Redis was down: no apply job was enqueued for it.
    await gw.deliveries.enqueue("acct-1", integration_id, event, gw.now())
    await gw.deliveries.enqueue("acct-2", held, event, gw.now(), held=True)
    later(gw, STALE_WAITING.total_seconds() - 1)
    assert await gw.deliveries.waiting_since(gw.now() - STALE_WAITING) == []
    later(gw, STALE_WAITING.total_seconds() + 1)
    await gw.scheduler.recover_webhooks()
    assert await gw.redis.exists(job_key_prefix + apply_job_id(integration_id, "recover"))
    # One kept for Sync Now is left alone.
    assert not await gw.redis.exists(job_key_prefix + apply_job_id(held, "recover"))


async def test_deliveries_of_an_integration_that_is_gone_are_deleted(gw: Gateway) -> None:
    # Accepted from another API's cached read just after a disconnect on this one.
    event = WebhookEvent("after-disconnect", "upsert", ChangeKind.UPSERT, "1", {"id": "1", "name": "x"})
    await gw.deliveries.enqueue("acct-1", "gone-integration", event, gw.now())
    await gw.deliveries.record("acct-1", "gone-integration", event, gw.now())
    assert await gw.webhooks.apply_pending("gone-integration") == 0
    for collection in (gw.db.queue, gw.db.deliveries, gw.db.products):
        assert await collection.count_documents({"integration_id": "gone-integration"}) == 0


async def test_a_sync_now_of_an_automatic_store_does_not_count_its_applies_in_flight_as_waiting(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    """Deliveries waiting for their apply job when a Sync Now ends are not "changes waiting for Sync Now"
    (the fault matrix caught a light left YELLOW, "5 changes waiting for Sync Now", on an automatic store)."""
    integration_id = await connected(gw, api, toy_store)
    event = WebhookEvent("in-flight", "upsert", ChangeKind.REFRESH, "3")
    await gw.deliveries.enqueue("acct-1", integration_id, event, gw.now())  # its job has not run yet
    run, _ = await gw.syncs.sync_now("acct-1", integration_id, None)
    done = await gw.engine.run(run.id)
    assert done is not None and done.status == "SUCCEEDED"
    integration = await gw.integration_store.get_any(integration_id)
    assert integration is not None and integration.pending_changes == 0
    light = await gw.health.current(integration)
    assert "waiting for Sync Now" not in (light.reason or "")
