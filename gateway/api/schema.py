"""The GraphQL schema (docs/reference/contract.graphql, plus additions). Resolvers call services."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.scalars import JSON

from gateway.api import limits
from gateway.api.context import Info
from gateway.api.execution import execution_context_class
from gateway.api.guard import QueryGuard
from gateway.api.pagination import create_connection_slice, page_request
from gateway.api.permissions import ACCOUNT
from gateway.api.scalars import SCALAR_OVERRIDES
from gateway.api.types import (
    ActivityConnection,
    ActivityEdge,
    ActivityEntry,
    BeginConnectInput,
    Conflict,
    ConflictConnection,
    ConflictEdge,
    ConnectAttempt,
    ConnectIntegrationInput,
    CredentialField,
    Integration,
    IntegrationEvent,
    PlatformInfo,
    Product,
    ProductConnection,
    ProductEdge,
    ProductEditInput,
    ProductFilter,
    SyncProgress,
    SyncRun,
    SyncRunConnection,
    SyncRunEdge,
    SyncSettingsInput,
)
from gateway.constants import account_channel, run_channel
from gateway.domain import ConflictStatus, EventKind, RunStatus
from gateway.errors import ErrorCode, GatewayError, NotFound
from gateway.events import HealthChanged, RunEvent, run_event
from gateway.model import ProductStatus
from gateway.pagination import PageRequest

log = logging.getLogger(__name__)


def _page(info: Info, first: int | None, after: str | None, default: int = 50) -> PageRequest:
    return page_request(first, after, default=default, maximum=info.context.gw.settings.max_page_size)


def _enum_value(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


@strawberry.type
class Query:
    @strawberry.field(
        description="Installed platform plugins, built-in and third-party alike.", permission_classes=ACCOUNT
    )
    def platforms(self, info: Info) -> list[PlatformInfo]:
        result = []
        for adapter in sorted(info.context.gw.registry.adapters.values(), key=lambda a: a.info.id):
            meta = adapter.info
            result.append(
                PlatformInfo(
                    id=meta.id,
                    name=meta.name,
                    version=meta.version,
                    capabilities=list(meta.capabilities),
                    credential_fields=[
                        CredentialField(name=f.name, label=f.label, secret=f.secret, required=f.required)
                        for f in meta.credential_fields
                    ],
                    connect_methods=list(info.context.gw.flows.methods(adapter)),
                )
            )
        return result

    @strawberry.field(permission_classes=ACCOUNT)
    async def integrations(self, info: Info) -> list[Integration]:
        return [Integration.from_record(d) for d in await info.context.gw.integrations.list(info.context.account_id)]

    @strawberry.field(permission_classes=ACCOUNT)
    async def integration(self, info: Info, id: strawberry.ID) -> Integration | None:
        # Another account's id reads exactly like a missing one: NOT_FOUND, no hint.
        return Integration.from_record(await info.context.gw.integrations.get(info.context.account_id, str(id)))

    @strawberry.field(
        description="Canonical products, newest store change first. Cursor-paginated; `first` is capped "
        "(at least 250 allowed). `search` (case-insensitive) matches a title where the term begins a word "
        '("cot" and "cotton tee" find "Organic Cotton Tee"; "otton" does not) and a SKU from its start.',
        permission_classes=ACCOUNT,
    )
    async def products(
        self,
        info: Info,
        integration_id: strawberry.ID | None = None,
        search: str | None = None,
        status: ProductStatus | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> ProductConnection:
        limits.text(search, "search", info.context.gw.settings.max_name_chars)
        wanted = ProductFilter(
            info.context.account_id, str(integration_id) if integration_id else None, search, _enum_value(status)
        )
        page = await info.context.gw.products.page(
            wanted.account_id,
            _page(info, first, after),
            integration_id=wanted.integration_id,
            search=wanted.search,
            status=wanted.status,
        )
        edges, page_info = create_connection_slice(page, Product.from_record, ProductEdge)
        return ProductConnection(edges=edges, page_info=page_info, _filter=wanted)

    @strawberry.field(permission_classes=ACCOUNT)
    async def product(self, info: Info, id: strawberry.ID) -> Product | None:
        found = await info.context.gw.products.get(info.context.account_id, str(id))
        if found is None:
            raise NotFound("no product with that id", field="id")
        return Product.from_record(found)

    @strawberry.field(permission_classes=ACCOUNT)
    async def sync_run(self, info: Info, id: strawberry.ID) -> SyncRun | None:
        found = await info.context.gw.runs.get(info.context.account_id, str(id))
        if found is None:
            raise NotFound("no sync run with that id", field="id")
        return SyncRun.from_run(found)

    @strawberry.field(description="Sync history, newest first.", permission_classes=ACCOUNT)
    async def sync_runs(
        self, info: Info, integration_id: strawberry.ID, first: int | None = 20, after: str | None = None
    ) -> SyncRunConnection:
        page = _page(info, first, after, 20)
        await info.context.gw.integrations.get(info.context.account_id, str(integration_id))
        runs = await info.context.gw.runs.page(info.context.account_id, str(integration_id), page)
        edges, page_info = create_connection_slice(runs, SyncRun.from_run, SyncRunEdge)
        return SyncRunConnection(edges=edges, page_info=page_info)

    @strawberry.field(permission_classes=ACCOUNT)
    async def conflicts(
        self,
        info: Info,
        integration_id: strawberry.ID | None = None,
        status: ConflictStatus | None = None,
        first: int | None = 50,
        after: str | None = None,
        product_id: strawberry.ID | None = None,
    ) -> ConflictConnection:
        conflicts = await info.context.gw.conflicts.page(
            info.context.account_id,
            str(integration_id) if integration_id else None,
            _enum_value(status),
            _page(info, first, after),
            str(product_id) if product_id else None,
        )
        edges, page_info = create_connection_slice(conflicts, Conflict.from_record, ConflictEdge)
        return ConflictConnection(edges=edges, page_info=page_info)

    @strawberry.field(description="The activity log, newest first.", permission_classes=ACCOUNT)
    async def activity_log(
        self,
        info: Info,
        integration_id: strawberry.ID | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> ActivityConnection:
        entries = await info.context.gw.activity.page(
            info.context.account_id, str(integration_id) if integration_id else None, _page(info, first, after)
        )
        edges, page_info = create_connection_slice(entries, ActivityEntry.from_record, ActivityEdge)
        return ActivityConnection(edges=edges, page_info=page_info)

    @strawberry.field(
        description="A connect attempt started by beginConnect or reconnectIntegration (poll it, or watch "
        "integrationEvents).",
        permission_classes=ACCOUNT,
    )
    async def connect_attempt(self, info: Info, id: strawberry.ID) -> ConnectAttempt | None:
        return ConnectAttempt.from_attempt(await info.context.gw.connect.attempt(info.context.account_id, str(id)))


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Connect a store. The plugin checks the credentials against the store before anything is saved.",
        permission_classes=ACCOUNT,
    )
    async def connect_integration(self, info: Info, input: ConnectIntegrationInput) -> Integration:
        limits.connect_input(info.context.gw.settings, input)
        settings = input.settings
        found = await info.context.gw.integrations.connect(
            info.context.account_id,
            input.platform.strip(),
            input.name,
            input.store_url,
            input.credentials,
            mode=settings.mode if settings else None,
            frequency=settings.frequency if settings else None,
        )
        return Integration.from_record(found)

    @strawberry.mutation(
        description="Connect a store through the platform's own install flow (Shopify OAuth, BigCommerce single-click "
        "app, WooCommerce key approval). The frontend sends the merchant's browser to authorizeUrl; the platform "
        "calls the gateway back, and the integration is created then.",
        permission_classes=ACCOUNT,
    )
    async def begin_connect(self, info: Info, input: BeginConnectInput) -> ConnectAttempt:
        settings = input.settings
        attempt = await info.context.gw.connect.begin(
            info.context.account_id,
            input.platform,
            input.name,
            input.store,
            mode=settings.mode if settings else None,
            frequency=settings.frequency if settings else None,
            return_url=input.return_url,
        )
        return ConnectAttempt.from_attempt(attempt)

    @strawberry.mutation(
        description="The same flow for an existing integration whose credentials were rejected, revoked or expired: "
        "products, edits, conflicts and history are kept. With `credentials` (keys named by the platform's "
        "credentialFields) it reconnects at once with pasted keys, for platforms without an install flow here; the "
        "attempt then comes back CONNECTED, without an authorizeUrl.",
        permission_classes=ACCOUNT,
    )
    async def reconnect_integration(
        self,
        info: Info,
        integration_id: strawberry.ID,
        return_url: str | None = None,
        credentials: JSON | None = None,
    ) -> ConnectAttempt:
        attempt = await info.context.gw.connect.reconnect(
            info.context.account_id, str(integration_id), return_url, credentials
        )
        return ConnectAttempt.from_attempt(attempt)

    @strawberry.mutation(
        description="Claim, for the caller's account, an install that began on the platform's side (an app-store "
        "install); the token comes in the frontend redirect.",
        permission_classes=ACCOUNT,
    )
    async def claim_install(
        self, info: Info, token: str, name: str | None = None, settings: SyncSettingsInput | None = None
    ) -> Integration:
        found = await info.context.gw.connect.claim(
            info.context.account_id,
            token,
            name,
            mode=settings.mode if settings else None,
            frequency=settings.frequency if settings else None,
        )
        return Integration.from_record(found)

    @strawberry.mutation(permission_classes=ACCOUNT)
    async def update_sync_settings(
        self, info: Info, integration_id: strawberry.ID, settings: SyncSettingsInput
    ) -> Integration:
        found = await info.context.gw.integrations.update_settings(
            info.context.account_id,
            str(integration_id),
            settings.mode,
            settings.frequency,
        )
        return Integration.from_record(found)

    @strawberry.mutation(
        description="Sync Now. With productExternalIds, only those products: only they are fetched, written and "
        "counted (changes of other products waiting for Sync Now keep waiting); an id the store does not have is "
        "reported in the summary's errors (NOT_FOUND); an empty list is BAD_USER_INPUT. While a run is queued or "
        "running for the integration, returns that run instead of starting another, with `reused: true`. `full` "
        "forces a full catalog walk.",
        permission_classes=ACCOUNT,
    )
    async def sync_now(
        self,
        info: Info,
        integration_id: strawberry.ID,
        product_external_ids: list[str] | None = None,
        full: bool | None = None,
    ) -> SyncRun:
        limits.ids(info.context.gw.settings, product_external_ids, "productExternalIds")
        run, created = await info.context.gw.syncs.sync_now(
            info.context.account_id, str(integration_id), product_external_ids, full
        )
        return SyncRun.from_run(run, reused=not created)

    @strawberry.mutation(permission_classes=ACCOUNT)
    async def cancel_sync_run(self, info: Info, run_id: strawberry.ID) -> SyncRun:
        return SyncRun.from_run(await info.context.gw.syncs.cancel(info.context.account_id, str(run_id)))

    @strawberry.mutation(
        description="Stops all syncing, removes the webhooks the gateway registered on the store, and deletes "
        "stored credentials.",
        permission_classes=ACCOUNT,
    )
    async def disconnect_integration(self, info: Info, integration_id: strawberry.ID) -> strawberry.ID:
        return strawberry.ID(
            await info.context.gw.integrations.disconnect(info.context.account_id, str(integration_id))
        )

    @strawberry.mutation(
        description="Alana's own change to a product (an enhancement layered over the store's version).",
        permission_classes=ACCOUNT,
    )
    async def edit_product(self, info: Info, product_id: strawberry.ID, input: ProductEditInput) -> Product:
        limits.product_edit(info.context.gw.settings, input)
        values: dict[str, Any] = {
            "title": input.title,
            "description": input.description,
            "tags": list(input.tags) if input.tags is not None else None,
            "attributes": [{"name": a.name, "values": list(a.values), "kind": "attribute"} for a in input.attributes]
            if input.attributes is not None
            else None,
        }
        found = await info.context.gw.conflicts.edit_product(info.context.account_id, str(product_id), values)
        return Product.from_record(found)

    @strawberry.mutation(
        description="Re-apply the Alana change that the store overwrote in this conflict.", permission_classes=ACCOUNT
    )
    async def reapply_alana_change(self, info: Info, conflict_id: strawberry.ID) -> Conflict:
        found = await info.context.gw.conflicts.reapply(info.context.account_id, str(conflict_id))
        return Conflict.from_record(found)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Live progress of one run: the current state at once, then every change; completes after "
        "the run ends.",
        permission_classes=ACCOUNT,
    )
    async def sync_progress(self, info: Info, run_id: strawberry.ID) -> AsyncGenerator[SyncProgress, None]:
        gw = info.context.gw
        account_id = info.context.account_id
        async with gw.hub.listen(run_channel(str(run_id))) as queue:
            # Subscribe first, then read the state: nothing published in between is lost.
            run = await gw.runs.get(account_id, str(run_id))
            if run is None:
                raise NotFound("no sync run with that id", field="runId")
            yield SyncProgress.from_run(run)
            seq = run.progress.seq
            while not run.status.finished:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=5.0)
                    if not isinstance(event, RunEvent):
                        continue
                    latest = event.run
                except TimeoutError:
                    # A quiet channel: re-read the state (covers a Redis blip or a dead worker).
                    found = await gw.runs.get(account_id, str(run_id))
                    if found is None:
                        return
                    latest = found
                if latest.progress.seq <= seq and not latest.status.finished:
                    continue  # older than what was shown already
                run, seq = latest, max(seq, latest.progress.seq)
                yield SyncProgress.from_run(run)

    @strawberry.subscription(
        description="Everything that happens to the account's integrations (or one of them): runs, health "
        "changes, conflicts, product changes. A subscriber first gets the current state: a HEALTH_CHANGED with "
        "each watched integration's health, and RUN_QUEUED or RUN_PROGRESS for a run that is queued or running.",
        permission_classes=ACCOUNT,
    )
    async def integration_events(
        self, info: Info, integration_id: strawberry.ID | None = None
    ) -> AsyncGenerator[IntegrationEvent, None]:
        gw = info.context.gw
        account_id = info.context.account_id
        if integration_id is not None:
            await gw.integrations.get(account_id, str(integration_id))
        async with gw.hub.listen(account_channel(account_id)) as queue:
            # Subscribed first, then the state: an event published in between comes after it.
            if integration_id is not None:
                watched = [await gw.integrations.get(account_id, str(integration_id))]
            else:
                watched = await gw.integrations.list(account_id)
            for integration in watched:
                now = gw.now()
                health = await gw.health.current(integration)
                yield IntegrationEvent.from_event(
                    HealthChanged(account_id=account_id, integration_id=integration.id, at=now, health=health)
                )
                active = await gw.runs.active(integration.id)
                if active is not None:
                    kind = EventKind.RUN_QUEUED if active.status is RunStatus.QUEUED else EventKind.RUN_PROGRESS
                    yield IntegrationEvent.from_event(run_event(kind, active, now))
            while True:
                event = await queue.get()
                if integration_id is not None and event.integration_id != str(integration_id):
                    continue
                yield IntegrationEvent.from_event(event)


class ErrorCodes(SchemaExtension):
    """Every error leaves with extensions.code; unexpected ones are logged and masked as INTERNAL."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None) or []
        for error in errors:
            annotate(error)


def annotate(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    extensions = dict(error.extensions or {})
    if isinstance(original, GatewayError):
        extensions.update(original.extensions)
    elif "code" not in extensions:
        if original is None or isinstance(original, GraphQLError) or not error.path:
            # Parse, validation and variable-coercion errors: the request itself is wrong.
            extensions["code"] = ErrorCode.BAD_USER_INPUT.value
        else:
            log.error("unexpected error in a resolver", exc_info=original)
            extensions["code"] = ErrorCode.INTERNAL.value
            error.message = "internal error: the gateway could not complete this request"
    error.extensions = extensions
    return error


class GatewaySchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            annotate(error)
            if error.extensions and error.extensions.get("code") == ErrorCode.INTERNAL.value:
                log.error("GraphQL error: %s", error.message)


def build_schema(max_depth: int = 12, execution: type[Any] | None = None) -> strawberry.Schema:
    """The served schema; `execution`: another execution context than gateway.api.execution's (tests)."""
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[lambda: QueryGuard(max_depth=max_depth), ErrorCodes],
        scalar_overrides=SCALAR_OVERRIDES,
        execution_context_class=execution or execution_context_class(),
    )


schema = build_schema()

__all__ = ["JSON", "build_schema", "schema"]
