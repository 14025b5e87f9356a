"""The BigCommerce platform adapter: Catalog API v3 with X-Auth-Token, paced by the store's quota.

Connection options (conn.options): `quota_share` (default 0.8: the share of each rate-limit window this
integration may spend; the store's other apps share the quota), `page_size` (products per request,
default and maximum 250), `page_concurrency` (pages fetched ahead at once, default 4) and `currency`
(skips the store lookup).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from alana_bigcommerce import __version__, hookhealth, webhooks
from alana_bigcommerce.client import (
    MAX_LIMIT,
    BigCommerceAPI,
    BigCommerceBudget,
    NameCache,
    attach_names,
    iso_utc,
)
from alana_bigcommerce.mapper import map_product
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
from gateway.errors import StoreAuthError
from gateway.httpclient import HttpClient
from gateway.model import Product

if TYPE_CHECKING:
    from gateway.installflow import FlowConfig, InstallFlow
    from gateway.simkit import Simulator

log = logging.getLogger(__name__)

#: How long a store's currency and language are reused (per process) before asking again.
STORE_FACTS_TTL = 3600.0
_STORE_FACTS: dict[str, tuple[float, MappingContext]] = {}
#: conn.state key of the highest product id a full count saw, and how long a fetch may use it.
SNAPSHOT_KEY = "bigcommerce_max_id"
SNAPSHOT_TTL = 60.0


class BigCommerceAdapter(PlatformAdapter):
    info = PlatformInfo(
        id="bigcommerce",
        name="BigCommerce",
        version=__version__,
        capabilities=("webhooks", "incremental", "fetch_by_ids"),
        credential_fields=(
            CredentialField("access_token", "API account access token"),
            CredentialField("client_secret", "App client secret", required=False),
        ),
        connect_methods=(ConnectMethod.CREDENTIALS, ConnectMethod.INSTALL_FLOW),
    )

    # ---- connection -------------------------------------------------------------------------
    def http(self, conn: Connection) -> HttpClient:
        token = conn.credentials.get("access_token", "")
        headers = {"X-Auth-Token": token, "Accept": "application/json", "Content-Type": "application/json"}
        budget = BigCommerceBudget(share=float(conn.options.get("quota_share", 0.8)))
        return make_http_client(conn, headers=headers, budget=budget)

    def api(self, conn: Connection) -> BigCommerceAPI:
        """The connection's BigCommerce API wrapper (built once per run, like the HTTP client)."""
        api = conn.state.get("bigcommerce_api")
        if not isinstance(api, BigCommerceAPI) or api.http is not self.client(conn):
            api = conn.state["bigcommerce_api"] = BigCommerceAPI(
                self.client(conn),
                conn.store_url,
                page_size=int(conn.options.get("page_size", MAX_LIMIT)),
                concurrency=int(conn.options.get("page_concurrency", 4)),
            )
        return api

    async def check_credentials(self, conn: Connection) -> None:
        # v3 has no "who am I": one product id is the cheapest call the products scope allows.
        params = {"limit": 1, "include_fields": "id"}
        response = await self.api(conn).get("catalog/products", params, allow=(404,))
        if response.status == 404:
            raise StoreAuthError("no BigCommerce store answers at this URL; check the store hash", status=404)
        response.json()

    async def mapping_context(self, conn: Connection) -> MappingContext:
        if conn.options.get("currency"):
            return MappingContext(currency=str(conn.options["currency"]).upper())
        api = self.api(conn)
        cached = _STORE_FACTS.get(api.root)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        # The store's default currency lives in the v2 store profile (needs the store information
        # scope; without it, USD). Webhook batches ask for a context each time: keep it a while.
        response = await api.http.request("GET", f"{api.root}/v2/store", allow=(403, 404))
        info = response.json() if response.status == 200 else {}
        info = info if isinstance(info, dict) else {}
        if not info.get("currency"):
            log.info("BigCommerce store currency unknown; assuming USD")
        context = MappingContext(
            currency=str(info.get("currency") or "USD").upper(), default_locale=str(info.get("language") or "en")
        )
        _STORE_FACTS[api.root] = (time.monotonic() + STORE_FACTS_TTL, context)
        return context

    # ---- reading products -------------------------------------------------------------------
    async def count_products(self, conn: Connection, request: FetchRequest) -> int | None:
        if request.mode == FetchMode.IDS:
            return len(_unique(request.ids))
        if request.mode == FetchMode.FULL:
            # The request that counts the catalog also gives its highest id, which bounds the full
            # listing (see _snapshot): the fetch that follows takes it instead of asking again.
            total, max_id = await self.api(conn).id_extent()
            conn.state[SNAPSHOT_KEY] = (time.monotonic() + SNAPSHOT_TTL, max_id)
            return total
        return await self.api(conn).count(_listing_params(request))

    async def fetch_products(self, conn: Connection, request: FetchRequest) -> AsyncIterator[Page]:
        api = self.api(conn)
        names = conn.state.setdefault("bigcommerce_names", NameCache())
        if request.mode == FetchMode.IDS:
            async for page in self._fetch_ids(api, names, request):
                yield page
            return
        if request.mode == FetchMode.FULL and not names.complete:
            await api.load_all_names(names)
        after_id = _parse_cursor(request.cursor)
        async for listing, cursor in api.product_pages(await _snapshot(conn, api, request), after_id):
            await api.resolve_names(names, listing.items)
            items = [attach_names(p, names) for p in listing.items]
            # A resumed fetch only sees what is left: that is no total for the whole fetch.
            yield Page(items=items, cursor=cursor, total=None if after_id is not None else listing.total)

    async def _fetch_ids(self, api: BigCommerceAPI, names: NameCache, request: FetchRequest) -> AsyncIterator[Page]:
        wanted = _unique(request.ids)
        numeric = [i for i in wanted if i.isdigit()]
        chunks = [numeric[i : i + MAX_LIMIT] for i in range(0, len(numeric), MAX_LIMIT)] or [[]]
        start = int(request.cursor) if request.cursor and request.cursor.isdigit() else 0
        for index in range(start, len(chunks)):
            chunk = chunks[index]
            items = await api.products_by_ids([int(i) for i in chunk]) if chunk else []
            await api.resolve_names(names, items)
            found = {str(item.get("id")) for item in items}
            missing = [i for i in chunk if i not in found]
            if index == 0:
                missing = [i for i in wanted if not i.isdigit()] + missing  # never valid BigCommerce ids
            yield Page(
                items=[attach_names(p, names) for p in items],
                cursor=str(index + 1) if index + 1 < len(chunks) else None,
                total=len(wanted),
                missing_ids=missing,
            )

    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        return map_product(native, context)

    # ---- webhooks ---------------------------------------------------------------------------
    async def register_webhooks(self, conn: Connection, callback_url: str) -> WebhookRegistration:
        return await webhooks.register(self.api(conn), callback_url)

    async def remove_webhooks(self, conn: Connection, registration: WebhookRegistration) -> None:
        await webhooks.remove(self.api(conn), list(registration.hook_ids))

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]) -> bool:
        return webhooks.verify(headers, secrets)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent | None:
        return webhooks.parse(body)

    async def webhook_status(
        self, conn: Connection, registration: WebhookRegistration, callback_url: str
    ) -> list[HookStatus]:
        return await hookhealth.status(self.api(conn), callback_url)

    async def repair_webhooks(
        self, conn: Connection, registration: WebhookRegistration, callback_url: str
    ) -> WebhookRepair:
        return await hookhealth.repair(self.api(conn), registration, callback_url)

    # ---- connecting through BigCommerce ------------------------------------------------------
    def install_flow(self, config: FlowConfig) -> InstallFlow | None:
        """The single-click app flow (alana_bigcommerce.install), once the app's client id and secret are set."""
        if not config.app.configured:
            return None
        from alana_bigcommerce.install import BigCommerceInstallFlow

        return BigCommerceInstallFlow(config)

    # ---- testing ------------------------------------------------------------------------------
    @classmethod
    def simulator(cls) -> type[Simulator] | None:
        from alana_bigcommerce.simulator import BigCommerceSimulator

        return BigCommerceSimulator


