"""The plugin manager: entry points, allowlist, duplicates and broken plugins never stop start-up."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import hookimpl
from gateway.adapter import PlatformAdapter
from gateway.model import Product
from gateway.plugins import load_plugins
from gateway.testing import toy


def test_the_three_platforms_load_through_entry_points() -> None:
    registry = load_plugins()
    assert {"shopify", "woocommerce", "bigcommerce"} <= set(registry.adapters)
    assert registry.load_errors == []
    versions = {p.name: p.version for p in registry.plugins}
    assert versions["shopify"] == "0.1.0"


def test_allowlist_limits_what_loads() -> None:
    registry = load_plugins(["woocommerce"])
    assert set(registry.adapters) == {"woocommerce"}


def test_duplicate_platform_id_is_reported_and_skipped() -> None:
    twin = types.ModuleType("toy_twin")

    @hookimpl
    def register_platforms() -> list[type[PlatformAdapter]]:
        return [toy.ToyAdapter]

    twin.register_platforms = register_platforms  # type: ignore[attr-defined]
    registry = load_plugins(extra=[toy, twin])
    assert registry.adapters["toy"].__class__ is toy.ToyAdapter
    assert any("toy" in e and "already provided" in e for e in registry.load_errors)


@pytest.fixture
def broken_distribution(tmp_path: Path) -> Iterator[Path]:
    """A real installed distribution (dist-info on sys.path) whose plugin module fails to import."""
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[alana_gateway]\nbroken = broken_plugin_mod\n")
    (tmp_path / "broken_plugin_mod.py").write_text("raise ImportError('missing dependency frobnicate')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("broken_plugin_mod", None)


def test_a_plugin_that_fails_to_import_is_skipped_with_a_clear_error(broken_distribution: Path) -> None:
    registry = load_plugins()
    assert "woocommerce" in registry.adapters
    assert any("broken" in e and "frobnicate" in e for e in registry.load_errors)


def test_process_product_hook_can_enrich_a_mapped_product() -> None:
    enricher = types.ModuleType("enricher")

    @hookimpl
    def process_product(platform: str, native: dict[str, object], product: Product) -> Product | None:
        return product.model_copy(update={"tags": [*product.tags, f"from-{platform}"]})

    enricher.process_product = process_product  # type: ignore[attr-defined]
    registry = load_plugins([], extra=[enricher])
    from datetime import UTC, datetime

    base = Product(external_id="1", title="t", store_updated_at=datetime.now(UTC))
    assert registry.process_product("toy", {}, base).tags == ["from-toy"]


def enricher(name: str, **marks: bool) -> types.ModuleType:
    """A plugin module whose process_product appends a tag (and shows what it was given)."""
    module = types.ModuleType(name)

    @hookimpl(**marks)
    def process_product(platform: str, native: dict[str, object], product: Product) -> Product | None:
        return product.model_copy(update={"tags": [*product.tags, name]})

    module.process_product = process_product  # type: ignore[attr-defined]
    return module


def test_two_enrichers_run_in_order_each_seeing_the_previous_result() -> None:
    from datetime import UTC, datetime

    base = Product(external_id="1", title="t", store_updated_at=datetime.now(UTC))
    registry = load_plugins([], extra=[enricher("first"), enricher("second")])
    assert registry.process_product("toy", {}, base).tags == ["first", "second"]

    keeper = types.ModuleType("keeper")

    @hookimpl
    def process_product(platform: str, native: dict[str, object], product: Product) -> Product | None:
        return None  # keeps what it was given: the change before it stays

    keeper.process_product = process_product  # type: ignore[attr-defined]
    marked = [enricher("late", trylast=True), enricher("a"), keeper, enricher("early", tryfirst=True), enricher("b")]
    registry = load_plugins([], extra=marked)
    assert registry.process_product("toy", {}, base).tags == ["early", "a", "b", "late"]
