"""The platform plugin conformance suite: what every platform plugin must do, checked against the
plugin's own simulator over real HTTP on 127.0.0.1.

The suite drives the adapter exactly as the sync engine does (a Connection whose HTTP clients come
from the engine's kind of factory; check_credentials, mapping_context, count_products, fetch_products
in FULL, SINCE and IDS mode, map_product, and the webhook methods), without MongoDB or Redis, so one
plugin's run takes seconds. Failures name the problem in a plugin author's terms.

Run it against any installed plugin, from anywhere:

    pytest --gateway-platform=<platform id>

or wire it into the plugin's own tests (tests/test_conformance.py), so `pytest` runs it:

    from gateway.testing.conformance import *  # noqa: F403
    GATEWAY_PLATFORM = "<platform id>"

What the plugin's simulator must offer is the gateway.simkit.Simulator interface plus two class
attributes: `conformance_fields`, the `create_product` keywords it honours (CREATE_FIELDS below; a
check that needs one it does not declare is skipped with a message naming it), and optionally
`conformance_options`, a dict of ConformanceOptions fields (page sizes, simulator options...).
The suite's fixtures (`conformance`, `conformance_options`, `platform_adapter`,
`platform_simulator_class`) come with the gateway's pytest plugin. docs/writing-a-plugin.md has the
whole contract.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from multidict import CIMultiDict

from gateway.adapter import (
    ChangeKind,
    FetchMode,
    FetchRequest,
    PlatformAdapter,
    WebhookEvent,
)
from gateway.errors import MappingError, StoreAuthError, StoreError
from gateway.model import Product, Variant, format_timestamp, minor_units
from gateway.simkit import FaultInjector, Simulator
from gateway.testing.kit import (  # noqa: F401 - the suite's vocabulary
    BAD_UPC,
    CREATE_FIELDS,
    DUPLICATE_SKU,
    EXACT_PRICE,
    IDENTIFIED_SKU,
    NEVER_SYNCED,
    PRIVATE_TEXT,
    UNICODE_HTML_TITLE,
    VALID_UPC,
    CallCounter,
    ConformanceKit,
    ConformanceOptions,
    Delivery,
    Receiver,
    corrupt,
    describe,
    fail,
    monies,
    never_synced_values,
    product_barcodes,
    same_products,
    strings,
)

#: What `from gateway.testing.conformance import *` brings into a plugin's test module: the checks, in
#: order, and the hook that parametrises them. The fixtures come with the gateway's pytest plugin.
__all__ = [
    "pytest_generate_tests",
    "test_simulator_contract",
    "test_credentials_good_and_bad",
    "test_mapping_context",
    "test_full_fetch_pages_and_resumes",
    "test_incremental_fetch",
    "test_fetch_by_ids",
    "test_deleted_products",
    "test_variants_past_the_first_page",
    "test_duplicate_skus",
    "test_unicode_and_html_in_names",
    "test_missing_optional_fields",
    "test_money_is_exact",
    "test_canonical_shape",
    "test_identifiers",
    "test_never_synced_fields_stay_out",
    "test_malformed_product_is_isolated",
    "test_webhook_registration_and_removal",
    "test_webhook_signatures",
    "test_replayed_and_out_of_order_deliveries",
    "test_rate_limits_are_retried",
    "test_server_errors_are_retried_then_raised",
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the suite for the module's GATEWAY_PLATFORM, or for each --gateway-platform given."""
    if "gateway_platform" not in metafunc.fixturenames:
        return
    fixed = getattr(metafunc.module, "GATEWAY_PLATFORM", None)
    platforms = [fixed] if fixed else list(metafunc.config.getoption("gateway_platform", default=None) or [])
    metafunc.parametrize("gateway_platform", platforms, scope="module")


@functools.lru_cache(maxsize=1)
def _registry() -> Any:
    from gateway.plugins import load_plugins

    return load_plugins()


@pytest.fixture
def platform_adapter(gateway_platform: str) -> PlatformAdapter:
    """The installed adapter for the platform under test."""
    registry = _registry()
    adapter = registry.adapters.get(gateway_platform)
    if adapter is None:
        installed = ", ".join(sorted(registry.adapters)) or "none"
        problems = "".join(f"\n  {problem}" for problem in registry.load_errors)
        fail(f"no installed plugin provides platform {gateway_platform!r} (installed: {installed}){problems}")
    assert isinstance(adapter, PlatformAdapter)
    return adapter


@pytest.fixture
def platform_simulator_class(platform_adapter: PlatformAdapter) -> type[Simulator]:
    """The plugin's simulator class (PlatformAdapter.simulator())."""
    simulator = platform_adapter.simulator()
    if simulator is None:
        fail(
            f"{type(platform_adapter).__name__}.simulator() returned None: the conformance suite runs "
            "against the plugin's simulator (a gateway.simkit.Simulator subclass)"
        )
    return simulator


@pytest.fixture
def conformance_options(platform_simulator_class: type[Simulator]) -> ConformanceOptions:
    """How the suite drives the plugin: the simulator class's `conformance_options` (a dict of
    ConformanceOptions fields, so `pytest --gateway-platform` uses them too), else the defaults.
    A test module may override this fixture."""
    declared = getattr(platform_simulator_class, "conformance_options", None) or {}
    try:
        return ConformanceOptions(**declared)
    except TypeError as exc:
        fail(f"{platform_simulator_class.__name__}.conformance_options does not fit ConformanceOptions: {exc}")


