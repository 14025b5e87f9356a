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
from datetime import datetime

from gateway.events import EventPublisher, HealthChanged
from gateway.health import Health, compute_health
from gateway.integration_store import Integration, IntegrationStore
from gateway.runs import RunStore

#: Conditional updates lost in a row before giving up (each loss means another process published).
ATTEMPTS = 10


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
        last = await self.runs.latest(integration.id, limit=1, finished_only=True)
        active = await self.runs.active(integration.id)
        return compute_health(integration, last[0] if last else None, active, self.clock())

    async def refresh(self, integration_id: str) -> Health | None:
        """Compute the light again; publish HEALTH_CHANGED if it changed (once, across processes)."""
        for _ in range(ATTEMPTS):
            integration = await self.store.get_any(integration_id)
            if integration is None:
                return None  # disconnected: no light any more
            health = await self.current(integration)
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
