"""`alana-gateway demo` end to end as a user runs it: starts, answers, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import tempfile
from pathlib import Path

import aiohttp

from gateway.simkit import free_port


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def temp_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("alana-gateway-*")}


async def test_demo_starts_answers_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "demo-data"
    before = temp_dirs()
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URL", "REDIS_URL")}
    env.update({"GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_LOG_LEVEL": "WARNING"})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "demo",
        "--port",
        str(port),
        "--products",
        "15",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        banner = ""
        while "Token:" not in banner:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
            assert line, f"demo exited early: {banner!r}"
            banner += line.decode()
        token = re.search(r"Token:\s+(\S+)", banner)
        assert token is not None and f"http://127.0.0.1:{port}/graphql" in banner
        query = "{ platforms { id name capabilities credentialFields { name secret } } }"
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": query},
                headers={"Authorization": f"Bearer {token.group(1)}"},
            ) as response,
        ):
            body = await response.json()
        ids = {p["id"] for p in body["data"]["platforms"]}
        assert {"shopify", "woocommerce", "bigcommerce"} <= ids
        assert processes_mentioning(str(data_dir)), "the embedded servers should be running"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=60)
    assert code == 0
    assert processes_mentioning(str(data_dir)) == []
    assert temp_dirs() <= before
