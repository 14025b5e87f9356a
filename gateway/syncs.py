"""Queueing and cancelling sync runs (the API side; workers execute them in gateway.engine)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from gateway.activity import ActivityLog
from gateway.domain import ActivityKind, EventKind, RunKind, RunStatus, Trigger
from gateway.errors import BadInput, Conflict, NotFound
from gateway.events import EventPublisher, run_event
from gateway.healthwatch import HealthWatch
from gateway.integration_store import Integration, IntegrationStore
from gateway.jobqueue import JobQueue
from gateway.runs import Run, RunStore

#: Runs a scheduler tick announces at once (jobs, events, lights): enough to hide round trips,
#: few enough not to flood MongoDB while it also serves runs.
ANNOUNCE_CONCURRENCY = 16


def queued_message(run: Run) -> str:
    what = {
        RunKind.FULL: "Full sync",
        RunKind.INCREMENTAL: "Sync of recent changes",
        RunKind.PRODUCTS: f"Sync of {len(run.product_ids)} products",
    }[run.kind]
    return f"{what} queued ({run.trigger.value.lower()})"


class SyncService:
    def __init__(
        self,
        integrations: IntegrationStore,
        runs: RunStore,
        activity: ActivityLog,
        publisher: EventPublisher,
        health: HealthWatch,
        jobs: JobQueue,
        clock: Callable[[], datetime],
    ) -> None:
        self.integrations = integrations
        self.runs = runs
        self.activity = activity
        self.publisher = publisher
        self.health = health
        self.jobs = jobs
        self.clock = clock

    def choose_kind(self, integration: Integration, product_ids: list[str] | None, full: bool | None) -> RunKind:
        if product_ids:
            return RunKind.PRODUCTS
        if full:
            return RunKind.FULL
        # A run is incremental once a full sync has completed and left a cursor (docs/reference/BEHAVIOUR.md).
        if integration.last_full_sync_at and integration.sync_cursor:
            return RunKind.INCREMENTAL
        return RunKind.FULL

    async def queue(
        self,
        integration: Integration,
        trigger: Trigger,
        *,
        kind: RunKind | None = None,
        product_ids: list[str] | None = None,
    ) -> tuple[Run, bool]:
        """Queue a run, or return the queued / running one. A new run is published (RUN_QUEUED) and
        turns the light YELLOW (WAIT) at once."""
        kind = kind or self.choose_kind(integration, product_ids, None)
        run, created = await self.runs.create_or_get_active(
            integration.account_id, integration.id, trigger, kind, product_ids
        )
        if created:
            await self.activity.record(
                integration.account_id,
                ActivityKind.SYNC_QUEUED,
                queued_message(run),
                integration_id=integration.id,
                run_id=run.id,
            )
            # The run is QUEUED in MongoDB: while Redis is down, the scheduler gives it its job once it is back.
            await self.jobs.enqueue_run(run.id, trigger, best_effort=True)
            await self._announce(run)
        return run, created

    async def queue_many(self, wanted: Sequence[tuple[Integration, RunKind]], trigger: Trigger) -> list[Run]:
        """Queue a run for each integration that has none going (the scheduler's due runs): the runs and
        their activity entries in one write each, then the jobs, events and lights side by side, so a
        tick costs about the same for one due run as for hundreds. Returns the runs created."""
        runs = await self.runs.create_many([(i.account_id, i.id, kind) for i, kind in wanted], trigger)
        if not runs:
            return []
        await self.activity.record_many(
            [(r.account_id, ActivityKind.SYNC_QUEUED, queued_message(r), r.integration_id, r.id) for r in runs]
        )
        limit = asyncio.Semaphore(ANNOUNCE_CONCURRENCY)
        # As the scheduler just claimed them (their light included): the light is computed from these.
        claimed = {integration.id: integration for integration, _ in wanted}

        async def enqueue(run: Run) -> None:
            async with limit:
                await self.jobs.enqueue_run(run.id, trigger, best_effort=True)
                await self._announce(run, claimed.get(run.integration_id))

        await asyncio.gather(*(enqueue(run) for run in runs))
        return runs

    async def _announce(self, run: Run, integration: Integration | None = None) -> None:
        """A new run is published (RUN_QUEUED) and turns the light YELLOW (WAIT) at once. `integration`: as
        just read from MongoDB (not from a cache), when the caller has it."""
        await self.publisher.publish(run_event(EventKind.RUN_QUEUED, run, self.clock()))
        await self.health.refresh(run.integration_id, integration=integration, active=run)

    async def sync_now(
        self, account_id: str, integration_id: str, product_ids: list[str] | None, full: bool | None = None
    ) -> tuple[Run, bool]:
        """Sync Now: the run queued, and whether it is new. While a run is queued or running, that run
        comes back instead (False), whatever was asked for."""
        integration = await self.integrations.get(account_id, integration_id)
        if integration is None:
            raise NotFound("no integration with that id", field="integrationId")
        ids = chosen_ids(product_ids)
        if ids is not None and full:
            raise BadInput("give productExternalIds or full, not both", field="full")
        kind = self.choose_kind(integration, ids, full)
        run, created = await self.queue(integration, Trigger.MANUAL, kind=kind, product_ids=ids)
        if not created and run.status is RunStatus.QUEUED and run.trigger is not Trigger.MANUAL:
            # The press finds a scheduled run still waiting on the runs lane (behind other stores' long
            # runs, maybe): it gets a Sync Now job too, so the merchant at the screen does not wait (each
            # job's attempt has a lease owner of its own: the run is worked once, gateway.engine).
            await self.jobs.hasten_run(run.id)
        return run, created

    async def cancel(self, account_id: str, run_id: str) -> Run:
        run = await self.runs.get(account_id, run_id)
        if run is None:
            raise NotFound("no sync run with that id", field="runId")
        if run.status.finished:
            raise Conflict(f"the run already ended ({run.status.value})", field="runId")
        updated = await self.runs.request_cancel(account_id, run_id)
        if updated is None:  # it ended between the two reads
            refreshed = await self.runs.get(account_id, run_id)
            assert refreshed is not None
            return refreshed
        if updated.status is RunStatus.CANCELLED:
            await self.activity.record(
                account_id,
                ActivityKind.SYNC_CANCELLED,
                "Sync cancelled before it started",
                integration_id=updated.integration_id,
                run_id=run_id,
            )
            await self.publisher.publish(run_event(EventKind.RUN_FINISHED, updated, self.clock()))
            await self.health.refresh(updated.integration_id)
        return updated


def chosen_ids(product_ids: list[str] | None) -> list[str] | None:
    """The store ids a Sync Now of chosen products names, trimmed, each once, in the order given; None
    for the whole store. An empty list, or one of blank ids only, is a mistake, not "everything"."""
    if product_ids is None:
        return None
    ids = list(dict.fromkeys(p.strip() for p in product_ids if p.strip()))
    if not ids:
        raise BadInput(
            "productExternalIds is empty: name at least one product's store id, or leave it out to sync the "
            "whole store",
            field="productExternalIds",
        )
    return ids
