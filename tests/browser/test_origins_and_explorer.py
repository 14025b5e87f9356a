"""From Chromium: the page hosted on another origin uses the API (HTTP and websocket) when that origin is
in GATEWAY_ALLOWED_ORIGINS and is refused otherwise; GraphiQL at /graphql works with no internet and
under the gateway's Content-Security-Policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from arq.worker import Worker
from gwtest import Api, connect, wait_run
from pagekit import GatedToy, Shots, card, sign_in
from playwright.async_api import expect

from gateway.api.pages import STATIC
from gateway.services import Gateway
from gateway.simkit import free_port

ALLOWED_PORT = free_port()
REFUSED_PORT = free_port()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"GATEWAY_ALLOWED_ORIGINS": f"http://127.0.0.1:{ALLOWED_PORT}"}


async def host_the_page(port: int, graphql_url: str) -> web.AppRunner:
    """Another web server hosting a copy of the page, told where the gateway is (as the Alana app would)."""
    index = (STATIC / "index.html").read_text()
    index = index.replace("<head>", f'<head>\n<meta name="alana-graphql-url" content="{graphql_url}">', 1)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=index, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_static("/static/", STATIC)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest_asyncio.fixture
async def other_origins(api: Api) -> AsyncIterator[None]:
    runners = [await host_the_page(port, f"{api.url}/graphql") for port in (ALLOWED_PORT, REFUSED_PORT)]
    yield
    for runner in runners:
        await runner.cleanup()


PROBE = """async ([url, token]) => {
  const http = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json",
      Authorization: "Bearer " + token }, body: JSON.stringify({ query: "{ integrations { name } }" }) })
    .then((r) => r.json()).then((b) => b.data.integrations.map((i) => i.name)).catch(() => "refused");
  const ws = await new Promise((resolve) => {
    const socket = new WebSocket(url.replace("http", "ws"), "graphql-transport-ws");
    const init = { type: "connection_init", payload: { Authorization: "Bearer " + token } };
    socket.onopen = () => socket.send(JSON.stringify(init));
    socket.onmessage = (e) => { resolve(JSON.parse(e.data).type); socket.close(); };
    socket.onclose = () => resolve("refused");
  });
  return { http, ws };
}"""


async def test_a_page_on_an_allowed_origin_uses_the_api_and_others_are_refused(
    gw: Gateway,
    api: Api,
    worker: Worker,
    gated_store: GatedToy,
    other_origins: None,
    page: Any,
    shots: Shots,
) -> None:
    integration_id = await connect(api, gated_store)
    await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id)
    name = f"My {gated_store.platform} store"

    await sign_in(page, f"http://127.0.0.1:{ALLOWED_PORT}/", api.token())  # waits for the live websocket
    store = card(page, name)
    await expect(store.locator(".fact", has_text="Products").locator("dd")).to_have_text("300")
    gated_store.close_gate(from_page=1)
    await store.get_by_role("button", name="Sync Now", exact=True).click()
    await expect(store.locator("progress")).to_have_attribute("data-status", "RUNNING")
    gated_store.open_gate()
    await expect(store.locator(".summary h4")).to_contain_text("Sync succeeded")
    probe = await page.evaluate(PROBE, [f"{api.url}/graphql", api.token()])
    assert probe == {"http": [name], "ws": "connection_ack"}
    await shots(page, "allowed-origin-works")

    refused = await page.context.new_page()
    await refused.goto(f"http://127.0.0.1:{REFUSED_PORT}/")
    await refused.get_by_label("API token").fill(api.token())
    await refused.get_by_label("API token").press("Enter")
    await expect(refused.get_by_role("alert")).to_contain_text("Could not reach the gateway")
    probe = await refused.evaluate(PROBE, [f"{api.url}/graphql", api.token()])
    assert probe == {"http": "refused", "ws": "refused"}
    await shots(refused, "other-origin-refused")


async def test_graphiql_works_offline_under_the_content_security_policy(
    gw: Gateway, api: Api, worker: Worker, gated_store: GatedToy, context: Any, page: Any, shots: Shots
) -> None:
    integration_id = await connect(api, gated_store)
    run = await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id)
    outside: list[str] = []

    async def only_the_gateway(route: Any) -> None:
        url = route.request.url
        if url.startswith((api.url, "data:")):
            await route.continue_()
        else:
            outside.append(url)
            await route.abort()

    await context.route("**/*", only_the_gateway)
    await sign_in(page, f"{api.url}/", api.token())  # the explorer takes the token from this tab
    await page.get_by_role("link", name="GraphQL explorer").click()
    await expect(page.locator(".graphiql-container")).to_be_visible()
    await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    await expect(page.locator(".result-window")).to_contain_text(f"My {gated_store.platform} store")
    await shots(page, "graphiql-query")

    subscription = f'subscription {{ syncProgress(runId: "{run.id}") {{ status processed percent }} }}'
    await page.evaluate("q => localStorage.setItem('graphiql:query', q)", subscription)
    await page.reload()
    await expect(page.locator(".graphiql-container")).to_be_visible()
    await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    await expect(page.locator(".result-window")).to_contain_text('"status": "SUCCEEDED"')
    await shots(page, "graphiql-subscription")
    assert outside == []
