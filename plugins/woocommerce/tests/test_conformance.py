"""The gateway's plugin conformance suite (gateway.testing.conformance), run against this plugin."""

from __future__ import annotations

import pytest

from gateway.testing.conformance import *  # noqa: F403 - the suite's tests and fixtures
from gateway.testing.conformance import ConformanceOptions

GATEWAY_PLATFORM = "woocommerce"


@pytest.fixture
def conformance_options() -> ConformanceOptions:
    return ConformanceOptions(
        connection_options={"per_page": 10},
        # What WooCommerceSimulator.create_product honours today (it declares no conformance_fields yet).
        create_fields=frozenset({"title", "price", "sku"}),
    )
