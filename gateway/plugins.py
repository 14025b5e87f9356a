"""The plugin manager: built-in plugins first, then entry points, filtered by an allowlist.

Loading is forgiving by design: a plugin that fails to import, or claims a platform id already taken,
is reported in `load_errors` (and the log) and skipped; one broken plugin never stops the gateway.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from gateway import hookspecs, metrics
from gateway.adapter import PlatformAdapter
from gateway.errors import NotFound
from gateway.model import Product

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "alana_gateway"
#: Core behaviour shipped as plugins, registered before any entry point (none yet: the three
#: platforms ship as separate distributions, exactly like a third party's).
DEFAULT_PLUGINS: tuple[str, ...] = ()


@dataclass
class LoadedPlugin:
    name: str
    version: str
    platforms: list[str] = field(default_factory=list)


@dataclass
class PluginRegistry:
    """The platforms this process can talk to, and what went wrong loading the rest."""

    manager: pluggy.PluginManager
    adapters: dict[str, PlatformAdapter] = field(default_factory=dict)
    plugins: list[LoadedPlugin] = field(default_factory=list)
    load_errors: list[str] = field(default_factory=list)

    def adapter(self, platform: str) -> PlatformAdapter:
        try:
            return self.adapters[platform]
        except KeyError:
            raise NotFound(
                f"no platform plugin {platform!r} is installed; installed: {', '.join(sorted(self.adapters))}",
                field="platform",
            ) from None

    def process_product(self, platform: str, native: Mapping[str, Any], product: Product) -> Product:
        """Run the `process_product` pipeline (see gateway.hookspecs): each plugin gets the product the
        previous one returned, in registration order."""
        impls = self.manager.hook.process_product.get_hookimpls()
        if not impls:
            return product  # the common case: nothing to call, nothing to copy, on every product of every run
        # pluggy keeps [trylast..., the rest in registration order, tryfirst...] and calls it backwards;
        # a pipeline runs forwards: tryfirst ones, the rest, then trylast ones, each in registration order.
        called = [i for i in impls if not (i.hookwrapper or i.wrapper)]
        first = [i for i in called if i.tryfirst]
        last = [i for i in reversed(called) if i.trylast]
        middle = [i for i in called if not i.tryfirst and not i.trylast]
        payload = dict(native)
        for impl in (*first, *middle, *last):
            result = impl.function(platform=platform, native=payload, product=product)
            if result is None:
                continue
            if not isinstance(result, Product):
                raise TypeError(f"plugin {impl.plugin_name!r}: process_product returned a {type(result).__name__}")
            product = result
        return product


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("alana_gateway")
    pm.add_hookspecs(hookspecs)
    return pm


def _allowed(name: str, allowlist: set[str] | None) -> bool:
    return allowlist is None or name in allowlist


def load_plugins(allowlist: Iterable[str] | None = None, extra: Iterable[ModuleType | object] = ()) -> PluginRegistry:
    """Build a registry from built-in plugins, entry points and `extra` objects (tests)."""
    allowed = {a.strip() for a in allowlist if a.strip()} if allowlist is not None else None
    registry = PluginRegistry(manager=_new_manager())
    for module_name in DEFAULT_PLUGINS:
        _register(registry, importlib.import_module(module_name), module_name, "builtin", allowed)
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if not _allowed(ep.name, allowed):
            continue
        version = ep.dist.version if ep.dist is not None else "unknown"
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure must not take the gateway down
            message = f"plugin {ep.name!r} ({ep.value}) failed to import and was skipped: {exc!r}"
            log.error(message)
            registry.load_errors.append(message)
            continue
        _register(registry, plugin, ep.name, version, None)
    for obj in extra:
        name = getattr(obj, "__name__", type(obj).__name__)
        _register(registry, obj, name, getattr(obj, "__version__", "dev"), None)
    return registry


def _register(registry: PluginRegistry, plugin: object, name: str, version: str, allowed: set[str] | None) -> None:
    if not _allowed(name, allowed):
        return
    try:
        registry.manager.register(plugin, name=name)
    except ValueError as exc:
        registry.load_errors.append(f"plugin {name!r} could not be registered: {exc}")
        return
    loaded = LoadedPlugin(name=name, version=version)
    hook = registry.manager.subset_hook_caller(
        "register_platforms", remove_plugins=[p for p in registry.manager.get_plugins() if p is not plugin]
    )
    try:
        results = hook()
    except Exception as exc:  # noqa: BLE001
        registry.manager.unregister(plugin)
        registry.load_errors.append(f"plugin {name!r} failed in register_platforms and was skipped: {exc!r}")
        log.error(registry.load_errors[-1])
        return
    for classes in results:
        for cls in classes or ():
            platform_id = cls.info.id
            if platform_id in registry.adapters:
                message = (
                    f"plugin {name!r} registers platform {platform_id!r}, which is already provided by "
                    f"another plugin; the second one was skipped"
                )
                log.error(message)
                registry.load_errors.append(message)
                continue
            registry.adapters[platform_id] = cls()
            loaded.platforms.append(platform_id)
            metrics.register_platform(platform_id)
    registry.plugins.append(loaded)
