"""The Shopify platform adapter: the GraphQL Admin API (REST is legacy), webhooks in REST shape.

Connection options (`conn.options`), all optional:
    api_version          Admin API version in the URL (default "2026-01")
    bulk_threshold       unset (the default): a FULL run reads a first page, then reads the rest
                         through a bulk operation when that is estimated faster than paginated
                         queries (cost.choose_read: the rest's measured cost against the bucket, vs
                         the bulk operation's fixed overhead). Set, it overrides the estimate:
                         catalogs at least this big use a bulk operation; 0 never does
    bulk_start_seconds   what Shopify takes to pick up and finish a small bulk operation, for the
                         estimate (default 3.0)
    bulk_probe           products in the first page the estimate is measured on (default 10)
    bulk_poll_interval   seconds between bulk status polls (default 2.0)
    bulk_group_objects   ask Shopify to group children under parents (default True)
    bulk_lookback        parents kept open for late children while streaming (default 100)
    bulk_page_size       products per Page from a bulk result (default 250)
    bulk_download_origins  more origins (`https://host`) bulk results may be downloaded from, besides
                         Shopify's storage host and the store itself (default none)
    page_target          products per Page from paginated reads (default 100; several GraphQL pages
                         are gathered into one, each within the single-query cost limit)
    nested_variants / nested_media   nested page sizes inside a product page (default 20 / 10)

Cursors: `gql:<endCursor>` (paginated), `bulk:<operation gid>:<done>` (bulk, see bulk.py), `ids:<n>`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alana_shopify import __version__, hookhealth, mapper, webhooks
from alana_shopify.bulk import BulkReader, BulkUnavailable, Stitcher, parse_cursor
from alana_shopify.client import DEFAULT_API_VERSION, ShopifyBudget, ShopifyGraphQL
from alana_shopify.cost import BULK_START_SECONDS, BucketState, BulkOverhead, ReadPlan, choose_read
from alana_shopify.fetch import ProductPage, ProductReader
from alana_shopify.queries import CONTEXT, SHOP, ProductQueries
from gateway.adapter import (
    Connection,
    ConnectMethod,
    CredentialField,
    FetchMode,
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
from gateway.errors import BadInput, StoreAuthError
from gateway.httpclient import HttpClient
from gateway.model import Product

if TYPE_CHECKING:
    from gateway.installflow import FlowConfig, InstallFlow
    from gateway.simkit import Simulator

log = logging.getLogger(__name__)


def since_query(since: datetime) -> str:
    """The incremental search filter. The date is quoted: unquoted, Shopify silently matches nothing."""
    moment = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
    return f"updated_at:>='{moment.strftime('%Y-%m-%dT%H:%M:%SZ')}'"


class ShopifyAdapter(PlatformAdapter):
    info = PlatformInfo(
        id="shopify",
        name="Shopify",
        version=__version__,
        capabilities=("webhooks", "incremental", "bulk", "fetch_by_ids", "translations"),
        credential_fields=(
            CredentialField("access_token", "Admin API access token"),
            CredentialField("client_secret", "App client secret (verifies webhooks)"),
        ),
        connect_methods=(ConnectMethod.CREDENTIALS, ConnectMethod.INSTALL_FLOW),
    )

    # ---- connection -------------------------------------------------------------------------
    def http(self, conn: Connection) -> HttpClient:
        token = conn.credentials.get("access_token")
        if not token:
            raise StoreAuthError("the Shopify access token is missing", field="access_token")
        return make_http_client(
            conn,
            headers={"X-Shopify-Access-Token": token, "Accept": "application/json"},
            budget=ShopifyBudget.for_credentials(conn.credentials),
        )

    def graphql(self, conn: Connection) -> ShopifyGraphQL:
        """The connection's GraphQL client (one per connection, over its HttpClient)."""
        gql = conn.state.get("shopify_gql")
        if not isinstance(gql, ShopifyGraphQL):
            version = str(conn.options.get("api_version") or DEFAULT_API_VERSION)
            gql = conn.state["shopify_gql"] = ShopifyGraphQL(self.client(conn), version)
        return gql

    async def check_credentials(self, conn: Connection) -> None:
        await self.graphql(conn).execute(SHOP)

    async def mapping_context(self, conn: Connection) -> MappingContext:
        context = conn.state.get("shopify_context")
        if isinstance(context, MappingContext):
            return context
        data = await self.graphql(conn).execute(CONTEXT)
        shop = data.get("shop") or {}
        locales = [loc for loc in data.get("shopLocales") or [] if isinstance(loc, dict) and loc.get("locale")]
        primary = next((str(loc["locale"]) for loc in locales if loc.get("primary")), "en")
        others = [str(loc["locale"]) for loc in locales if not loc.get("primary") and loc.get("published", True)]
        context = MappingContext(
            currency=str(shop.get("currencyCode") or "USD"),
            default_locale=primary,
            extra={"locales": others, "shop_name": shop.get("name")},
        )
        conn.state["shopify_context"] = context
        return context

    async def _reader(self, conn: Connection) -> tuple[ProductReader, ProductQueries]:
        queries = conn.state.get("shopify_queries")
        if not isinstance(queries, ProductQueries):
            context = await self.mapping_context(conn)
            queries = conn.state["shopify_queries"] = ProductQueries(
                locales=tuple(context.extra.get("locales") or ()),
                nested_variants=int(conn.options.get("nested_variants", 20)),
                nested_media=int(conn.options.get("nested_media", 10)),
            )
        return ProductReader(self.graphql(conn), queries), queries

    # ---- reading products -------------------------------------------------------------------
    async def count_products(self, conn: Connection, request: FetchRequest) -> int | None:
        if request.mode == FetchMode.IDS:
            return len(dict.fromkeys(request.ids))
        reader, _ = await self._reader(conn)
        return await reader.count(self._search(request))

    @staticmethod
    def _search(request: FetchRequest) -> str | None:
        if request.mode == FetchMode.SINCE:
            if request.since is None:
                raise BadInput("an incremental fetch needs a `since` time", field="since")
            return since_query(request.since)
        return None

    async def fetch_products(self, conn: Connection, request: FetchRequest) -> AsyncIterator[Page]:
        reader, queries = await self._reader(conn)
        if request.mode == FetchMode.IDS:
            async for page in self._by_ids(conn, reader, request):
                yield page
            return
        search = self._search(request)
        total = await reader.count(search)
        cursor = request.cursor
        probe: ProductPage | None = None
        if request.mode == FetchMode.FULL:
            resume = parse_cursor(cursor) if cursor else None
            threshold = conn.options.get("bulk_threshold")
            if resume is not None:
                bulk = True
            elif cursor is not None or total is None:
                bulk = False
            elif threshold is not None:
                bulk = int(threshold) > 0 and total >= int(threshold)
            else:
                probe, plan = await self._probe(conn, reader, total)
                bulk = plan is not None and plan.bulk
            if bulk:
                try:
                    async for page in self._bulk(conn, reader, queries, total, resume):
                        yield page
                    return
                except BulkUnavailable as exc:
                    log.info("bulk read unavailable, reading paginated", extra={"reason": str(exc)})
                    cursor = None
        sort_key = "UPDATED_AT" if request.mode == FetchMode.SINCE else "ID"
        after = cursor[len("gql:") :] if cursor and cursor.startswith("gql:") else None
        async for page in self._paginated(conn, reader, search, sort_key, after, total, probe):
            yield page

    async def _probe(
        self, conn: Connection, reader: ProductReader, total: int
    ) -> tuple[ProductPage | None, ReadPlan | None]:
        """Read a first page of a fresh FULL read and choose how to read the rest (cost.choose_read).

        The page is kept: paginated queries go on after it, and a bulk operation that turns out to be
        unavailable falls back to them. Only a bulk read discards it (its cost was paid from the bucket,
        which a bulk operation does not need, and its time is the price of knowing).
        """
        size = int(conn.options.get("bulk_probe", 10))
        pages = reader.pages(query=None, sort_key="ID", after=None, expected=total, first_page=size)
        try:
            first = await anext(pages)
        except StopAsyncIteration:
            return None, None
        finally:
            await pages.aclose()
        budget = self.graphql(conn).budget
        if not first.has_next or budget is None:
            return first, None
        sample = reader.sample()
        plan = choose_read(
            max(0, total - len(first.nodes)),
            sample,
            BucketState(budget.available, budget.maximum, budget.restore_rate),
            BulkOverhead(
                latency=sample.latency,
                poll_interval=float(conn.options.get("bulk_poll_interval", 2.0)),
                start=float(conn.options.get("bulk_start_seconds", BULK_START_SECONDS)),
            ),
        )
        conn.state["shopify_read_plan"] = plan
        log.info(
            "full read through %s",
            plan.describe(),
            extra={"integration_id": conn.integration_id, "cost_per_product": round(sample.cost_per_product, 1)},
        )
        return first, plan

    async def _paginated(
        self,
        conn: Connection,
        reader: ProductReader,
        search: str | None,
        sort_key: str,
        after: str | None,
        total: int | None,
        first: ProductPage | None = None,
    ) -> AsyncIterator[Page]:
        """Engine pages of paginated reads; `first`, when given, is a GraphQL page already read."""
        target = int(conn.options.get("page_target", 100))
        items: list[dict[str, Any]] = []
        # The count sizes the last pages to the bucket (PagePlanner); resuming, what is left is unknown.
        expected = total if after is None else None
        if first is not None:
            after = first.end_cursor
            expected = total - len(first.nodes) if total is not None else None
        async for page in _chain(first, reader, search, sort_key, after, expected):
            items.extend(page.nodes)
            if page.has_next and len(items) < target:
                continue
            yield Page(
                items=items,
                cursor=f"gql:{page.end_cursor}" if page.has_next and page.end_cursor else None,
                total=total,
            )
            items = []

    async def _by_ids(self, conn: Connection, reader: ProductReader, request: FetchRequest) -> AsyncIterator[Page]:
        ids = list(dict.fromkeys(str(i) for i in request.ids))
        target = int(conn.options.get("page_target", 100))
        start = 0
        if request.cursor and request.cursor.startswith("ids:") and request.cursor[4:].isdigit():
            start = int(request.cursor[4:])
        if start >= len(ids):
            yield Page(items=[], cursor=None, total=len(ids))
            return
        for index in range(start, len(ids), target):
            found, missing = await reader.by_ids(ids[index : index + target])
            end = index + target
            yield Page(
                items=found,
                missing_ids=missing,
                cursor=f"ids:{end}" if end < len(ids) else None,
                total=len(ids),
            )

    async def _bulk(
        self,
        conn: Connection,
        reader: ProductReader,
        queries: ProductQueries,
        total: int | None,
        resume: tuple[str, int] | None,
    ) -> AsyncIterator[Page]:
        bulk = BulkReader(
            self.graphql(conn),
            conn.store_url,
            poll_interval=float(conn.options.get("bulk_poll_interval", 2.0)),
            group_objects=bool(conn.options.get("bulk_group_objects", True)),
            extra_origins=tuple(conn.options.get("bulk_download_origins") or ()),
        )
        page_size = int(conn.options.get("bulk_page_size", 250))
        gid, skip = resume if resume is not None else (await bulk.start(queries.bulk()), 0)
        operation = await bulk.wait(gid)
        stitcher = Stitcher(lookback=int(conn.options.get("bulk_lookback", 100)))
        released = 0
        items: list[dict[str, Any]] = []

        def take(parents: list[dict[str, Any]]) -> None:
            nonlocal released
            for parent in parents:
                released += 1
                if released > skip:
                    items.append(parent)

        if operation.url:
            async for line in bulk.lines(operation.url):
                take(stitcher.add(line))
                if len(items) >= page_size:
                    yield Page(items=items, cursor=f"bulk:{gid}:{released}", total=total)
                    items = []
        take(stitcher.finish())
        while len(items) > page_size:
            done = released - (len(items) - page_size)
            yield Page(items=items[:page_size], cursor=f"bulk:{gid}:{done}", total=total)
            items = items[page_size:]
        if stitcher.late_parents:
            # Children that arrived after their parent was released: read those products again.
            late = [i for i in (mapper.numeric_id(p) for p in sorted(stitcher.late_parents)) if i is not None]
            log.info("bulk result had late children, re-reading products", extra={"count": len(late)})
            found, _gone = await reader.by_ids(late)
            if items:
                yield Page(items=items, cursor=f"bulk:{gid}:{released}", total=total)
            items = found
        yield Page(items=items, cursor=None, total=total)

    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        return mapper.map_product(native, context)

    # ---- webhooks ---------------------------------------------------------------------------
    async def register_webhooks(self, conn: Connection, callback_url: str) -> WebhookRegistration:
        return await webhooks.register(self.graphql(conn), callback_url)

    async def remove_webhooks(self, conn: Connection, registration: WebhookRegistration) -> None:
        await webhooks.remove(self.graphql(conn), registration)

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]) -> bool:
        return webhooks.verify(headers, body, secrets)

    def webhook_from_store(self, headers: Mapping[str, str], body: bytes, store_url: str) -> bool:
        return webhooks.from_store(headers, store_url)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent | None:
        return webhooks.parse(headers, body)

    async def webhook_status(
        self, conn: Connection, registration: WebhookRegistration, callback_url: str
    ) -> list[HookStatus]:
        return await hookhealth.status(self.graphql(conn), callback_url)

    async def repair_webhooks(
        self, conn: Connection, registration: WebhookRegistration, callback_url: str
    ) -> WebhookRepair:
        return await hookhealth.repair(self.graphql(conn), registration, callback_url)

    # ---- connecting through Shopify -------------------------------------------------------------
    def install_flow(self, config: FlowConfig) -> InstallFlow | None:
        """The authorization code grant (alana_shopify.install), once the app's client id and secret are set."""
        if not config.app.configured:
            return None
        from alana_shopify.install import ShopifyInstallFlow

        return ShopifyInstallFlow(config)

    # ---- testing ------------------------------------------------------------------------------
    @classmethod
    def simulator(cls) -> type[Simulator] | None:
        from alana_shopify.simulator import ShopifySimulator

        return ShopifySimulator


async def _chain(
    first: ProductPage | None,
    reader: ProductReader,
    search: str | None,
    sort_key: str,
    after: str | None,
    expected: int | None,
) -> AsyncIterator[ProductPage]:
    """`first` (a page already read), then the pages after `after`."""
    if first is not None:
        yield first
        if not first.has_next:
            return
    async for page in reader.pages(query=search, sort_key=sort_key, after=after, expected=expected):
        yield page
