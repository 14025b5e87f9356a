"""The gateway's plugin conformance suite (gateway.testing.conformance), run against this plugin."""

from __future__ import annotations

import pytest
from alana_bigcommerce.simulator import BigCommerceSimulator

from gateway.testing.conformance import *  # noqa: F403 - the suite's tests and fixtures
from gateway.testing.conformance import ConformanceOptions

GATEWAY_PLATFORM = "bigcommerce"


@pytest.fixture
def conformance_options() -> ConformanceOptions:
    return ConformanceOptions(
        # A quota the suite cannot exhaust (the Standard plan's 150 per 30 s would pace it at 4 req/s).
        simulator_options={"quota": 2000, "window_ms": 1000},
        connection_options={"page_size": 10},
        # Deliveries carry the secret header set at registration; BigCommerce signs no body.
        webhook_body_signed=False,
        # Until BigCommerceSimulator declares its conformance_fields: the create_product keywords it honours.
        create_fields=None
        if hasattr(BigCommerceSimulator, "conformance_fields")
        else frozenset({"title", "price", "sku"}),
    )
