"""The plugin conformance suite itself: a conforming toy platform passes every check, deliberately broken
ones fail with a message that names the problem, and `pytest --gateway-platform=<id>` runs it anywhere."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pytest_asyncio import fixture as async_fixture

from gateway.adapter import ChangeKind, Connection, FetchRequest, MappingContext, Page, WebhookEvent
from gateway.errors import StoreError
from gateway.model import Image, Money, Product
from gateway.testing import conformance
from gateway.testing.conformance import ConformanceKit, ConformanceOptions
from gateway.testing.kit import corrupt
from gateway.testing.toy import ToyAdapter, ToySimulator

Check = Callable[[ConformanceKit], Awaitable[None]]
CHECKS: dict[str, Check] = {
    name: getattr(conformance, name) for name in conformance.__all__ if name.startswith("test_")
}


class ReferenceToySimulator(ToySimulator):
    """The toy store, honouring the create_product keywords of the simulator contract."""

    conformance_fields = frozenset({"title", "price", "sku", "variants", "bare", "private_text"})

    def create_product(self, **fields: Any) -> str:
        pid = str(self.next_id)
        self.next_id += 1
        bare = bool(fields.get("bare"))
        price = str(fields.get("price", "9.50"))
        product: dict[str, Any] = {
            "id": pid,
            "name": fields.get("title", f"Toy product {pid}"),
            "price": price,
            "tags": [] if bare else ["toy"],
            "updated_at": self.tick(),
            "variants": [
                {
                    "id": f"{pid}-{n}",
                    "sku": None if bare else fields.get("sku", f"TOY-{pid}-{n}"),
                    "price": price,
                    "stock": 3,
                }
                for n in range(int(fields.get("variants", 1)))
            ],
        }
        if not bare:
            product["description"] = "<p>A toy.</p>"
        if "private_text" in fields:
            product["internal_note"] = fields["private_text"]
        self.catalog[pid] = product
        self._notify("upsert", product)
        return pid


OPTIONS = ConformanceOptions(connection_options={"page_size": 10}, catalog_size=30)


@async_fixture
async def make_kit() -> AsyncIterator[Callable[[ToyAdapter], ConformanceKit]]:
    kits: list[ConformanceKit] = []

    def make(adapter: ToyAdapter) -> ConformanceKit:
        kits.append(ConformanceKit(adapter, ReferenceToySimulator, OPTIONS))
        return kits[-1]

    yield make
    for kit in kits:
        await kit.aclose()


@pytest.mark.parametrize("name", sorted(CHECKS))
async def test_a_conforming_platform_passes_every_check(
    name: str, make_kit: Callable[[ToyAdapter], ConformanceKit]
) -> None:
    kit = make_kit(ToyAdapter())
    try:
        await CHECKS[name](kit)
    except pytest.skip.Exception as skipped:
        # The toy maps no barcodes, so only the identifiers check may stop early.
        assert name == "test_identifiers" and "barcode" in str(skipped), str(skipped)


# ---- deliberately broken platforms -------------------------------------------------------------------
class FirstPageOfVariants(ToyAdapter):
    """Keeps only the first 100 variants of each product, as if it never asked for page two."""

    async def fetch_products(self, conn: Connection, request: FetchRequest) -> AsyncIterator[Page]:
        async for page in super().fetch_products(conn, request):
            for item in page.items:
                item["variants"] = item.get("variants", [])[:100]
            yield page


class TrustsAnySignature(ToyAdapter):
    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]) -> bool:
        return True


class IgnoresCursor(ToyAdapter):
    """Starts over on every fetch: a resumed run reads the catalog again."""

    def fetch_products(self, conn: Connection, request: FetchRequest) -> AsyncIterator[Page]:
        return super().fetch_products(conn, FetchRequest(request.mode, request.since, request.ids))


class IgnoresSince(ToyAdapter):
    def fetch_products(self, conn: Connection, request: FetchRequest) -> AsyncIterator[Page]:
        return super().fetch_products(conn, FetchRequest(cursor=request.cursor))


class FloatMoney(ToyAdapter):
    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        product = super().map_product(native, context)
        for holder in (product, *product.variants):
            if holder.price is not None:
                holder.price = Money(amount=Decimal(float(holder.price.amount)), currency=holder.price.currency)
        return product


class SwallowsStoreErrors(ToyAdapter):
    async def fetch_products(self, conn: Connection, request: FetchRequest) -> AsyncIterator[Page]:
        try:
            async for page in super().fetch_products(conn, request):
                yield page
        except StoreError:
            return


class AcceptsAnyCredentials(ToyAdapter):
    async def check_credentials(self, conn: Connection) -> None:
        return None


class ProductIdAsDeliveryId(ToyAdapter):
    """Uses the product id as the dedupe key, so a second change to a product looks like a replay."""

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent | None:
        event = super().parse_webhook(headers, body)
        if event is None or event.kind is ChangeKind.DELETE:
            return event
        return WebhookEvent(
            delivery_id=f"product-{event.external_id}",
            topic=event.topic,
            kind=event.kind,
            external_id=event.external_id,
            product=event.product,
            store_updated_at=event.store_updated_at,
        )


class LeaksInternalNotes(ToyAdapter):
    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        product = super().map_product(native, context)
        if native.get("internal_note"):
            product.tags.append(str(native["internal_note"]))
        return product


class StripsHtmlFromNames(ToyAdapter):
    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        product = super().map_product(native, context)
        product.title = product.title.replace("<b>", "").replace("</b>", "")
        return product


class UnscaledMoney(ToyAdapter):
    """Assembles its money around the model's constructor, keeping the store's "9.5"."""

    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        product = super().map_product(native, context)
        if product.price is not None:
            product.price = Money.model_construct(amount=Decimal("9.5"), currency=product.price.currency)
        return product


class OneBasedImages(ToyAdapter):
    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        product = super().map_product(native, context)
        product.images = [
            Image(url="https://toy.test/a.jpg", position=1),
            Image(url="https://toy.test/b.jpg", position=2),
        ]
        return product


class PathAsHandle(ToyAdapter):
    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        product = super().map_product(native, context)
        product.handle = f"/{product.handle}/"
        return product


class MicrosecondTimes(ToyAdapter):
    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        product = super().map_product(native, context)
        product.store_updated_at = product.store_updated_at.replace(microsecond=123456)
        return product


BROKEN = [
    (
        FirstPageOfVariants,
        "test_variants_past_the_first_page",
        "has 260 variants in the store but the adapter returned 100 (FULL fetch): variants past the first page were "
        "dropped",
    ),
    (
        TrustsAnySignature,
        "test_webhook_signatures",
        "verify_webhook accepted a delivery whose signature was made with the wrong secret",
    ),
    (IgnoresCursor, "test_full_fetch_pages_and_resumes", "resuming a FULL fetch from the first page's cursor"),
    (IgnoresSince, "test_incremental_fetch", "products that last changed before then"),
    (FloatMoney, "test_money_is_exact", "that is a float's rounding error"),
    (UnscaledMoney, "test_canonical_shape", "price is '9.5' but USD amounts have 2 decimal(s)"),
    (OneBasedImages, "test_canonical_shape", "images positions are [1, 2]: positions count 0, 1, ..."),
    (PathAsHandle, "test_canonical_shape", "handle '/toy-product-1/' is not a slug"),
    (MicrosecondTimes, "test_canonical_shape", "has microseconds: timestamps are kept to the millisecond"),
    (
        SwallowsStoreErrors,
        "test_server_errors_are_retried_then_raised",
        "the store answered every request with 500 but the FULL fetch finished",
    ),
    (
        AcceptsAnyCredentials,
        "test_credentials_good_and_bad",
        "check_credentials accepted wrong credentials (every value changed)",
    ),
    (ProductIdAsDeliveryId, "test_replayed_and_out_of_order_deliveries", "parsed to the same delivery_id"),
    (
        LeaksInternalNotes,
        "test_never_synced_fields_stay_out",
        "text stored only in never-synced fields (notes, private metadata) reached the canonical product at 'tags[1]'",
    ),
    (
        StripsHtmlFromNames,
        "test_unicode_and_html_in_names",
        "names must keep unicode and HTML exactly as the store holds them",
    ),
]


@pytest.mark.parametrize(("adapter_class", "check", "message"), BROKEN, ids=[b[0].__name__ for b in BROKEN])
async def test_a_broken_platform_fails_with_a_message_naming_the_problem(
    adapter_class: type[ToyAdapter], check: str, message: str, make_kit: Callable[[ToyAdapter], ConformanceKit]
) -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        await CHECKS[check](make_kit(adapter_class()))
    assert message in str(failed.value), str(failed.value)


# ---- the pytest plugin ---------------------------------------------------------------------------------
def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_gateway_platform_option_runs_the_suite_from_anywhere(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "--gateway-platform=woocommerce", "-k", "simulator_contract or fetch_by_ids")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout


def test_gateway_platform_option_names_a_platform_that_is_not_installed(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "--gateway-platform=nosuchplatform", "-k", "simulator_contract")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no installed plugin provides platform 'nosuchplatform'" in result.stdout, result.stdout


def test_a_corrupted_value_differs_even_to_a_case_insensitive_check() -> None:
    # Shopify compares its hex HMAC lower-cased: a digest ending in "a" must not come back ending in "A".
    for value in ("3f9a", "3f9A", "3f9b", "7", "a", ""):
        assert corrupt(value).lower() != value.lower()
