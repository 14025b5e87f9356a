"""Bad input, fuzzed: the GraphQL endpoint and every platform's webhook endpoint on a real API.

Hypothesis draws documents from the served schema (random fields, arguments of the right or the
wrong type, variables, aliases, fragments, directives, depths past the limit, batches, broken
syntax) and webhook deliveries (random bodies, headers, and signatures that are missing, wrong or
valid for a random body). Every answer must be a well-formed success or error: never a 5xx, never a
traceback, JSON errors carry a known `extensions.code`, and a refused request stores nothing.

Derandomized with a fixed number of examples, so the suite stays fast and tries the same inputs
every time (ALANA_FUZZ_EXAMPLES=N runs N fresh random ones instead, to explore). Documents stay
small (no fragment spreads nested for blow-up): hostile ones are tests/test_api_guard.py's. Inputs
that once failed are pinned by the explicit tests at the end as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import string
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jwt
import pytest
import pytest_asyncio
from aiohttp import web
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLType,
)
from gwtest import JWT_SECRET, make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api.app import create_app
from gateway.api.schema import schema as served_schema
from gateway.auth import issue_token
from gateway.errors import ErrorCode
from gateway.plugins import load_plugins
from gateway.services import Gateway
from gateway.simkit import Simulator, free_port
from gateway.testing.toy import ToySimulator

pytestmark = pytest.mark.timeout(300)

ACCOUNT = "acct-fuzz"
CODES = {code.value for code in ErrorCode}
PLATFORMS = ("toy", "shopify", "woocommerce", "bigcommerce")
#: Collections a refused request must leave as they were. (Activity is left out on purpose: a refused
#: webhook is counted there for the merchant, one entry per integration a minute.)
STORED = ("integrations", "products", "runs", "conflicts", "deliveries", "queue", "api_call_days")
#: Mutations the fuzzer never sends: connecting reaches out to whatever store URL it is given.
UNSENT_FIELDS = {"connectIntegration"}

#: ALANA_FUZZ_EXAMPLES=5000 explores further, with fresh random inputs (the suite runs fixed ones).
EXPLORE = int(os.environ.get("ALANA_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXPLORE or 60,
    derandomize=not EXPLORE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(repr=False)
class Surface:
    """One API on a real port, with an integration of every platform connected and synced."""

    gw: Gateway
    url: str
    session: aiohttp.ClientSession
    integrations: dict[str, str]  # platform -> integration id
    secrets: dict[str, dict[str, str]]  # platform -> the integration's credentials and webhook secrets
    product_id: str
    run_id: str

    def __repr__(self) -> str:
        return f"<Surface {self.url}>"

    async def counts(self) -> dict[str, int]:
        # An accepted delivery is answered from the journal and reaches MongoDB right after: counted once
        # it has, so an earlier example's delivery is not mistaken for something a refused one stored.
        await self.gw.webhooks.journal_settled()
        return {name: await getattr(self.gw.db, name).count_documents({}) for name in STORED}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def surface(mongodb_url: str, redis_url: str) -> AsyncIterator[Surface]:
    port = free_port()
    gw = await Gateway.create(make_settings(mongodb_url, redis_url, GATEWAY_PUBLIC_URL=f"http://127.0.0.1:{port}"))
    runner = web.AppRunner(create_app(gw), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    sims: list[Simulator] = []
    integrations: dict[str, str] = {}
    secrets: dict[str, dict[str, str]] = {}
    service = gw.integrations
    try:
        for platform in PLATFORMS:
            sim = simulator(platform)
            await sim.start()
            sims.append(sim)
            integration = await service.connect(
                ACCOUNT, platform, f"{platform} store", sim.store_url, sim.credentials()
            )
            integrations[platform] = integration.id
            secrets[platform] = service.credentials(integration)
        run = (await gw.runs.latest(integrations["toy"], 1))[0]
        await gw.engine.run(run.id)  # real products to query
        product = await gw.db.products.find_one({"integration_id": integrations["toy"]})
        assert product is not None
        async with aiohttp.ClientSession() as session:
            yield Surface(gw, f"http://127.0.0.1:{port}", session, integrations, secrets, product["_id"], run.id)
    finally:
        for sim in sims:
            await sim.stop()
        await runner.cleanup()
        await gw.db.client.drop_database(gw.settings.mongodb_database)
        await gw.close()


def simulator(platform: str) -> Simulator:
    if platform == "toy":
        return ToySimulator(products=5)
    cls = load_plugins([platform]).adapter(platform).simulator()
    assert cls is not None
    options: dict[str, Any] = {"examples": False} if platform == "woocommerce" else {}
    return cls(products=5, seed=3, **options)


# ---------------------------------------------------------------- the oracle


def assert_well_formed(status: int, content_type: str, text: str) -> Any:
    """A success or a well-formed error: no 5xx, no traceback; JSON errors carry a known code."""
    assert status < 500, f"HTTP {status}: {text[:300]}"
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    if content_type != "application/json":
        # Strawberry refuses malformed transport (no query, bad JSON, batches) with a plain-text 400.
        assert 400 <= status < 500 and text and len(text) < 300, (status, content_type, text[:300])
        return None
    body = json.loads(text)
    return body


def assert_graphql_errors(body: Any) -> None:
    assert isinstance(body, dict), body
    assert "data" in body or "errors" in body, body
    for error in body.get("errors") or []:
        assert isinstance(error.get("message"), str) and error["message"], error
        code = (error.get("extensions") or {}).get("code")
        assert code in CODES, error
        assert code != ErrorCode.INTERNAL.value, f"a resolver crashed: {error}"


# ---------------------------------------------------------------- GraphQL documents from the schema

SCHEMA = served_schema._schema
NAME = st.text(alphabet=string.ascii_letters, min_size=1, max_size=6)
SAFE_TEXT = st.text(max_size=24).filter(lambda s: "\x00" not in s)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    # SAFE_TEXT: no NUL (issue 11 lists NUL-only names as accepted, not as crashing)
    | SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAME, inner, max_size=3),
    max_leaves=8,
)


class DocumentBuilder:
    """Builds one GraphQL document with hypothesis' `draw`, from the served schema."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any], ids: list[str], mutation: bool) -> None:
        self.draw = draw
        self.ids = ids
        self.mutation = mutation
        #: Half the documents are built to be valid; the others get mistakes thrown in.
        self.chaos = draw(st.booleans())
        self.variables: dict[str, Any] = {}
        self.definitions: list[str] = []
        self.fragments: list[str] = []
        self.budget = 40  # fields per document: small documents, fast answers

    # -- values ---------------------------------------------------------------------------------
    def mistake(self, one_in: int) -> bool:
        return self.chaos and self.draw(st.integers(1, one_in)) == 1

    def literal(self, kind: GraphQLInputType | GraphQLType, depth: int = 0) -> str:
        draw = self.draw
        if self.mistake(6) or depth > 3:  # the wrong type, or null
            return draw(st.sampled_from(["null", "1", "1.5", '"x"', "true", "[]", "{}", "NOPE", "99999999999"]))
        if isinstance(kind, GraphQLNonNull):
            return self.literal(kind.of_type, depth)
        if isinstance(kind, GraphQLList):
            items = [self.literal(kind.of_type, depth + 1) for _ in range(draw(st.integers(0, 3)))]
            return "[" + ", ".join(items) + "]"
        if isinstance(kind, GraphQLEnumType):
            return str(draw(st.sampled_from([*kind.values, "UNKNOWN_VALUE"])))
        if isinstance(kind, GraphQLInputObjectType):
            names = draw(st.lists(st.sampled_from(sorted(kind.fields)), unique=True, max_size=len(kind.fields)))
            parts = [f"{name}: {self.literal(kind.fields[name].type, depth + 1)}" for name in names]
            return "{" + ", ".join(parts) + "}"
        assert isinstance(kind, GraphQLScalarType)
        value = self.scalar(kind.name)
        return json.dumps(value) if not isinstance(value, bool) else str(value).lower()

    def value(self, kind: GraphQLInputType | GraphQLType, depth: int = 0) -> Any:
        """A JSON value for a variable of type `kind` (valid as far as the schema can say)."""
        draw = self.draw
        if isinstance(kind, GraphQLNonNull):
            return self.value(kind.of_type, depth)
        if depth > 3:
            return None
        if isinstance(kind, GraphQLList):
            return [self.value(kind.of_type, depth + 1) for _ in range(draw(st.integers(0, 3)))]
        if isinstance(kind, GraphQLEnumType):
            return draw(st.sampled_from(sorted(kind.values)))
        if isinstance(kind, GraphQLInputObjectType):
            names = draw(st.lists(st.sampled_from(sorted(kind.fields)), unique=True, max_size=len(kind.fields)))
            return {name: self.value(kind.fields[name].type, depth + 1) for name in names}
        assert isinstance(kind, GraphQLScalarType)
        return self.scalar(kind.name)

    def scalar(self, name: str) -> Any:
        draw = self.draw
        if name == "Int":
            return draw(st.integers(-5, 300) | st.integers(-(2**40), 2**40) if self.chaos else st.integers(1, 60))
        if name == "Float":
            return draw(st.floats(allow_nan=False, allow_infinity=False, width=32))
        if name == "Boolean":
            return draw(st.booleans())
        if name == "ID":
            # Mutations only ever name things that do not exist: the fuzzer must not disconnect the surface.
            return draw(st.sampled_from(self.ids) if self.ids and not self.mutation else SAFE_TEXT)
        if name == "String" and not self.chaos:
            return draw(st.sampled_from(["", "toy", "1", "Toy product"]) | SAFE_TEXT)
        if name == "JSON":
            return draw(JSON_VALUES)
        return draw(SAFE_TEXT)

    def argument(self, name: str, kind: GraphQLInputType) -> str | None:
        choice = self.draw(st.integers(0, 5))
        if choice == 0 and not isinstance(kind, GraphQLNonNull):
            return None
        if choice == 1:  # through a variable, declared with the argument's type (or a random one)
            variable = f"v{len(self.variables)}"
            declared = self.draw(st.sampled_from(["Int", "String!", "ID"])) if self.mistake(2) else str(kind)
            self.definitions.append(f"${variable}: {declared}")
            self.variables[variable] = self.draw(JSON_VALUES) if self.mistake(2) else self.value(kind)
            return f"{name}: ${variable}"
        return f"{name}: {self.literal(kind)}"

    # -- selections -----------------------------------------------------------------------------
    def selection(self, kind: GraphQLObjectType, depth: int, max_depth: int) -> str:
        draw = self.draw
        names = [n for n in kind.fields if n not in UNSENT_FIELDS]
        # The same field twice with other arguments is a (valid) validation error: only in chaos.
        chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=not self.chaos))
        parts = [self.field(kind, name, kind.fields[name], depth, max_depth) for name in chosen]
        parts = [p for p in parts if p]
        if draw(st.integers(0, 7)) == 0:
            parts.append("__typename")
        if self.mistake(8):
            parts.append(draw(st.sampled_from(["nosuchfield", "__schema { queryType { name } }", "...Missing"])))
        body = " ".join(parts) or "__typename"
        if depth > 0 and draw(st.integers(0, 6)) == 0:  # the same selection, as a fragment
            fragment = f"F{len(self.fragments)}"
            self.fragments.append(f"fragment {fragment} on {kind.name} {{ {body} }}")
            return f"...{fragment}"
        if depth > 0 and draw(st.integers(0, 8)) == 0:
            return f"... on {kind.name} {{ {body} }}"
        return body

    def field(self, parent: GraphQLObjectType, name: str, field: GraphQLField, depth: int, max_depth: int) -> str:
        self.budget -= 1
        draw = self.draw
        text = name
        if draw(st.integers(0, 4)) == 0:
            text = f"{draw(NAME)}: {name}"
        args = [a for a in (self.argument(n, arg.type) for n, arg in field.args.items()) if a]
        if self.mistake(10):
            args.append(f"{draw(NAME)}: 1")  # an argument the field does not have
        if args:
            text += "(" + ", ".join(args) + ")"
        if draw(st.integers(0, 8)) == 0:
            directives = [" @include(if: true)", " @skip(if: false)", " @skip(if: true)"]
            text += draw(st.sampled_from([*directives, " @skip(if: 1)", " @nope"] if self.chaos else directives))
        inner = field.type
        while isinstance(inner, (GraphQLNonNull, GraphQLList)):
            inner = inner.of_type
        if isinstance(inner, GraphQLObjectType):
            if self.budget <= 0 or depth >= max_depth:
                return text if self.mistake(2) else text + " { __typename }"  # a missing selection is an error
            text += " { " + self.selection(inner, depth + 1, max_depth) + " }"
        return text


