"""The Shopify platform adapter (skeleton: the client, mapper and simulator arrive in their issue)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from gateway.adapter import (
    Connection,
    CredentialField,
    FetchRequest,
    MappingContext,
    Page,
    PlatformAdapter,
    PlatformInfo,
)
from gateway.model import Product

from alana_shopify import __version__


class ShopifyAdapter(PlatformAdapter):
    info = PlatformInfo(
        id="shopify",
        name="Shopify",
        version=__version__,
        capabilities=("webhooks", "incremental", "bulk", "fetch_by_ids", "translations"),
        credential_fields=(CredentialField("access_token", "Admin API access token"), CredentialField("client_secret", "App client secret (verifies webhooks)"),),
    )

    async def check_credentials(self, conn: Connection) -> None:
        raise NotImplementedError

    async def fetch_products(self, conn: Connection, request: FetchRequest) -> AsyncIterator[Page]:
        raise NotImplementedError
        yield  # pragma: no cover

    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        raise NotImplementedError
