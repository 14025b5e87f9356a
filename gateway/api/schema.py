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
from gateway.api.connect_types import BeginConnectInput, ConnectAttempt
from gateway.api.context import Info
from gateway.api.guard import QueryGuard
from gateway.api.scalars import SCALAR_OVERRIDES
from gateway.api.types import (
    ActivityConnection,
    ActivityEdge,
    ActivityEntry,
    Conflict,
    ConflictConnection,
    ConflictEdge,
    ConnectIntegrationInput,
    CredentialField,
    Integration,
    IntegrationEvent,
    PageInfo,
    PlatformInfo,
    Product,
    ProductConnection,
    ProductEdge,
    ProductEditInput,
    SyncProgress,
    SyncRun,
    SyncRunConnection,
    SyncRunEdge,
    SyncSettingsInput,
    check_first,
    decode_cursor,
    encode_cursor,
)
from gateway.conflicts import ConflictService
from gateway.connect import ConnectService
from gateway.domain import ConflictStatus, RunStatus
from gateway.errors import ErrorCode, GatewayError, NotFound
from gateway.events import account_channel, run_channel
from gateway.flows import methods as connect_methods
from gateway.model import ProductStatus
from gateway.syncs import SyncService, progress_message

log = logging.getLogger(__name__)


def _first(info: Info, first: int | None, default: int = 50) -> int:
    return check_first(default if first is None else first, info.context.gw.settings.max_page_size)


