"""GraphQL types: thin, explicit views over the stored documents (nothing exposed by default)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from gateway.adapter import ConnectMethod
from gateway.api.context import Info
from gateway.domain import ActivityKind, ConflictStatus, HealthAction, HealthStatus, SyncFrequency, SyncMode
from gateway.domain import EventKind as IntegrationEventKind
from gateway.domain import RunStatus as SyncRunStatus
from gateway.domain import Trigger as SyncTrigger
from gateway.errors import BadInput
from gateway.model import Availability, ProductStatus
from gateway.products import effective
from gateway.runs import percent, summary_of
from gateway.storage.mongo import Doc

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
strawberry.enum(IntegrationEventKind, name="IntegrationEventKind")
strawberry.enum(ConnectMethod, name="ConnectMethod")

if TYPE_CHECKING:
    from gateway.api.connect_types import ConnectAttempt


# ---- cursors -------------------------------------------------------------------------------------
def encode_cursor(at: datetime | None, doc_id: str) -> str:
    raw = json.dumps([at.isoformat() if at else None, doc_id])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str | None, field: str = "after") -> tuple[datetime | None, str] | None:
    if not cursor:
        return None
    try:
        at, doc_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return (datetime.fromisoformat(at) if at else None, str(doc_id))
    except (ValueError, TypeError):
        raise BadInput("the cursor is not one this API returned", field=field) from None


def check_first(first: int, maximum: int, field: str = "first") -> int:
    if first < 1 or first > maximum:
        raise BadInput(f"{field} must be between 1 and {maximum}", field=field)
    return first


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


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
    def from_message(message: Doc) -> SyncProgress:
        processed = int(message.get("processed") or 0)
        total = message.get("total")
        return SyncProgress(
            run_id=strawberry.ID(message["run_id"]),
            status=SyncRunStatus(message["status"]),
            processed=processed,
            total=total,
            percent=100.0 if message["status"] == "SUCCEEDED" else percent(processed, total),
            message=message.get("message"),
        )


@strawberry.type
class SyncError:
    external_id: str | None
    code: str
    message: str


@strawberry.type
class SyncSummary:
    added: int
    updated: int
    unchanged: int
    removed: int
    failed: int
    conflicts: int
    errors: list[SyncError]


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
    kind: str = strawberry.field(description="FULL, INCREMENTAL or PRODUCTS")
    failure: str | None = strawberry.field(description="Why the run failed, in words a merchant understands")

    @staticmethod
    def from_doc(doc: Doc) -> SyncRun:
        from gateway.syncs import progress_message

        summary = summary_of(doc)
        return SyncRun(
            id=strawberry.ID(doc["_id"]),
            integration_id=strawberry.ID(doc["integration_id"]),
            trigger=SyncTrigger(doc["trigger"]),
            status=SyncRunStatus(doc["status"]),
            queued_at=doc["queued_at"],
            started_at=doc.get("started_at"),
            finished_at=doc.get("finished_at"),
            progress=SyncProgress.from_message(progress_message(doc)),
            summary=None
            if summary is None
            else SyncSummary(
                added=summary["added"],
                updated=summary["updated"],
                unchanged=summary["unchanged"],
                removed=summary["removed"],
                failed=summary["failed"],
                conflicts=summary["conflicts"],
                errors=[
                    SyncError(external_id=e.get("external_id"), code=e["code"], message=e["message"])
                    for e in summary["errors"]
                ],
            ),
            kind=doc.get("kind", "FULL"),
            failure=doc.get("failure"),
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
    def from_parts(
        status: str,
        reason: str | None,
        last_sync_at: datetime | None,
        next_sync_at: datetime | None,
        last_run: Doc | None,
        action: str | None = None,
    ) -> SyncHealth:
        return SyncHealth(
            status=HealthStatus(status),
            reason=reason,
            last_sync_at=last_sync_at,
            next_sync_at=next_sync_at,
            last_run=SyncRun.from_doc(last_run) if last_run else None,
            action=HealthAction(action) if action else None,
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
    _doc: strawberry.Private[Doc]

    @staticmethod
    def from_doc(doc: Doc) -> Integration:
        webhooks = doc.get("webhooks", {})
        return Integration(
            id=strawberry.ID(doc["_id"]),
            platform=doc["platform"],
            name=doc["name"],
            store_url=doc["store_url"],
            created_at=doc["created_at"],
            settings=SyncSettings(
                mode=SyncMode(doc["settings"]["mode"]), frequency=SyncFrequency(doc["settings"]["frequency"])
            ),
            webhooks=WebhookStatus(
                state=webhooks.get("state", "NONE"),
                error=webhooks.get("error"),
                last_delivery_at=webhooks.get("last_delivery_at"),
            ),
            credential_names=list(doc.get("credential_names", [])),
            _doc=doc,
        )

    @strawberry.field
    async def health(self, info: Info) -> SyncHealth:
        health = await info.context.integrations.health(self._doc)
        return SyncHealth.from_parts(
            health.status.value,
            health.reason,
            health.last_sync_at,
            health.next_sync_at,
            health.last_run,
            health.action.value if health.action else None,
        )

    @strawberry.field
    async def product_count(self, info: Info) -> int:
        return await info.context.gw.products.count(self._doc["account_id"], self._doc["_id"])

    @strawberry.field(description="Sync history, newest first.")
    async def sync_runs(self, info: Info, first: int | None = 10) -> list[SyncRun]:
        first = check_first(10 if first is None else first, 100)
        return [SyncRun.from_doc(d) for d in await info.context.gw.runs.latest(self._doc["_id"], first)]

    @strawberry.field(description="The queued or running run, if any.")
    async def current_run(self, info: Info) -> SyncRun | None:
        run = await info.context.gw.runs.active(self._doc["_id"])
        return SyncRun.from_doc(run) if run else None

    @strawberry.field(description="Store changes announced by webhooks and not yet applied.")
    def pending_changes(self) -> int:
        return int(self._doc.get("pending_changes", 0))

    @strawberry.field(description="Calls made to the store's API in the last 24 hours.")
    async def api_calls_last24h(self, info: Info) -> int:
        return await info.context.integrations.api_calls_24h(self._doc["_id"])


# ---- products ------------------------------------------------------------------------------------
@strawberry.type
class Money:
    amount: str
    currency_code: str

    @staticmethod
    def of(value: Doc | None) -> Money | None:
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
    def of(doc: Doc | None) -> Identifiers:
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


def _variant(v: Doc) -> Variant:
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
    translations: list[Translation]
    images: list[Image]
    price: Money | None
    compare_at_price: Money | None
    inventory_quantity: int | None
    categories: list[str]
    tags: list[str]
    attributes: list[Attribute]
    variants: list[Variant]
    sku: str | None
    identifiers: Identifiers
    store_updated_at: datetime
    synced_at: datetime
    alana_edits: list[FieldEdit]
    store_version: JSON
    removed: bool = strawberry.field(description="Gone from the store (kept for history)")
    warnings: list[str] = strawberry.field(description="Non-fatal problems found while mapping")

    @staticmethod
    def from_doc(doc: Doc) -> Product:
        store = doc["store"]
        eff = effective(doc)
        identifiers = store.get("identifiers") or {}
        sku = identifiers.get("sku") or next((v.get("sku") for v in store.get("variants", []) if v.get("sku")), None)
        return Product(
            id=strawberry.ID(doc["_id"]),
            integration_id=strawberry.ID(doc["integration_id"]),
            external_id=doc["external_id"],
            status=ProductStatus(store["status"]),
            availability=Availability(store.get("availability", "IN_STOCK")),
            title=eff["title"],
            description=eff.get("description"),
            handle=store.get("handle"),
            vendor=store.get("vendor"),
            product_type=store.get("product_type"),
            translations=[Translation(**t) for t in store.get("translations", [])],
            images=[
                Image(url=i["url"], alt=i.get("alt"), position=i.get("position", 0)) for i in store.get("images", [])
            ],
            price=Money.of(store.get("price")),
            compare_at_price=Money.of(store.get("compare_at_price")),
            inventory_quantity=store.get("inventory_quantity"),
            categories=list(store.get("categories", [])),
            tags=list(eff.get("tags", [])),
            attributes=[Attribute(name=a["name"], values=list(a.get("values", []))) for a in eff.get("attributes", [])],
            variants=[_variant(v) for v in store.get("variants", [])],
            sku=sku,
            identifiers=Identifiers.of(identifiers),
            store_updated_at=doc["store_updated_at"],
            synced_at=doc.get("synced_at") or doc["store_updated_at"],
            alana_edits=[
                FieldEdit(field=o["field"], value=o["value"], edited_at=o["edited_at"])
                for o in doc.get("overlays", [])
                if o.get("active")
            ],
            store_version=store,
            removed=bool(doc.get("removed")),
            warnings=list(store.get("warnings", [])),
        )


@strawberry.type
class ProductEdge:
    cursor: str
    node: Product


@strawberry.type
class ProductConnection:
    edges: list[ProductEdge]
    page_info: PageInfo
    total_count: int


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
    def from_doc(doc: Doc) -> Conflict:
        return Conflict(
            id=strawberry.ID(doc["_id"]),
            integration_id=strawberry.ID(doc["integration_id"]),
            product_id=strawberry.ID(doc["product_id"]),
            field=doc["field"],
            store_value=doc.get("store_value"),
            alana_value=doc.get("alana_value"),
            detected_at=doc["detected_at"],
            status=ConflictStatus(doc["status"]),
            run_id=strawberry.ID(doc["run_id"]) if doc.get("run_id") else None,
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
    def from_doc(doc: Doc) -> ActivityEntry:
        def opt(key: str) -> strawberry.ID | None:
            return strawberry.ID(doc[key]) if doc.get(key) else None

        return ActivityEntry(
            id=strawberry.ID(doc["_id"]),
            integration_id=opt("integration_id"),
            at=doc["at"],
            kind=ActivityKind(doc["kind"]),
            message=doc["message"],
            run_id=opt("run_id"),
            product_id=opt("product_id"),
            conflict_id=opt("conflict_id"),
        )


@strawberry.type
class ActivityEdge:
    cursor: str
    node: ActivityEntry


@strawberry.type
class ActivityConnection:
    edges: list[ActivityEdge]
    page_info: PageInfo


@strawberry.type
class IntegrationEvent:
    integration_id: strawberry.ID
    at: datetime
    kind: IntegrationEventKind
    run: SyncRun | None
    health: SyncHealth | None
    conflict: Conflict | None
    product_id: strawberry.ID | None
    connect_attempt: Annotated[ConnectAttempt, strawberry.lazy("gateway.api.connect_types")] | None = strawberry.field(
        default=None, description="Set for CONNECT_FINISHED."
    )

    @staticmethod
    def from_message(message: Doc) -> IntegrationEvent:
        from gateway.api.connect_types import ConnectAttempt

        health = message.get("health")
        return IntegrationEvent(
            integration_id=strawberry.ID(message["integration_id"]),
            at=message["at"],
            kind=IntegrationEventKind(message["kind"]),
            run=SyncRun.from_doc(message["run"]) if message.get("run") else None,
            health=SyncHealth.from_parts(
                health["status"],
                health.get("reason"),
                health.get("last_sync_at"),
                health.get("next_sync_at"),
                None,
                health.get("action"),
            )
            if health
            else None,
            conflict=Conflict.from_doc(message["conflict"]) if message.get("conflict") else None,
            product_id=strawberry.ID(message["product_id"]) if message.get("product_id") else None,
            connect_attempt=ConnectAttempt.from_doc(message["connect_attempt"])
            if message.get("connect_attempt")
            else None,
        )


# ---- inputs --------------------------------------------------------------------------------------
@strawberry.input
class SyncSettingsInput:
    mode: SyncMode | None = None
    frequency: SyncFrequency | None = None


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
