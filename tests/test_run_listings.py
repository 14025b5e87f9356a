"""Summaries in lists of runs carry their errors (issue 11 finding 13): `Integration.syncRuns` and
`health.lastRun` answered `failed: 3` with `errors: []`, because lists of runs left the errors out. Each
listed summary now carries its first errors (LISTED_ERRORS; `syncRun(id)` has every error the run kept)."""

from __future__ import annotations

from gwtest import Api

from gateway.domain import RunKind, RunStatus, Trigger
from gateway.runs import LISTED_ERRORS
from gateway.services import Gateway
from gateway.testing.toy import ToySimulator

SUMMARY = "summary { failed errors { externalId code message } }"
LISTS = f"""query($id: ID!) {{
  integration(id: $id) {{ syncRuns(first: 5) {{ id {SUMMARY} }} health {{ lastRun {{ id {SUMMARY} }} }} }}
  syncRuns(integrationId: $id, first: 5) {{ edges {{ node {{ id {SUMMARY} }} }} }} }}"""
ONE = f"query($id: ID!) {{ syncRun(id: $id) {{ {SUMMARY} }} }}"


async def full_run(gw: Gateway, integration_id: str) -> str:
    integration = await gw.integrations.get("acct-1", integration_id)
    run, _ = await gw.syncs.queue(integration, Trigger.MANUAL, kind=RunKind.FULL)
    done = await gw.engine.run(run.id)
    assert done is not None and done.status is RunStatus.SUCCEEDED
    return run.id


async def test_every_list_of_runs_carries_each_summarys_errors(gw: Gateway, api: Api, toy_store: ToySimulator) -> None:
    toy_store.faults.set(malformed_ids=["4", "5", "6"])
    integration = await gw.integrations.connect("acct-1", "toy", "errors", toy_store.store_url, toy_store.credentials())
    first = (await gw.runs.latest(integration.id, 1))[0].id
    assert (await gw.engine.run(first)) is not None

    data = await api.query(LISTS, {"id": integration.id})
    listed = [
        *data["integration"]["syncRuns"],
        data["integration"]["health"]["lastRun"],
        *(edge["node"] for edge in data["syncRuns"]["edges"]),
    ]
    assert [run["id"] for run in listed] == [first] * 3
    for run in listed:
        assert run["summary"]["failed"] == 3
        assert sorted(e["externalId"] for e in run["summary"]["errors"]) == ["4", "5", "6"], run
        assert {e["code"] for e in run["summary"]["errors"]} == {"BAD_PRICE"}

    # Many failures: a list shows the first LISTED_ERRORS of them, the run read alone shows them all.
    broken = [str(n) for n in range(1, 26)]
    toy_store.faults.set(malformed_ids=broken)
    for external_id in broken:
        toy_store.update_product(external_id)
    second = await full_run(gw, integration.id)
    data = await api.query(LISTS, {"id": integration.id})
    newest = [
        data["integration"]["syncRuns"][0],
        data["integration"]["health"]["lastRun"],
        data["syncRuns"]["edges"][0]["node"],
    ]
    for run in newest:
        assert run["id"] == second and run["summary"]["failed"] == 25
        assert len(run["summary"]["errors"]) == LISTED_ERRORS < 25
    alone = (await api.query(ONE, {"id": second}))["syncRun"]["summary"]
    assert len(alone["errors"]) == 25
