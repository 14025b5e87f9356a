"""The harness the plugin conformance suite drives a platform plugin with (see conformance.py).

ConformanceKit builds Connections the way the engine does, starts the plugin's simulator, creates the
products a check needs through the simulator contract, receives webhook deliveries on 127.0.0.1, and
fails with messages that name the problem in a plugin author's terms. Plugin tests may use its
Receiver for their own webhook tests.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest
from aiohttp import web
from multidict import CIMultiDict

from gateway.adapter import (
    Connection,
    FetchMode,
    FetchRequest,
    MappingContext,
    Page,
    PlatformAdapter,
    WebhookEvent,
    WebhookRegistration,
)
from gateway.errors import MappingError
from gateway.httpclient import HttpClient
from gateway.model import Money, Product, Variant
from gateway.simkit import Simulator, free_port

#: The `create_product` keywords of the simulator contract and what a simulator does with each. A
#: simulator lists the ones it honours in its `conformance_fields` class attribute.
CREATE_FIELDS: Mapping[str, str] = {
    "title": "str: the product's name, stored exactly as given (unicode, HTML and all)",
    "price": "str, a decimal: the regular price of the product and of each of its variants",
    "sku": "str: the SKU of the product (and of its variant, when it has one)",
    "barcode": "str: the product's barcode (UPC/EAN/GTIN field), stored as given, even with a bad check digit",
    "variants": "int: the product has exactly this many variants",
    "bare": "True: only what the platform requires: no description, images, SKU, barcode, vendor, "
    "tags, categories or compare-at price",
    "private_text": "str: stored in every never-synced field the platform has (internal notes, private "
    "metadata, review text)",
}

UNICODE_HTML_TITLE = "Ünïcødé “Straße” 日本語 🚀 <b>bold</b> & <i>co</i>"
EXACT_PRICE = "19.99"
DUPLICATE_SKU = "CONF-DUP-SKU"
IDENTIFIED_SKU = "CONF-ID-SKU"
VALID_UPC = "036000291452"
BAD_UPC = "036000291453"
PRIVATE_TEXT = "CONF-PRIVATE-7f3a9c never synced"
#: Native keys whose values are never synced (reviews, ratings, sales figures, notes, private data).
NEVER_SYNCED = re.compile(
    r"review|rating|total_?sales|total_?sold|sales_?count|view_?count|purchase_?note|internal_?note"
    r"|admin_?(note|comment)|private",
    re.IGNORECASE,
)


# ---- how the suite drives a plugin -------------------------------------------------------------------
@dataclass
class ConformanceOptions:
    """How the suite drives one plugin.

    A plugin declares its own as a dict of these fields in its simulator class's
    `conformance_options` (read by the `conformance_options` fixture, so `pytest --gateway-platform`
    uses them too); a test module may instead override that fixture.

    simulator_options: passed to the simulator's constructor (e.g. a generous rate limit).
    connection_options: Connection.options for every connection (e.g. a small page size, so that a
        catalog of `catalog_size` products spans several pages).
    catalog_size: products in the simulator for the fetch checks.
    many_variants: variants of the product that must span more than one page (default: more than 250,
        the largest page any built-in platform serves).
    webhook_body_signed: False for platforms whose deliveries prove themselves with a secret header
        rather than a signature over the body (then a changed body cannot be detected).
    create_fields: the create_product keywords the simulator honours; None reads the simulator
        class's `conformance_fields`.
    """

    simulator_options: Mapping[str, Any] = field(default_factory=dict)
    connection_options: Mapping[str, Any] = field(default_factory=dict)
    catalog_size: int = 40
    many_variants: int = 260
    webhook_body_signed: bool = True
    create_fields: frozenset[str] | None = None
    seed: int = 11


def local_http(base_url: str, **kwargs: Any) -> HttpClient:
    """A Connection.http_factory for simulators: they listen on 127.0.0.1, which the outbound guard refuses.

    The engine's own factory allows private addresses only under GATEWAY_ALLOW_PRIVATE_URLS; tests that
    build a bare `Connection` to a simulator pass this instead.
    """
    return HttpClient(base_url, **{"allow_private": True, **kwargs})


class CallCounter:
    """Counts requests made through a connection's HttpClient (the engine counts them per integration)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@dataclass
