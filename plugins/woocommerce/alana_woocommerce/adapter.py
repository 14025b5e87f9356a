"""The WooCommerce platform adapter: wires the client, mapper, webhooks and simulator together.

Connection options understood (Connection.options), all optional:
    auth                 "basic" | "query": force how credentials travel (default: Basic over HTTPS,
                         query parameters over plain HTTP; see client.py)
    query_string_auth    True: same as auth="query", for servers that strip the Authorization header
    per_page             products per listing request (1-100, default 100)
    variation_concurrency  variation requests in flight per connection (default 8)
    max_retries, backoff_base, backoff_cap, concurrency, timeout: passed to the HttpClient
"""

from __future__ import annotations

import base64
import logging
import secrets as secrets_module
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from alana_woocommerce import __version__, hookhealth, mapper, webhooks
from alana_woocommerce.client import (
    DEFAULT_VARIATION_CONCURRENCY,
    MAX_PER_PAGE,
    WooClient,
    api_prefix,
    use_query_auth,
)
from gateway.adapter import (
    Connection,
    ConnectMethod,
    CredentialField,
    FetchRequest,
    HookStatus,
    MappingContext,
    Page,
    PlatformAdapter,
    PlatformInfo,
    WebhookEvent,
    WebhookRegistration,
    WebhookRepair,
    make_http_client,
)
from gateway.errors import StoreAuthError
from gateway.httpclient import HttpClient, PauseBudget
from gateway.model import Product

if TYPE_CHECKING:
    from gateway.installflow import FlowConfig, InstallFlow
    from gateway.simkit import Simulator

log = logging.getLogger(__name__)

#: HttpClient settings a connection may override through its options.
HTTP_OPTIONS = ("max_retries", "backoff_base", "backoff_cap", "concurrency", "timeout")
USER_AGENT = f"AlanaIntegrationGateway/{__version__} (WooCommerce)"
HOOK_NAME = "Alana Integration Gateway"


