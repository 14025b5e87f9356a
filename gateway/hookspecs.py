"""Every hook a gateway plugin can implement.

A plugin is a module (or object) with functions decorated by `gateway.hookimpl`, found through the
`alana_gateway` entry-point group. Platform plugins implement `register_platforms`; the others are
optional extension points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from gateway.adapter import PlatformAdapter
    from gateway.model import Product

hookspec = pluggy.HookspecMarker("alana_gateway")


# ---- platforms -----------------------------------------------------------------------------------
@hookspec
def register_platforms() -> list[type[PlatformAdapter]]:  # type: ignore[empty-body]
    """Return the platform adapter classes this plugin provides.

    Called once at start-up. Each class carries its `info` (id, name, version, capabilities,
    credential fields); two plugins returning the same platform id is a start-up error, and the
    second one is not loaded.
    """


# ---- products ------------------------------------------------------------------------------------
@hookspec
def process_product(platform: str, native: dict[str, object], product: Product) -> Product | None:
    """Adjust a freshly mapped product before it is hashed and stored.

    Receives the platform id, the native payload and the canonical product; return a replacement
    product or None to keep it. Every implementation runs, in registration order, each seeing the
    previous one's result. Keep it fast: it runs for every product of every run.
    """
