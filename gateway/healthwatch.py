"""Each health transition published exactly once, and nothing when nothing changed.

The light a subscriber last saw is kept on the integration (`health`: status, reason, action). After
anything that can change the light (a run queued, started or finished, settings, a delivery held for
Sync Now, notifications arriving again), the service that did it calls `refresh`: the light is
computed again and, if it differs from the kept one, the kept one is replaced only if it is still the
one that was read (a conditional update) and only the caller whose update matched publishes. Two
processes that see the same transition publish it once; a caller that lost the race reads again, so
the last refresh always publishes the light as it finally is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from gateway.events import EventPublisher, HealthChanged
from gateway.health import Health, compute_health
from gateway.integration_store import Integration, IntegrationStore
from gateway.runs import Run, RunStore


class Unread:
    """What `HealthWatch.refresh` reads itself: the caller does not know it."""


UNREAD = Unread()

#: Conditional updates lost in a row before giving up (each loss means another process published).
ATTEMPTS = 10
#: No run of an integration is older than the integration, give or take the clocks of the processes.
CLOCK_SKEW = timedelta(days=1)


def runs_since(integration: Integration) -> datetime:
    """No run of the integration was queued before this (it saves the run lists queries)."""
    return integration.created_at - CLOCK_SKEW


class HealthWatch:
    def __init__(
        self,
        store: IntegrationStore,
        runs: RunStore,
        publisher: EventPublisher,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.runs = runs
        self.publisher = publisher
        self.clock = clock

    async def current(self, integration: Integration) -> Health:
        """The light now (docs/reference/BEHAVIOUR.md "Health")."""
        return self.of(integration, await self._last_finished(integration), await self.runs.active(integration.id))

    async def _last_finished(self, integration: Integration) -> Run | None:
        """The newest run a worker executed (the light's last run)."""
        last = await self.runs.latest(integration.id, limit=1, finished_only=True, since=runs_since(integration))
        return last[0] if last else None

    def of(self, integration: Integration, last_finished: Run | None, active: Run | None) -> Health:
        """The light now, from runs already read (the API reads them for many integrations at once)."""
        return compute_health(integration, last_finished, active, self.clock())

    async def refresh(
        self,
        integration_id: str,
        *,
        integration: Integration | None = None,
        last_finished: Run | None | Unread = UNREAD,
        active: Run | None | Unread = UNREAD,
    ) -> Health | None:
        """Compute the light again; publish HEALTH_CHANGED if it changed (once, across processes).

        A caller that holds some of what the light is computed from (the integration as it just wrote it,
        the run it just queued, started or finished) passes it, and only the rest is read: a run costs
        the embedded server a few reads less at each of its three transitions. If the conditional update
        finds another light than `integration` had, everything is read again.
        """
        for attempt in range(ATTEMPTS):
            if attempt:  # another process changed the light meanwhile: what the caller knew may be old
                integration, last_finished, active = None, UNREAD, UNREAD
            if integration is None:
                integration = await self.store.get_any(integration_id)
            if integration is None:
                return None  # disconnected: no light any more
            if isinstance(last_finished, Unread):
                last_finished = await self._last_finished(integration)
            if isinstance(active, Unread):
                active = await self.runs.active(integration.id)
            health = self.of(integration, last_finished, active)
            if integration.health == health.mark:
                return health
            if await self.store.mark_health(integration_id, integration.health, health.mark):
                await self.publisher.publish(
                    HealthChanged(
                        account_id=integration.account_id, integration_id=integration_id, at=self.clock(), health=health
                    )
                )
                return health
        return None
