"""/metrics stays bounded (issue 11, finding 10): the platform segment of a webhook URL becomes a label
only when a loaded plugin provides that platform."""

from __future__ import annotations

from gwtest import Api

from gateway import metrics


async def _exposition(api: Api) -> str:
    async with api.session.get(f"{api.url}/metrics") as response:
        assert response.status == 200
        return await response.text()


async def test_junk_webhook_platforms_add_no_series(api: Api) -> None:
    before = await _exposition(api)
    for n in range(300):
        async with api.session.post(f"{api.url}/webhooks/junk-{n}/x", data=b"{}") as response:
            assert response.status == 404
    async with api.session.post(f"{api.url}/webhooks/toy/no-such-integration", data=b"{}") as response:
        assert response.status == 404
    after = await _exposition(api)
    assert "junk-" not in after
    assert 'outcome="unknown",platform="unknown"' in after
    assert 'outcome="unknown",platform="toy"' in after  # a loaded platform keeps its own label
    # At most the two new series above, not one per junk platform.
    assert _series(after) - _series(before) <= 2


def _series(exposition: str) -> int:
    return sum(1 for line in exposition.splitlines() if line.startswith("gateway_webhook_deliveries_total{"))


def test_platform_label_is_clamped() -> None:
    metrics.register_platform("acme")
    assert metrics.platform_label("acme") == "acme"
    assert metrics.platform_label("acme2") == metrics.UNKNOWN_PLATFORM
    assert metrics.platform_label("x" * 10_000) == metrics.UNKNOWN_PLATFORM
