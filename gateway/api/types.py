"""GraphQL types: thin, explicit views over the stored documents (nothing exposed by default)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from gateway.activity import ActivityRecord
from gateway.adapter import ConnectMethod
from gateway.api.context import Info
from gateway.api.cost import IN_MEMORY
from gateway.api.pagination import PageInfo, check_first
from gateway.conflict_store import ConflictRecord
from gateway.connectstore import Attempt, AttemptKind, AttemptView
from gateway.domain import (
    ActivityKind,
    ChangeOutcome,
    ConflictStatus,
    ConnectStatus,
    HealthAction,
    HealthStatus,
    RunKind,
    SyncFrequency,
    SyncMode,
)
from gateway.domain import EventKind as IntegrationEventKind
from gateway.domain import RunStatus as SyncRunStatus
from gateway.domain import Trigger as SyncTrigger
from gateway.events import ConflictDetected, ConnectFinished, Event, HealthChanged, ProductChanged, RunEvent
from gateway.health import Health
from gateway.integration_store import Integration as IntegrationRecord
from gateway.model import Availability, ProductStatus
from gateway.products import SEARCH_COUNT_LIMIT, StoredProduct
from gateway.runs import Run, RunSummary

# The domain's enums are exposed as they are, registered under the contract's names.
strawberry.enum(SyncMode, name="SyncMode")
strawberry.enum(SyncFrequency, name="SyncFrequency", description="How often automatic sync checks the store")
strawberry.enum(HealthStatus, name="HealthStatus", description="GREEN healthy, YELLOW pending, RED error")
strawberry.enum(
    HealthAction,
    name="HealthAction",
    description="SYNC_NOW: changes wait for Sync Now; RECONNECT: credentials rejected or app uninstalled; "
    "REREGISTER_WEBHOOKS: the store stopped delivering webhooks; RETRY: the last run failed for a passing reason; "
    "WAIT: work is queued or running; CONTACT_SUPPORT: nothing the merchant can do.",
)
strawberry.enum(SyncTrigger, name="SyncTrigger")
strawberry.enum(SyncRunStatus, name="SyncRunStatus")
strawberry.enum(ProductStatus, name="ProductStatus")
strawberry.enum(Availability, name="Availability")
strawberry.enum(ConflictStatus, name="ConflictStatus")
strawberry.enum(ActivityKind, name="ActivityKind")
strawberry.enum(ChangeOutcome, name="ChangeOutcome", description="What applying one store change did to its product")
strawberry.enum(IntegrationEventKind, name="IntegrationEventKind")
strawberry.enum(ConnectMethod, name="ConnectMethod")
strawberry.enum(ConnectStatus, name="ConnectStatus")


# ---- platforms -----------------------------------------------------------------------------------
@strawberry.type
class CredentialField:
    name: str
    label: str
    secret: bool
    required: bool


@strawberry.type
class PlatformInfo:
    id: str
    name: str
    version: str
    capabilities: list[str]
    credential_fields: list[CredentialField]
    connect_methods: list[ConnectMethod] = strawberry.field(
        description="How a merchant can connect this platform: CREDENTIALS (connectIntegration) and/or INSTALL_FLOW "
        "(beginConnect)."
    )


# ---- runs ----------------------------------------------------------------------------------------
@strawberry.type
class SyncProgress:
    run_id: strawberry.ID
    status: SyncRunStatus
    processed: int
    total: int | None
    percent: float | None
    message: str | None

    @staticmethod
    def from_run(run: Run) -> SyncProgress:
        return SyncProgress(
            run_id=strawberry.ID(run.id),
            status=run.status,
            processed=run.progress.processed,
            total=run.progress.total,
            percent=100.0 if run.status is SyncRunStatus.SUCCEEDED else run.progress.percent,
            message=run.progress.message,
        )


@strawberry.type(
    description="One entry of a run's summary: a product that failed (externalId set; counted in `failed`), a "
    "chosen product the store does not have (NOT_FOUND; not counted), or, without externalId, why the run "
    "failed or stopped."
)
class SyncError:
    external_id: str | None
    code: str = strawberry.field(
        description="Run-level (no externalId; the run's `failure` says the same in words): STORE_UNREACHABLE "
        "(the store could not be reached: connection, timeouts, 5xx after retries), STORE_ERROR (the store "
        "answered something unexpected), CREDENTIALS_REJECTED (reconnect the store), RATE_LIMITED (the store kept "
        "throttling after every retry), CANCELLED (cancelled on request; what was saved is kept), DISCONNECTED, "
        "INTERNAL, REMOVALS_SKIPPED (a full run could not tell which products vanished; the next one marks them). "
        "Per product: NOT_FOUND (a chosen product the store does not have), MAPPING_FAILED, INVALID_PRODUCT, or "
        "a platform's own code (e.g. BAD_PRICE)."
    )
    message: str


@strawberry.type
class AppliedChange:
    external_id: str
    outcome: ChangeOutcome


@strawberry.type(
    description="The store changes that waited for Sync Now (manual mode) and that this run applied before it "
    "read the store; they are included in the summary's counts."
)
class PendingChangesApplied:
    count: int = strawberry.field(description="Change notifications applied (what Integration.pendingChanges counted)")
    products: list[AppliedChange] = strawberry.field(
        description="The products they touched and what became of each (the first 200)"
    )


@strawberry.type
class SyncSummary:
    added: int
    updated: int
    unchanged: int
    removed: int
    failed: int
    conflicts: int
    errors: list[SyncError]
    pending_changes_applied: PendingChangesApplied | None = strawberry.field(
        description="Set on a Sync Now that applied changes which waited for it (manual mode); null otherwise."
    )

    @staticmethod
    def from_summary(summary: RunSummary) -> SyncSummary:
        c, held = summary.counts, summary.held
        return SyncSummary(
            added=c.added,
            updated=c.updated,
            unchanged=c.unchanged,
            removed=c.removed,
            failed=c.failed,
            conflicts=c.conflicts,
            errors=[SyncError(external_id=e.external_id, code=e.code, message=e.message) for e in summary.errors],
            pending_changes_applied=None
            if held is None or not held.applied
            else PendingChangesApplied(
                count=held.applied,
                products=[AppliedChange(external_id=a.external_id, outcome=a.outcome) for a in held.changes],
            ),
        )


@strawberry.type
class SyncRun:
    id: strawberry.ID
    integration_id: strawberry.ID
    trigger: SyncTrigger
    status: SyncRunStatus
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: SyncProgress
    summary: SyncSummary | None
    kind: str = strawberry.field(
        description="FULL, INCREMENTAL or PRODUCTS; DIGEST for the hour's changes applied from store notifications "
        "(trigger WEBHOOK: one digest per integration per hour, its counts growing as changes arrive)"
    )
    failure: str | None = strawberry.field(
        description="Why the run failed or was cancelled, in words a merchant understands (its summary's errors "
        "carry the same with a code)"
    )
    reused: bool = strawberry.field(
        default=False,
        description="True when syncNow returned a run that was already queued or running instead of starting the "
        "one asked for (its kind and product ids say what it does); false everywhere else.",
    )

    @staticmethod
    def from_run(run: Run, *, reused: bool = False) -> SyncRun:
        summary = run.summary
        return SyncRun(
            id=strawberry.ID(run.id),
            integration_id=strawberry.ID(run.integration_id),
            trigger=run.trigger,
            status=run.status,
            queued_at=run.queued_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            progress=SyncProgress.from_run(run),
            summary=None if summary is None else SyncSummary.from_summary(summary),
            kind=run.kind.value,
            failure=run.failure,
            reused=reused,
        )


@strawberry.type
class SyncRunEdge:
    cursor: str
    node: SyncRun


@strawberry.type
class SyncRunConnection:
    edges: list[SyncRunEdge]
    page_info: PageInfo


# ---- integrations --------------------------------------------------------------------------------
@strawberry.type
class SyncSettings:
    mode: SyncMode
    frequency: SyncFrequency


@strawberry.type
class SyncHealth:
    status: HealthStatus
    reason: str | None
    last_sync_at: datetime | None
    next_sync_at: datetime | None
    last_run: SyncRun | None
    action: HealthAction | None = strawberry.field(
        description="What the merchant can do about a YELLOW or RED light; the frontend renders it as a button or "
        "a hint. Null when GREEN."
    )

    @staticmethod
    def from_health(health: Health) -> SyncHealth:
        return SyncHealth(
            status=health.status,
            reason=health.reason,
            last_sync_at=health.last_sync_at,
            next_sync_at=health.next_sync_at,
            last_run=SyncRun.from_run(health.last_run) if health.last_run else None,
            action=health.action,
        )


@strawberry.type
class WebhookStatus:
    state: str
    error: str | None
    last_delivery_at: datetime | None


@strawberry.type
class Integration:
    id: strawberry.ID
    platform: str
    name: str
    store_url: str
    created_at: datetime
    settings: SyncSettings
    webhooks: WebhookStatus
    credential_names: list[str] = strawberry.field(description="Names of the stored credentials (never values)")
    _record: strawberry.Private[IntegrationRecord]

    @staticmethod
    def from_record(integration: IntegrationRecord) -> Integration:
        return Integration(
            id=strawberry.ID(integration.id),
            platform=integration.platform,
            name=integration.name,
            store_url=integration.store_url,
            created_at=integration.created_at,
            settings=SyncSettings(mode=integration.settings.mode, frequency=integration.settings.frequency),
            webhooks=WebhookStatus(
                state=integration.webhooks.state.value,
                error=integration.webhooks.error,
                last_delivery_at=integration.webhooks.last_delivery_at,
            ),
            credential_names=list(integration.credential_names),
            _record=integration,
        )

    @strawberry.field
    async def health(self, info: Info) -> SyncHealth:
        loaders = info.context.loaders
        # The newest two runs usually hold the last finished one (only one run is ever queued or running);
        # when webhook digests came after it, it is read on its own.
        recent, active = await asyncio.gather(
            loaders.recent.load(loaders.recent_runs(self._record, 2)), loaders.active.load(self._record.id)
        )
        last_finished = next((run for run in recent if not run.active and run.kind is not RunKind.DIGEST), None)
        if last_finished is None and any(run.kind is RunKind.DIGEST for run in recent):
            last_finished = await loaders.last_finished.load(loaders.recent_runs(self._record, 1))
        return SyncHealth.from_health(info.context.gw.integrations.health_of(self._record, last_finished, active))

    @strawberry.field(description="Products synced from this store and not removed (kept as products are written).")
    async def product_count(self, info: Info) -> int:
        counts = await info.context.loaders.counts.load(self._record.id)
        return counts.total if counts.account_id in (None, self._record.account_id) else 0

    @strawberry.field(description="Sync history, newest first.")
    async def sync_runs(self, info: Info, first: int | None = 10) -> list[SyncRun]:
        first = check_first(10 if first is None else first, 100)
        loaders = info.context.loaders
        return [SyncRun.from_run(r) for r in await loaders.recent.load(loaders.recent_runs(self._record, first))]

    @strawberry.field(description="The queued or running run, if any.")
    async def current_run(self, info: Info) -> SyncRun | None:
        run = await info.context.loaders.active.load(self._record.id)
        return SyncRun.from_run(run) if run else None

    @strawberry.field(description="Store changes announced by webhooks and not yet applied.")
    def pending_changes(self) -> int:
        return self._record.pending_changes

    @strawberry.field(description="Calls made to the store's API in the last 24 hours.")
    async def api_calls_last24h(self, info: Info) -> int:
        return await info.context.loaders.api_calls.load(self._record.id)


# ---- products ------------------------------------------------------------------------------------
@strawberry.type
class Money:
    amount: str
    currency_code: str

    @staticmethod
    def of(value: Mapping[str, Any] | None) -> Money | None:
        if not value:
            return None
        return Money(amount=str(value["amount"]), currency_code=value["currency"])


@strawberry.type
class Translation:
    locale: str
    field: str
    value: str


@strawberry.type
class Image:
    url: str
    alt: str | None
    position: int


@strawberry.type
class Attribute:
    name: str
    values: list[str]


@strawberry.type
class Identifiers:
    sku: str | None
    upc: str | None
    gtin: str | None
    ean: str | None
    isbn: str | None
    mpn: str | None
    warnings: list[str]

    @staticmethod
    def of(doc: Mapping[str, Any] | None) -> Identifiers:
        doc = doc or {}
        return Identifiers(
            sku=doc.get("sku"),
            upc=doc.get("upc"),
            gtin=doc.get("gtin"),
            ean=doc.get("ean"),
            isbn=doc.get("isbn"),
            mpn=doc.get("mpn"),
            warnings=list(doc.get("warnings", [])),
        )


@strawberry.type
class OptionValue:
    name: str
    value: str


@strawberry.type
class Variant:
    external_id: str
    title: str
    sku: str | None
    barcode: str | None
    identifiers: Identifiers
    price: Money | None
    compare_at_price: Money | None
    inventory_quantity: int | None
    availability: Availability
    options: list[OptionValue]
    image_url: str | None


@strawberry.type
class FieldEdit:
    field: str
    value: JSON | None
    edited_at: datetime


def _variant(v: Mapping[str, Any]) -> Variant:
    return Variant(
        external_id=v["external_id"],
        title=v.get("title") or "",
        sku=v.get("sku"),
        barcode=v.get("barcode"),
        identifiers=Identifiers.of(v.get("identifiers")),
        price=Money.of(v.get("price")),
        compare_at_price=Money.of(v.get("compare_at_price")),
        inventory_quantity=v.get("inventory_quantity"),
        availability=Availability(v.get("availability", "IN_STOCK")),
        options=[OptionValue(name=o["name"], value=o["value"]) for o in v.get("options", [])],
        image_url=v.get("image_url"),
    )


def _nested(resolver: Any) -> Any:
    """A field computed from what its object already holds (no read): costed as a plain field."""
    return strawberry.field(resolver=resolver, metadata={IN_MEMORY: True})


# The nested fields of a product, read from the stored product only when a query selects them: a page of
# 50 products would otherwise build every variant, image and edit of each for nothing.
def _translations(root: Product) -> list[Translation]:
    return [Translation(**t) for t in root._stored.store.get("translations", [])]


def _images(root: Product) -> list[Image]:
    return [
        Image(url=i["url"], alt=i.get("alt"), position=i.get("position", 0))
        for i in root._stored.store.get("images", [])
    ]


def _attributes(root: Product) -> list[Attribute]:
    return [
        Attribute(name=a["name"], values=list(a.get("values", [])))
        for a in root._stored.effective.get("attributes", [])
    ]


def _variants(root: Product) -> list[Variant]:
    return [_variant(v) for v in root._stored.store.get("variants", [])]


def _identifiers(root: Product) -> Identifiers:
    return Identifiers.of(root._stored.store.get("identifiers") or {})


def _alana_edits(root: Product) -> list[FieldEdit]:
    return [FieldEdit(field=o.field, value=o.value, edited_at=o.edited_at) for o in root._stored.overlays if o.active]


def _store_version(root: Product) -> JSON:
    # The store version is the canonical product as JSON (gateway.model.Product.to_document()).
    store: JSON = dict(root._stored.store)  # type: ignore[assignment]  # served as the JSON scalar
    return store


@strawberry.type
class Product:
    id: strawberry.ID
    integration_id: strawberry.ID
    external_id: str
    status: ProductStatus
    availability: Availability
    title: str
    description: str | None
    handle: str | None
    vendor: str | None
    product_type: str | None
    translations: list[Translation] = _nested(_translations)
    images: list[Image] = _nested(_images)
    price: Money | None
    compare_at_price: Money | None
    inventory_quantity: int | None
    categories: list[str]
    tags: list[str]
    attributes: list[Attribute] = _nested(_attributes)
    variants: list[Variant] = _nested(_variants)
    sku: str | None
    identifiers: Identifiers = _nested(_identifiers)
    store_updated_at: datetime
    synced_at: datetime
    alana_edits: list[FieldEdit] = _nested(_alana_edits)
    store_version: JSON = _nested(_store_version)
    removed: bool = strawberry.field(description="Gone from the store (kept for history)")
    warnings: list[str] = strawberry.field(description="Non-fatal problems found while mapping")
    _stored: strawberry.Private[StoredProduct]

    @staticmethod
    def from_record(product: StoredProduct) -> Product:
        store = product.store
        eff = product.effective
        identifiers = store.get("identifiers") or {}
        sku = identifiers.get("sku") or next((v.get("sku") for v in store.get("variants", []) if v.get("sku")), None)
        return Product(
            id=strawberry.ID(product.id),
            integration_id=strawberry.ID(product.integration_id),
            external_id=product.external_id,
            status=ProductStatus(store["status"]),
            availability=Availability(store.get("availability", "IN_STOCK")),
            title=eff["title"],
            description=eff.get("description"),
            handle=store.get("handle"),
            vendor=store.get("vendor"),
            product_type=store.get("product_type"),
            price=Money.of(store.get("price")),
            compare_at_price=Money.of(store.get("compare_at_price")),
            inventory_quantity=store.get("inventory_quantity"),
            categories=list(store.get("categories", [])),
            tags=list(eff.get("tags", [])),
            sku=sku,
            store_updated_at=product.store_updated_at,
            synced_at=product.synced_at or product.store_updated_at,
            removed=product.removed,
            warnings=list(store.get("warnings", [])),
            _stored=product,
        )


@strawberry.type
class ProductEdge:
    cursor: str
    node: Product


@dataclass(frozen=True)
class ProductFilter:
    """What a `products` query asked for (its totalCount is read only when selected)."""

    account_id: str
    integration_id: str | None
    search: str | None
    status: str | None


@strawberry.type
class ProductConnection:
    edges: list[ProductEdge]
    page_info: PageInfo
    _filter: strawberry.Private[ProductFilter]

    @strawberry.field(
        description="How many products match: kept counts, read without a scan. With `search`, matches are counted "
        f"up to {SEARCH_COUNT_LIMIT:,} (more read as {SEARCH_COUNT_LIMIT:,})."
    )
    async def total_count(self, info: Info) -> int:
        f = self._filter
        return await info.context.gw.products.total(
            f.account_id, integration_id=f.integration_id, search=f.search, status=f.status
        )


# ---- conflicts and activity ----------------------------------------------------------------------
@strawberry.type
class Conflict:
    id: strawberry.ID
    integration_id: strawberry.ID
    product_id: strawberry.ID
    field: str
    store_value: JSON | None
    alana_value: JSON | None
    detected_at: datetime
    status: ConflictStatus
    run_id: strawberry.ID | None

    @staticmethod
    def from_record(conflict: ConflictRecord) -> Conflict:
        return Conflict(
            id=strawberry.ID(conflict.id),
            integration_id=strawberry.ID(conflict.integration_id),
            product_id=strawberry.ID(conflict.product_id),
            field=conflict.field,
            store_value=conflict.store_value,
            alana_value=conflict.alana_value,
            detected_at=conflict.detected_at,
            status=conflict.status,
            run_id=strawberry.ID(conflict.run_id) if conflict.run_id else None,
        )


@strawberry.type
class ConflictEdge:
    cursor: str
    node: Conflict


@strawberry.type
class ConflictConnection:
    edges: list[ConflictEdge]
    page_info: PageInfo


@strawberry.type
class ActivityEntry:
    id: strawberry.ID
    integration_id: strawberry.ID | None
    at: datetime
    kind: ActivityKind
    message: str
    run_id: strawberry.ID | None
    product_id: strawberry.ID | None
    conflict_id: strawberry.ID | None

    @staticmethod
    def from_record(entry: ActivityRecord) -> ActivityEntry:
        def opt(value: str | None) -> strawberry.ID | None:
            return strawberry.ID(value) if value else None

        return ActivityEntry(
            id=strawberry.ID(entry.id),
            integration_id=opt(entry.integration_id),
            at=entry.at,
            kind=entry.kind,
            message=entry.message,
            run_id=opt(entry.run_id),
            product_id=opt(entry.product_id),
            conflict_id=opt(entry.conflict_id),
        )


@strawberry.type
class ActivityEdge:
    cursor: str
    node: ActivityEntry


@strawberry.type
class ActivityConnection:
    edges: list[ActivityEdge]
    page_info: PageInfo


# ---- connect attempts ----------------------------------------------------------------------------
@strawberry.type(description="One run through a platform's install flow (beginConnect or reconnectIntegration).")
class ConnectAttempt:
    id: strawberry.ID
    platform: str
    status: ConnectStatus
    expires_at: datetime
    error: str | None = strawberry.field(description="Why it did not connect, in a merchant's words (FAILED, EXPIRED).")
    _view: strawberry.Private[AttemptView]

    @staticmethod
    def from_view(view: AttemptView) -> ConnectAttempt:
        return ConnectAttempt(
            id=strawberry.ID(view.id),
            platform=view.platform,
            status=view.status,
            expires_at=view.expires_at,
            error=view.error,
            _view=view,
        )

    @staticmethod
    def from_attempt(attempt: Attempt) -> ConnectAttempt:
        return ConnectAttempt.from_view(attempt.view())

    @strawberry.field(description="Where to send the merchant's browser; null once the attempt has ended.")
    def authorize_url(self, info: Info) -> str | None:
        if self.status is not ConnectStatus.PENDING or not self._view.startable:
            return None
        return info.context.gw.connect.start_url(self.platform, str(self.id))

    @strawberry.field(description="The connected (or reconnected) integration, once status is CONNECTED.")
    async def integration(self, info: Info) -> Integration | None:
        integration_id = self._view.integration_id
        if self.status is not ConnectStatus.CONNECTED or not integration_id:
            return None
        found = await info.context.gw.integration_store.get(info.context.account_id, integration_id)
        return Integration.from_record(found) if found else None

    @strawberry.field(
        description="Set when a connect FAILED because the store is already connected in this account (one store "
        "is one integration): that integration; reconnect it (reconnectIntegration) instead."
    )
    async def existing_integration(self, info: Info) -> Integration | None:
        integration_id = self._view.integration_id
        if self.status is not ConnectStatus.FAILED or self._view.kind is AttemptKind.RECONNECT or not integration_id:
            return None
        found = await info.context.gw.integration_store.get(info.context.account_id, integration_id)
        return Integration.from_record(found) if found else None


@strawberry.type
class IntegrationEvent:
    integration_id: strawberry.ID
    at: datetime
    kind: IntegrationEventKind
    run: SyncRun | None
    health: SyncHealth | None
    conflict: Conflict | None
    product_id: strawberry.ID | None
    connect_attempt: ConnectAttempt | None = strawberry.field(default=None, description="Set for CONNECT_FINISHED.")

    @staticmethod
    def from_event(event: Event) -> IntegrationEvent:
        """Every event kind's GraphQL shape, in one place."""
        return IntegrationEvent(
            integration_id=strawberry.ID(event.integration_id),
            at=event.at,
            kind=event.kind,
            run=SyncRun.from_run(event.run) if isinstance(event, RunEvent) else None,
            health=SyncHealth.from_health(event.health) if isinstance(event, HealthChanged) else None,
            conflict=Conflict.from_record(event.conflict) if isinstance(event, ConflictDetected) else None,
            product_id=strawberry.ID(event.product_id) if isinstance(event, ProductChanged) else None,
            connect_attempt=ConnectAttempt.from_view(event.attempt) if isinstance(event, ConnectFinished) else None,
        )