class Delivery:
    """One webhook delivery as the gateway's endpoint would receive it."""

    headers: CIMultiDict[str]
    body: bytes


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records every delivery the simulator sends it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.url = ""
        self.deliveries: list[Delivery] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            self.deliveries.append(Delivery(CIMultiDict(request.headers), await request.read()))
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post(self.path, receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}{self.path}"

    def take(self) -> list[Delivery]:
        taken, self.deliveries = self.deliveries, []
        return taken

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class ConformanceKit:
    """The suite's handle on one plugin: its adapter, its simulator class and the options to drive them.

    Everything it starts (simulators, connections, webhook receivers) is closed by `aclose`.
    """

    integration_id = "conformance"

    def __init__(
        self,
        adapter: PlatformAdapter,
        simulator_class: type[Simulator],
        options: ConformanceOptions | None = None,
    ) -> None:
        self.adapter = adapter
        self.simulator_class = simulator_class
        self.options = options or ConformanceOptions()
        self.platform = adapter.info.id
        self._simulators: list[Simulator] = []
        self._connections: list[Connection] = []
        self._receivers: list[Receiver] = []

    async def __aenter__(self) -> ConformanceKit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for conn in self._connections:
            await conn.close()
        for receiver in self._receivers:
            await receiver.close()
        for sim in self._simulators:
            await sim.stop()
        self._connections, self._receivers, self._simulators = [], [], []

    # ---- capabilities ---------------------------------------------------------------------------
    @property
    def fields(self) -> frozenset[str]:
        """The create_product keywords the simulator honours."""
        if self.options.create_fields is not None:
            return frozenset(self.options.create_fields)
        return frozenset(getattr(self.simulator_class, "conformance_fields", ()))

    def missing(self, *names: str) -> list[str]:
        return [name for name in names if name not in self.fields]

    def require(self, *names: str, done: str = "") -> None:
        """Skip the rest of a check when the simulator does not honour these create_product keywords."""
        missing = self.missing(*names)
        if missing:
            keywords = ", ".join(f"{name}=..." for name in missing)
            prefix = f"{done}; the rest was skipped: " if done else ""
            pytest.skip(
                f"{prefix}the {self.platform} simulator does not offer create_product({keywords}) "
                f"(simulator capability {', '.join(map(repr, missing))}: add it to "
                f"{self.simulator_class.__name__}.conformance_fields once the simulator honours it)"
            )

    def require_capability(self, capability: str) -> None:
        if capability not in self.adapter.info.capabilities:
            pytest.skip(f"the {self.platform} adapter does not declare the {capability!r} capability")

    # ---- simulators, connections, receivers -----------------------------------------------------
    async def simulator(self, products: int | None = None, **options: Any) -> Simulator:
        """A started simulator: `products` products (default catalog_size), the suite's seed."""
        count = self.options.catalog_size if products is None else products
        sim = self.simulator_class(count, seed=self.options.seed, **{**self.options.simulator_options, **options})
        await sim.start()
        self._simulators.append(sim)
        return sim

    def connect(self, sim: Simulator, credentials: Mapping[str, str] | None = None) -> Connection:
        """A Connection built the way the engine builds one (fast backoff so fault checks stay quick)."""
        counter = CallCounter()

        def factory(base_url: str, **kwargs: Any) -> HttpClient:
            defaults: dict[str, Any] = {
                "concurrency": 4,
                "backoff_base": 0.01,
                "backoff_cap": 0.05,
                "on_call": counter,
                "allow_private": True,  # simulators listen on 127.0.0.1
            }
            return HttpClient(base_url, **{**defaults, **kwargs})

        conn = Connection(
            integration_id=self.integration_id,
            store_url=sim.store_url,
            credentials=dict(sim.credentials() if credentials is None else credentials),
            http_factory=factory,
            options=dict(self.options.connection_options),
            on_call=counter,
        )
        self._connections.append(conn)
        return conn

    async def receiver(self) -> Receiver:
        receiver = Receiver(f"/webhooks/{self.platform}/{self.integration_id}")
        await receiver.start()
        self._receivers.append(receiver)
        return receiver

    # ---- reading ----------------------------------------------------------------------------------
    async def context(self, conn: Connection) -> MappingContext:
        context = await self.adapter.mapping_context(conn)
        if not isinstance(context, MappingContext):
            fail(f"mapping_context returned {type(context).__name__}, not a MappingContext")
        return context

    async def fetch(self, conn: Connection, request: FetchRequest | None = None) -> list[Page]:
        """Every page of one fetch, checked for the page protocol (cursors, item types)."""
        request = request or FetchRequest()
        pages: list[Page] = []
        async for page in self.adapter.fetch_products(conn, request):
            if not isinstance(page, Page):
                fail(f"fetch_products ({request.mode}) yielded {type(page).__name__}, not a Page")
            for item in page.items:
                if not isinstance(item, Mapping):
                    fail(
                        f"fetch_products ({request.mode}) yielded a page item of type {type(item).__name__}; "
                        "items are native product dicts"
                    )
            pages.append(page)
        for number, page in enumerate(pages[:-1], start=1):
            if page.cursor is None:
                fail(
                    f"page {number} of {len(pages)} of a {request.mode} fetch has no cursor: a run interrupted "
                    "after it could not resume (only the last page has cursor None)"
                )
        return pages

    def map(self, native: Mapping[str, Any], context: MappingContext, where: str) -> Product:
        """map_product, with a failure that says which product and what went wrong."""
        try:
            product = self.adapter.map_product(native, context)
        except MappingError as exc:
            fail(f"map_product refused {where}, which the simulator generated as a valid product: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - any crash is the finding
            fail(
                f"map_product raised {type(exc).__name__} ({exc}) for {where}; it must return a Product, or "
                "raise MappingError for a product that cannot be mapped"
            )
        if not isinstance(product, Product):
            fail(f"map_product returned {type(product).__name__} for {where}, not a gateway.model.Product")
        return product

    def map_pages(self, pages: Sequence[Page], context: MappingContext) -> list[Product]:
        return [
            self.map(native, context, f"item {index + 1} of page {number} (native id {native.get('id')!r})")
            for number, page in enumerate(pages, start=1)
            for index, native in enumerate(page.items)
        ]

    async def fetch_mapped(self, conn: Connection, request: FetchRequest | None = None) -> list[Product]:
        context = await self.context(conn)
        return self.map_pages(await self.fetch(conn, request), context)

    async def product(self, conn: Connection, external_id: str, mode: FetchMode = FetchMode.FULL) -> Product:
        """One product as a FULL (or IDS) fetch returns it, mapped."""
        request = FetchRequest(mode=mode, ids=(external_id,) if mode is FetchMode.IDS else ())
        for product in await self.fetch_mapped(conn, request):
            if product.external_id == external_id:
                return product
        fail(f"product {external_id}, just created on the store, was not returned by a {mode} fetch")

    def secrets(self, conn: Connection, registration: WebhookRegistration) -> dict[str, str]:
        """What the gateway passes verify_webhook: the credentials plus the registration's secrets."""
        return {**conn.credentials, **registration.secrets}

    def events(
        self, deliveries: Sequence[Delivery], secrets: Mapping[str, str], store_url: str | None = None
    ) -> list[WebhookEvent]:
        """Verify and parse genuine deliveries, as the gateway's endpoint does; pings parse to nothing.

        With `store_url` (the simulator's), `webhook_from_store` must accept them too.
        """
        events: list[WebhookEvent] = []
        for delivery in deliveries:
            if not self.adapter.verify_webhook(delivery.headers, delivery.body, secrets):
                fail(
                    f"verify_webhook rejected a genuine delivery from the simulator ({describe(delivery)}): "
                    "the gateway would answer 401 and lose the change"
                )
            if store_url is not None and not self.adapter.webhook_from_store(
                delivery.headers, delivery.body, store_url
            ):
                fail(
                    f"webhook_from_store rejected a genuine delivery from the simulator at {store_url} "
                    f"({describe(delivery)}): the gateway would answer 401 and lose the change"
                )
            try:
                event = self.adapter.parse_webhook(delivery.headers, delivery.body)
            except Exception as exc:  # noqa: BLE001 - any crash is the finding
                fail(f"parse_webhook raised {type(exc).__name__} ({exc}) for a genuine delivery ({describe(delivery)})")
            if event is None:
                continue
            if not isinstance(event, WebhookEvent):
                fail(f"parse_webhook returned {type(event).__name__}, not a WebhookEvent or None")
            events.append(event)
        return events

    async def registered(self, sim: Simulator, conn: Connection, receiver: Receiver) -> WebhookRegistration:
        """register_webhooks pointed at `receiver`, with the registration's own deliveries (pings) drained."""
        registration = await self.adapter.register_webhooks(conn, receiver.url)
        if not isinstance(registration, WebhookRegistration):
            fail(f"register_webhooks returned {type(registration).__name__}, not a WebhookRegistration")
        await sim.drain_deliveries()
        self.events(receiver.take(), self.secrets(conn, registration), sim.store_url)
        return registration

    async def change(
        self, sim: Simulator, receiver: Receiver, secrets: Mapping[str, str], external_id: str, action: str
    ) -> tuple[list[Delivery], list[WebhookEvent]]:
        """Deliveries and events about `external_id` after one catalog change has been delivered."""
        await sim.drain_deliveries()
        deliveries = receiver.take()
        events = [e for e in self.events(deliveries, secrets, sim.store_url) if e.external_id == external_id]
        if not events:
            fail(
                f"{action} on the store delivered nothing the adapter parses as a change to product "
                f"{external_id} ({len(deliveries)} deliveries arrived): register product created / updated / "
                "deleted webhooks and give each event the product's external id"
            )
        return deliveries, events


def fail(message: str) -> NoReturn:
    """Fail the check with `message` alone (no traceback): it names the problem."""
    pytest.fail(message, pytrace=False)


def describe(delivery: Delivery) -> str:
    topic = next((v for k, v in delivery.headers.items() if "topic" in k.lower() or "event" in k.lower()), None)
    return f"topic {topic!r}, {len(delivery.body)} bytes" if topic else f"{len(delivery.body)} bytes"


def corrupt(value: str) -> str:
    """A different value of the same shape (so only its content is wrong), also to a case-insensitive
    comparison: a hex digest ending in "a" must not come back ending in "A"."""
    if not value:
        return "wrong"
    last = "A" if value[-1].lower() != "a" else "B"
    return value[:-1] + last if len(value) > 1 else last


def same_products(got: Sequence[str], expected: Sequence[str], what: str) -> None:
    repeated = sorted(i for i, n in Counter(got).items() if n > 1)
    if repeated:
        fail(f"{what} returned product(s) {repeated[:5]} more than once")
    missing = sorted(set(expected) - set(got))
    if missing:
        fail(f"{what} missed {len(missing)} of the store's {len(expected)} products (e.g. {missing[:5]})")
    extra = sorted(set(got) - set(expected))
    if extra:
        fail(f"{what} returned {len(extra)} product(s) the store does not have (e.g. {extra[:5]})")


def monies(product: Product) -> Iterator[tuple[str, Money]]:
    for name in ("price", "compare_at_price"):
        value = getattr(product, name)
        if value is not None:
            yield name, value
    for index, variant in enumerate(product.variants):
        for name in ("price", "compare_at_price"):
            value = getattr(variant, name)
            if value is not None:
                yield f"variants[{index}].{name}", value


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) for every string inside a JSON-like value."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}[{index}]")


