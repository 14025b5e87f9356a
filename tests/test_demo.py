"""`alana-gateway demo` end to end as a user runs it: starts, answers, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt

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
        while "Ctrl-C" not in banner:
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


# ---- a demo that respects what people did in it -----------------------------------------------------
CLI = [sys.executable, "-m", "gateway.cli"]


class Demo:
    """One `alana-gateway demo` process on a data dir, as a person runs it (stderr kept in a file)."""

    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.banner = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    async def start(self, *extra: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URL", "REDIS_URL", "GATEWAY_LOG_LEVEL")}
        env["GATEWAY_DATA_DIR"] = str(self.data_dir)
        with self.log.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                *CLI,
                "demo",
                "--port",
                str(self.port),
                "--products",
                "12",
                "--change-every",
                "0",
                *extra,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd=self.data_dir.parent,
            )
        assert self.process.stdout is not None
        self.banner = ""
        while "Ctrl-C" not in self.banner:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout=90)
            assert line, f"demo exited early: {self.banner!r}"
            self.banner += line.decode()
        return self.banner

    def token(self) -> str:
        found = re.search(r"Token:\s+(\S+)", self.banner)
        assert found is not None, self.banner
        return found.group(1)

    def store(self, platform: str) -> tuple[str, dict[str, str]]:
        found = re.search(rf"^\s+{platform}\s+(\S+)\s+(.*)$", self.banner, re.MULTILINE)
        assert found is not None, self.banner
        keys = dict(pair.split("=", 1) for pair in found.group(2).split())
        return found.group(1), keys

    async def stop(self) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(self.process.wait(), timeout=60) == 0

    async def raw(self, session: aiohttp.ClientSession, query: str, **variables: object) -> dict[str, Any]:
        async with session.post(
            self.url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.token()}"},
        ) as response:
            body: dict[str, Any] = await response.json()
        return body

    async def query(self, session: aiohttp.ClientSession, query: str, **variables: object) -> dict[str, Any]:
        body = await self.raw(session, query, **variables)
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data

    async def until(
        self,
        session: aiohttp.ClientSession,
        subscription: str,
        done: Callable[[dict[str, Any]], bool],
        **variables: object,
    ) -> dict[str, Any]:
        """Follow a subscription (graphql-transport-ws) until `done` says yes to a result."""
        async with session.ws_connect(self.url, protocols=("graphql-transport-ws",)) as ws:
            await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {self.token()}"}})
            assert (await ws.receive_json(timeout=30))["type"] == "connection_ack"
            await ws.send_json(
                {"id": "1", "type": "subscribe", "payload": {"query": subscription, "variables": variables}}
            )
            while True:
                message = await ws.receive_json(timeout=60)
                assert message["type"] == "next", message
                if done(message["payload"]["data"]):
                    return dict(message["payload"]["data"])


INTEGRATIONS = "{ integrations { id name platform productCount syncRuns(first: 20) { id status } } }"


async def test_a_restart_keeps_what_people_did_and_reaches_the_banner_quickly(tmp_path: Path) -> None:
    demo = Demo(tmp_path / "demo-data", free_port(), tmp_path / "demo.log")
    async with aiohttp.ClientSession() as session:
        try:
            await demo.start()
            before = {i["name"]: i for i in (await demo.query(session, INTEGRATIONS))["integrations"]}
            assert set(before) == {"Demo shopify store", "Demo woocommerce store", "Demo bigcommerce store"}

            # What a person does: connect a store of their own (one store is one integration: the demo's
            # WooCommerce store is disconnected to connect it again as their own), edit a product, disconnect
            # a demo store.
            woo_url, woo_keys = demo.store("woocommerce")
            refused = await demo.raw(
                session,
                "mutation($input: ConnectIntegrationInput!) { connectIntegration(input: $input) { id } }",
                input={"platform": "woocommerce", "name": "My own store", "storeUrl": woo_url, "credentials": woo_keys},
            )
            demo_woo = before["Demo woocommerce store"]["id"]
            assert refused["errors"][0]["extensions"] == {"code": "CONFLICT", "integrationId": demo_woo}, refused
            await demo.query(session, "mutation($id: ID!) { disconnectIntegration(integrationId: $id) }", id=demo_woo)
            connected = await demo.query(
                session,
                "mutation($input: ConnectIntegrationInput!) {"
                " connectIntegration(input: $input) { id currentRun { id } } }",
                input={"platform": "woocommerce", "name": "My own store", "storeUrl": woo_url, "credentials": woo_keys},
            )
            mine = connected["connectIntegration"]["id"]
            await demo.until(
                session,
                "subscription($id: ID!) { syncProgress(runId: $id) { status } }",
                lambda d: d["syncProgress"]["status"] == "SUCCEEDED",
                id=connected["connectIntegration"]["currentRun"]["id"],
            )
            products = await demo.query(
                session,
                "query($id: ID!) { products(integrationId: $id, first: 1) { edges { node { id externalId } } } }",
                id=mine,
            )
            product = products["products"]["edges"][0]["node"]
            await demo.query(
                session,
                'mutation($id: ID!) { editProduct(productId: $id, input: {title: "Kept across restarts"}) { id } }',
                id=product["id"],
            )
            gone = before["Demo bigcommerce store"]["id"]
            await demo.query(session, "mutation($id: ID!) { disconnectIntegration(integrationId: $id) }", id=gone)
            mid = {i["name"]: i for i in (await demo.query(session, INTEGRATIONS))["integrations"]}
            await demo.stop()

            banner = await demo.start()
            assert "Kept from the last run" in banner and "My own store" in banner
            assert "bigcommerce, woocommerce store(s); they stay disconnected" in banner
            after = {i["name"]: i for i in (await demo.query(session, INTEGRATIONS))["integrations"]}
            assert after == mid  # same integrations, ids, counts and history; the disconnected one stays gone
            kept = await demo.query(
                session, "query($id: ID!) { product(id: $id) { title alanaEdits { field } } }", id=product["id"]
            )
            assert kept["product"] == {"title": "Kept across restarts", "alanaEdits": [{"field": "title"}]}

            # The re-created store still delivers webhooks to the integrations connected before the restart.
            other = next(i for i in await _sim_ids(session, woo_url) if i != product["externalId"])
            async with session.post(f"{woo_url}/_sim/products/{other}/touch", json={"name": "Changed after restart"}):
                pass
            await demo.until(
                session,
                "subscription($id: ID) { integrationEvents(integrationId: $id) { kind productId } }",
                lambda d: d["integrationEvents"]["kind"] == "PRODUCT_CHANGED",
                id=mine,
            )
            # The history and the activity log tell the story: the first sync, then what the store changed.
            story = await demo.query(
                session,
                "query($id: ID!) {"
                " syncRuns(integrationId: $id) { edges { node { trigger kind progress { message } } } }"
                " activityLog(integrationId: $id, first: 20) { edges { node { kind message } } } }",
                id=mine,
            )
            runs = [e["node"] for e in story["syncRuns"]["edges"]]
            assert [(r["trigger"], r["kind"]) for r in runs] == [("WEBHOOK", "DIGEST"), ("INITIAL", "FULL")], runs
            assert runs[0]["progress"]["message"] == "1 change applied from store notifications"
            logged = [(e["node"]["kind"], e["node"]["message"]) for e in story["activityLog"]["edges"]]
            assert logged[0] == ("WEBHOOK_CHANGES_APPLIED", "1 change applied from store notifications: 1 updated")
            assert {"INTEGRATION_CONNECTED", "SYNC_SUCCEEDED", "PRODUCT_EDITED"} <= {kind for kind, _ in logged}
            await demo.stop()

            banner = await demo.start("--reset")
            fresh = {i["name"]: i for i in (await demo.query(session, INTEGRATIONS))["integrations"]}
            assert set(fresh) == {"Demo shopify store", "Demo woocommerce store", "Demo bigcommerce store"}
            assert fresh["Demo shopify store"]["id"] != before["Demo shopify store"]["id"]
        finally:
            if demo.process is not None and demo.process.returncode is None:
                await demo.stop()
    log = demo.log.read_text()
    assert not [line for line in log.splitlines() if line.startswith("{")], "the demo logs human lines, not JSON"


async def _sim_ids(session: aiohttp.ClientSession, store_url: str) -> list[str]:
    async with session.get(f"{store_url}/_sim/products") as response:
        ids: list[str] = (await response.json())["ids"]
        return ids


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env={**os.environ, **env}, check=False, timeout=60
    )


def test_token_outside_the_demo_says_where_the_demo_secret_is(tmp_path: Path) -> None:
    env = {"GATEWAY_JWT_SECRET": "", "GATEWAY_DATA_DIR": str(tmp_path)}
    result = run_cli("token", "--account", "acme", **env)
    assert result.returncode == 2
    assert "GATEWAY_JWT_SECRET is not set" in result.stderr and str(tmp_path / "demo-secrets.json") in result.stderr
    assert run_cli("token", "--demo", **env).returncode == 2  # no demo has run here yet

    (tmp_path / "demo-secrets.json").write_text(json.dumps({"jwt": "demo-secret-0123456789abcdef-0123", "key": "k"}))
    result = run_cli("token", "--account", "acme", **env)
    assert "alana-gateway token --demo" in result.stderr
    result = run_cli("token", "--demo", "--ttl", "120", **env)
    assert result.returncode == 0
    claims = jwt.decode(result.stdout.strip(), "demo-secret-0123456789abcdef-0123", algorithms=["HS256"])
    assert claims["account_id"] == "demo" and claims["exp"] - claims["iat"] == 120


def test_every_subcommand_explains_its_options_with_units() -> None:
    units = {
        "--port": "TCP port",
        "--ttl": "seconds",
        "--change-every": "seconds",
        "--products": "products",
        "--host": "address",
    }
    for command in ("serve", "worker", "demo", "simulate", "token", "plugins", "export-schema", "new-plugin"):
        result = run_cli(command, "--help")
        assert result.returncode == 0, result.stderr
        text = " ".join(result.stdout.partition("options:")[2].split())  # the options, not the usage line
        options = set(re.findall(r"(--[a-z-]+)", text)) - {"--help"}
        for option in options:
            described = re.search(rf"{option}(?: [A-Z]+)? (\S.*?)(?= --[a-z]|$)", text)
            assert described is not None and len(described.group(1)) > 10, (command, option, text)
            if option in units:
                assert units[option] in described.group(1), (command, option, described.group(1))


async def test_the_demo_connects_through_shopifys_approve_screen_and_keeps_it(tmp_path: Path) -> None:
    from urllib.parse import parse_qsl, urlsplit

    from gateway.testing.installkit import Browser

    demo = Demo(tmp_path / "demo-data", free_port(), tmp_path / "demo.log")
    console = f"http://127.0.0.1:{demo.port}/"
    sync = "mutation($id: ID!) { syncNow(integrationId: $id) { id } }"
    progress = "subscription($id: ID!) { syncProgress(runId: $id) { status } }"
    async with aiohttp.ClientSession() as session:
        browser = Browser()
        try:
            banner = await demo.start()
            assert "approve screen" in banner and "alana-sim.myshopify.com" in banner
            # The simulated Shopify is the demo's store, connected already: one store is one integration, so
            # the person disconnects it first, as the banner says.
            listed = await demo.query(session, INTEGRATIONS)
            demo_shop = next(i["id"] for i in listed["integrations"] if i["name"] == "Demo shopify store")
            await demo.query(session, "mutation($id: ID!) { disconnectIntegration(integrationId: $id) }", id=demo_shop)
            platforms = await demo.query(session, "{ platforms { id connectMethods } }")
            methods = {p["id"]: p["connectMethods"] for p in platforms["platforms"]}
            assert all("INSTALL_FLOW" in methods[p] for p in ("shopify", "woocommerce", "bigcommerce"))
            begun = await demo.query(
                session,
                "mutation($input: BeginConnectInput!) { beginConnect(input: $input) { id authorizeUrl } }",
                input={
                    "platform": "shopify",
                    "name": "Through the approve screen",
                    "store": "alana-sim.myshopify.com",
                    "returnUrl": console,
                },
            )
            screen = await browser.open(begun["beginConnect"]["authorizeUrl"])
            assert "Install app" in screen.text
            landed = await browser.choose(screen, "approve")
            assert dict(parse_qsl(urlsplit(landed.url).query))["status"] == "CONNECTED"
            attempt = await demo.query(
                session,
                "query($id: ID!) { connectAttempt(id: $id) { status integration { id } } }",
                id=begun["beginConnect"]["id"],
            )
            integration_id = attempt["connectAttempt"]["integration"]["id"]
            await demo.stop()

            await demo.start()  # the simulated Shopify comes back knowing the tokens its screen issued
            run = await demo.query(session, sync, id=integration_id)
            finished = await demo.until(
                session,
                progress,
                lambda d: d["syncProgress"]["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"),
                id=run["syncNow"]["id"],
            )
            assert finished["syncProgress"]["status"] == "SUCCEEDED"
        finally:
            await browser.close()
            if demo.process is not None and demo.process.returncode is None:
                await demo.stop()