class WooCommerceAdapter(PlatformAdapter):
    info = PlatformInfo(
        id="woocommerce",
        name="WooCommerce",
        version=__version__,
        capabilities=("webhooks", "incremental", "fetch_by_ids"),
        credential_fields=(
            CredentialField("consumer_key", "Consumer key"),
            CredentialField("consumer_secret", "Consumer secret"),
        ),
        connect_methods=(ConnectMethod.CREDENTIALS, ConnectMethod.INSTALL_FLOW),
    )

    # ---- connection ------------------------------------------------------------------------------
    def http(self, conn: Connection) -> HttpClient:
        key, secret = _credentials(conn)
        kwargs: dict[str, Any] = {k: conn.options[k] for k in HTTP_OPTIONS if k in conn.options}
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if not use_query_auth(conn.store_url, conn.options):
            # A header rather than aiohttp.BasicAuth, which aiohttp 3.14 deprecates.
            token = base64.b64encode(f"{key}:{secret}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        # WooCommerce publishes no quota; a host's limiter says 429 / 503 with Retry-After. The pause it
        # asks for is shared by every client of the store, on every process (gateway.httpclient.PauseBudget).
        return make_http_client(conn, headers=headers, budget=PauseBudget("woocommerce"), **kwargs)

    def woo(self, conn: Connection) -> WooClient:
        """The connection's WooCommerce client (built once per connection, like the HttpClient)."""
        http = self.client(conn)
        client = conn.state.get("woo")
        # Rebuilt when the connection was closed and reopened: never hold on to a closed HttpClient.
        if not isinstance(client, WooClient) or client.http is not http:
            key, secret = _credentials(conn)
            query = use_query_auth(conn.store_url, conn.options)
            client = conn.state["woo"] = WooClient(
                http,
                prefix=api_prefix(conn.store_url),
                query_credentials={"consumer_key": key, "consumer_secret": secret} if query else None,
                per_page=int(conn.options.get("per_page", MAX_PER_PAGE)),
                variation_concurrency=int(conn.options.get("variation_concurrency", DEFAULT_VARIATION_CONCURRENCY)),
            )
        return client

    async def check_credentials(self, conn: Connection) -> None:
        await self.woo(conn).check()

    async def mapping_context(self, conn: Connection) -> MappingContext:
        currency = await self.woo(conn).currency()
        if currency is None:
            log.warning("store currency unavailable; assuming USD")
            return MappingContext(currency="USD")
        return MappingContext(currency=currency)

    # ---- reading products ------------------------------------------------------------------------
    async def count_products(self, conn: Connection, request: FetchRequest) -> int | None:
        return await self.woo(conn).count(request)

    async def fetch_products(self, conn: Connection, request: FetchRequest) -> AsyncIterator[Page]:
        async for page in self.woo(conn).fetch(request):
            yield page

    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        return mapper.map_product(native, context)

    # ---- webhooks ----------------------------------------------------------------------------------
    async def register_webhooks(self, conn: Connection, callback_url: str) -> WebhookRegistration:
        """Create product.created/updated/deleted hooks sharing one fresh secret.

        Hooks an earlier registration left pointing at the same callback URL are removed first, so
        reconnecting never doubles deliveries. If one creation fails, the ones made are removed again.
        """
        client = self.woo(conn)
        for hook in await client.list_webhooks():
            if hook.get("delivery_url") == callback_url and str(hook.get("name", "")).startswith(HOOK_NAME):
                await client.delete_webhook(str(hook["id"]))
        secret = secrets_module.token_urlsafe(32)
        created: list[str] = []
        try:
            for topic in webhooks.TOPICS:
                created.append(
                    await client.create_webhook(
                        name=f"{HOOK_NAME} ({topic})",
                        topic=topic,
                        delivery_url=callback_url,
                        secret=secret,
                    )
                )
        except BaseException:
            for hook_id in created:
                try:
                    await client.delete_webhook(hook_id)
                except Exception:  # noqa: BLE001 - the original failure is the one to report
                    log.warning("could not remove a half-registered webhook", extra={"hook_id": hook_id})
            raise
        return WebhookRegistration(hook_ids=tuple(created), secrets={webhooks.SECRET_KEY: secret})

    async def remove_webhooks(self, conn: Connection, registration: WebhookRegistration) -> None:
        client = self.woo(conn)
        for hook_id in registration.hook_ids:
            await client.delete_webhook(hook_id)

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]) -> bool:
        return webhooks.verify(headers, body, secrets)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent | None:
        return webhooks.parse(headers, body)

    async def webhook_status(
        self, conn: Connection, registration: WebhookRegistration, callback_url: str
    ) -> list[HookStatus]:
        return await hookhealth.status(self.woo(conn), callback_url, HOOK_NAME)

    async def repair_webhooks(
        self, conn: Connection, registration: WebhookRegistration, callback_url: str
    ) -> WebhookRepair:
        return await hookhealth.repair(self.woo(conn), registration, callback_url, HOOK_NAME)

    # ---- connecting through WooCommerce ----------------------------------------------------------
    def install_flow(self, config: FlowConfig) -> InstallFlow | None:
        """Key approval at /wc-auth/v1/authorize (alana_woocommerce.install): needs no app credentials."""
        from alana_woocommerce.install import WooCommerceInstallFlow

        return WooCommerceInstallFlow(config)

    # ---- testing -----------------------------------------------------------------------------------
    @classmethod
    def simulator(cls) -> type[Simulator] | None:
        from alana_woocommerce.simulator import WooCommerceSimulator

        return WooCommerceSimulator


def _credentials(conn: Connection) -> tuple[str, str]:
    key = conn.credentials.get("consumer_key") or ""
    secret = conn.credentials.get("consumer_secret") or ""
    if not key or not secret:
        raise StoreAuthError("the consumer key and consumer secret are both required", field="consumer_key")
    return key, secret