def _enum_value(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


@strawberry.type
class Query:
    @strawberry.field(description="Installed platform plugins, built-in and third-party alike.")
    def platforms(self, info: Info) -> list[PlatformInfo]:
        _ = info.context.account_id
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
                    connect_methods=list(connect_methods(info.context.gw, adapter)),
                )
            )
        return result

    @strawberry.field
    async def integrations(self, info: Info) -> list[Integration]:
        return [Integration.from_doc(d) for d in await info.context.integrations.list(info.context.account_id)]

    @strawberry.field
    async def integration(self, info: Info, id: strawberry.ID) -> Integration | None:
        # Another account's id reads exactly like a missing one: NOT_FOUND, no hint.
        return Integration.from_doc(await info.context.integrations.get(info.context.account_id, str(id)))

    @strawberry.field(
        description="Canonical products, newest store change first. Cursor-paginated; `first` is capped "
        "(at least 250 allowed)."
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
        gw = info.context.gw
        limits.text(search, "search", gw.settings.max_name_chars)
        first = _first(info, first)
        query = gw.products.list_filter(
            info.context.account_id,
            str(integration_id) if integration_id else None,
            search,
            _enum_value(status),
        )
        total = await gw.db.products.count_documents(query)
        position = decode_cursor(after)
        page_query = dict(query)
        if position is not None:
            at, pid = position
            keyset = {"$or": [{"store_updated_at": {"$lt": at}}, {"store_updated_at": at, "_id": {"$lt": pid}}]}
            page_query = {"$and": [query, keyset]}
        cursor = gw.db.products.find(page_query).sort([("store_updated_at", -1), ("_id", -1)]).limit(first + 1)
        docs = [d async for d in cursor]
        edges = [
            ProductEdge(cursor=encode_cursor(d["store_updated_at"], d["_id"]), node=Product.from_doc(d))
            for d in docs[:first]
        ]
        return ProductConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=len(docs) > first, end_cursor=edges[-1].cursor if edges else None),
            total_count=total,
        )

    @strawberry.field
    async def product(self, info: Info, id: strawberry.ID) -> Product | None:
        doc = await info.context.gw.products.get(info.context.account_id, str(id))
        if doc is None:
            raise NotFound("no product with that id", field="id")
        return Product.from_doc(doc)

    @strawberry.field
    async def sync_run(self, info: Info, id: strawberry.ID) -> SyncRun | None:
        doc = await info.context.gw.runs.get(info.context.account_id, str(id))
        if doc is None:
            raise NotFound("no sync run with that id", field="id")
        return SyncRun.from_doc(doc)

    @strawberry.field(description="Sync history, newest first.")
    async def sync_runs(
        self, info: Info, integration_id: strawberry.ID, first: int | None = 20, after: str | None = None
    ) -> SyncRunConnection:
        first = _first(info, first, 20)
        await info.context.integrations.get(info.context.account_id, str(integration_id))
        docs = await info.context.gw.runs.page(
            info.context.account_id, str(integration_id), first, decode_cursor(after)
        )
        edges = [
            SyncRunEdge(cursor=encode_cursor(d["queued_at"], d["_id"]), node=SyncRun.from_doc(d)) for d in docs[:first]
        ]
        return SyncRunConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=len(docs) > first, end_cursor=edges[-1].cursor if edges else None),
        )

    @strawberry.field
    async def conflicts(
        self,
        info: Info,
        integration_id: strawberry.ID | None = None,
        status: ConflictStatus | None = None,
        first: int | None = 50,
        after: str | None = None,
        product_id: strawberry.ID | None = None,
    ) -> ConflictConnection:
        first = _first(info, first)
        docs = await ConflictService(info.context.gw).page(
            info.context.account_id,
            str(integration_id) if integration_id else None,
            _enum_value(status),
            first,
            decode_cursor(after),
            str(product_id) if product_id else None,
        )
        edges = [
            ConflictEdge(cursor=encode_cursor(d["detected_at"], d["_id"]), node=Conflict.from_doc(d))
            for d in docs[:first]
        ]
        return ConflictConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=len(docs) > first, end_cursor=edges[-1].cursor if edges else None),
        )

    @strawberry.field(description="The activity log, newest first.")
    async def activity_log(
        self,
        info: Info,
        integration_id: strawberry.ID | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> ActivityConnection:
        first = _first(info, first)
        docs = await info.context.gw.activity.page(
            info.context.account_id,
            str(integration_id) if integration_id else None,
            first,
            decode_cursor(after),
        )
        edges = [
            ActivityEdge(cursor=encode_cursor(d["at"], d["_id"]), node=ActivityEntry.from_doc(d)) for d in docs[:first]
        ]
        return ActivityConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=len(docs) > first, end_cursor=edges[-1].cursor if edges else None),
        )

    @strawberry.field(
        description="A connect attempt started by beginConnect or reconnectIntegration (poll it, or watch "
        "integrationEvents)."
    )
    async def connect_attempt(self, info: Info, id: strawberry.ID) -> ConnectAttempt | None:
        return ConnectAttempt.from_doc(await ConnectService(info.context.gw).attempt(info.context.account_id, str(id)))


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Connect a store. The plugin checks the credentials against the store before anything is saved."
    )
    async def connect_integration(self, info: Info, input: ConnectIntegrationInput) -> Integration:
        limits.connect_input(info.context.gw.settings, input)
        settings = input.settings
        doc = await info.context.integrations.connect(
            info.context.account_id,
            input.platform.strip(),
            input.name,
            input.store_url,
            input.credentials,
            mode=settings.mode if settings else None,
            frequency=settings.frequency if settings else None,
        )
        return Integration.from_doc(doc)

    @strawberry.mutation(
        description="Connect a store through the platform's own install flow (Shopify OAuth, BigCommerce single-click "
        "app, WooCommerce key approval). The frontend sends the merchant's browser to authorizeUrl; the platform "
        "calls the gateway back, and the integration is created then."
    )
    async def begin_connect(self, info: Info, input: BeginConnectInput) -> ConnectAttempt:
        settings = input.settings
        doc = await ConnectService(info.context.gw).begin(
            info.context.account_id,
            input.platform,
            input.name,
            input.store,
            mode=settings.mode if settings else None,
            frequency=settings.frequency if settings else None,
            return_url=input.return_url,
        )
        return ConnectAttempt.from_doc(doc)

    @strawberry.mutation(
        description="The same flow for an existing integration whose credentials were rejected, revoked or expired: "
        "products, edits, conflicts and history are kept. With `credentials` (keys named by the platform's "
        "credentialFields) it reconnects at once with pasted keys, for platforms without an install flow here; the "
        "attempt then comes back CONNECTED, without an authorizeUrl."
    )
    async def reconnect_integration(
        self,
        info: Info,
        integration_id: strawberry.ID,
        return_url: str | None = None,
        credentials: JSON | None = None,
    ) -> ConnectAttempt:
        doc = await ConnectService(info.context.gw).reconnect(
            info.context.account_id, str(integration_id), return_url, credentials
        )
        return ConnectAttempt.from_doc(doc)

    @strawberry.mutation(
        description="Claim, for the caller's account, an install that began on the platform's side (an app-store "
        "install); the token comes in the frontend redirect."
    )
    async def claim_install(
        self, info: Info, token: str, name: str | None = None, settings: SyncSettingsInput | None = None
    ) -> Integration:
        doc = await ConnectService(info.context.gw).claim(
            info.context.account_id,
            token,
            name,
            mode=settings.mode if settings else None,
            frequency=settings.frequency if settings else None,
        )
        return Integration.from_doc(doc)

    @strawberry.mutation
    async def update_sync_settings(
        self, info: Info, integration_id: strawberry.ID, settings: SyncSettingsInput
    ) -> Integration:
        doc = await info.context.integrations.update_settings(
            info.context.account_id,
            str(integration_id),
            settings.mode,
            settings.frequency,
        )
        return Integration.from_doc(doc)

    @strawberry.mutation(
        description="Sync Now. With productExternalIds, only those products. While a run is queued or running "
        "for the integration, returns that run instead of starting another. `full` forces a full catalog walk."
    )
    async def sync_now(
        self,
        info: Info,
        integration_id: strawberry.ID,
        product_external_ids: list[str] | None = None,
        full: bool | None = None,
    ) -> SyncRun:
        limits.ids(info.context.gw.settings, product_external_ids, "productExternalIds")
        run = await SyncService(info.context.gw).sync_now(
            info.context.account_id, str(integration_id), product_external_ids, full
        )
        return SyncRun.from_doc(run)

    @strawberry.mutation
    async def cancel_sync_run(self, info: Info, run_id: strawberry.ID) -> SyncRun:
        return SyncRun.from_doc(await SyncService(info.context.gw).cancel(info.context.account_id, str(run_id)))

    @strawberry.mutation(
        description="Stops all syncing, removes the webhooks the gateway registered on the store, and deletes "
        "stored credentials."
    )
    async def disconnect_integration(self, info: Info, integration_id: strawberry.ID) -> strawberry.ID:
        return strawberry.ID(await info.context.integrations.disconnect(info.context.account_id, str(integration_id)))

    @strawberry.mutation(
        description="Alana's own change to a product (an enhancement layered over the store's version)."
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
        doc = await ConflictService(info.context.gw).edit_product(info.context.account_id, str(product_id), values)
        return Product.from_doc(doc)

    @strawberry.mutation(description="Re-apply the Alana change that the store overwrote in this conflict.")
    async def reapply_alana_change(self, info: Info, conflict_id: strawberry.ID) -> Conflict:
        doc = await ConflictService(info.context.gw).reapply(info.context.account_id, str(conflict_id))
        return Conflict.from_doc(doc)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Live progress of one run: the current state at once, then every change; completes after "
        "the run ends."
    )
    async def sync_progress(self, info: Info, run_id: strawberry.ID) -> AsyncGenerator[SyncProgress, None]:
        gw = info.context.gw
        account_id = info.context.account_id
        async with gw.hub.listen(run_channel(str(run_id))) as queue:
            # Subscribe first, then read the state: nothing published in between is lost.
            run = await gw.runs.get(account_id, str(run_id))
            if run is None:
                raise NotFound("no sync run with that id", field="runId")
            state = progress_message(run)
            yield SyncProgress.from_message(state)
            seq = state["seq"]
            finished = RunStatus(state["status"]).finished
            while not finished:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=5.0)
                except TimeoutError:
                    # A quiet channel: re-read the state (covers a Redis blip or a dead worker).
                    run = await gw.runs.get(account_id, str(run_id))
                    if run is None:
                        return
                    message = progress_message(run)
                    if message["seq"] <= seq and not RunStatus(message["status"]).finished:
                        continue
                finished = RunStatus(message["status"]).finished
                if message.get("seq", 0) < seq and not finished:
                    continue
                seq = max(seq, message.get("seq", 0))
                yield SyncProgress.from_message(message)

    @strawberry.subscription(
        description="Everything that happens to the account's integrations (or one of them): runs, health "
        "changes, conflicts, product changes."
    )
    async def integration_events(
        self, info: Info, integration_id: strawberry.ID | None = None
    ) -> AsyncGenerator[IntegrationEvent, None]:
        gw = info.context.gw
        account_id = info.context.account_id
        if integration_id is not None:
            await info.context.integrations.get(account_id, str(integration_id))
        async with gw.hub.listen(account_channel(account_id)) as queue:
            while True:
                message = await queue.get()
                if integration_id is not None and message.get("integration_id") != str(integration_id):
                    continue
                yield IntegrationEvent.from_message(message)


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


def build_schema(max_depth: int = 12) -> strawberry.Schema:
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[lambda: QueryGuard(max_depth=max_depth), ErrorCodes],
        scalar_overrides=SCALAR_OVERRIDES,
    )


schema = build_schema()

__all__ = ["JSON", "build_schema", "schema"]
