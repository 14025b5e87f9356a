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

    :param platform: The platform id (``"shopify"``, ``"woocommerce"``, ...).
    :param native: The product as the store sent it (a copy: changing it changes nothing).
    :param product: The canonical product as the previous implementation left it (the first one
        gets ``map_product``'s result).
    :returns: A replacement product, or ``None`` to keep ``product`` as it is.

    Called for every product of every sync run and every webhook, after the platform's
    ``map_product``. Unlike most hooks (every implementation gets the same arguments and the results
    are collected), the implementations form a pipeline: they run one after another in registration
    order (built-in plugins, then entry points by name, then ``GATEWAY_EXTRA_PLUGINS`` in the order
    given; ``tryfirst=True`` runs an implementation before the others, ``trylast=True`` after them),
    and each receives the product the previous one returned. Hook wrappers are not called.

    An exception fails only this product: it becomes a SyncError in the run summary. Keep it fast.
    """
