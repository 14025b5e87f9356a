"""The gateway's vocabulary: enums shared by storage, services and the API (no I/O here)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class SyncMode(StrEnum):
    AUTOMATIC = "AUTOMATIC"
    MANUAL = "MANUAL"


class SyncFrequency(StrEnum):
    EVERY_15_MINUTES = "EVERY_15_MINUTES"
    EVERY_HOUR = "EVERY_HOUR"
    EVERY_4_HOURS = "EVERY_4_HOURS"
    DAILY = "DAILY"

    @property
    def period(self) -> timedelta:
        return _PERIODS[self]


_PERIODS = {
    SyncFrequency.EVERY_15_MINUTES: timedelta(minutes=15),
    SyncFrequency.EVERY_HOUR: timedelta(hours=1),
    SyncFrequency.EVERY_4_HOURS: timedelta(hours=4),
    SyncFrequency.DAILY: timedelta(days=1),
}


class RunStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class Trigger(StrEnum):
    MANUAL = "MANUAL"
    SCHEDULED = "SCHEDULED"
    WEBHOOK = "WEBHOOK"
    #: The first full sync after connecting (or reconnecting).
    INITIAL = "INITIAL"


class RunKind(StrEnum):
    FULL = "FULL"
    INCREMENTAL = "INCREMENTAL"
    PRODUCTS = "PRODUCTS"
    #: Not a run a worker executes: the hour's digest of changes applied from store webhooks (trigger
    #: WEBHOOK), one per integration per hour, so the history stays readable under a storm of them.
    DIGEST = "DIGEST"


class SyncErrorCode(StrEnum):
    """The codes the core puts in a run summary's `errors` (plugins add per-product codes of their own,
    e.g. BAD_PRICE). Run-level entries have no external id and say why a run failed or stopped."""

    #: A run-level failure: the store could not be reached (connection refused, DNS, timeouts, 5xx after retries).
    STORE_UNREACHABLE = "STORE_UNREACHABLE"
    #: A run-level failure: the store answered something unexpected (an HTTP status, an unreadable payload).
    STORE_ERROR = "STORE_ERROR"
    #: A run-level failure: the store refused Alana's credentials (reconnect the store).
    CREDENTIALS_REJECTED = "CREDENTIALS_REJECTED"
    #: A run-level failure: the store kept throttling Alana after every retry.
    RATE_LIMITED = "RATE_LIMITED"
    #: The run was cancelled on request (what it saved is kept).
    CANCELLED = "CANCELLED"
    #: The integration was disconnected while the run waited or ran.
    DISCONNECTED = "DISCONNECTED"
    #: A run-level failure inside the gateway.
    INTERNAL = "INTERNAL"
    #: A chosen product (syncNow productExternalIds) the store does not have.
    NOT_FOUND = "NOT_FOUND"
    #: A full run could not tell which products vanished from the store; the next full run marks them.
    REMOVALS_SKIPPED = "REMOVALS_SKIPPED"
    #: One product the plugin could not map (plugins may use codes of their own).
    MAPPING_FAILED = "MAPPING_FAILED"
    INVALID_PRODUCT = "INVALID_PRODUCT"


class ChangeOutcome(StrEnum):
    """What applying one store change did to its product."""

    ADDED = "ADDED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    REMOVED = "REMOVED"
    FAILED = "FAILED"


class HealthStatus(StrEnum):
    GREEN = "GREEN"
    YELLOW = "YELLOW"
    RED = "RED"


class HealthAction(StrEnum):
    """What the merchant can do about a YELLOW or RED light (the frontend shows a button or a hint)."""

    SYNC_NOW = "SYNC_NOW"
    RECONNECT = "RECONNECT"
    REREGISTER_WEBHOOKS = "REREGISTER_WEBHOOKS"
    RETRY = "RETRY"
    WAIT = "WAIT"
    CONTACT_SUPPORT = "CONTACT_SUPPORT"


class ConflictStatus(StrEnum):
    STORE_WON = "STORE_WON"
    REAPPLIED = "REAPPLIED"


class ActivityKind(StrEnum):
    INTEGRATION_CONNECTED = "INTEGRATION_CONNECTED"
    INTEGRATION_DISCONNECTED = "INTEGRATION_DISCONNECTED"
    SETTINGS_CHANGED = "SETTINGS_CHANGED"
    SYNC_QUEUED = "SYNC_QUEUED"
    SYNC_STARTED = "SYNC_STARTED"
    SYNC_SUCCEEDED = "SYNC_SUCCEEDED"
    SYNC_FAILED = "SYNC_FAILED"
    SYNC_CANCELLED = "SYNC_CANCELLED"
    CONFLICT = "CONFLICT"
    CHANGE_REAPPLIED = "CHANGE_REAPPLIED"
    WEBHOOK_REJECTED = "WEBHOOK_REJECTED"
    PRODUCT_EDITED = "PRODUCT_EDITED"
    INTEGRATION_RECONNECTED = "INTEGRATION_RECONNECTED"
    #: The store stopped accepting the credentials (a 401, a refresh refused): logged once until reconnected.
    CREDENTIALS_REJECTED = "CREDENTIALS_REJECTED"
    APP_UNINSTALLED = "APP_UNINSTALLED"
    WEBHOOKS_REREGISTERED = "WEBHOOKS_REREGISTERED"
    #: A reconnect (or a callback claiming to finish one) failed; nothing was changed.
    CONNECT_FAILED = "CONNECT_FAILED"
    #: A store user lost access to the app on the platform (BigCommerce remove_user).
    APP_USER_REMOVED = "APP_USER_REMOVED"
    #: The hour's digest of changes applied from store webhooks (one entry per integration per hour,
    #: updated as changes arrive; its run is the WEBHOOK digest run).
    WEBHOOK_CHANGES_APPLIED = "WEBHOOK_CHANGES_APPLIED"


class EventKind(StrEnum):
    RUN_QUEUED = "RUN_QUEUED"
    RUN_STARTED = "RUN_STARTED"
    RUN_PROGRESS = "RUN_PROGRESS"
    RUN_FINISHED = "RUN_FINISHED"
    HEALTH_CHANGED = "HEALTH_CHANGED"
    CONFLICT = "CONFLICT"
    PRODUCT_CHANGED = "PRODUCT_CHANGED"
    #: A connect attempt (beginConnect, reconnectIntegration) ended: CONNECTED, FAILED or EXPIRED.
    CONNECT_FINISHED = "CONNECT_FINISHED"


class ConnectStatus(StrEnum):
    """A connect attempt: PENDING until the platform calls back, then one of the other three for good."""

    PENDING = "PENDING"
    CONNECTED = "CONNECTED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


class WebhookState(StrEnum):
    NONE = "NONE"
    REGISTERED = "REGISTERED"
    FAILED = "FAILED"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """The time every service reads, one per Gateway; tests move it by setting `source`."""

    def __init__(self, source: Callable[[], datetime] = utcnow) -> None:
        self.source = source

    def __call__(self) -> datetime:
        return self.source()
