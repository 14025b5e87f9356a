"""The conformance suite again, with FULL reads going through bulk operations (JSONL streaming)."""

from __future__ import annotations

import pytest

from gateway.testing.conformance import *  # noqa: F403 - the suite's tests and fixtures
from gateway.testing.conformance import ConformanceOptions

GATEWAY_PLATFORM = "shopify"


@pytest.fixture
def conformance_options() -> ConformanceOptions:
    return ConformanceOptions(
        simulator_options={"restore_rate": 1_000_000, "bucket_size": 2000},
        # Every FULL read is a bulk operation, released in small pages from a short stitching window.
        connection_options={
            "bulk_threshold": 1,
            "bulk_poll_interval": 0.01,
            "bulk_page_size": 10,
            "bulk_lookback": 5,
            "page_target": 10,
        },
    )
