"""The GraphQL Admin API client and the leaky-bucket Budget that keeps it under Shopify's cost limit.

Every executed query's response carries `extensions.cost.throttleStatus`; `ShopifyBudget` keeps a
model of the bucket from it (restoring at `restoreRate` between responses), shared by every process
that talks to the shop through the same app (gateway/ratebudget.py), so that `acquire` waits *before* a
query the bucket cannot pay. A THROTTLED answer (HTTP 200 or 429) becomes a retry after the time the
bucket needs to refill, so it never reaches the engine as an error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from alana_shopify.cost import MAX_QUERY_COST, requested_cost
from gateway.errors import StoreAuthError, StoreHTTPError, StorePayloadError
from gateway.httpclient import Budget, HttpClient, Response
from gateway.ratebudget import BucketReading, Hold, LocalRateState, RateState, SharedBucket, Waker, scope_digest

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "2026-01"
#: How often an unreadable (e.g. cut short) answer to a read-only query is asked for again.
PAYLOAD_RETRIES = 2


def graphql_path(api_version: str) -> str:
    return f"/admin/api/{api_version}/graphql.json"


def _body(response: Response) -> Any:
    try:
        return response.json()
    except StorePayloadError:
        return None


def throttle_status(body: Any) -> Mapping[str, Any] | None:
    """`extensions.cost.throttleStatus` of a response body, when there is one."""
    if not isinstance(body, Mapping):
        return None
    cost = (body.get("extensions") or {}).get("cost")
    if not isinstance(cost, Mapping):
        return None
    status = cost.get("throttleStatus")
    return status if isinstance(status, Mapping) else None


def is_throttled(body: Any) -> bool:
    """True when a GraphQL body is Shopify's THROTTLED error."""
    if not isinstance(body, Mapping) or not isinstance(body.get("errors"), list):
        return False
    return any(
        isinstance(e, Mapping) and (e.get("extensions") or {}).get("code") == "THROTTLED" for e in body["errors"]
    )