@st.composite
def graphql_requests(draw: Callable[[st.SearchStrategy[Any]], Any], ids: list[str]) -> Any:
    """A JSON body for POST /graphql: one operation (mostly), a batch, or a malformed request."""
    operation = draw(st.sampled_from(["query", "query", "query", "query", "query", "query", "mutation", "mutation"]))
    if draw(st.integers(0, 19)) == 0:
        operation = "subscription"  # over HTTP: refused, as subscriptions are served over the websocket
    mutation = operation == "mutation"
    builder = DocumentBuilder(draw, ids, mutation)
    root = {"query": SCHEMA.query_type, "mutation": SCHEMA.mutation_type, "subscription": SCHEMA.subscription_type}[
        operation
    ]
    assert root is not None
    max_depth = draw(st.integers(1, 16))  # the served limit is 12
    body = builder.selection(root, 0, max_depth)
    name = draw(st.none() | NAME)
    header = operation + (f" {name}" if name else "")
    if builder.definitions:
        header += "(" + ", ".join(builder.definitions) + ")"
    document = " ".join([f"{header} {{ {body} }}", *builder.fragments])
    if builder.mistake(5):  # broken syntax: a character dropped or added
        at = draw(st.integers(0, len(document)))
        document = document[:at] + draw(st.sampled_from(["", "{", "}", "(", '"', "$", "...", "@"])) + document[at + 1 :]
    request: dict[str, Any] = {"query": document}
    shape = draw(st.integers(0, 39)) if builder.chaos else 99
    if shape == 0:
        request["variables"] = draw(st.lists(JSON_VALUES, max_size=2) | SAFE_TEXT)  # not an object
    elif builder.variables or shape == 1:
        request["variables"] = builder.variables
    if shape == 2:
        request["operationName"] = draw(NAME)
    elif name and draw(st.booleans()):
        request["operationName"] = name
    if shape == 3:
        request["query"] = draw(JSON_VALUES)  # not a string
    if shape == 4:
        return [request] * draw(st.integers(1, 3))  # a batch (not enabled: refused)
    if shape == 5:
        request = draw(st.dictionaries(NAME, JSON_VALUES, max_size=3))
    if shape == 6:
        return draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict)))  # JSON, but not an object
    return request


