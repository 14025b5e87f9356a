"""The gateway's plugin conformance suite (gateway.testing.conformance), run against this plugin."""

from __future__ import annotations

import pytest

from gateway.testing.conformance import *  # noqa: F403 - the suite's tests and fixtures
from gateway.testing.conformance import ConformanceOptions

GATEWAY_PLATFORM = "shopify"


@pytest.fixture
def conformance_options() -> ConformanceOptions:
    return ConformanceOptions(
        # A bucket that never runs dry: the suite is about the plugin's contract, not Shopify's costs.
        simulator_options={"restore_rate": 1_000_000, "bucket_size": 2000},
        # Paginated reads (bulk operations have their own tests) in pages of a few products.
        connection_options={"bulk_threshold": 0, "bulk_poll_interval": 0.01, "page_target": 10},
    )