def _listing_params(request: FetchRequest) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if request.mode == FetchMode.SINCE and request.since is not None:
        params["date_modified:min"] = iso_utc(request.since)
    return params


async def _snapshot(conn: Connection, api: BigCommerceAPI, request: FetchRequest) -> dict[str, Any]:
    """The listing's filters; for a full run, bounded so that it can only shrink while we read it.

    Pages are read in id order (an edit does not move a product between pages, as sorting by
    date_modified would). A full run stops at the highest id at its start: products created during
    the run would otherwise join the listing and, together with a deletion, keep its total unchanged
    and so hide a page shift from `product_pages` (they arrive by webhook or the next run). An
    incremental run is not bounded by time: the store's clock is not ours, and a product edited
    before the run but stamped after our "now" would be lost. Its listing can still grow (a product
    edited during the run joins it) and shrink; either changes the total and is caught, and only a
    growth exactly offset by a deletion during a multi-page incremental run can hide a shift, which
    the next full run repairs. The highest id comes from `count_products` when it has just been
    asked (taken once, within SNAPSHOT_TTL), or from a request of its own.
    """
    params = _listing_params(request)
    if request.mode != FetchMode.SINCE:
        counted = conn.state.pop(SNAPSHOT_KEY, None)
        if counted is not None and counted[0] > time.monotonic():
            params["id:max"] = counted[1]
        else:
            params["id:max"] = await api.max_product_id()
    return params


def _parse_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    if cursor.startswith("after:") and cursor[6:].isdigit():
        return int(cursor[6:])
    # Not one of ours: reading from the start again repeats work but loses nothing.
    log.warning("unknown BigCommerce cursor; fetching from the start", extra={"cursor": cursor[:40]})
    return None


def _unique(ids: tuple[str, ...]) -> list[str]:
    seen: dict[str, None] = {}
    for raw in ids:
        seen.setdefault(str(raw).strip(), None)
    return [i for i in seen if i]
