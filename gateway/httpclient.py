"""The HTTP client layer every platform plugin talks to its store through.

One place for what every connector otherwise re-invents: timeouts, retries with exponential backoff
and full jitter on 429 / 5xx / timeouts (honouring Retry-After and X-Retry-After, the longer of the
two), a concurrency limit per integration, call counting, and a `Budget` hook through which each
platform reads its own rate-limit signals (Shopify's cost extension, BigCommerce's quota headers)
and slows down *before* it is throttled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import (
    StoreAuthError,
    StoreError,
    StoreHTTPError,
    StorePayloadError,
    StoreRateLimited,
    StoreUnreachable,
)

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520, 522, 524})


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

    Subclass it in a plugin: `acquire` is awaited before each request (wait there until the budget can
    pay `cost`), `observe` is called with every response (update the model from the platform's
    headers or body) and returns seconds to wait before retrying that same request, or None when the
    response is final. Returning a delay for a 200 response turns it into a retry (Shopify's THROTTLED
    arrives with HTTP 200).
    """

    async def acquire(self, cost: float = 1.0) -> None:
        return None

    def observe(self, response: Response, cost: float = 1.0) -> float | None:
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
    raises StoreHTTPError after the body is read.
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
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.auth = auth
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.budget = budget or Budget()
        self.on_call = on_call
        self.calls = 0
        self.retries = 0
        self._limit = asyncio.Semaphore(concurrency)
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout, connector=aiohttp.TCPConnector(limit=64))
        return self._session

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
        merged = {**self.headers, **(headers or {})}
        attempt = 0
        while True:
            await self.budget.acquire(cost)
            try:
                response = await self._send(method, url, params, json_body, data, merged)
            except (TimeoutError, aiohttp.ClientError) as exc:
                if attempt >= self.max_retries:
                    raise StoreUnreachable(
                        f"the store at {self.base_url} could not be reached after {attempt + 1} tries: "
                        f"{type(exc).__name__}"
                    ) from exc
                await self._sleep(backoff_delay(attempt, self.backoff_base, self.backoff_cap))
                attempt += 1
                continue
            wait = self.budget.observe(response, cost)
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
        session = self._get_session()
        async with self._limit:
            self.calls += 1
            if self.on_call is not None:
                self.on_call()
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
                body = await raw.read()
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


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    if params is None:
        return None
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


__all__ = ["Budget", "HttpClient", "Response", "StoreError", "retry_after_seconds", "backoff_delay"]