def auth_header(kind: int, surface_account: str = ACCOUNT) -> dict[str, str]:
    if kind == 0:
        return {}
    if kind == 1:
        return {"Authorization": "Bearer not-a-token"}
    if kind == 2:
        expired = jwt.encode({"account_id": surface_account, "exp": int(time.time()) - 10}, JWT_SECRET, "HS256")
        return {"Authorization": f"Bearer {expired}"}
    if kind == 3:
        return {"Authorization": f"Bearer {issue_token(JWT_SECRET, 'acct-other', 3600)}"}
    return {"Authorization": f"Bearer {issue_token(JWT_SECRET, surface_account, 3600)}"}


@st.composite
def graphql_cases(draw: Callable[[st.SearchStrategy[Any]], Any]) -> tuple[Any, int]:
    return draw(graphql_requests(IDS)), draw(st.integers(0, 9))


IDS: list[str] = []  # filled with the surface's real ids before the fuzzer runs


@pytest_asyncio.fixture(loop_scope="session")
async def real_ids(surface: Surface) -> Surface:
    IDS[:] = [*surface.integrations.values(), surface.product_id, surface.run_id]
    return surface


@FUZZ
@given(case=graphql_cases())
async def test_graphql_answers_anything_with_a_well_formed_success_or_error(real_ids: Surface, case: Any) -> None:
    surface = real_ids
    request, auth = case
    before = await surface.counts()
    async with surface.session.post(
        f"{surface.url}/graphql",
        data=json.dumps(request).encode(),
        headers={**auth_header(auth), "Content-Type": "application/json"},
    ) as response:
        text = await response.text()
        body = assert_well_formed(response.status, response.content_type, text)
    if body is not None:
        assert_graphql_errors(body)
    refused = body is None or body.get("data") is None
    if refused:
        assert await surface.counts() == before, f"a refused request stored something: {request}"


