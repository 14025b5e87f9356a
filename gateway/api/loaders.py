"""Batched reads for the fields every integration card asks for (strawberry DataLoaders).

`integrations { health productCount apiCallsLast24h currentRun syncRuns(first: 10) }` would ask
MongoDB once per field per integration (and health alone twice). The fields of all the integrations
in one response resolve in the same tick, so each loader answers them together: one query for the
product counts, one for the active runs and one for the API calls of every integration asked about;
the recent runs (health and syncRuns share them) with one query per integration, sent concurrently,
each reading only the rows it returns.

The loaders keep no cache: a websocket's context lives as long as its connection, and an answer kept
there would go stale. Repeated keys in one tick are still read once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from strawberry.dataloader import DataLoader

from gateway.healthwatch import runs_since
from gateway.integration_store import Integration
from gateway.product_counts import ProductCounts
from gateway.runs import Run
from gateway.services import Gateway


@dataclass(frozen=True)
class RecentRuns:
    """The newest `limit` runs of an integration (newest first)."""

    integration_id: str
    since: datetime
    limit: int


class Loaders:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.counts: DataLoader[str, ProductCounts] = DataLoader(load_fn=self._counts, cache=False)
        self.active: DataLoader[str, Run | None] = DataLoader(load_fn=self._active, cache=False)
        self.recent: DataLoader[RecentRuns, list[Run]] = DataLoader(load_fn=self._recent, cache=False)
        self.api_calls: DataLoader[str, int] = DataLoader(load_fn=self._api_calls, cache=False)
        self.last_finished: DataLoader[RecentRuns, Run | None] = DataLoader(load_fn=self._last_finished, cache=False)

    def recent_runs(self, integration: Integration, limit: int) -> RecentRuns:
        return RecentRuns(integration.id, runs_since(integration), limit)

    async def _counts(self, ids: Sequence[str]) -> list[ProductCounts]:
        found = await self.gw.products.counts_of(ids)
        return [found[i] for i in ids]

    async def _active(self, ids: Sequence[str]) -> list[Run | None]:
        found = await self.gw.runs.active_of(list(dict.fromkeys(ids)))
        return [found.get(i) for i in ids]

    async def _recent(self, keys: Sequence[RecentRuns]) -> list[list[Run]]:
        # One read per integration, of as many runs as the most any field asked for.
        wanted: dict[str, RecentRuns] = {}
        for key in keys:
            if key.integration_id not in wanted or wanted[key.integration_id].limit < key.limit:
                wanted[key.integration_id] = key
        ids = list(wanted)
        read = await asyncio.gather(
            *(self.gw.runs.latest(k.integration_id, k.limit, since=k.since) for k in wanted.values())
        )
        runs = dict(zip(ids, read, strict=True))
        return [runs[key.integration_id][: key.limit] for key in keys]

    async def _last_finished(self, keys: Sequence[RecentRuns]) -> list[Run | None]:
        # The newest run a worker executed (not a webhook digest): the light's last run.
        read = await asyncio.gather(
            *(self.gw.runs.latest(k.integration_id, 1, finished_only=True, since=k.since) for k in keys)
        )
        return [runs[0] if runs else None for runs in read]

    async def _api_calls(self, ids: Sequence[str]) -> list[int]:
        found = await self.gw.integrations.api_calls_24h(list(dict.fromkeys(ids)))
        return [found[i] for i in ids]
