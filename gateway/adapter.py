"""The platform adapter: the small interface the sync engine calls for every platform.

A plugin returns one `PlatformAdapter` subclass from its `register_platforms` hook. The engine never
touches a platform's API any other way, so everything a platform does differently lives behind the
methods below. See docs/writing-a-plugin.md for a worked example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from gateway.httpclient import HttpClient
from gateway.model import Product
from gateway.simkit import Simulator

if TYPE_CHECKING:
    from gateway.installflow import FlowConfig, InstallFlow


class ConnectMethod(StrEnum):
    """How a merchant can connect a platform (GraphQL PlatformInfo.connectMethods)."""

    #: Keys the merchant pastes (connectIntegration, checked with check_credentials).
    CREDENTIALS = "CREDENTIALS"
    #: The platform's own install flow (beginConnect; see gateway.installflow).
    INSTALL_FLOW = "INSTALL_FLOW"


@dataclass(frozen=True)
class CredentialField:
    name: str
    label: str
    secret: bool = True
    required: bool = True


@dataclass(frozen=True)
class PlatformInfo:
    id: str
    name: str
    version: str
    capabilities: tuple[str, ...]
    credential_fields: tuple[CredentialField, ...]
    #: What the plugin can offer; INSTALL_FLOW also needs install_flow() to build a flow for the
    #: configuration at hand (gateway.installflow.connect_methods says what is offered right now).
    connect_methods: tuple[ConnectMethod, ...] = (ConnectMethod.CREDENTIALS,)


@dataclass
class Connection:
    """Everything an adapter needs to talk to one connected store.

    `credentials` holds the decrypted credentials the merchant gave plus the secrets the adapter
    returned from `register_webhooks`. `http` is the shared client layer, already bound to this
    integration's concurrency limit and call counter; adapters build their own with
    `make_http_client` when they need a platform-specific `Budget`. `state` is scratch space that lives
    for one run (e.g. a resolved category-name cache).
    """

    integration_id: str
    store_url: str
    credentials: Mapping[str, str]
    http_factory: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    on_call: Any = None

    async def close(self) -> None:
        """Close the HTTP client the adapter built for this connection, if any."""
        client = self.state.pop("http", None)
        if isinstance(client, HttpClient):
            await client.close()


class FetchMode(StrEnum):
    FULL = "FULL"
    SINCE = "SINCE"
    IDS = "IDS"


@dataclass(frozen=True)
class FetchRequest:
    """What to fetch. `cursor` resumes a fetch from a page a previous attempt reached."""

    mode: FetchMode = FetchMode.FULL
    since: datetime | None = None
    ids: tuple[str, ...] = ()
    cursor: str | None = None


@dataclass
class Page:
    """One page of native products.

    `cursor` is the opaque position *after* this page (pass it back in FetchRequest.cursor to resume);
    None on the last page. `total` is how many products the whole fetch will yield, when the store
    says. `missing_ids` lists requested ids the store no longer has (IDS mode): the engine marks those
    removed.
    """

    items: list[dict[str, Any]]
    cursor: str | None = None
    total: int | None = None
    missing_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MappingContext:
    """Store-wide facts a mapper needs besides the product itself."""

    currency: str = "USD"
    default_locale: str = "en"
    extra: Mapping[str, Any] = field(default_factory=dict)


class ChangeKind(StrEnum):
    UPSERT = "UPSERT"
    DELETE = "DELETE"
    #: Something changed but the payload does not carry the product: fetch it by id.
    REFRESH = "REFRESH"


@dataclass(frozen=True)
class WebhookEvent:
    """A verified, parsed delivery.

    `delivery_id` is the dedupe key: the same value for a redelivery of the same change, different
    for two changes (adapters add a body digest where the platform reuses ids).
    """

    delivery_id: str
    topic: str
    kind: ChangeKind
    external_id: str
    product: Mapping[str, Any] | None = None
    store_updated_at: datetime | None = None
    triggered_at: datetime | None = None


@dataclass(frozen=True)
class WebhookRegistration:
    """What `register_webhooks` set up: hook ids to remove later, secrets to keep (encrypted)."""

    hook_ids: tuple[str, ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict)


class HookState(StrEnum):
    """A webhook registration as the store has it now."""

    ACTIVE = "ACTIVE"
    #: Still registered but not delivering (WooCommerce `disabled` after failed deliveries or `paused`,
    #: BigCommerce `is_active: false`).
    DISABLED = "DISABLED"
    #: Gone from the store (Shopify removes failing subscriptions; uninstalls delete them; or deleted by hand).
    MISSING = "MISSING"


@dataclass(frozen=True)
class HookStatus:
    """One topic's registration: its state, the store's hook id (None when missing), and why, in words."""

    topic: str
    state: HookState
    hook_id: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class WebhookRepair:
    """What `repair_webhooks` did: the registration to keep from now on (hook ids may have changed; the
    secrets stay the same) and the topics it re-registered or reactivated."""

    registration: WebhookRegistration
    repaired: tuple[HookStatus, ...] = ()


class PlatformAdapter(ABC):
    """One e-commerce platform. Subclass it, fill in `info`, implement the abstract methods."""

    info: ClassVar[PlatformInfo]

    # ---- connection -------------------------------------------------------------------------
    def http(self, conn: Connection) -> HttpClient:
        """Build the HTTP client for this connection. Override to add auth headers or a Budget."""
        return make_http_client(conn)

    def client(self, conn: Connection) -> HttpClient:
        """The connection's HTTP client, built once by `http` and reused until `conn.close()`."""
        client = conn.state.get("http")
        if client is None:
            client = conn.state["http"] = self.http(conn)
        assert isinstance(client, HttpClient)
        return client

    @abstractmethod
    async def check_credentials(self, conn: Connection) -> None:
        """One cheap call that proves the credentials work; raise StoreAuthError when they don't."""

    async def mapping_context(self, conn: Connection) -> MappingContext:
        """Store-wide facts for the mapper (currency, locales). Called once per run."""
        return MappingContext()

    # ---- reading products -------------------------------------------------------------------
    async def count_products(self, conn: Connection, request: FetchRequest) -> int | None:
        """How many products `fetch_products(request)` will yield, or None when unknown cheaply."""
        return None

    @abstractmethod
    def fetch_products(self, conn: Connection, request: FetchRequest) -> AsyncIterator[Page]:
        """Yield pages of native products; each page's cursor resumes after it."""

    @abstractmethod
    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        """Map one native product (API or webhook shape) to the canonical model.

        Raise gateway.errors.MappingError for a product that cannot be mapped; never drop fields
        silently, and never copy reviews, ratings, sales figures, notes or private metadata.
        """

    # ---- webhooks ---------------------------------------------------------------------------
    async def register_webhooks(self, conn: Connection, callback_url: str) -> WebhookRegistration:
        """Register product created / updated / deleted (and inventory) webhooks on the store."""
        return WebhookRegistration()

    async def remove_webhooks(self, conn: Connection, registration: WebhookRegistration) -> None:
        """Remove what `register_webhooks` registered. Hooks already gone are not an error."""
        return None

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]) -> bool:
        """True when the delivery is authentic (constant-time comparison). Default: reject all."""
        return False

    def webhook_from_store(self, headers: Mapping[str, str], body: bytes, store_url: str) -> bool:
        """True unless the delivery says it comes from a store other than the integration's.

        Called after `verify_webhook` passes, with the integration's store URL. Override it when one
        secret signs deliveries for many stores (Shopify's app secret is shared by every shop that
        installed the app): compare the store the delivery names with `store_url`, or A's genuine
        delivery would be accepted at B's webhook URL. Default: True.
        """
        return True

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent | None:
        """Parse a verified delivery; None for deliveries that carry no product change (pings)."""
        return None

    async def webhook_status(
        self, conn: Connection, registration: WebhookRegistration, callback_url: str
    ) -> list[HookStatus]:
        """The store's view of what `register_webhooks` registered at `callback_url`: one HookStatus per
        topic. Default: [] (nothing to check: the plugin registers no webhooks, or cannot list them)."""
        return []

    async def repair_webhooks(
        self, conn: Connection, registration: WebhookRegistration, callback_url: str
    ) -> WebhookRepair:
        """Re-register what is missing and reactivate what is disabled, keeping the registration's
        secrets so deliveries keep verifying. Default: nothing to repair."""
        return WebhookRepair(registration=registration)

    # ---- connecting through the platform ------------------------------------------------------
    def install_flow(self, config: FlowConfig) -> InstallFlow | None:
        """The platform's install flow for this configuration (app credentials, the gateway's
        endpoints), or None: the plugin has none, or the app is not configured. Declare
        ConnectMethod.INSTALL_FLOW in `info.connect_methods` when it can return one."""
        return None

    # ---- testing ------------------------------------------------------------------------------
    @classmethod
    def simulator(cls) -> type[Simulator] | None:
        """The plugin's simulator class (see gateway.simkit.Simulator), for tests and the demo."""
        return None


def make_http_client(conn: Connection, **kwargs: Any) -> HttpClient:
    """Build the shared client for a connection; the engine's factory adds call counting."""
    if conn.http_factory is not None:
        client: HttpClient = conn.http_factory(conn.store_url, **kwargs)
        return client
    return HttpClient(conn.store_url, on_call=conn.on_call, **kwargs)