# ---------------------------------------------------------------- webhook deliveries


def toy_sign(secrets: dict[str, str], body: bytes) -> dict[str, str]:
    return {"X-Toy-Signature": hmac.new(secrets["hook_secret"].encode(), body, hashlib.sha256).hexdigest()}


def shopify_sign(secrets: dict[str, str], body: bytes) -> dict[str, str]:
    digest = hmac.new(secrets["client_secret"].encode(), body, hashlib.sha256).digest()
    return {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode()}


def woo_sign(secrets: dict[str, str], body: bytes) -> dict[str, str]:
    digest = hmac.new(secrets["webhook_secret"].encode(), body, hashlib.sha256).digest()
    return {"X-WC-Webhook-Signature": base64.b64encode(digest).decode()}


def bigcommerce_sign(secrets: dict[str, str], body: bytes) -> dict[str, str]:
    return {"X-Alana-Webhook-Secret": secrets["webhook_secret"]}


SIGNERS = {"toy": toy_sign, "shopify": shopify_sign, "woocommerce": woo_sign, "bigcommerce": bigcommerce_sign}
SIGNATURE_HEADERS = {
    "toy": "X-Toy-Signature",
    "shopify": "X-Shopify-Hmac-Sha256",
    "woocommerce": "X-WC-Webhook-Signature",
    "bigcommerce": "X-Alana-Webhook-Secret",
}
HEADER_TEXT = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=40)
IDENTIFIER = st.integers(-3, 10**12) | SAFE_TEXT | st.none()
INT64 = st.integers(-(2**63), 2**63 - 1)
BIG_INTEGERS = st.integers(-(2**80), 2**80)
TIMESTAMP = st.sampled_from(
    [
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00",
        "2026-13-45",
        "",
        "yesterday",
        "1970-01-01T00:00:00+00:00",
        "9999-12-31T23:59:59+00:00",
    ]
) | st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())


