"""Embedded servers: real round-trips through the session fixtures, clean stops, clear start errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient, MongoClient

from gateway.embedded import EmbeddedServerError, EmbeddedServers, ServerProcess, start_mongo, start_valkey


def gone(pid: int) -> bool:
    """True when no process has this pid any more (stopped and reaped, not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return not Path(f"/proc/{pid}").exists()
    return False


def processes_on_port(port: int) -> list[int]:
    """Pids whose command line asks for `--port <port>` (a failed start must leave none behind)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a == b"--port" and b == str(port).encode() for a, b in zip(args, args[1:], strict=False)):
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port someone else is listening on (and never answers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


# ------------------------------------------------------------------ the session fixtures


async def test_mongodb_insert_and_find_round_trip(mongodb_url: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url, serverSelectionTimeoutMS=5000)
    database = client[f"test_embedded_{uuid.uuid4().hex[:8]}"]
    try:
        await database.products.insert_one({"_id": "p1", "title": "Mug", "price": "12.50"})

        found = await database.products.find_one({"_id": "p1"})

        assert found == {"_id": "p1", "title": "Mug", "price": "12.50"}
    finally:
        await client.drop_database(database.name)
        await client.close()


async def test_redis_ping_and_round_trip(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    key = f"test_embedded:{uuid.uuid4().hex}"
    try:
        assert await client.ping() is True
        await client.set(key, "value", ex=60)
        assert await client.get(key) == b"value"
    finally:
        await client.delete(key)
        await client.aclose()


# ------------------------------------------------------------------ lifecycle


def test_temporary_servers_are_stopped_and_their_dir_removed_even_on_error() -> None:
    servers = EmbeddedServers()
    with pytest.raises(RuntimeError, match="boom"), servers:
        base_dir = servers.base_dir
        started = servers.servers
        assert base_dir is not None
        assert base_dir.is_dir()
        assert sorted(s.name for s in started) == ["mongo", "valkey"]
        assert all(s.running for s in started)
        raise RuntimeError("boom")

    assert all(gone(s.process.pid) for s in started)
    assert not base_dir.exists()
    assert servers.servers == []


def test_servers_left_running_are_stopped_when_the_interpreter_exits() -> None:
    script = (
        "from gateway.embedded import EmbeddedServers\n"
        "servers = EmbeddedServers().start()\n"
        "print(servers.base_dir, *(s.process.pid for s in servers.servers))\n"
    )

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    base_dir, *pids = done.stdout.split()
    assert len(pids) == 2
    assert all(gone(int(pid)) for pid in pids)
    assert not Path(base_dir).exists()


def test_persistent_dir_keeps_data_across_a_graceful_restart(tmp_path: Path) -> None:
    with EmbeddedServers(persistent_dir=tmp_path) as servers:
        with MongoClient[dict[str, object]](servers.mongodb_url, serverSelectionTimeoutMS=5000) as client:
            client.gateway.kv.insert_one({"_id": "kept", "n": 1})
        first = servers.servers

    # SIGTERM was enough: both exited on their own, with status 0, and were reaped.
    assert [s.process.returncode for s in first] == [0, 0]
    assert all(gone(s.process.pid) for s in first)
    assert (tmp_path / "mongo" / "db").is_dir()

    restarted = start_mongo(tmp_path / "mongo")
    try:
        with MongoClient[dict[str, object]](restarted.url, serverSelectionTimeoutMS=5000) as client:
            assert client.gateway.kv.find_one({"_id": "kept"}) == {"_id": "kept", "n": 1}
    finally:
        restarted.stop(grace=0)  # the graceful path is proven above; this one need not wait
    assert gone(restarted.process.pid)


async def test_only_missing_servers_are_started_and_async_use_works() -> None:
    given = "mongodb://mongo.example:27017/?directConnection=true"

    async with EmbeddedServers(mongodb_url=given) as servers:
        assert servers.mongodb_url == given
        assert [s.name for s in servers.servers] == ["valkey"]
        client = aioredis.from_url(servers.redis_url)
        try:
            assert await client.ping() is True
        finally:
            await client.aclose()
        valkey = servers.servers[0]

    assert gone(valkey.process.pid)


def test_given_urls_start_nothing() -> None:
    env = {"MONGODB_URL": "mongodb://db:27017", "REDIS_URL": "redis://cache:6379"}

    with EmbeddedServers.from_env(env) as servers:
        assert (servers.mongodb_url, servers.redis_url) == ("mongodb://db:27017", "redis://cache:6379")
        assert servers.servers == []
        assert servers.base_dir is None


# ------------------------------------------------------------------ failures


@pytest.mark.parametrize("start", [start_valkey, start_mongo], ids=["valkey", "mongo"])
def test_port_already_taken_is_a_clear_error(
    start: Callable[..., ServerProcess], taken_port: int, tmp_path: Path
) -> None:
    with pytest.raises(EmbeddedServerError) as raised:
        start(tmp_path, port=taken_port)

    message = str(raised.value)
    assert f"before it was ready on port {taken_port}" in message
    assert "Address already in use" in message  # the server's own output is quoted
    assert processes_on_port(taken_port) == []


def test_another_server_on_the_port_is_not_mistaken_for_ours(tmp_path: Path) -> None:
    with start_valkey(tmp_path / "first") as first:
        with pytest.raises(EmbeddedServerError, match="Address already in use"):
            start_valkey(tmp_path / "second", port=first.port)
        assert first.running
    assert gone(first.process.pid)


def test_stop_reaps_a_server_that_already_died(tmp_path: Path) -> None:
    server: ServerProcess = start_valkey(tmp_path)
    server.process.kill()

    server.stop()

    assert server.process.returncode is not None
    assert gone(server.process.pid)
