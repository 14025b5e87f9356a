"""The HTTP client layer every platform plugin talks to its store through.

One place for what every connector otherwise re-invents: timeouts, retries with exponential backoff
and full jitter on 429 / 5xx / timeouts (honouring Retry-After and X-Retry-After, the longer of the
two), a concurrency limit per integration, call counting, and a `Budget` hook through which each
platform reads its own rate-limit signals (Shopify's cost extension, BigCommerce's quota headers)
and slows down *before* it is throttled. A budget keeps its model in the store's shared rate state
(gateway/ratebudget.py), so every process talking to one store spends one budget.

It is also the outbound guard (docs/writing-a-plugin.md, "Outbound requests"). Every request a plugin
makes goes out through it, so the store URL checked at connect time cannot be turned against the
gateway later:
- every connection checks the addresses it is about to connect to, as resolved at that moment (a name
  that now resolves to a private, loopback, link-local or IPv4-embedding IPv6 address is refused, so a
  DNS change after connect is caught), unless the deployment allows private URLs
  (GATEWAY_ALLOW_PRIVATE_URLS: simulators, stores on a LAN);
- no redirect is followed, except by `download` to an origin the plugin names;
- responses are size-limited and every request has a time limit; no cookies are kept between requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.errors import (
    StoreAuthError,
    StoreError,
    StoreHTTPError,
    StorePayloadError,
    StoreRateLimited,
    StoreRequestRefused,
    StoreUnreachable,
)
from gateway.ratebudget import LocalRateState, RateState
from gateway.settings import get_settings
from gateway.urls import address_refusal

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520, 522, 524})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Largest response `request` reads into memory (a store API page is a few MB at most).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: Defaults for `download` (streamed, never held in memory): a bulk export of a very large catalog.
MAX_DOWNLOAD_BYTES = 16 * 1024**3
DOWNLOAD_TIMEOUT = 6 * 3600.0
DOWNLOAD_READ_TIMEOUT = 60.0
CONNECT_TIMEOUT = 15.0
CHUNK = 64 * 1024


class _RefusedAddress(OSError):
    """Raised by the guarded socket factory; reported as StoreRequestRefused."""


def _refusal(host: str) -> str | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"an address that is not an IP address ({host!r})"
    return address_refusal(address)


class GuardedResolver(AbstractResolver):
    """Resolves a host name and refuses it when any address it resolves to is not public.

    The connector connects to exactly the addresses returned here, so what is checked is what is
    connected to: a name re-pointed at a private address after the store was connected is refused on
    the next connection.
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            reason = _refusal(result["host"])
            if reason is not None:
                raise StoreRequestRefused(f"refused to connect to {host}: it resolves to {reason}")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _guarded_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """The last check before connecting: whatever path the address took, it must be public."""
    family, type_, proto, _, sockaddr = addr_info
    reason = _refusal(str(sockaddr[0]))
    if reason is not None:
        raise _RefusedAddress(f"refused to connect to {reason}")
    return socket.socket(family=family, type=type_, proto=proto)


