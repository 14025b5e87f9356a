"""Every name the gateway gives a thing in Redis: job names, job ids, pub/sub channels, keys.

As in arq's own `constants.py`, nothing else spells one, so two processes (an API and a worker, or
two releases side by side) cannot disagree about a name.
"""

from __future__ import annotations

from enum import StrEnum

#: The arq queue, unless GATEWAY_QUEUE_NAME names another (tests give each run its own).
DEFAULT_QUEUE_NAME = "alana:queue"


class Lane(StrEnum):
    """The arq queues work is split into. Every worker serves each lane with job slots of its own
    (GATEWAY_WORKER_*_SLOTS), so hours of one store's full sync hold a run slot, never the slots
    another store's webhooks or a merchant's Sync Now need."""

    #: Runs nobody is waiting for at a screen: scheduled, the first sync after a connect, repairs.
    RUNS = "runs"
    #: Runs a merchant asked for with Sync Now.
    SYNC_NOW = "sync_now"
    #: Applying webhook deliveries.
    WEBHOOKS = "webhooks"


def lane_queue_name(queue_name: str, lane: Lane) -> str:
    """The arq queue of one lane; RUNS keeps the base name (what `worker --check` and older releases read)."""
    return queue_name if lane is Lane.RUNS else f"{queue_name}:{lane.value}"


# ---- arq jobs -------------------------------------------------------------------------------------
#: Executes one sync run (gateway.engine).
RUN_JOB = "run_sync"
#: Applies the webhook deliveries waiting for one integration (gateway.webhooks).
APPLY_JOB = "apply_webhooks"


def run_job_id(run_id: str, attempt: int = 0) -> str:
    """One job per attempt: arq refuses a second job with the same id while the first one's result is kept."""
    return f"sync:{run_id}:{attempt}"


def apply_job_id(integration_id: str, window: int | str) -> str:
    """Deliveries to one integration within one coalescing window share a job."""
    return f"wh:{integration_id}:{window}"


def apply_lock_key(integration_id: str) -> str:
    """Held by the one apply job working an integration's deliveries (gateway.webhooks): one store's
    burst takes one webhook slot, and arrives coalesced."""
    return f"gw:apply:{integration_id}"


def worker_health_check_key(queue_name: str, host: str) -> str:
    """Where arq's worker reports it is alive (`alana-gateway worker --check` reads it)."""
    return f"{queue_name}:health-check:{host}"


# ---- pub/sub channels -------------------------------------------------------------------------------
def account_channel(account_id: str) -> str:
    """Integration events of one account (never another's)."""
    return f"gw:events:{account_id}"


def run_channel(run_id: str) -> str:
    """Progress of one run."""
    return f"gw:run:{run_id}"


# ---- keys -------------------------------------------------------------------------------------------
def seen_key(run_id: str) -> str:
    """The external ids a full run has seen so far (for removal detection at its end)."""
    return f"gw:seen:{run_id}"


def token_refresh_lock_key(integration_id: str) -> str:
    """Held by the one process renewing an integration's expiring credentials (gateway.tokens)."""
    return f"gw:token-refresh:{integration_id}"


def query_cost_key(caller: str) -> str:
    """One API caller's token bucket of GraphQL query cost (gateway.api.ratelimit)."""
    return f"gw:cost:{caller}"


#: Every key of a store's shared rate-limit state (gateway.ratebudget) starts with this.
RATE_KEY_PREFIX = "alana:rate:"


def rate_key(store: str, name: str) -> str:
    """One primitive (bucket, window, pause; `name` may end in `:holds` or `:claims`) of a store's rate state.
    `store` is the store's identity; the braces make every key of one store hash to one cluster slot (a
    script touches several)."""
    return f"{RATE_KEY_PREFIX}{{{store}}}:{name}"


def journal_key(queue_name: str) -> str:
    """The webhook endpoint's journal (gateway.journal): a stream of deliveries answered but not yet in MongoDB."""
    return f"{queue_name}:webhook-journal"


def delivered_key(integration_id: str, delivery_id: str) -> str:
    """Marks a delivery the endpoint journaled, so a redelivery is answered "duplicate" (gateway.journal)."""
    return f"gw:delivered:{integration_id}:{delivery_id}"
