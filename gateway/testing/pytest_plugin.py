"""The gateway's pytest plugin, registered as the `alana_gateway` pytest11 entry point: every test
run in this repository (plugins/*/tests included) gets these fixtures without a conftest import."""

from __future__ import annotations

from gateway.testing.servers import embedded_servers, mongodb_url, redis_url

__all__ = ["embedded_servers", "mongodb_url", "redis_url"]

# Conformance suite: the command-line option (pytest_addoption) and its collection hooks go here.