@pytest_asyncio.fixture
async def conformance(
    platform_adapter: PlatformAdapter,
    platform_simulator_class: type[Simulator],
    conformance_options: ConformanceOptions,
) -> AsyncIterator[ConformanceKit]:
    """A ConformanceKit for the platform under test, closed after the test."""
    async with ConformanceKit(platform_adapter, platform_simulator_class, conformance_options) as kit:
        yield kit


# ---- the simulator contract ------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_simulator_contract(conformance: ConformanceKit) -> None:
    """The simulator offers what the suite, the tests and the demo drive it through."""
    kit = conformance
    cls = kit.simulator_class
    if not (isinstance(cls, type) and issubclass(cls, Simulator)):
        fail(f"the plugin's simulator {cls!r} is not a gateway.simkit.Simulator subclass")
    if cls.platform != kit.platform:
        fail(f"{cls.__name__}.platform is {cls.platform!r} but the adapter's platform id is {kit.platform!r}")
    unknown = sorted(kit.fields - set(CREATE_FIELDS))
    if unknown:
        fail(
            f"{cls.__name__}.conformance_fields lists {unknown}, which are not create_product keywords of the "
            f"simulator contract ({', '.join(CREATE_FIELDS)})"
        )
    first, second = await kit.simulator(products=5), await kit.simulator(products=5)
    ids = first.product_ids()
    if not all(isinstance(i, str) for i in ids):
        fail(f"{cls.__name__}.product_ids() must return strings (external ids), got {ids!r}")
    if len(ids) != 5 or len(set(ids)) != 5:
        fail(f"{cls.__name__}(products=5) has {len(ids)} products {ids}: it must have exactly 5, with distinct ids")
    if second.product_ids() != ids:
        fail(
            f"two {cls.__name__}(products=5, seed={kit.options.seed}) built different catalogs: a seed must "
            "always build the same catalog"
        )
    if not first.store_url.startswith(first.base_url):
        fail(f"store_url {first.store_url!r} is not on the simulator's own server {first.base_url!r}")
    credentials = first.credentials()
    if not isinstance(credentials, dict) or not all(isinstance(v, str) for v in credentials.values()):
        fail(f"{cls.__name__}.credentials() must return a dict of strings")
    required = [f.name for f in kit.adapter.info.credential_fields if f.required]
    absent = [name for name in required if name not in credentials]
    if absent:
        fail(f"{cls.__name__}.credentials() lacks {absent}, required credential field(s) of the adapter")
    if not isinstance(first.faults, FaultInjector):
        fail(f"{cls.__name__}.faults is not a FaultInjector: build the app with Simulator.build_app")
    async with aiohttp.ClientSession() as session, session.get(f"{first.base_url}/_sim/products") as response:
        listed = (await response.json()).get("ids") if response.status == 200 else None
    if listed != ids:
        fail(f"GET /_sim/products answered {listed!r}, expected the simulator's product ids {ids}")
    created = first.create_product()
    if not isinstance(created, str) or created not in first.product_ids() or len(first.product_ids()) != 6:
        fail(
            f"create_product() returned {created!r}; it must add one product and return its external id "
            "(a string listed by product_ids())"
        )
    first.update_product(created)
    if created not in first.product_ids():
        fail(f"update_product({created!r}) removed the product")
    first.delete_product(created)
    if created in first.product_ids():
        fail(f"delete_product({created!r}) left the product in product_ids()")
    await first.drain_deliveries()


# ---- connecting ---------------------------------------------------------------------------------------------
async def _expect_auth_error(kit: ConformanceKit, sim: Simulator, credentials: Mapping[str, str], what: str) -> None:
    conn = kit.connect(sim, credentials)
    try:
        await kit.adapter.check_credentials(conn)
    except StoreAuthError as exc:
        secrets = [v for v in (*sim.credentials().values(), *credentials.values()) if len(v) >= 6]
        if any(secret in str(exc) for secret in secrets):
            fail(
                f"the StoreAuthError for {what} repeats a credential in its message: credentials never "
                "appear in errors or logs"
            )
        return
    except Exception as exc:  # noqa: BLE001 - any other outcome is the finding
        fail(
            f"check_credentials raised {type(exc).__name__} ({exc}) for {what}; it must raise StoreAuthError, "
            "which the gateway turns into 'the store refused these credentials'"
        )
    fail(
        f"check_credentials accepted {what}: it must raise StoreAuthError so that a merchant cannot connect "
        "a store with bad keys"
    )


@pytest.mark.asyncio
async def test_credentials_good_and_bad(conformance: ConformanceKit) -> None:
    """Good credentials pass check_credentials; wrong or missing ones raise StoreAuthError."""
    kit = conformance
    sim = await kit.simulator(products=3)
    try:
        await kit.adapter.check_credentials(kit.connect(sim))
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        fail(f"check_credentials rejected the simulator's own credentials: {type(exc).__name__}: {exc}")
    wrong = {name: corrupt(value) for name, value in sim.credentials().items()}
    await _expect_auth_error(kit, sim, wrong, "wrong credentials (every value changed)")
    await _expect_auth_error(kit, sim, {}, "a connection with no credentials at all")


@pytest.mark.asyncio
async def test_mapping_context(conformance: ConformanceKit) -> None:
    """mapping_context names the store's currency as an ISO 4217 code."""
    kit = conformance
    sim = await kit.simulator(products=3)
    context = await kit.context(kit.connect(sim))
    if not re.fullmatch(r"[A-Z]{3}", context.currency):
        fail(f"mapping_context gave currency {context.currency!r}; it must be a three-letter ISO 4217 code")