def origin(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-cased, default ports left out."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise StoreRequestRefused(f"refused a request to {url.split('?', 1)[0]!r}: only http(s) URLs are allowed")
    return str(parsed.origin()).lower()


@dataclass
class Response:
    """A fully read response: status, case-insensitive headers and the raw body."""

    status: int
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    body: bytes
    url: str = ""
    elapsed: float = 0.0
    _json: Any = field(default=None, repr=False)

    def json(self) -> Any:
        """The body parsed as JSON; a StorePayloadError when it is not JSON."""
        if self._json is None:
            try:
                self._json = json.loads(self.body)
            except ValueError as exc:
                snippet = self.body[:120].decode("utf-8", "replace")
                # The query string can carry credentials (WooCommerce's query-string keys): never show it.
                where = self.url.split("?", 1)[0]
                raise StorePayloadError(
                    f"the store answered {where} with a body that is not JSON: {snippet!r}",
                    status=self.status,
                ) from exc
        return self._json


class Budget:
    """A platform's rate-limit model. The default spends freely and never waits.

    Subclass it in a plugin. `acquire` is awaited before each request: wait there until the budget can
    pay `cost`, and return a ticket (anything: a reservation). `observe` is awaited with every response
    and that ticket: update the model from the platform's headers or body, and return seconds to wait
    before retrying that same request, or None when the response is final. Returning a delay for a 200
    response turns it into a retry (Shopify's THROTTLED arrives with HTTP 200). `abandon` is awaited
    instead of `observe` when the request got no response (a timeout, a refused connection).

    Keep the model in `self.shared`, the store's `RateState` (gateway/ratebudget.py): a bucket, a
    window or a pause that every process talking to the store shares. The core's connections bind it to
    Redis (`bind`, before the first request); a client built without them keeps it in memory.
    """

    _shared: RateState | None = None

    def bind(self, shared: RateState) -> None:
        """Use `shared` for this store's state (the connection's HTTP client calls it)."""
        self._shared = shared

    @property
    def shared(self) -> RateState:
        if self._shared is None:
            self._shared = self.local_state()
        return self._shared

    def local_state(self) -> RateState:
        """The state used when nothing was bound: in memory, for this budget alone."""
        return LocalRateState()

    async def acquire(self, cost: float = 1.0) -> Any:
        return None

    async def observe(self, response: Response, cost: float = 1.0, ticket: Any = None) -> float | None:
        return None

    async def abandon(self, cost: float = 1.0, ticket: Any = None) -> None:
        return None


class PauseBudget(Budget):
    """For a platform that publishes no quota, only 429 / 503 with Retry-After (WooCommerce behind a host's
    limiter): when the store tells one client to wait, every client of the store waits that long before
    its next request, instead of each finding out with a refusal of its own."""

    STATUSES = frozenset({429, 503})

    def __init__(self, name: str = "retry-after") -> None:
        self.name = name
        #: Seconds this client waited for a pause another request (or process) was told about.
        self.waited = 0.0

    async def acquire(self, cost: float = 1.0) -> Any:
        pause = self.shared.pause(self.name)
        while (left := await pause.remaining()) > 0:
            self.waited += left
            await asyncio.sleep(left)
        return None

    async def observe(self, response: Response, cost: float = 1.0, ticket: Any = None) -> float | None:
        if response.status in self.STATUSES:
            delay = retry_after_seconds(response.headers)
            if delay:
                await self.shared.pause(self.name).extend(delay)
        return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The longer of Retry-After and X-Retry-After, in seconds; None when neither is usable."""
    found: list[float] = []
    for name in ("Retry-After", "X-Retry-After"):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            found.append(max(0.0, float(raw)))
        except ValueError:
            continue  # HTTP-date form: rare from APIs; fall back to backoff
    return max(found) if found else None


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter (AWS architecture blog's recommendation)."""
    return float(random.uniform(0, min(cap, base * (2**attempt))))


class HttpClient:
    """A per-integration HTTP client. Plugins get one from the engine; they never build sessions.

    Statuses in `allow` are returned to the caller (e.g. 404 for a product that is gone); 401/403
    raise StoreAuthError; retryable statuses are retried up to `max_retries` times; anything else
    (a redirect included) raises StoreHTTPError after the body is read.

    `allow_private` turns the private-address guard off; None follows GATEWAY_ALLOW_PRIVATE_URLS.
    `resolver` replaces the name resolution under the guard (tests; a deployment's own DNS).
    `prepare` is awaited before every attempt of every request, after the budget granted it and before the
    headers are read: the core refreshes an expiring token there and swaps it into `headers` (gateway/tokens.py).
    `rate_state` is the store's shared rate-limit state, bound to the budget (the core's connection factory,
    gateway/integrations.py, passes one in Redis, so every process spends one budget per store; gateway/ratebudget.py).
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: aiohttp.BasicAuth | None = None,
        timeout: float = 30.0,
        max_retries: int = 6,
        backoff_base: float = 0.25,
        backoff_cap: float = 20.0,
        concurrency: int = 4,
        budget: Budget | None = None,
        on_call: Callable[[], None] | None = None,
        allow_private: bool | None = None,
        resolver: AbstractResolver | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        prepare: Callable[[], Awaitable[None]] | None = None,
        rate_state: RateState | None = None,
    ) -> None:
        self.prepare = prepare
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.auth = auth
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.budget = budget or Budget()
        if rate_state is not None:
            self.budget.bind(rate_state)
        self.on_call = on_call
        self.calls = 0
        self.retries = 0
        self._limit = asyncio.Semaphore(concurrency)
        if allow_private is None:
            allow_private = get_settings().allow_private_urls
        self.allow_private = allow_private
        self.max_response_bytes = max_response_bytes
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self.allow_private:
                connector = aiohttp.TCPConnector(limit=64, resolver=self._resolver)
            else:
                # No DNS cache: each new connection resolves and checks afresh (kept-alive ones are reused).
                connector = aiohttp.TCPConnector(
                    limit=64,
                    resolver=GuardedResolver(self._resolver),
                    use_dns_cache=False,
                    socket_factory=_guarded_socket,
                )
            # No cookie jar: nothing a store sets is sent back, to it or to any other host.
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    def _check_target(self, url: str) -> None:
        """Refuse a non-http(s) URL, and an IP literal the guard forbids (names are checked on resolving)."""
        origin(url)
        if self.allow_private:
            return
        host = URL(url).raw_host or ""
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return
        reason = address_refusal(address)
        if reason is not None:
            raise StoreRequestRefused(f"refused to connect to {reason}")

    def _count(self) -> None:
        self.calls += 1
        if self.on_call is not None:
            self.on_call()

    def url_for(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        cost: float = 1.0,
        allow: tuple[int, ...] = (),
    ) -> Response:
        """Send a request with retries, budget and concurrency applied; return the read response."""
        url = self.url_for(path)
        attempt = 0
        while True:
            ticket = await self.budget.acquire(cost)
            if self.prepare is not None:
                # After the budget's wait, which a shared bucket can make longer than what is left of a
                # short-lived token: the credentials are checked just before the request goes out.
                try:
                    await self.prepare()
                except BaseException:
                    with contextlib.suppress(Exception):
                        await self.budget.abandon(cost, ticket)
                    raise
            merged = {**self.headers, **(headers or {})}
            try:
                response = await self._send(method, url, params, json_body, data, merged)
            except (TimeoutError, aiohttp.ClientError) as exc:
                await self.budget.abandon(cost, ticket)
                _raise_if_refused(exc)
                if attempt >= self.max_retries:
                    raise StoreUnreachable(
                        f"the store at {self.base_url} could not be reached after {attempt + 1} tries: "
                        f"{type(exc).__name__}"
                    ) from exc
                await self._sleep(backoff_delay(attempt, self.backoff_base, self.backoff_cap))
                attempt += 1
                continue
            except BaseException:
                # Refused, cut short, over the size limit or cancelled: no answer for the budget to read.
                with contextlib.suppress(Exception):
                    await self.budget.abandon(cost, ticket)
                raise
            wait = await self.budget.observe(response, cost, ticket)
            if response.status in RETRY_STATUSES or wait is not None:
                if attempt >= self.max_retries:
                    if response.status == 429 or wait is not None:
                        raise StoreRateLimited(
                            f"the store kept throttling after {attempt + 1} tries", status=response.status
                        )
                    raise StoreHTTPError(
                        f"the store answered {response.status} after {attempt + 1} tries",
                        status=response.status,
                    )
                delay = max(
                    wait or 0.0,
                    retry_after_seconds(response.headers) or 0.0,
                    backoff_delay(attempt, self.backoff_base, self.backoff_cap),
                )
                log.info(
                    "store request retried",
                    extra={"status": response.status, "attempt": attempt + 1, "delay": round(delay, 3)},
                )
                await self._sleep(delay)
                attempt += 1
                continue
            if response.status in allow or 200 <= response.status < 300:
                return response
            if response.status in (401, 403):
                raise StoreAuthError(
                    f"the store refused the credentials (HTTP {response.status})", status=response.status
                )
            raise StoreHTTPError(
                f"the store answered HTTP {response.status} for {method} {path}", status=response.status
            )

    async def _sleep(self, delay: float) -> None:
        self.retries += 1
        await asyncio.sleep(delay)

    async def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        data: bytes | None,
        headers: Mapping[str, str],
    ) -> Response:
        self._check_target(url)
        session = self._get_session()
        async with self._limit:
            self._count()
            started = time.perf_counter()
            async with session.request(
                method,
                url,
                params=_clean_params(params),
                json=json_body,
                data=data,
                headers=headers,
                auth=self.auth,
                allow_redirects=False,
            ) as raw:
                body = await _read_capped(raw, self.max_response_bytes)
                return Response(
                    status=raw.status,
                    headers=raw.headers,
                    body=body,
                    url=str(raw.url),
                    elapsed=time.perf_counter() - started,
                )

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        """GET and parse JSON."""
        return (await self.request("GET", path, **kwargs)).json()

    @asynccontextmanager
    async def download(
        self,
        url: str,
        *,
        origins: Iterable[str],
        max_bytes: int = MAX_DOWNLOAD_BYTES,
        time_limit: float = DOWNLOAD_TIMEOUT,
        max_redirects: int = 3,
    ) -> AsyncIterator[Download]:
        """GET a file on another host (a bulk export's result) and stream it, through the guard.

        `url` and every redirect target must be on one of `origins` (`https://host[:port]`, exact);
        the client's headers and credentials are not sent (the file's URL carries its own signature).
        One attempt: the caller decides about retrying on the status or on StoreUnreachable.
        Read the body with `Download.chunks()` inside the `async with`.
        """
        allowed = {origin(o) for o in origins}
        limits = aiohttp.ClientTimeout(total=time_limit, sock_connect=CONNECT_TIMEOUT, sock_read=DOWNLOAD_READ_TIMEOUT)
        session = self._get_session()
        for _ in range(max_redirects + 1):
            where = origin(url)
            if where not in allowed:
                raise StoreRequestRefused(f"refused to download from {where}: not a host this platform downloads from")
            self._check_target(url)
            self._count()
            try:
                raw = await session.get(url, allow_redirects=False, timeout=limits)
            except (TimeoutError, aiohttp.ClientError) as exc:
                _raise_if_refused(exc)
                raise StoreUnreachable(f"the download from {where} failed: {type(exc).__name__}") from exc
            if raw.status in REDIRECT_STATUSES:
                location = raw.headers.get("Location")
                raw.release()
                if not location:
                    raise StoreHTTPError(f"{where} answered {raw.status} without a Location", status=raw.status)
                url = str(URL(url).join(URL(location)))
                continue
            try:
                yield Download(raw.status, raw.headers, str(raw.url), raw, max_bytes)
            finally:
                raw.release()
            return
        raise StoreRequestRefused(f"refused to follow more than {max_redirects} redirects from {url.split('?', 1)[0]}")


@dataclass
class Download:
    """A response being streamed by `HttpClient.download`."""

    status: int
    headers: CIMultiDictProxy[str]
    url: str
    _raw: aiohttp.ClientResponse = field(repr=False)
    _max_bytes: int = field(repr=False)

    async def chunks(self, size: int = CHUNK) -> AsyncIterator[bytes]:
        """The body in chunks; StorePayloadError past the size limit, StoreUnreachable if cut off."""
        declared = self._raw.content_length
        if declared is not None and declared > self._max_bytes:
            raise StorePayloadError(f"the download is {declared} bytes, over the {self._max_bytes}-byte limit")
        seen = 0
        try:
            async for chunk in self._raw.content.iter_chunked(size):
                seen += len(chunk)
                if seen > self._max_bytes:
                    raise StorePayloadError(f"the download passed the {self._max_bytes}-byte limit")
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise StoreUnreachable(f"the download was cut off after {seen} bytes: {type(exc).__name__}") from exc


async def _read_capped(raw: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = raw.content_length
    if declared is not None and declared > limit:
        raise StorePayloadError(f"the store answered with {declared} bytes, over the {limit}-byte limit")
    parts: list[bytes] = []
    seen = 0
    async for chunk in raw.content.iter_chunked(CHUNK):
        seen += len(chunk)
        if seen > limit:
            raise StorePayloadError(f"the store's answer passed the {limit}-byte limit")
        parts.append(chunk)
    return b"".join(parts)


def _raise_if_refused(exc: BaseException) -> None:
    """A connection the guarded socket factory refused is final, never retried."""
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, _RefusedAddress):
        raise StoreRequestRefused(str(exc.os_error)) from exc


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    if params is None:
        return None
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


__all__ = [
    "Budget",
    "Download",
    "GuardedResolver",
    "HttpClient",
    "PauseBudget",
    "Response",
    "StoreError",
    "backoff_delay",
    "origin",
    "retry_after_seconds",
]