class ShopifyBudget(Budget):
    """Shopify's leaky bucket (per app per store), kept in the store's shared rate state.

    Every client of the shop through the same app (a run, a webhook batch, a connect check, on any
    process) spends one `SharedBucket`, named after the app (`app`: a digest of its client secret, so
    two custom apps on one shop keep two buckets, as Shopify does). Until an answer says otherwise the
    bucket is assumed to be the smallest documented one (1000 points, restoring 50/s), full. `acquire`
    reserves a query's requested cost, waiting (in turn with the other waiters) as long as the bucket
    needs to restore it; `observe` settles it with what Shopify charged and the bucket's
    `throttleStatus`, which replaces the model, and turns THROTTLED into a retry delay.
    """

    def __init__(
        self,
        *,
        app: str = "",
        maximum: float = 1000.0,
        restore_rate: float = 50.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.name = f"shopify:{app}" if app else "shopify"
        self._defaults = (maximum, restore_rate)
        self._clock = clock
        self._sleep = sleep
        self._waker = Waker()
        #: THROTTLED answers seen, and seconds spent waiting in `acquire` (for tests and metrics).
        self.throttled = 0
        self.waited = 0.0

    @classmethod
    def for_credentials(cls, credentials: Mapping[str, str]) -> ShopifyBudget:
        """The budget of the app whose credentials these are (scoped by its client secret)."""
        secret = credentials.get("client_secret") or ""
        return cls(app=scope_digest(secret) if secret else "")

    def local_state(self) -> RateState:
        return LocalRateState(self._clock)

    @property
    def bucket(self) -> SharedBucket:
        return self.shared.bucket(self.name, maximum=self._defaults[0], restore_rate=self._defaults[1])

    @property
    def available(self) -> float:
        """Points the bucket holds by the last reservation's or answer's figures, restored since (planning)."""
        return self.bucket.estimate()

    @property
    def maximum(self) -> float:
        return self.bucket.status.maximum

    @property
    def restore_rate(self) -> float:
        return self.bucket.status.restore_rate

    def _need(self, cost: float) -> float:
        # A request can never need more than a full bucket; the store rejects over-limit queries itself.
        return max(0.0, min(float(cost), self.maximum))

    async def acquire(self, cost: float = 1.0) -> Hold:
        bucket = self.bucket
        waiter = uuid.uuid4().hex
        try:
            while True:
                result = await bucket.reserve(self._need(cost), waiter)
                if isinstance(result, Hold):
                    return result
                delay = min(result, self.shared.poll)
                started = self._clock()
                if self._sleep is not None:
                    await self._sleep(delay)
                else:
                    await self._waker.nap(delay)
                self.waited += max(0.0, self._clock() - started)
        except BaseException:
            # Cancelled while waiting: give up the place in the queue.
            with contextlib.suppress(Exception):
                await bucket.release(Hold(waiter, 0.0))
            raise

    async def abandon(self, cost: float = 1.0, ticket: Any = None) -> None:
        if isinstance(ticket, Hold):
            await self.bucket.release(ticket)
        self._waker.wake()

    async def observe(self, response: Response, cost: float = 1.0, ticket: Any = None) -> float | None:
        hold = ticket if isinstance(ticket, Hold) else None
        body = _body(response)
        status = throttle_status(body)
        throttled = is_throttled(body)
        reading = _reading(status)
        if throttled and reading is None:
            reading = BucketReading(available=0.0)  # throttled without figures: assume it empty
        charged = 0.0 if throttled else query_cost(body).actual
        if hold is not None or reading is not None:
            await self.bucket.settle(hold, charged=charged, reading=reading)
        self._waker.wake()
        if not throttled:
            return None
        self.throttled += 1
        requested = float(((body.get("extensions") or {}).get("cost") or {}).get("requestedQueryCost") or cost)
        shortfall = max(0.0, self._need(requested) - self.available)
        return max(shortfall / max(self.restore_rate, 1e-6), 0.01)


def _reading(status: Mapping[str, Any] | None) -> BucketReading | None:
    if status is None:
        return None
    try:
        current = float(status["currentlyAvailable"])
    except (KeyError, TypeError, ValueError):
        return None

    def figure(key: str) -> float | None:
        try:
            return float(status[key])
        except (KeyError, TypeError, ValueError):
            return None

    return BucketReading(current, figure("maximumAvailable"), figure("restoreRate"))


@dataclass(frozen=True)
class QueryCost:
    """`extensions.cost` of one answer: what the query requested and what it was charged."""

    requested: float | None = None
    actual: float | None = None


def query_cost(body: Any) -> QueryCost:
    if not isinstance(body, Mapping):
        return QueryCost()
    cost = (body.get("extensions") or {}).get("cost")
    if not isinstance(cost, Mapping):
        return QueryCost()

    def number(key: str) -> float | None:
        value = cost.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    return QueryCost(number("requestedQueryCost"), number("actualQueryCost"))


class ShopifyGraphQL:
    """Runs GraphQL documents against one shop's Admin API through the connection's HttpClient."""

    def __init__(self, http: HttpClient, api_version: str = DEFAULT_API_VERSION) -> None:
        self.http = http
        self.api_version = api_version
        self.path = graphql_path(api_version)

    @property
    def budget(self) -> ShopifyBudget | None:
        """The connection's bucket model, for callers that size their queries to it."""
        budget = self.http.budget
        return budget if isinstance(budget, ShopifyBudget) else None

    async def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        cost: float | None = None,
        mutation: bool = False,
    ) -> dict[str, Any]:
        """Run one document and return its `data`; GraphQL errors become StoreErrors."""
        data, _ = await self.execute_costed(query, variables, cost=cost, mutation=mutation)
        return data

    async def execute_costed(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        cost: float | None = None,
        mutation: bool = False,
    ) -> tuple[dict[str, Any], QueryCost]:
        """`execute`, plus what Shopify charged for it (to learn the refund from)."""
        if cost is None:
            cost = requested_cost(query, variables)
        payload: dict[str, Any] = {"query": query}
        if variables:
            payload["variables"] = dict(variables)
        attempts = 1 if mutation else 1 + PAYLOAD_RETRIES
        for attempt in range(attempts):
            response = await self.http.request("POST", self.path, json_body=payload, cost=min(cost, MAX_QUERY_COST))
            try:
                body = response.json()
            except StorePayloadError:
                # A body cut short in transit: asking a read-only query again is safe.
                if attempt + 1 >= attempts:
                    raise
                log.info("shopify answer unreadable, asking again", extra={"attempt": attempt + 1})
                continue
            return _data(body), query_cost(body)
        raise AssertionError("unreachable")  # pragma: no cover


def _messages(errors: list[Any]) -> str:
    texts = []
    for error in errors:
        if isinstance(error, Mapping):
            texts.append(str(error.get("message", error)))
        else:
            texts.append(str(error))
    return "; ".join(texts)


def _data(body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise StorePayloadError("Shopify answered with something that is not a GraphQL response")
    errors = body.get("errors")
    if isinstance(errors, (str, Mapping)):
        # REST-style error bodies ({"errors": "Not Found"}) come from the router, not GraphQL.
        raise StoreHTTPError(f"Shopify answered: {json.dumps(errors)[:200]}")
    if isinstance(errors, list) and errors:
        codes = {(e.get("extensions") or {}).get("code") for e in errors if isinstance(e, Mapping)}
        message = f"Shopify rejected the query: {_messages(errors)}"
        if "ACCESS_DENIED" in codes:
            raise StoreAuthError(message)
        if "INTERNAL_SERVER_ERROR" in codes:
            raise StoreHTTPError(message)
        raise StorePayloadError(message)
    data = body.get("data")
    if not isinstance(data, dict):
        raise StorePayloadError("Shopify answered without data")
    return data
