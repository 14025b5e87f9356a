"""Rejected deliveries are counted, not logged one by one (issue 11 finding 11): 300 forgeries used to
write 300 activity entries. Now each integration gets one entry a minute per reason, saying how many."""

from __future__ import annotations

import asyncio
import json
import re

from gwtest import Api

from gateway.services import Gateway
from gateway.testing.toy import ToySimulator

LOG = """query($id: ID) { activityLog(integrationId: $id, first: 50) { edges { node { kind message } } } }"""


async def forge(api: Api, integration_id: str, n: int) -> int:
    body = json.dumps({"event": "upsert", "product": {"id": str(n), "name": "Forged"}}).encode()
    headers = {"X-Toy-Delivery": f"forged-{n}", "X-Toy-Signature": "00" * 32}
    async with api.session.post(f"{api.url}/webhooks/toy/{integration_id}", data=body, headers=headers) as r:
        return r.status


async def rejections(api: Api, integration_id: str) -> list[str]:
    data = await api.query(LOG, {"id": integration_id})
    return [e["node"]["message"] for e in data["activityLog"]["edges"] if e["node"]["kind"] == "WEBHOOK_REJECTED"]


async def test_three_hundred_forgeries_make_a_few_entries_that_count_them(
    gw: Gateway, api: Api, toy_store: ToySimulator
) -> None:
    integration = await gw.integrations.connect("acct-1", "toy", "forged", toy_store.store_url, toy_store.credentials())
    assert await forge(api, integration.id, 0) == 401
    assert await rejections(api, integration.id) == [
        "A change notification claiming to come from your store failed signature verification and was ignored"
    ]

    for start in range(1, 300, 50):
        statuses = await asyncio.gather(*(forge(api, integration.id, n) for n in range(start, min(start + 50, 300))))
        assert set(statuses) == {401}
    entries = await rejections(api, integration.id)
    # One entry a minute: two when the forgeries straddle a minute's end.
    assert 1 <= len(entries) <= 2, entries
    counted = [
        int(m.group(1)) for m in (re.match(r"(\d+) change notifications .* were ignored$", e) for e in entries) if m
    ]
    singles = sum(1 for e in entries if e.startswith("A change notification"))
    assert sum(counted) + singles == 300, entries
    assert await gw.db.activity.count_documents({"integration_id": integration.id, "kind": "WEBHOOK_REJECTED"}) <= 2
