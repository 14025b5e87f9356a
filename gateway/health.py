"""Sync health: the green / yellow / red light, by the rules in docs/reference/BEHAVIOUR.md "Health".

A pure function of the integration, its runs and the time, so it is the same wherever it is
computed (API, worker) and easy to test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.adapter import ConnectMethod
from gateway.domain import HealthAction, HealthStatus, RunKind, RunStatus, SyncMode, WebhookState
from gateway.integration_store import HealthMark, Integration
from gateway.runs import Run


@dataclass(frozen=True)
class Health:
    status: HealthStatus
    reason: str | None
    last_sync_at: datetime | None
    next_sync_at: datetime | None
    last_run: Run | None
    #: What the merchant can do about it; None when GREEN. The most urgent problem's action wins.
    action: HealthAction | None = None

    @property
    def mark(self) -> HealthMark:
        """What a transition is: a change of status, reason or action (not of the times)."""
        return HealthMark(self.status, self.reason, self.action)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _reconnect_reasons(integration: Integration) -> list[tuple[str, HealthAction]]:
    """Why the merchant must reconnect: the app was removed, or the store stopped accepting the credentials."""
    if integration.app_uninstalled:
        text = (
            "The app was removed from your store, so syncing has stopped. Reconnect the store to resume; your "
            "products are kept."
        )
    elif integration.credentials_rejected and integration.connected_via is ConnectMethod.INSTALL_FLOW:
        text = (
            "Your store no longer accepts Alana's access (it was revoked or has expired), so syncing has stopped. "
            "Reconnect the store to resume; your products are kept."
        )
    elif integration.credentials_rejected:
        text = "Your store rejected Alana's credentials. Reconnect the store with new API keys."
    else:
        return []
    return [(text, HealthAction.RECONNECT)]


def _full_run_succeeded(run: Run | None) -> bool:
    return run is not None and run.status is RunStatus.SUCCEEDED and run.kind is RunKind.FULL


def compute_health(integration: Integration, last_run: Run | None, active_run: Run | None, now: datetime) -> Health:
    """Health of one integration. `last_run` is the newest finished run, `active_run` the running one."""
    frequency = integration.settings.frequency
    next_sync_at = integration.next_sync_at if integration.settings.mode is SyncMode.AUTOMATIC else None
    last_sync_at = integration.last_sync_at
    # Each problem comes with its action; the first red (or, without reds, the first yellow) decides.
    reds: list[tuple[str, HealthAction]] = []
    yellows: list[tuple[str, HealthAction]] = []

    paused = integration.paused
    reds += _reconnect_reasons(integration)
    if last_run is not None and last_run.status is RunStatus.FAILED and not paused:
        error = last_run.failure or "the store could not be read"
        reds.append((f"The last sync failed: {error}", HealthAction.RETRY))
    webhooks = integration.webhooks
    if webhooks.state is WebhookState.FAILED:
        reds.append(
            (
                "Alana could not register for change notifications on your store, so changes only arrive "
                f"with scheduled syncs ({webhooks.error or 'the store refused'}).",
                HealthAction.REREGISTER_WEBHOOKS,
            )
        )
    if next_sync_at is not None and active_run is None:
        overdue = now - next_sync_at
        if overdue > frequency.period:
            reds.append(
                (
                    "Scheduled syncs are not running: the last one is overdue by more than one period.",
                    HealthAction.CONTACT_SUPPORT,
                )
            )
        elif overdue.total_seconds() > 60:
            yellows.append(("A scheduled sync is overdue and should start shortly.", HealthAction.WAIT))

    if active_run is not None:
        verb = "is running" if active_run.status is RunStatus.RUNNING else "is queued"
        yellows.append((f"A sync {verb}.", HealthAction.WAIT))
    elif not integration.last_full_sync_at and not _full_run_succeeded(last_run):
        # (A run is marked SUCCEEDED before the integration records its sync: in between, the run says it.)
        yellows.append(("The first sync has not finished yet.", HealthAction.WAIT))
    pending = integration.pending_changes
    if pending:
        yellows.append((f"{_plural(pending, 'change')} waiting for Sync Now.", HealthAction.SYNC_NOW))
    if webhooks.repair_error and not paused:
        yellows.append(
            (
                "Your store stopped sending change notifications and Alana could not register them again "
                f"({webhooks.repair_error}); it keeps trying, and scheduled syncs still bring changes.",
                HealthAction.REREGISTER_WEBHOOKS,
            )
        )
    if webhooks.silent:
        yellows.append(
            (
                "Recent store changes arrived only through scheduled syncs: real-time notifications from your "
                "store may not be reaching Alana.",
                HealthAction.REREGISTER_WEBHOOKS,
            )
        )

    for status, problems in ((HealthStatus.RED, reds), (HealthStatus.YELLOW, yellows)):
        if problems:
            reason = " ".join(text for text, _ in problems)
            return Health(status, reason, last_sync_at, next_sync_at, last_run, problems[0][1])
    return Health(HealthStatus.GREEN, None, last_sync_at, next_sync_at, last_run)
