"""The `alana-gateway` command line as an operator uses it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import aiohttp
import jwt

from gateway.simkit import free_port

CLI = [sys.executable, "-m", "gateway.cli"]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env={**os.environ, **env}, check=False, timeout=60
    )


def test_token_is_signed_for_the_account() -> None:
    result = run("token", "--account", "acme", "--ttl", "60", GATEWAY_JWT_SECRET="cli-secret-0123456789abcdef-xyz-0")
    assert result.returncode == 0
    claims = jwt.decode(result.stdout.strip(), "cli-secret-0123456789abcdef-xyz-0", algorithms=["HS256"])
    assert claims["account_id"] == "acme" and claims["exp"] - claims["iat"] == 60
    assert run("token", "--account", "acme", GATEWAY_JWT_SECRET="").returncode == 2


def test_plugins_lists_versions_and_honours_the_allowlist() -> None:
    listed = run("plugins").stdout
    for platform in ("shopify", "woocommerce", "bigcommerce"):
        assert platform in listed and "0.1.0" in listed
    only = run("plugins", GATEWAY_LOAD_PLUGINS="shopify").stdout
    assert "shopify" in only and "woocommerce" not in only


def test_serve_refuses_to_start_without_secrets() -> None:
    result = run("serve", GATEWAY_JWT_SECRET="", GATEWAY_SECRET_KEY="")
    assert result.returncode != 0 and "GATEWAY_JWT_SECRET" in result.stderr


async def test_simulate_serves_a_store_with_control_endpoints() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *CLI,
        "simulate",
        "woocommerce",
        "--port",
        str(port),
        "--products",
        "7",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        info = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        assert info["platform"] == "woocommerce" and set(info["credentials"]) == {"consumer_key", "consumer_secret"}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/_sim/products") as response:
                assert len((await response.json())["ids"]) >= 7
            async with session.get(f"{info['store_url']}/wp-json/wc/v3/products") as response:
                assert response.status == 401  # the store wants its keys
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0


def test_token_lifetime_stays_within_the_maximum() -> None:
    secret = "cli-secret-0123456789abcdef-xyz-0"
    refused = run("token", "--account", "acme", "--ttl", str(30 * 86_400), GATEWAY_JWT_SECRET=secret)
    assert refused.returncode == 2 and "GATEWAY_MAX_TOKEN_TTL" in refused.stderr and not refused.stdout
    shorter = run(
        "token", "--account", "acme", "--ttl", "7200", GATEWAY_JWT_SECRET=secret, GATEWAY_MAX_TOKEN_TTL="3600"
    )
    assert shorter.returncode == 2
    assert run("token", "--account", "acme", "--ttl", "3600", GATEWAY_JWT_SECRET=secret).returncode == 0