# ---- inputs --------------------------------------------------------------------------------------
@strawberry.input
class SyncSettingsInput:
    mode: SyncMode | None = None
    frequency: SyncFrequency | None = None


@strawberry.input
class BeginConnectInput:
    platform: str
    name: str
    store: str | None = strawberry.field(
        default=None,
        description="Shopify: the shop (name.myshopify.com, or a simulator's URL); WooCommerce: the site URL; "
        "BigCommerce: optional (the merchant picks the store on BigCommerce's side).",
    )
    settings: SyncSettingsInput | None = None
    return_url: str | None = strawberry.field(
        default=None,
        description="Where the merchant's browser lands afterwards; must be on an allowed frontend origin. The "
        "gateway appends connectAttempt=<id>&status=<ConnectStatus>.",
    )


@strawberry.input
class ConnectIntegrationInput:
    platform: str
    name: str
    store_url: str = strawberry.field(
        description="The base URL the plugin talks to: the WooCommerce site, https://{shop}.myshopify.com, or "
        "https://api.bigcommerce.com/stores/{hash}; a proxy or simulator URL works the same way."
    )
    credentials: JSON = strawberry.field(
        description="Keys named by the platform's credentialFields, e.g. shopify {access_token, client_secret}; "
        "woocommerce {consumer_key, consumer_secret}; bigcommerce {access_token, client_secret}."
    )
    settings: SyncSettingsInput | None = None


@strawberry.input
class AttributeInput:
    name: str
    values: list[str]


@strawberry.input(description="Fields Alana may edit: at least these.")
class ProductEditInput:
    title: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    attributes: list[AttributeInput] | None = None
