"""The outbound guard in the shared HTTP client (issue 11, finding 3 and 12): private addresses refused at
every connection, no redirects except to named origins, size limits, no credentials on downloads.

The servers are real (aiohttp on 127.0.0.1); what stands in for DNS is a static resolver, the only way to
make a public-looking name resolve to a private address on a test machine.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.errors import StoreHTTPError, StorePayloadError, StoreRequestRefused
from gateway.httpclient import GuardedResolver, HttpClient
from gateway.simkit import free_port
from gateway.urls import address_refusal


@dataclass
class Server:
    """A small HTTP server that records which paths were requested, and with which headers."""

    port: int = 0
    hits: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        self.headers.append(dict(request.headers))
        if request.path == "/redirect":
            raise web.HTTPFound(request.query["to"])
        if request.path == "/big":
            return web.Response(body=b"x" * int(request.query["n"]))
        return web.Response(text="ok " + request.path)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()


@pytest_asyncio.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    """A store and a "metadata service", both on loopback."""
    made = (Server(), Server())
    for server in made:
        await server.start()
    yield made
    for server in made:
        assert server.runner is not None
        await server.runner.cleanup()


class StaticResolver(AbstractResolver):
    """DNS for the test: fixed answers, changeable between connections, with a count of lookups."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups += 1
        address = self.answers[host]
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [{"hostname": host, "host": address, "port": port, "family": kind, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


async def test_a_guarded_client_refuses_loopback_and_never_connects(servers: tuple[Server, Server]) -> None:
    store, _ = servers
    async with HttpClient(store.url, allow_private=False, max_retries=0) as http:
        with pytest.raises(StoreRequestRefused, match="127.0.0.1"):
            await http.request("GET", "/products")
        with pytest.raises(StoreRequestRefused, match="resolves to"):
            await http.request("GET", f"http://localhost:{store.port}/products")  # a name, checked when resolved
        for embedded in ("::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::127.0.0.1", "2002:7f00:1::"):
            with pytest.raises(StoreRequestRefused):
                await http.request("GET", f"http://[{embedded}]:{store.port}/products")
    assert store.hits == []
    # The same client with private addresses allowed (simulators, GATEWAY_ALLOW_PRIVATE_URLS) reaches it.
    async with HttpClient(store.url, allow_private=True) as http:
        assert (await http.request("GET", "/products")).body == b"ok /products"


async def test_a_public_looking_name_resolving_to_a_private_address_is_refused(
    servers: tuple[Server, Server],
) -> None:
    store, _ = servers
    dns = StaticResolver({"storage.googleapis.com": "127.0.0.1", "shop.example.com": "169.254.169.254"})
    url = f"http://storage.googleapis.com:{store.port}/result.jsonl"
    async with HttpClient(f"http://shop.example.com:{store.port}", allow_private=False, resolver=dns) as http:
        with pytest.raises(StoreRequestRefused, match="storage.googleapis.com: it resolves to"):
            async with http.download(url, origins=[f"http://storage.googleapis.com:{store.port}"]):
                pass
        with pytest.raises(StoreRequestRefused, match="169.254.169.254"):
            await http.request("GET", "/admin/api/graphql.json")
    assert store.hits == [] and dns.lookups == 2
    # Resolved through the same resolver, but with private addresses allowed, the download does arrive:
    # the refusal above came from the address, not from the name.
    async with (
        HttpClient(store.url, allow_private=True, resolver=dns) as http,
        http.download(url, origins=[f"http://storage.googleapis.com:{store.port}"]) as download,
    ):
        assert b"".join([c async for c in download.chunks()]) == b"ok /result.jsonl"


async def test_each_resolution_is_checked_so_a_later_dns_change_is_caught() -> None:
    dns = StaticResolver({"shop.example.com": "93.184.215.14"})
    guard = GuardedResolver(dns)
    assert (await guard.resolve("shop.example.com", 443))[0]["host"] == "93.184.215.14"
    dns.answers["shop.example.com"] = "::ffff:169.254.169.254"  # re-pointed after the store was connected
    with pytest.raises(StoreRequestRefused, match="resolves to a private or local address"):
        await guard.resolve("shop.example.com", 443)


async def test_redirects_are_not_followed(servers: tuple[Server, Server]) -> None:
    store, metadata = servers
    async with HttpClient(store.url, allow_private=True, max_retries=0) as http:
        with pytest.raises(StoreHTTPError, match="302"):
            await http.request("GET", "/redirect", params={"to": f"{metadata.url}/latest/meta-data"})
    assert store.hits == ["/redirect"] and metadata.hits == []


async def test_downloads_follow_redirects_only_between_named_origins(servers: tuple[Server, Server]) -> None:
    store, metadata = servers
    origins = [store.url]
    async with HttpClient(store.url, allow_private=True, headers={"X-Shopify-Access-Token": "shpat_secret"}) as http:
        hop = f"{store.url}/redirect?to=/file.jsonl"
        async with http.download(hop, origins=origins) as download:
            assert download.status == 200
            assert b"".join([c async for c in download.chunks()]) == b"ok /file.jsonl"
        with pytest.raises(StoreRequestRefused, match="not a host this platform downloads from"):
            async with http.download(f"{store.url}/redirect?to={metadata.url}/latest/meta-data", origins=origins):
                pass
        with pytest.raises(StoreRequestRefused, match="not a host"):
            async with http.download(f"{metadata.url}/latest/meta-data", origins=origins):
                pass
        loop = f"{store.url}/redirect?to=/redirect%3Fto%3D/redirect"
        with pytest.raises(StoreRequestRefused, match="redirects"):
            async with http.download(loop, origins=origins, max_redirects=1):
                pass
    assert metadata.hits == []
    # The client's credentials stay with the store's API: the download carries none of them.
    assert all("X-Shopify-Access-Token" not in headers for headers in store.headers)


async def test_responses_are_size_limited(servers: tuple[Server, Server]) -> None:
    store, _ = servers
    async with HttpClient(store.url, allow_private=True, max_response_bytes=1000, max_retries=0) as http:
        assert len((await http.request("GET", "/big", params={"n": 1000})).body) == 1000
        with pytest.raises(StorePayloadError, match="1000-byte limit"):
            await http.request("GET", "/big", params={"n": 1001})
        async with http.download(f"{store.url}/big?n=5000", origins=[store.url], max_bytes=4096) as download:
            with pytest.raises(StorePayloadError, match="4096-byte limit"):
                _ = [c async for c in download.chunks()]


async def test_only_http_urls_are_downloaded(servers: tuple[Server, Server]) -> None:
    store, _ = servers
    async with HttpClient(store.url, allow_private=True) as http:
        for url in ("file:///etc/passwd", "ftp://127.0.0.1/x"):
            with pytest.raises(StoreRequestRefused, match="only http"):
                async with http.download(url, origins=[store.url]):
                    pass
    assert store.hits == []


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::",
        "::127.0.0.1",
        "64:ff9b::127.0.0.1",
        "2002:7f00:1::",
        "::ffff:127.0.0.1",
        "::ffff:0:a9fe:a9fe",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "64:ff9b:1::a00:1",
        "2001:db8:1::5efe:a00:1",
        "fe80::1%eth0",
        "100.64.0.1",
        "224.0.0.1",
    ],
)
def test_addresses_refused(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::1"])
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None
