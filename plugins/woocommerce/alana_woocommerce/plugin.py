"""Entry point: registers the WooCommerce platform adapter with the gateway."""

from __future__ import annotations

from alana_woocommerce.adapter import WooCommerceAdapter
from gateway import hookimpl
from gateway.adapter import PlatformAdapter


@hookimpl
def register_platforms() -> list[type[PlatformAdapter]]:
    return [WooCommerceAdapter]