ANY_TIMESTAMP = st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())


def product_bodies(platform: str) -> st.SearchStrategy[Any]:
    """Bodies shaped like the platform's deliveries, with random values where the fields are."""
    fields = st.fixed_dictionaries(
        {"id": IDENTIFIER},
        optional={
            "name": SAFE_TEXT,
            "title": SAFE_TEXT,
            "price": st.sampled_from(["1.00", "-1", "abc", ""]) | st.integers(-10, 10**6),
            "updated_at": TIMESTAMP,
            "date_modified_gmt": TIMESTAMP,
            "type": st.sampled_from(["simple", "variable", "variation", "grouped"]),
            "parent_id": IDENTIFIER,
            "variants": st.lists(
                st.fixed_dictionaries({"id": IDENTIFIER, "price": st.sampled_from(["1", "x"])}), max_size=2
            ),
            "tags": st.lists(SAFE_TEXT, max_size=3),
            # Past int64 too, which MongoDB cannot store (test_a_delivery_with_an_integer_mongodb_cannot_store).
            "extra": JSON_VALUES | BIG_INTEGERS,
            "status": st.sampled_from(["ACTIVE", "DRAFT", "active", "nope"]),
        },
    )
    if platform == "toy":
        return st.fixed_dictionaries({"event": st.sampled_from(["upsert", "delete", "other"]), "product": fields})
    if platform == "bigcommerce":
        return st.fixed_dictionaries(
            {
                "scope": st.sampled_from(
                    ["store/product/updated", "store/product/deleted", "store/sku/updated", "store/order/created", ""]
                ),
                "data": st.fixed_dictionaries({"type": st.sampled_from(["product", "sku"]), "id": IDENTIFIER}),
            },
            optional={
                "hash": SAFE_TEXT,
                "created_at": st.integers(0, 2_000_000_000) | INT64 | st.floats(allow_nan=False),
                "store_id": SAFE_TEXT,
            },
        )
    return fields


def platform_headers(platform: str) -> st.SearchStrategy[dict[str, str]]:
    names = {
        "toy": ["X-Toy-Delivery"],
        "shopify": [
            "X-Shopify-Topic",
            "X-Shopify-Webhook-Id",
            "X-Shopify-Event-Id",
            "X-Shopify-Shop-Domain",
            "X-Shopify-Triggered-At",
        ],
        "woocommerce": ["X-WC-Webhook-Topic", "X-WC-Webhook-Delivery-ID", "X-WC-Webhook-ID", "X-WC-Webhook-Source"],
        "bigcommerce": [],
    }[platform]
    topics = {
        "shopify": ["products/create", "products/update", "products/delete", "orders/create"],
        "woocommerce": ["product.created", "product.updated", "product.deleted", "order.created"],
    }
    strategies: dict[str, st.SearchStrategy[str]] = {name: HEADER_TEXT for name in names}
    if platform in topics:
        topic = "X-Shopify-Topic" if platform == "shopify" else "X-WC-Webhook-Topic"
        strategies[topic] = st.sampled_from(topics[platform]) | HEADER_TEXT
    if platform == "shopify":
        # With and without a time zone (test_a_shopify_delivery_triggered_at_a_time_without_a_zone: refused).
        strategies["X-Shopify-Triggered-At"] = ANY_TIMESTAMP | HEADER_TEXT
    if platform == "toy":
        return st.fixed_dictionaries({"X-Toy-Delivery": st.uuids().map(str) | HEADER_TEXT})
    return st.fixed_dictionaries({}, optional=strategies)


