"""End to end on the toy platform: connect, first full sync, incremental, removals."""

from __future__ import annotations

from gwtest import Api, connect, wait_run

from gateway.services import Gateway
from gateway.testing.toy import ToySimulator

RUNS = """query($id: ID!) { integration(id: $id) { productCount currentRun { id }
  syncRuns { id status summary { added updated unchanged removed failed errors { externalId code message } } } } }"""


async def test_connect_runs_first_full_sync(gw: Gateway, api: Api, worker: object, toy_store: ToySimulator) -> None:
    integration_id = await connect(api, toy_store)
    data = await api.query(RUNS, {"id": integration_id})
    run_id = data["integration"]["syncRuns"][0]["id"]
    run = await wait_run(gw, run_id)
    assert run.status == "SUCCEEDED", run
    assert run.counts.added == 30
    data = await api.query(RUNS, {"id": integration_id})
    assert data["integration"]["productCount"] == 30
    # Sync Now again: incremental, nothing changed.
    body = await api.query(
        "mutation($id: ID!) { syncNow(integrationId: $id, full: true) { id status } }", {"id": integration_id}
    )
    run = await wait_run(gw, body["syncNow"]["id"])
    assert run.counts.unchanged == 30 and run.counts.added == 0
