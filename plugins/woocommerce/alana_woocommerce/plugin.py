"""Entry point: registers the WooCommerce platform adapter with the gateway."""

from __future__ import annotations

from gateway import hookimpl
from gateway.adapter import PlatformAdapter

from alana_woocommerce.adapter import WooCommerceAdapter


@hookimpl
def register_platforms() -> list[type[PlatformAdapter]]:
    return [WooCommerceAdapter]
