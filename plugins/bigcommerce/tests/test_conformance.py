from gateway.testing.conformance import *  # noqa: F403 - the suite's tests

GATEWAY_PLATFORM = "bigcommerce"