@st.composite
def deliveries(draw: Callable[[st.SearchStrategy[Any]], Any], platform: str) -> tuple[str, bytes, dict[str, str], str]:
    """(URL target, body, headers, signature mode) for one delivery to `platform`'s endpoint."""
    shape = draw(st.integers(0, 5))
    if shape == 0:
        body = draw(st.binary(max_size=200))
    elif shape == 1:
        body = json.dumps(draw(JSON_VALUES)).encode()
    else:
        body = json.dumps(draw(product_bodies(platform))).encode()
    headers = draw(platform_headers(platform))
    headers["Content-Type"] = draw(
        st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"])
    )
    signature = draw(st.sampled_from(["valid", "valid", "valid", "missing", "random", "stale"]))
    target = draw(st.sampled_from(["ours", "ours", "ours", "ours", "unknown", "other-platform"]))
    return target, body, headers, signature


async def fuzz_webhook(surface: Surface, platform: str, case: tuple[str, bytes, dict[str, str], str]) -> None:
    target, body, headers, signature = case
    integration_id = surface.integrations[platform]
    if target == "unknown":
        integration_id = uuid.uuid4().hex
    elif target == "other-platform":
        integration_id = surface.integrations["toy" if platform != "toy" else "shopify"]
    if signature == "valid":
        headers.update(SIGNERS[platform](surface.secrets[platform], body))
    elif signature == "random":
        headers[SIGNATURE_HEADERS[platform]] = "c2lnbmF0dXJl" if platform != "toy" else "00" * 32
    elif signature == "stale":  # a valid signature of another body
        headers.update(SIGNERS[platform](surface.secrets[platform], body + b" "))
    before = await surface.counts()
    async with surface.session.post(
        f"{surface.url}/webhooks/{platform}/{integration_id}", data=body, headers=headers
    ) as response:
        text = await response.text()
        answer = assert_well_formed(response.status, response.content_type, text)
        status = response.status
    assert isinstance(answer, dict) and set(answer) <= {"status", "error"}, answer
    if status >= 300:
        assert await surface.counts() == before, f"a refused delivery stored something: {status} {answer}"
    # BigCommerce does not sign bodies: its registered secret header is valid on any body.
    forged = ("missing", "random") if platform == "bigcommerce" else ("missing", "random", "stale")
    if signature in forged or target != "ours":
        assert status in (401, 404), (status, answer)


WEBHOOK_FUZZ = settings(FUZZ, max_examples=EXPLORE or 30)


@WEBHOOK_FUZZ
@given(case=deliveries("toy"))
async def test_toy_webhooks_answer_anything_well(surface: Surface, case: Any) -> None:
    await fuzz_webhook(surface, "toy", case)


@WEBHOOK_FUZZ
@given(case=deliveries("shopify"))
async def test_shopify_webhooks_answer_anything_well(surface: Surface, case: Any) -> None:
    await fuzz_webhook(surface, "shopify", case)


@WEBHOOK_FUZZ
@given(case=deliveries("woocommerce"))
async def test_woocommerce_webhooks_answer_anything_well(surface: Surface, case: Any) -> None:
    await fuzz_webhook(surface, "woocommerce", case)


@WEBHOOK_FUZZ
@given(case=deliveries("bigcommerce"))
async def test_bigcommerce_webhooks_answer_anything_well(surface: Surface, case: Any) -> None:
    await fuzz_webhook(surface, "bigcommerce", case)


# ---------------------------------------------------------------- inputs that once failed