# ---- reading products ----------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_full_fetch_pages_and_resumes(conformance: ConformanceKit) -> None:
    """A FULL fetch returns every product once, in pages, resumable from any page's cursor."""
    kit = conformance
    sim = await kit.simulator()
    conn = kit.connect(sim)
    context = await kit.context(conn)
    expected = sim.product_ids()
    count = await kit.adapter.count_products(conn, FetchRequest())
    pages = await kit.fetch(conn, FetchRequest())
    ids = [p.external_id for p in kit.map_pages(pages, context)]
    same_products(ids, expected, "a FULL fetch")
    if count is not None and count != len(expected):
        fail(f"count_products(FULL) said {count} but the store has {len(expected)} products")
    totals = {p.total for p in pages if p.total is not None}
    if totals and totals != {len(expected)}:
        fail(f"the pages of a FULL fetch give total {sorted(totals)} but the store has {len(expected)} products")
    if conn.on_call.count != sim.faults.api_requests:
        fail(
            f"the simulator answered {sim.faults.api_requests} API requests but the connection's HttpClient "
            f"made {conn.on_call.count}: the adapter talks to the store without make_http_client, so its calls "
            "are not counted and get no retries, backoff or budget"
        )
    last_cursor = pages[-1].cursor
    if last_cursor is not None:
        # Allowed (an adapter may not know a page is the last), but resuming there must find nothing.
        again = await kit.fetch_mapped(conn, FetchRequest(cursor=last_cursor))
        if again:
            fail(
                f"resuming a FULL fetch from its last page's cursor {last_cursor!r} returned {len(again)} products "
                f"again (e.g. {[p.external_id for p in again[:5]]}): a run retried after its last page would "
                "read them twice"
            )
    if len(pages) < 2:
        pytest.skip(
            f"every product came back once, but the FULL fetch of {len(expected)} products came as one page, "
            "so paging and resuming went untested: make pages smaller through "
            "ConformanceOptions.connection_options (a page-size option) or raise catalog_size"
        )
    first_cursor = pages[0].cursor
    resumed = [p.external_id for p in kit.map_pages(await kit.fetch(conn, FetchRequest(cursor=first_cursor)), context)]
    after_first = ids[len(pages[0].items) :]
    if sorted(resumed) != sorted(after_first):
        lost = sorted(set(after_first) - set(resumed))[:5]
        unexpected = sorted(set(resumed) - set(after_first))[:5]
        fail(
            f"resuming a FULL fetch from the first page's cursor {first_cursor!r} returned {len(resumed)} products, "
            f"expected the {len(after_first)} after that page (missing e.g. {lost}, unexpected e.g. {unexpected})"
        )


