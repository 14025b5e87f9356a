"""The install-flow checks of the gateway's conformance suite (gateway.testing.conformance_install)."""

from gateway.testing.conformance_install import *  # noqa: F403 - the suite's checks

GATEWAY_PLATFORM = "bigcommerce"