async def graphql_post(surface: Surface, body: bytes | AsyncIterator[bytes]) -> tuple[int, str, str]:
    headers = {**auth_header(9), "Content-Type": "application/json"}
    async with surface.session.post(f"{surface.url}/graphql", data=body, headers=headers) as response:
        return response.status, response.content_type, await response.text()


async def test_a_graphql_body_that_is_not_utf8_is_a_bad_request(surface: Surface) -> None:
    status, content_type, text = await graphql_post(surface, b'{"query": "{ platforms { id } }", "x": "\xff"}')
    assert_well_formed(status, content_type, text)


@pytest.mark.parametrize("body", [b"42", b"null", b"true", b'"{ platforms { id } }"', b"1.5"])
async def test_a_graphql_body_that_is_json_but_not_an_object_is_a_bad_request(surface: Surface, body: bytes) -> None:
    status, content_type, text = await graphql_post(surface, body)
    assert_well_formed(status, content_type, text)
    assert status == 400 and "JSON object" in text, (status, text)


async def test_a_subscription_over_http_is_a_bad_user_input(surface: Surface) -> None:
    request = json.dumps({"query": "subscription { integrationEvents { kind } }"}).encode()
    status, content_type, text = await graphql_post(surface, request)
    body = assert_well_formed(status, content_type, text)
    assert_graphql_errors(body)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"], body
    assert "websocket" in body["errors"][0]["message"]


async def test_a_chunked_graphql_body_over_the_limit_is_refused(surface: Surface) -> None:
    limit = surface.gw.settings.max_body_bytes
    padding = " " * (limit + 1024)
    payload = json.dumps({"query": "{ platforms { id } }" + padding}).encode()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for at in range(0, len(payload), 65536):
            yield payload[at : at + 65536]

    status, _, _ = await graphql_post(surface, chunks())
    assert status == 413


async def test_a_shopify_delivery_triggered_at_a_time_without_a_zone(surface: Surface) -> None:
    """Once a 500; now refused like any delivery that is not provably recent (a clear 4xx, nothing stored)."""
    body = json.dumps({"id": 5, "title": "x", "updated_at": "2026-01-01T00:00:00+00:00"}).encode()
    headers = {
        "X-Shopify-Topic": "products/update",
        "X-Shopify-Webhook-Id": uuid.uuid4().hex,
        "X-Shopify-Triggered-At": datetime.now(UTC).replace(tzinfo=None, microsecond=0).isoformat(),
        **shopify_sign(surface.secrets["shopify"], body),
    }
    status = await post_delivery(surface, "shopify", body, headers)
    assert 400 <= status < 500, status


# A body BSON cannot encode is queued as a REFRESH: the product is read back from the store (Shopify's
# deliveries are REFRESHes anyway).
@pytest.mark.parametrize("platform", ["toy", "woocommerce", "shopify"])
async def test_a_delivery_with_an_integer_mongodb_cannot_store(surface: Surface, platform: str) -> None:
    big = 2**70
    if platform == "toy":
        product = {"id": "1", "name": "n", "price": "1", "updated_at": "2026-01-01T00:00:00+00:00", "stock": big}
        body = json.dumps({"event": "upsert", "product": product}).encode()
        headers = {"X-Toy-Delivery": uuid.uuid4().hex, **toy_sign(surface.secrets["toy"], body)}
    elif platform == "woocommerce":
        body = json.dumps(
            {"id": 7, "type": "simple", "date_modified_gmt": "2026-01-01T00:00:00", "stock": big}
        ).encode()
        headers = {
            "X-WC-Webhook-Topic": "product.updated",
            "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
            **woo_sign(surface.secrets["woocommerce"], body),
        }
    else:
        body = json.dumps({"id": 5, "title": "x", "inventory_quantity": big}).encode()
        headers = {
            "X-Shopify-Topic": "products/update",
            "X-Shopify-Webhook-Id": uuid.uuid4().hex,
            **shopify_sign(surface.secrets["shopify"], body),
        }
    await post_delivery(surface, platform, body, headers)


async def post_delivery(surface: Surface, platform: str, body: bytes, headers: dict[str, str]) -> int:
    before = await surface.counts()
    async with surface.session.post(
        f"{surface.url}/webhooks/{platform}/{surface.integrations[platform]}", data=body, headers=headers
    ) as response:
        text = await response.text()
        assert_well_formed(response.status, response.content_type, text)
        if response.status >= 300:
            assert await surface.counts() == before
        return response.status
