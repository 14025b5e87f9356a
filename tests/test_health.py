"""The light's rules (docs/reference/BEHAVIOUR.md "Health") as a pure function: status, reason, action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.domain import HealthAction, HealthStatus, RunKind, RunStatus, Trigger, WebhookState
from gateway.health import compute_health
from gateway.integration_store import Integration, WebhookInfo
from gateway.runs import Run

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def integration(**fields: Any) -> Integration:
    values: dict[str, Any] = {
        "next_sync_at": NOW + timedelta(minutes=30),
        "last_sync_at": NOW - timedelta(minutes=30),
        "last_full_sync_at": NOW - timedelta(minutes=30),
        "webhooks": {"state": "REGISTERED"},
        "pending_changes": 0,
        **fields,
    }
    webhooks = values.pop("webhooks")
    info = WebhookInfo(
        WebhookState(webhooks["state"]), error=webhooks.get("error"), silent=webhooks.get("silent", False)
    )
    return Integration("i", "a", "toy", "Toy", "http://toy", NOW - timedelta(days=1), webhooks=info, **values)


def run(doc: dict[str, Any] | None) -> Run | None:
    if doc is None:
        return None
    return Run("r", "a", "i", Trigger.MANUAL, RunKind.FULL, RunStatus(doc["status"]), NOW, failure=doc.get("failure"))


def test_green_has_no_action() -> None:
    health = compute_health(integration(), run({"status": "SUCCEEDED"}), None, NOW)
    assert (health.status, health.reason, health.action) == (HealthStatus.GREEN, None, None)


@pytest.mark.parametrize(
    ("fields", "last", "active", "status", "action"),
    [
        ({}, None, {"status": "QUEUED"}, HealthStatus.YELLOW, HealthAction.WAIT),
        ({}, None, {"status": "RUNNING"}, HealthStatus.YELLOW, HealthAction.WAIT),
        ({"last_full_sync_at": None}, None, None, HealthStatus.YELLOW, HealthAction.WAIT),
        ({"pending_changes": 3}, None, None, HealthStatus.YELLOW, HealthAction.SYNC_NOW),
        (
            {"webhooks": {"state": "REGISTERED", "silent": True}},
            None,
            None,
            HealthStatus.YELLOW,
            HealthAction.REREGISTER_WEBHOOKS,
        ),
        ({"next_sync_at": NOW - timedelta(minutes=5)}, None, None, HealthStatus.YELLOW, HealthAction.WAIT),
        ({"credentials_rejected": True}, None, None, HealthStatus.RED, HealthAction.RECONNECT),
        ({}, {"status": "FAILED", "failure": "timeout"}, None, HealthStatus.RED, HealthAction.RETRY),
        (
            {"webhooks": {"state": "FAILED", "error": "403"}},
            None,
            None,
            HealthStatus.RED,
            HealthAction.REREGISTER_WEBHOOKS,
        ),
        ({"next_sync_at": NOW - timedelta(hours=2)}, None, None, HealthStatus.RED, HealthAction.CONTACT_SUPPORT),
    ],
)
def test_each_problem_has_its_status_and_action(
    fields: dict[str, Any],
    last: dict[str, Any] | None,
    active: dict[str, Any] | None,
    status: HealthStatus,
    action: HealthAction,
) -> None:
    health = compute_health(integration(**fields), run(last), run(active), NOW)
    assert (health.status, health.action) == (status, action)
    assert health.reason


def test_a_first_full_run_that_succeeded_is_green_before_the_integration_records_it() -> None:
    """Found by a browser test: the run is marked SUCCEEDED a moment before the integration records its
    sync; a light read in between said "The first sync has not finished yet" beside a finished run."""
    health = compute_health(integration(last_full_sync_at=None), run({"status": "SUCCEEDED"}), None, NOW)
    assert health.status is HealthStatus.GREEN


def test_red_outranks_yellow_and_the_first_red_decides_the_action() -> None:
    health = compute_health(
        integration(credentials_rejected=True, pending_changes=2),
        run({"status": "FAILED"}),
        run({"status": "QUEUED"}),
        NOW,
    )
    assert health.status is HealthStatus.RED
    assert health.action is HealthAction.RECONNECT
    assert "rejected" in (health.reason or "")
