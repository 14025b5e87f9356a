"""Session-wide MongoDB and Redis for tests: the ones in MONGODB_URL / REDIS_URL when set, otherwise
embedded servers on free ports with their data in a temporary directory removed at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.embedded import EmbeddedServers


@pytest.fixture(scope="session")
def embedded_servers() -> Iterator[EmbeddedServers]:
    """The servers for this test session (started on first use, stopped when the session ends)."""
    with EmbeddedServers.from_env() as servers:
        yield servers


@pytest.fixture(scope="session")
def mongodb_url(embedded_servers: EmbeddedServers) -> str:
    """A MongoDB connection string; tests share the server, so each uses a database of its own."""
    return embedded_servers.mongodb_url


@pytest.fixture(scope="session")
def redis_url(embedded_servers: EmbeddedServers) -> str:
    """A Redis/Valkey URL; tests share the server, so keys should carry a per-test prefix."""
    return embedded_servers.redis_url
