"""The gateway's plugin conformance suite (gateway.testing.conformance), run against this plugin."""

from __future__ import annotations

import pytest
from alana_woocommerce.simulator import WooCommerceSimulator

from gateway.testing.conformance import *  # noqa: F403 - the suite's tests and fixtures
from gateway.testing.conformance import ConformanceOptions

GATEWAY_PLATFORM = "woocommerce"


@pytest.fixture
def conformance_options() -> ConformanceOptions:
    return ConformanceOptions(
        connection_options={"per_page": 10},
        # Until WooCommerceSimulator declares its conformance_fields: the create_product keywords it honours.
        create_fields=None
        if hasattr(WooCommerceSimulator, "conformance_fields")
        else frozenset({"title", "price", "sku"}),
    )
