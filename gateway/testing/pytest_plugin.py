"""The gateway's pytest plugin, registered as the `alana_gateway` pytest11 entry point: every test
run in this repository (plugins/*/tests included) gets these fixtures without a conftest import."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.testing.conformance import (
    conformance,
    conformance_options,
    platform_adapter,
    platform_simulator_class,
)
from gateway.testing.servers import embedded_servers, mongodb_url, redis_url

__all__ = [
    "conformance",
    "conformance_options",
    "embedded_servers",
    "mongodb_url",
    "platform_adapter",
    "platform_simulator_class",
    "redis_url",
]

# ---- the plugin conformance suite (gateway.testing.conformance and .conformance_install) -------------------
SUITE = Path(__file__).with_name("conformance.py")
#: Every module of the suite, collected together by --gateway-platform.
SUITES = (SUITE, Path(__file__).with_name("conformance_install.py"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("alana-gateway", "Alana Integration Gateway")
    group.addoption(
        "--gateway-platform",
        action="append",
        default=[],
        metavar="ID",
        dest="gateway_platform",
        help="run the platform plugin conformance suite against the installed platform ID (repeatable)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """With --gateway-platform, collect the conformance suite: alone, or beside the paths named."""
    if not config.getoption("gateway_platform"):
        return
    suites = [str(path) for path in SUITES]
    if config.args_source is pytest.Config.ArgsSource.ARGS:
        config.args.extend(suite for suite in suites if suite not in config.args)
    else:
        # No paths given: run just the suite, not the current project's whole test tree.
        config.args[:] = suites
