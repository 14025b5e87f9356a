"""Entry point: registers the Shopify platform adapter with the gateway."""

from __future__ import annotations

from alana_shopify.adapter import ShopifyAdapter
from gateway import hookimpl
from gateway.adapter import PlatformAdapter


@hookimpl
def register_platforms() -> list[type[PlatformAdapter]]:
    return [ShopifyAdapter]