def never_synced_values(native: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) of the never-synced values in a native product: keys like NEVER_SYNCED, and
    metadata entries ({"key": ..., "value": ...}) whose key is private (leading underscore) or like it."""
    if isinstance(native, Mapping):
        key = native.get("key")
        if isinstance(key, str) and "value" in native and (key.startswith("_") or NEVER_SYNCED.search(key)):
            yield from strings(native["value"], f"{path}[key={key}]")
            return
        for name, item in native.items():
            where = f"{path}.{name}" if path else str(name)
            if NEVER_SYNCED.search(str(name)):
                yield from strings(item, where)
            else:
                yield from never_synced_values(item, where)
    elif isinstance(native, list | tuple):
        for index, item in enumerate(native):
            yield from never_synced_values(item, f"{path}[{index}]")


def product_barcodes(product: Product) -> tuple[set[str], list[str]]:
    """Every barcode-like value in the canonical product, and every identifier warning."""
    found: set[str] = set()
    warnings = list(product.warnings) + list(product.identifiers.warnings)
    holders: list[Product | Variant] = [product, *product.variants]
    for holder in holders:
        ids = holder.identifiers
        found |= {v for v in (ids.upc, ids.ean, ids.gtin, ids.isbn) if v}
        if isinstance(holder, Variant):
            warnings += ids.warnings
            if holder.barcode:
                found.add(holder.barcode)
    return found, warnings


# ---- fixtures ------------------------------------------------------------------------------------------
