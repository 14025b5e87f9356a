"""A webhook batch writes its products together (`ProductStore.write_changes`: one read, one bulk write)
and must decide each exactly as the one-product path (`write_one(..., skip_older=True)`) does: the same
outcomes, conflicts, stored documents and kept counts, case by case."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.model import Product
from gateway.products import Outcome, WriteResult, product_id
from gateway.services import Gateway

T = datetime(2026, 5, 1, tzinfo=UTC)
ACCOUNT = "acct-batch"
RUN = "digest-run"


def product(external_id: str, title: str, at: datetime, **fields: Any) -> Product:
    return Product.model_validate({"external_id": external_id, "title": title, "store_updated_at": at, **fields})


#: external id -> (what is stored before, how it was left, what the delivery carries).
CASES: dict[str, tuple[Product | None, str, Product]] = {
    "new": (None, "", product("new", "New", T)),
    "older": (product("older", "Newer", T + timedelta(seconds=10)), "", product("older", "Older", T)),
    "same": (product("same", "Same", T), "", product("same", "Same", T)),
    "changed": (product("changed", "Before", T), "", product("changed", "After", T + timedelta(seconds=5))),
    "status": (product("status", "Live", T), "", product("status", "Live", T + timedelta(seconds=5), status="DRAFT")),
    "removed-replay": (product("removed-replay", "Gone", T), "removed", product("removed-replay", "Gone", T)),
    "removed-back": (
        product("removed-back", "Gone", T),
        "removed",
        product("removed-back", "Back", datetime.now(UTC) + timedelta(hours=1)),
    ),
    "edited": (product("edited", "Store title", T), "edited", product("edited", "New store title", T + timedelta(1))),
    "edited-elsewhere": (
        product("edited-elsewhere", "Title", T, tags=["a"]),
        "edited",
        product("edited-elsewhere", "Title", T + timedelta(1), tags=["b"]),
    ),
}

#: Ids and times each write makes for itself.
VOLATILE = {"_id", "integration_id", "synced_at", "created_at", "removed_at", "removal_version", "removed_by"}


async def prepare(gw: Gateway, integration_id: str) -> None:
    for external_id, (before, state, _) in CASES.items():
        if before is None:
            continue
        await gw.products.write_one(ACCOUNT, integration_id, before, before.content_hash(), "first-run")
        if state == "removed":
            await gw.products.mark_removed(integration_id, [external_id], "first-run", version=T)
        elif state == "edited":
            await gw.products.add_overlays(ACCOUNT, product_id(integration_id, external_id), {"title": "Alana's"})


def comparable(result: WriteResult) -> tuple[Outcome, list[str]]:
    return result.outcome, [c.field for c in result.conflicts]


async def stored(gw: Gateway, integration_id: str) -> dict[str, dict[str, Any]]:
    docs = gw.db.products.find({"integration_id": integration_id})
    out: dict[str, dict[str, Any]] = {}
    async for doc in docs:
        for overlay in doc.get("overlays", []):
            for volatile in ("id", "at", "edited_at", "deactivated_at", "conflict_id"):
                overlay.pop(volatile, None)
        out[doc["external_id"]] = {k: v for k, v in doc.items() if k not in VOLATILE}
    return out


async def test_a_batch_write_decides_each_product_as_the_one_product_path_does(gw: Gateway) -> None:
    one, batch = f"one-{uuid.uuid4().hex[:6]}", f"batch-{uuid.uuid4().hex[:6]}"
    for integration_id in (one, batch):
        await prepare(gw, integration_id)
    incoming = {external_id: delivered for external_id, (_, _, delivered) in CASES.items()}

    singly = {
        e: await gw.products.write_one(ACCOUNT, one, p, p.content_hash(), RUN, skip_older=True)
        for e, p in incoming.items()
    }
    together = await gw.products.write_changes(ACCOUNT, batch, incoming, RUN)

    assert {e: comparable(r) for e, r in together.items()} == {e: comparable(r) for e, r in singly.items()}
    # Every kind of decision was exercised.
    assert {r.outcome for r in together.values()} == {Outcome.ADDED, Outcome.UPDATED, Outcome.UNCHANGED, Outcome.STALE}
    assert together["removed-back"].outcome is Outcome.ADDED
    assert [c.field for c in together["edited"].conflicts] == ["title"]
    assert await stored(gw, batch) == await stored(gw, one)
    counts = await gw.products.counts_of([one, batch])
    assert counts[batch].by_status == counts[one].by_status  # (its list-key hints may differ: only hints)


async def test_a_batch_write_that_loses_a_race_decides_that_product_again(gw: Gateway) -> None:
    integration_id = f"race-{uuid.uuid4().hex[:6]}"
    await gw.products.write_one(
        ACCOUNT, integration_id, product("1", "Stored", T), product("1", "Stored", T).content_hash(), "r"
    )
    existing = gw.products._existing
    raced = False

    async def a_writer_gets_in_between(pids: Any) -> Any:
        nonlocal raced
        found = await existing(pids)
        if not raced:  # after the batch read what is stored, another delivery's newer version lands
            raced = True
            newer = product("1", "Newer elsewhere", T + timedelta(seconds=20))
            await gw.products.write_one(ACCOUNT, integration_id, newer, newer.content_hash(), "other", skip_older=True)
            fresh = product("2", "Inserted elsewhere", T + timedelta(seconds=20))
            await gw.products.write_one(ACCOUNT, integration_id, fresh, fresh.content_hash(), "other", skip_older=True)
        return found

    gw.products._existing = a_writer_gets_in_between  # type: ignore[method-assign]
    try:
        results = await gw.products.write_changes(
            ACCOUNT,
            integration_id,
            {
                "1": product("1", "Mine", T + timedelta(seconds=10)),
                "2": product("2", "Mine too", T + timedelta(seconds=10)),
            },
            RUN,
        )
    finally:
        gw.products._existing = existing  # type: ignore[method-assign]
    # Both lost to newer versions: decided again one by one, and nothing older overwrote them.
    assert {e: r.outcome for e, r in results.items()} == {"1": Outcome.STALE, "2": Outcome.STALE}
    titles = {e: doc["store"]["title"] for e, doc in (await stored(gw, integration_id)).items()}
    assert titles == {"1": "Newer elsewhere", "2": "Inserted elsewhere"}
