"""Entry point: registers the BigCommerce platform adapter with the gateway."""

from __future__ import annotations

from alana_bigcommerce.adapter import BigCommerceAdapter
from gateway import hookimpl
from gateway.adapter import PlatformAdapter


@hookimpl
def register_platforms() -> list[type[PlatformAdapter]]:
    return [BigCommerceAdapter]