@pytest.mark.asyncio
async def test_incremental_fetch(conformance: ConformanceKit) -> None:
    """A SINCE fetch returns what changed or was created since then, and not the whole catalog."""
    kit = conformance
    kit.require_capability("incremental")
    sim = await kit.simulator()
    conn = kit.connect(sim)
    before = await kit.fetch_mapped(conn)
    since = max(p.store_updated_at for p in before)
    ids = sim.product_ids()
    changed = ids[:: max(1, len(ids) // 12)][:12]
    for external_id in changed:
        sim.update_product(external_id)
    changed.append(sim.create_product())
    await sim.drain_deliveries()
    request = FetchRequest(mode=FetchMode.SINCE, since=since)
    count = await kit.adapter.count_products(conn, request)
    got = [p.external_id for p in await kit.fetch_mapped(conn, request)]
    repeated = sorted(i for i, n in Counter(got).items() if n > 1)
    if repeated:
        fail(f"an incremental fetch returned product(s) {repeated[:5]} more than once")
    missed = sorted(set(changed) - set(got))
    if missed:
        fail(
            f"an incremental fetch (SINCE {since.isoformat()}) missed {len(missed)} of the {len(changed)} products "
            f"changed or created after that time (e.g. {missed[:5]})"
        )
    # A little slack for stores that filter at whole seconds; the engine adds its own overlap.
    old = {p.external_id for p in before if p.store_updated_at < since - timedelta(seconds=2)}
    stale = sorted((set(got) & old) - set(changed))
    if stale:
        fail(
            f"an incremental fetch (SINCE {since.isoformat()}) returned {len(stale)} products that last changed "
            f"before then (e.g. {stale[:5]}): it must ask the store only for what changed"
        )
    if count is not None and count != len(got):
        fail(f"count_products(SINCE) said {count} but the incremental fetch returned {len(got)} products")


@pytest.mark.asyncio
async def test_fetch_by_ids(conformance: ConformanceKit) -> None:
    """An IDS fetch returns exactly the products asked for and lists deleted ones in missing_ids."""
    kit = conformance
    kit.require_capability("fetch_by_ids")
    sim = await kit.simulator(products=12)
    ids = sim.product_ids()
    wanted = [ids[1], ids[5], ids[-1]]
    gone = ids[3]
    sim.delete_product(gone)
    await sim.drain_deliveries()
    conn = kit.connect(sim)
    request = FetchRequest(mode=FetchMode.IDS, ids=(*wanted, gone))
    pages = await kit.fetch(conn, request)
    got = [p.external_id for p in kit.map_pages(pages, await kit.context(conn))]
    if sorted(got) != sorted(wanted):
        fail(
            f"fetching ids {[*wanted, gone]} by id returned products {got}; expected exactly {wanted} "
            f"({gone} was deleted)"
        )
    missing = [i for page in pages for i in page.missing_ids]
    if gone not in missing:
        fail(
            f"product {gone} was deleted from the store but an IDS fetch did not list it in Page.missing_ids, "
            "so the gateway would never mark it removed"
        )
    wrong = sorted(set(missing) & set(wanted))
    if wrong:
        fail(f"an IDS fetch listed products {wrong} in missing_ids although the store has them")


@pytest.mark.asyncio
async def test_deleted_products(conformance: ConformanceKit) -> None:
    """Products deleted on the store are gone from a FULL fetch (so the engine marks them removed)."""
    kit = conformance
    sim = await kit.simulator(products=12)
    ids = sim.product_ids()
    deleted = [ids[2], ids[7]]
    for external_id in deleted:
        sim.delete_product(external_id)
    await sim.drain_deliveries()
    got = [p.external_id for p in await kit.fetch_mapped(kit.connect(sim))]
    back = sorted(set(deleted) & set(got))
    if back:
        fail(f"products {back} were deleted on the store but a FULL fetch still returned them")
    same_products(got, sim.product_ids(), "a FULL fetch after deletions")


# ---- the catalog's hard cases ---------------------------------------------------------------------------------
def _check_variants(product: Product, expected: int, mode: FetchMode) -> None:
    got = len(product.variants)
    if got < expected:
        fail(
            f"product {product.external_id} has {expected} variants in the store but the adapter returned {got} "
            f"({mode} fetch): variants past the first page were dropped"
        )
    if got > expected:
        fail(
            f"product {product.external_id} has {expected} variants in the store but the adapter returned {got} "
            f"({mode} fetch): variants were duplicated"
        )
    repeated = sorted(i for i, n in Counter(v.external_id for v in product.variants).items() if n > 1)
    if repeated or not all(v.external_id for v in product.variants):
        fail(f"product {product.external_id}'s variants have repeated or empty external ids ({repeated[:5]})")


@pytest.mark.asyncio
async def test_variants_past_the_first_page(conformance: ConformanceKit) -> None:
    """A product with more variants than one page keeps all of them, in FULL and IDS fetches."""
    kit = conformance
    kit.require("variants")
    sim = await kit.simulator(products=3)
    expected = kit.options.many_variants
    external_id = sim.create_product(variants=expected)
    await sim.drain_deliveries()
    conn = kit.connect(sim)
    _check_variants(await kit.product(conn, external_id), expected, FetchMode.FULL)
    if "fetch_by_ids" in kit.adapter.info.capabilities:
        _check_variants(await kit.product(conn, external_id, FetchMode.IDS), expected, FetchMode.IDS)


@pytest.mark.asyncio
async def test_duplicate_skus(conformance: ConformanceKit) -> None:
    """Two products sharing a SKU are two products: identity is the store id, never the SKU."""
    kit = conformance
    kit.require("sku")
    sim = await kit.simulator(products=3)
    pair = [sim.create_product(sku=DUPLICATE_SKU), sim.create_product(sku=DUPLICATE_SKU)]
    await sim.drain_deliveries()
    found = {p.external_id: p for p in await kit.fetch_mapped(kit.connect(sim))}
    for external_id, other in (pair, pair[::-1]):
        if external_id not in found:
            fail(
                f"product {external_id} shares SKU {DUPLICATE_SKU!r} with product {other} and a FULL fetch lost "
                "it: products are identified by their store id, never by SKU"
            )
        if found[external_id].sku != DUPLICATE_SKU:
            fail(
                f"product {external_id} was created with SKU {DUPLICATE_SKU!r} but maps to SKU "
                f"{found[external_id].sku!r}"
            )


@pytest.mark.asyncio
async def test_unicode_and_html_in_names(conformance: ConformanceKit) -> None:
    """A name with unicode, emoji, quotes, HTML and an ampersand arrives exactly as the store holds it."""
    kit = conformance
    kit.require("title")
    sim = await kit.simulator(products=3)
    external_id = sim.create_product(title=UNICODE_HTML_TITLE)
    await sim.drain_deliveries()
    product = await kit.product(kit.connect(sim), external_id)
    if product.title != UNICODE_HTML_TITLE:
        fail(
            f"product {external_id} was created with the name {UNICODE_HTML_TITLE!r} but the adapter mapped it to "
            f"{product.title!r}: names must keep unicode and HTML exactly as the store holds them"
        )


@pytest.mark.asyncio
async def test_missing_optional_fields(conformance: ConformanceKit) -> None:
    """A product with only the required fields maps, and nothing absent is invented."""
    kit = conformance
    kit.require("bare")
    sim = await kit.simulator(products=3)
    external_id = sim.create_product(bare=True)
    await sim.drain_deliveries()
    product = await kit.product(kit.connect(sim), external_id)
    invented = {
        "description": product.description or None,
        "vendor": product.vendor or None,
        "images": product.images or None,
        "tags": product.tags or None,
        "categories": product.categories or None,
        "SKU": product.sku or None,
        "compare-at price": product.compare_at_price
        or next((v.compare_at_price for v in product.variants if v.compare_at_price), None),
        "barcode": sorted(product_barcodes(product)[0]) or None,
    }
    for name, value in invented.items():
        if value is not None:
            fail(
                f"product {external_id} has no {name} in the store but the canonical product has {value!r}: "
                "a missing optional field maps to None or empty, never to an invented value"
            )


@pytest.mark.asyncio
async def test_money_is_exact(conformance: ConformanceKit) -> None:
    """Every amount is an exact Decimal in the store's currency; a price arrives to the cent."""
    kit = conformance
    sim = await kit.simulator()
    conn = kit.connect(sim)
    context = await kit.context(conn)
    for product in await kit.fetch_mapped(conn):
        for where, money in monies(product):
            # Money rounds to the currency's minor units, and remembers what it was given.
            given = money.rounded_from if money.rounded_from is not None else money.amount
            exponent = given.as_tuple().exponent
            if isinstance(exponent, int) and exponent < -4:
                fail(
                    f"product {product.external_id} {where} is {given}: that is a float's rounding error; "
                    "parse money from the store's text as an exact Decimal"
                )
            if money.currency != context.currency:
                fail(
                    f"product {product.external_id} {where} is in {money.currency} but the store's currency is "
                    f"{context.currency}"
                )
    kit.require("price", done="the catalog's amounts were checked")
    external_id = sim.create_product(price=EXACT_PRICE)
    await sim.drain_deliveries()
    product = await kit.product(conn, external_id)
    amounts = sorted({money.amount for _, money in monies(product)})
    if Decimal(EXACT_PRICE) not in amounts:
        fail(
            f"product {external_id} was created with price {EXACT_PRICE} but no amount in the canonical product "
            f"equals it exactly (found {[str(a) for a in amounts]}): money must be exact decimals"
        )


_TIMESTAMP_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_TIMESTAMP_FIELDS = ("store_updated_at", "store_created_at", "sale_starts_at", "sale_ends_at")


def _timestamp_problems(where: str, value: datetime | None, text: Any) -> list[str]:
    if value is None:
        return []
    problems = []
    if value.utcoffset() != timedelta(0):
        problems.append(f"{where} {value.isoformat()} is not in UTC")
    if value.microsecond % 1000:
        problems.append(f"{where} {value.isoformat()} has microseconds: timestamps are kept to the millisecond")
    if not isinstance(text, str) or not _TIMESTAMP_TEXT.fullmatch(text):
        problems.append(f"{where} is stored as {text!r}, not as {format_timestamp(value)!r}")
    return problems


def canonical_shape_problems(product: Product) -> list[str]:
    """What in `product` is not in the canonical shape (empty when all is well).

    Money has exactly its currency's ISO 4217 minor units ("221.10" USD, "1000" JPY, "1.234" KWD);
    image and variant positions are 0..n-1 in list order; the handle is a slug without slashes;
    timestamps are UTC, to the millisecond, written "2026-01-02T03:04:05.678Z". gateway.model
    normalises all of it when a product is built through its constructors; a product assembled around
    them (model_construct, attributes set afterwards) shows up here.
    """
    problems: list[str] = []
    document = product.to_document()
    for where, money in monies(product):
        units = minor_units(money.currency)
        exponent = money.amount.as_tuple().exponent
        if exponent != -units:
            problems.append(
                f"{where} is {str(money.amount)!r} but {money.currency} amounts have {units} decimal(s) "
                f"(build it as gateway.model.Money, which writes it {format(money.amount, f'.{units}f')!r})"
            )
    for name, items in (("images", product.images), ("variants", product.variants)):
        positions = [item.position for item in items]
        if positions != list(range(len(items))):
            problems.append(
                f"{name} positions are {positions[:12]}: positions count 0, 1, ... in the order the shopper sees them"
            )
    if product.handle is not None and ("/" in product.handle or not product.handle.strip()):
        problems.append(f"handle {product.handle!r} is not a slug: the platform's slug, without slashes")
    for name in _TIMESTAMP_FIELDS:
        problems += _timestamp_problems(name, getattr(product, name), document.get(name))
    for index, variant in enumerate(product.variants):
        for name in ("sale_starts_at", "sale_ends_at"):
            text = document["variants"][index].get(name)
            problems += _timestamp_problems(f"variants[{index}].{name}", getattr(variant, name), text)
    return problems


@pytest.mark.asyncio
async def test_canonical_shape(conformance: ConformanceKit) -> None:
    """Products (from a FULL fetch, an IDS fetch and a webhook payload) have the canonical shape."""
    kit = conformance
    sim = await kit.simulator()
    conn = kit.connect(sim)
    context = await kit.context(conn)
    found = [("a FULL fetch", p) for p in await kit.fetch_mapped(conn)]
    if "fetch_by_ids" in kit.adapter.info.capabilities:
        wanted = tuple(sim.product_ids()[:3])
        found += [("an IDS fetch", p) for p in await kit.fetch_mapped(conn, FetchRequest(FetchMode.IDS, ids=wanted))]
    if "webhooks" in kit.adapter.info.capabilities:
        receiver = await kit.receiver()
        secrets = kit.secrets(conn, await kit.registered(sim, conn, receiver))
        external_id = sim.create_product(**({"price": EXACT_PRICE} if "price" in kit.fields else {}))
        _, events = await kit.change(sim, receiver, secrets, external_id, "creating a product")
        for event in events:
            if event.kind is ChangeKind.UPSERT and event.product is not None:
                payload = kit.map(event.product, context, f"the webhook payload of product {external_id}")
                found.append(("a webhook payload", payload))
    for source, product in found:
        problems = canonical_shape_problems(product)
        if problems:
            fail(
                f"product {product.external_id} (from {source}) is not in the canonical shape: "
                + "; ".join(problems[:5])
            )


@pytest.mark.asyncio
async def test_identifiers(conformance: ConformanceKit) -> None:
    """External ids are unique and stable; SKUs and barcodes arrive, bad barcodes raw with a warning."""
    kit = conformance
    sim = await kit.simulator()
    conn = kit.connect(sim)
    products = await kit.fetch_mapped(conn)
    for product in products:
        if not isinstance(product.external_id, str) or not product.external_id:
            fail(f"a product mapped with external id {product.external_id!r}; it must be the store's id, as text")
        repeated = sorted(i for i, n in Counter(v.external_id for v in product.variants).items() if n > 1)
        if repeated or not all(v.external_id for v in product.variants):
            fail(f"product {product.external_id}'s variants have repeated or empty external ids ({repeated[:5]})")
    same_products([p.external_id for p in products], sim.product_ids(), "a FULL fetch")
    kit.require("sku", "barcode", done="the catalog's external ids were checked")
    good = sim.create_product(sku=IDENTIFIED_SKU, barcode=VALID_UPC)
    bad = sim.create_product(barcode=BAD_UPC)
    await sim.drain_deliveries()
    found = {p.external_id: p for p in await kit.fetch_mapped(conn)}
    product = found[good] if good in found else fail(f"product {good}, just created, was not in a FULL fetch")
    if product.sku != IDENTIFIED_SKU:
        fail(f"product {good} was created with SKU {IDENTIFIED_SKU!r} but maps to SKU {product.sku!r}")
    barcodes, warnings = product_barcodes(product)
    if VALID_UPC not in barcodes:
        fail(
            f"product {good} was created with barcode {VALID_UPC} (a valid UPC-A) but the canonical product "
            f"carries it nowhere (identifiers upc/ean/gtin/isbn or a variant's barcode; found {sorted(barcodes)})"
        )
    if any(VALID_UPC in w for w in warnings):
        fail(f"product {good}'s valid UPC {VALID_UPC} was flagged: {warnings}")
    product = found[bad] if bad in found else fail(f"product {bad}, just created, was not in a FULL fetch")
    barcodes, warnings = product_barcodes(product)
    if BAD_UPC not in barcodes:
        fail(
            f"product {bad} was created with barcode {BAD_UPC} (a bad check digit) but the canonical product "
            f"dropped it: an invalid barcode is kept raw, with a warning"
        )
    if not any(BAD_UPC in w for w in warnings):
        fail(
            f"product {bad}'s barcode {BAD_UPC} has a bad check digit but the canonical product carries no "
            "warning about it"
        )


@pytest.mark.asyncio
async def test_never_synced_fields_stay_out(conformance: ConformanceKit) -> None:
    """Reviews, ratings, sales figures, internal notes and private metadata never reach the product."""
    kit = conformance
    leaky = [name for model in (Product, Variant) for name in model.model_fields if NEVER_SYNCED.search(name)]
    if leaky:
        fail(f"the canonical model has never-synced fields {leaky}")
    sim = await kit.simulator()
    conn = kit.connect(sim)
    context = await kit.context(conn)
    for page in await kit.fetch(conn):
        for native in page.items:
            product = kit.map(native, context, "a product of the catalog")
            texts = list(strings(product.model_dump(mode="json")))
            for source, secret in never_synced_values(native):
                if len(secret) < 8:
                    continue  # short values ("4.50", "yes") match too much to be evidence
                leak = next((where for where, text in texts if secret in text), None)
                if leak is not None:
                    fail(
                        f"product {product.external_id}: the store's never-synced field {source!r} ({secret!r}) "
                        f"reached the canonical product at {leak!r}; reviews, ratings, sales figures, internal "
                        "notes and private metadata are never synced"
                    )
    kit.require("private_text", done="the catalog's never-synced fields were checked")
    external_id = sim.create_product(private_text=PRIVATE_TEXT)
    await sim.drain_deliveries()
    product = await kit.product(conn, external_id)
    leak = next((where for where, text in strings(product.model_dump(mode="json")) if PRIVATE_TEXT in text), None)
    if leak is not None:
        fail(
            f"product {external_id}: text stored only in never-synced fields (notes, private metadata) reached the "
            f"canonical product at {leak!r}"
        )


@pytest.mark.asyncio
async def test_malformed_product_is_isolated(conformance: ConformanceKit) -> None:
    """A product the store serves broken fails alone (MappingError), never the fetch or its neighbours."""
    kit = conformance
    sim = await kit.simulator(products=10)
    ids = sim.product_ids()
    broken = ids[4]
    sim.faults.set(malformed_ids=[broken])
    conn = kit.connect(sim)
    context = await kit.context(conn)
    try:
        pages = await kit.fetch(conn)
    except StoreError as exc:
        fail(
            f"a FULL fetch failed because product {broken} was malformed ({type(exc).__name__}: {exc}): one bad "
            "product must fail that product, not the run"
        )
    mapped: list[str] = []
    refused: list[MappingError] = []
    for native in (item for page in pages for item in page.items):
        try:
            mapped.append(kit.adapter.map_product(native, context).external_id)
        except MappingError as exc:
            refused.append(exc)
        except Exception as exc:  # noqa: BLE001 - any crash is the finding
            fail(
                f"map_product raised {type(exc).__name__} ({exc}) for the malformed product {broken}; it must raise "
                "MappingError so the run records that product and goes on"
            )
    others = [i for i in ids if i != broken]
    missing = sorted(set(others) - set(mapped))
    if missing:
        fail(f"with product {broken} malformed, its neighbours {missing[:5]} were lost as well")
    if len(refused) > 1:
        fail(f"{len(refused)} products raised MappingError but only product {broken} was malformed")
    if broken not in mapped and not refused:
        fail(
            f"the FULL fetch silently dropped the malformed product {broken}: pass it on so map_product raises "
            "MappingError and the run records it (a product missing from a full fetch counts as deleted)"
        )
    if refused and refused[0].external_id not in (None, broken):
        fail(f"the MappingError for malformed product {broken} names product {refused[0].external_id!r}")


# ---- webhooks ---------------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_webhook_registration_and_removal(conformance: ConformanceKit) -> None:
    """register_webhooks makes the store deliver created / updated / deleted; remove_webhooks stops it."""
    kit = conformance
    kit.require_capability("webhooks")
    sim = await kit.simulator(products=3)
    conn = kit.connect(sim)
    receiver = await kit.receiver()
    registration = await kit.registered(sim, conn, receiver)
    ours = [h for h in sim.hooks.values() if h.destination == receiver.url]
    if not ours:
        fail(
            f"register_webhooks returned hook ids {list(registration.hook_ids)} but the store has no webhook "
            f"delivering to {receiver.url}"
        )
    if not registration.hook_ids:
        fail("register_webhooks returned no hook ids, so remove_webhooks could never remove what it registered")
    secrets = kit.secrets(conn, registration)
    external_id = sim.create_product()
    kit_events = (await kit.change(sim, receiver, secrets, external_id, "creating a product"))[1]
    if all(e.kind is ChangeKind.DELETE for e in kit_events):
        fail(f"creating product {external_id} parsed only as a DELETE event")
    sim.update_product(external_id)
    updated = (await kit.change(sim, receiver, secrets, external_id, "updating a product"))[1]
    if all(e.kind is ChangeKind.DELETE for e in updated):
        fail(f"updating product {external_id} parsed only as a DELETE event")
    sim.delete_product(external_id)
    deleted = (await kit.change(sim, receiver, secrets, external_id, "deleting a product"))[1]
    if not any(e.kind in (ChangeKind.DELETE, ChangeKind.REFRESH) for e in deleted):
        fail(
            f"deleting product {external_id} delivered no DELETE or REFRESH event for it "
            f"(got {[e.kind for e in deleted]})"
        )
    if not any(e.kind is ChangeKind.DELETE for e in deleted):
        # A deletion confirmed with the store: the gateway fetches the id and removes what is missing.
        pages = await kit.fetch(conn, FetchRequest(mode=FetchMode.IDS, ids=(external_id,)))
        if external_id not in [m for page in pages for m in page.missing_ids]:
            fail(
                f"deleting product {external_id} parsed as a REFRESH, but fetching it by id does not list it in "
                "Page.missing_ids: the gateway would never mark it removed"
            )
    sim.deliver_webhooks = False
    sim.create_product()
    await sim.drain_deliveries()
    sim.deliver_webhooks = True
    if receiver.take():
        fail(
            "the simulator delivered webhooks while deliver_webhooks was False (the flag simulates dropped deliveries)"
        )
    await kit.adapter.remove_webhooks(conn, registration)
    left = [h.topic for h in sim.hooks.values() if h.destination == receiver.url]
    if left:
        fail(f"remove_webhooks left {len(left)} webhook(s) delivering to the gateway ({left[:5]})")
    try:
        await kit.adapter.remove_webhooks(conn, registration)
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        fail(
            f"remove_webhooks raised {type(exc).__name__} ({exc}) when its webhooks were already gone: hooks "
            "already gone are not an error (a merchant may have deleted them)"
        )
    sim.create_product()
    await sim.drain_deliveries()
    if receiver.take():
        fail("the store still delivered webhooks to the gateway after remove_webhooks")


@pytest.mark.asyncio
async def test_webhook_signatures(conformance: ConformanceKit) -> None:
    """verify_webhook accepts genuine deliveries and rejects wrong secrets, forged and missing signatures."""
    kit = conformance
    kit.require_capability("webhooks")
    sim = await kit.simulator(products=3)
    conn = kit.connect(sim)
    receiver = await kit.receiver()
    registration = await kit.registered(sim, conn, receiver)
    secrets = kit.secrets(conn, registration)
    external_id = sim.create_product()
    deliveries, _ = await kit.change(sim, receiver, secrets, external_id, "creating a product")
    verify = kit.adapter.verify_webhook
    wrong = {name: corrupt(value) for name, value in secrets.items()}
    for delivery in deliveries:
        if kit.adapter.parse_webhook(delivery.headers, delivery.body) is None:
            continue  # a ping proves nothing either way
        if verify(delivery.headers, delivery.body, wrong):
            fail(
                "verify_webhook accepted a delivery whose signature was made with the wrong secret (it was checked "
                "against secrets that are not the store's)"
            )
        if verify(delivery.headers, delivery.body, {}):
            fail("verify_webhook accepted a delivery with no secret to check it against")
        forged = CIMultiDict({name: corrupt(value) for name, value in delivery.headers.items()})
        if verify(forged, delivery.body, secrets):
            fail("verify_webhook accepted a delivery whose signature headers were forged (every header value changed)")
        bare = CIMultiDict({"Content-Type": delivery.headers.get("Content-Type", "application/json")})
        if verify(bare, delivery.body, secrets):
            fail("verify_webhook accepted a delivery that carries no signature at all")
        if kit.options.webhook_body_signed and verify(delivery.headers, delivery.body + b" ", secrets):
            fail("verify_webhook accepted a delivery whose body was changed after it was signed")


@pytest.mark.asyncio
async def test_replayed_and_out_of_order_deliveries(conformance: ConformanceKit) -> None:
    """A redelivery keeps its delivery_id, two changes never share one, and events order by store time."""
    kit = conformance
    kit.require_capability("webhooks")
    sim = await kit.simulator(products=3)
    conn = kit.connect(sim)
    context = await kit.context(conn)
    receiver = await kit.receiver()
    secrets = kit.secrets(conn, await kit.registered(sim, conn, receiver))
    external_id = sim.create_product()
    rounds: list[list[WebhookEvent]] = []
    for action in ("creating a product", "updating it", "updating it again a moment later"):
        if rounds:
            sim.update_product(external_id)
        deliveries, events = await kit.change(sim, receiver, secrets, external_id, action)
        for delivery in deliveries:
            again = [kit.adapter.parse_webhook(delivery.headers, delivery.body) for _ in range(2)]
            if again[0] is not None and again[1] is not None and again[0].delivery_id != again[1].delivery_id:
                fail(
                    f"parsing the same delivery twice gave delivery ids {again[0].delivery_id!r} and "
                    f"{again[1].delivery_id!r}: a redelivery must keep its delivery_id so it is applied once"
                )
        rounds.append(events)
    seen: dict[str, int] = {}
    for number, events in enumerate(rounds):
        for event in events:
            if seen.get(event.delivery_id, number) != number:
                fail(
                    f"two different changes to product {external_id} (change {seen[event.delivery_id] + 1} and "
                    f"{number + 1}, a moment apart) parsed to the same delivery_id {event.delivery_id!r}: the "
                    "later one would be dropped as a duplicate"
                )
            seen[event.delivery_id] = number
    first, second = ([e for e in events if e.kind is ChangeKind.UPSERT] for events in rounds[1:])
    for event in first + second:
        if event.store_updated_at is None:
            fail(
                f"an UPSERT event for product {external_id} has no store_updated_at: the gateway cannot tell a "
                "late, older delivery from a newer one (set it from the payload's updated time, or make the "
                "event a REFRESH)"
            )
        if event.product is None:
            fail(f"an UPSERT event for product {external_id} carries no product (use REFRESH for that)")
        mapped = kit.map(event.product, context, f"the webhook payload of product {external_id}")
        if mapped.external_id != external_id:
            fail(f"the webhook payload of product {external_id} maps to external id {mapped.external_id!r}")
    if first and second:
        older = max(e.store_updated_at for e in first if e.store_updated_at is not None)
        newer = min(e.store_updated_at for e in second if e.store_updated_at is not None)
        if newer <= older:
            fail(
                f"the second update of product {external_id} parsed with store_updated_at {newer.isoformat()}, not "
                f"after the first update's {older.isoformat()}: a late, older delivery could overwrite the newer "
                "version"
            )


# ---- the store misbehaving -------------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_rate_limits_are_retried(conformance: ConformanceKit) -> None:
    """429 Too Many Requests slow a FULL fetch down but lose nothing."""
    kit = conformance
    sim = await kit.simulator()
    conn = kit.connect(sim)
    context = await kit.context(conn)
    sim.faults.set(every_nth_429=2, retry_after=0.01)
    try:
        got = [p.external_id for p in kit.map_pages(await kit.fetch(conn), context)]
    except StoreError as exc:
        fail(
            f"a FULL fetch gave up under 429 Too Many Requests (every other request, Retry-After 0.01 s): "
            f"{type(exc).__name__}: {exc}; retry them with backoff (the HttpClient from make_http_client does)"
        )
    finally:
        sim.faults.reset()
    if sim.faults.injected_429 == 0:
        fail("the simulator injected no 429: serve the API through Simulator.build_app (the FaultInjector middleware)")
    same_products(got, sim.product_ids(), "a FULL fetch under 429 responses")


@pytest.mark.asyncio
async def test_server_errors_are_retried_then_raised(conformance: ConformanceKit) -> None:
    """A burst of 500s is retried; a store that keeps failing makes the fetch raise a StoreError."""
    kit = conformance
    sim = await kit.simulator()
    conn = kit.connect(sim)
    context = await kit.context(conn)
    sim.faults.set(burst_500=2)
    try:
        got = [p.external_id for p in kit.map_pages(await kit.fetch(conn), context)]
    except StoreError as exc:
        fail(f"a FULL fetch gave up after two 500 responses: {type(exc).__name__}: {exc}; retry 5xx with backoff")
    if sim.faults.injected_500 == 0:
        fail("the simulator injected no 500: serve the API through Simulator.build_app (the FaultInjector middleware)")
    same_products(got, sim.product_ids(), "a FULL fetch after a burst of 500 responses")
    sim.faults.set(burst_500=10_000)
    try:
        pages = await kit.fetch(kit.connect(sim))
    except StoreError:
        return
    except Exception as exc:  # noqa: BLE001 - any other outcome is the finding
        fail(
            f"when the store keeps answering 500, fetch_products raised {type(exc).__name__} ({exc}); it must "
            "raise a StoreError (StoreHTTPError after the retries) so the run fails cleanly"
        )
    finally:
        sim.faults.reset()
    fail(
        f"the store answered every request with 500 but the FULL fetch finished with "
        f"{sum(len(p.items) for p in pages)} products and no error: a store that cannot be read fails the run"
    )
