"""Test support shipped with the gateway: pytest fixtures for real servers, loaded in every test run
through the `alana_gateway` pytest11 entry point (see `pytest_plugin`)."""
