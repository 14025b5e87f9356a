"""Issue 13, fast reads: the Integrations page's queries over 3 stores of 50,000 products each.

The data set: three integrations (Shopify, WooCommerce and BigCommerce records; no store behind them)
whose products are written through the product store's own write path (`ProductStore.write_page`, the
path a sync run takes, counts and all) in pages of 500, rather than synced from simulators (150,000
products through a simulator would take the better part of an hour here). The products are generated:
titles from a small vocabulary with a number, SKUs, 1-4 variants, 90 % active / 7 % draft / 3 %
archived, store changes spread over a year plus import bursts (a third of them within a few minutes,
many in the same second). Each integration also has a month of hourly runs, two activity entries per
run, 300 conflicts (two thirds still STORE_WON) and hourly API-call buckets, inserted directly.

Measured: each of the page's own queries (gateway/api/static/console/app.js: Page, Resync, Counts,
Find, Activity, ActivityHead) and the issue's product lists (`products(first: 50)` unfiltered with
totalCount, by integration, by status, by both, a next page, and searches), sent over HTTP to a real
`alana-gateway serve` process, one at a time: p50 / p95 / max in ms. First with nothing else running
(idle), then while a real `alana-gateway worker` runs the full sync of another store (a simulated
WooCommerce store in its own process). Also recorded: `explain` of each list's first range query.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp

from benchmarks.common import ROOT, gateway, percentile, process_env, settings_for, simulator, worker_process
from gateway.auth import issue_token
from gateway.domain import RunStatus
from gateway.integration_store import Integration, api_call_day
from gateway.model import Identifiers, Image, Money, OptionValue, Product, Variant
from gateway.services import Gateway
from gateway.settings import Settings
from gateway.simkit import free_port
from gateway.storage.mongo import PAGED, Doc

ACCOUNT = "bench-account"
WORDS = (
    "organic cotton linen wool silk denim leather canvas bamboo merino classic vintage slim relaxed tee shirt "
    "hoodie jacket scarf sock dress skirt trouser short boot sneaker sandal hat cap bag mug bottle lamp candle "
    "pillow blanket towel basket plant pot frame poster notebook pen"
).split()

# ---- the page's own operations (gateway/api/static/console/app.js), verbatim ---------------------
RUN = """id integrationId status trigger kind queuedAt startedAt finishedAt failure
  progress { runId status processed total percent message }
  summary { added updated unchanged removed failed conflicts }"""
HEALTH = "status reason action lastSyncAt nextSyncAt"
INTEGRATION = f"""id platform name storeUrl createdAt settings {{ mode frequency }} health {{ {HEALTH} }}
  productCount pendingChanges apiCallsLast24h currentRun {{ {RUN} }} syncRuns(first: 10) {{ {RUN} }}"""
CONFLICT = "id integrationId productId field storeValue alanaValue detectedAt status runId"
ACTIVITY = "id integrationId at kind message runId productId conflictId"
PLATFORM_FIELDS = "id name capabilities credentialFields { name label secret required } connectMethods"
PAGE = f"""query Page {{ platforms {{ {PLATFORM_FIELDS} }} integrations {{ {INTEGRATION} }}
      conflicts(status: STORE_WON, first: 100) {{ edges {{ node {{ {CONFLICT} }} }} }} }}"""
RESYNC = f"""query Resync {{ integrations {{ {INTEGRATION} }}
      conflicts(status: STORE_WON, first: 100) {{ edges {{ node {{ {CONFLICT} }} }} }} }}"""
# The issue's own list, each alone: integrations with health, counts, current run and 5 runs; conflicts.
INTEGRATIONS_5 = (
    "query Integrations { integrations { id platform name settings { mode frequency } "
    f"health {{ {HEALTH} }} productCount pendingChanges apiCallsLast24h currentRun {{ {{RUN}} }} "
    "syncRuns(first: 5) { {RUN} } } }"
).replace("{RUN}", RUN)
CONFLICTS = f"query Conflicts {{ conflicts(status: STORE_WON, first: 100) {{ edges {{ node {{ {CONFLICT} }} }} }} }}"
COUNTS = (
    f"query Counts($id: ID!) {{ integration(id: $id) {{ id productCount pendingChanges apiCallsLast24h "
    f"health {{ {HEALTH} }} currentRun {{ {RUN} }} }} }}"
)
FIND = (
    "query Find($id: ID, $q: String) { products(integrationId: $id, search: $q, first: 10) "
    "{ edges { node { id externalId title } } } }"
)
ACTIVITY_PAGE = (
    f"query Activity($id: ID, $after: String) {{ activityLog(integrationId: $id, first: 30, after: $after) "
    f"{{ edges {{ node {{ {ACTIVITY} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
)
ACTIVITY_HEAD = (
    f"query ActivityHead($id: ID) {{ activityLog(integrationId: $id, first: 30) "
    f"{{ edges {{ node {{ {ACTIVITY} }} }} }} }}"
)

# ---- the issue's product lists -------------------------------------------------------------------
PRODUCT_NODE = "id externalId title status sku price { amount currencyCode } storeUpdatedAt"
PRODUCTS = (
    "query Products($id: ID, $status: ProductStatus, $q: String, $after: String) { products(integrationId: $id, "
    f"status: $status, search: $q, first: 50, after: $after) {{ totalCount edges {{ node {{ {PRODUCT_NODE} }} }} "
    "pageInfo { hasNextPage endCursor } } }"
)
SEARCH_50 = (
    "query Search($id: ID, $q: String) { products(integrationId: $id, search: $q, first: 50) "
    f"{{ edges {{ node {{ {PRODUCT_NODE} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
)


# ---- the data set --------------------------------------------------------------------------------
def _product(rng: random.Random, n: int, now: datetime) -> Product:
    words = rng.sample(WORDS, 3)
    title = " ".join(w.capitalize() for w in words) + f" {n}"
    if rng.random() < 0.34:  # an import burst: a few minutes, many products a second
        burst = now - timedelta(days=rng.choice((200, 90, 30)))
        updated = burst + timedelta(seconds=rng.randint(0, 300))
    else:
        updated = now - timedelta(seconds=rng.uniform(0, 365 * 86_400))
    status = rng.choices(["ACTIVE", "DRAFT", "ARCHIVED"], [90, 7, 3])[0]
    sizes = rng.sample(["XS", "S", "M", "L", "XL"], rng.randint(1, 4))
    variants = [
        Variant(
            external_id=f"{n}-{i}",
            title=f"Size {size}",
            sku=f"SKU-{n}-{size}",
            price=Money(amount=Decimal(rng.randint(500, 20_000)) / 100, currency="USD"),
            inventory_quantity=rng.randint(0, 50),
            options=[OptionValue(name="Size", value=size)],
            position=i,
        )
        for i, size in enumerate(sizes)
    ]
    return Product(
        external_id=str(n),
        status=status,
        title=title,
        description=f"<p>{title}: " + " ".join(rng.choices(WORDS, k=40)) + "</p>",
        handle=title.lower().replace(" ", "-"),
        vendor="Alana Bench",
        product_type=words[0],
        images=[Image(url=f"https://cdn.example/{n}/{i}.jpg", alt=title, position=i) for i in range(2)],
        price=variants[0].price,
        tags=rng.sample(WORDS, 3),
        categories=[words[1]],
        variants=variants,
        identifiers=Identifiers(sku=f"SKU-{n}"),
        store_updated_at=updated,
        store_created_at=updated - timedelta(days=30),
    )


async def build(gw: Gateway, per_store: int) -> list[Integration]:
    now = gw.now()
    integrations: list[Integration] = []
    for n, platform in enumerate(("shopify", "woocommerce", "bigcommerce")):
        integration = Integration(
            id=uuid.uuid4().hex,
            account_id=ACCOUNT,
            platform=platform,
            name=f"{platform.capitalize()} bench store",
            store_url=f"https://bench-{n}.example",
            created_at=now - timedelta(days=400),
            last_sync_at=now - timedelta(minutes=20),
            last_full_sync_at=now - timedelta(minutes=20),
            next_sync_at=now + timedelta(minutes=40),
        )
        await gw.integration_store.insert(integration)
        integrations.append(integration)
        rng = random.Random(n)
        for start in range(0, per_store, 500):
            page = {str(i): _product(rng, i, now) for i in range(start, min(per_store, start + 500))}
            await gw.products.write_page(ACCOUNT, integration.id, "bench-load", page, nothing_stored=True)
        await _history(gw, integration, rng, now)
    return integrations


async def _history(gw: Gateway, integration: Integration, rng: random.Random, now: datetime) -> None:
    """A month of hourly runs, their activity, conflicts and API calls (inserted directly)."""
    runs, activity, conflicts, calls = [], [], [], []
    for hour in range(30 * 24, 0, -1):
        queued = now - timedelta(hours=hour)
        run_id = uuid.uuid4().hex
        counts = {"added": 0, "updated": rng.randint(0, 40), "unchanged": 0, "removed": 0, "failed": 0, "conflicts": 0}
        runs.append(
            {
                "_id": run_id,
                "account_id": ACCOUNT,
                "integration_id": integration.id,
                "trigger": "SCHEDULED",
                "kind": "INCREMENTAL",
                "product_ids": [],
                "status": RunStatus.SUCCEEDED.value,
                "queued_at": queued,
                "started_at": queued + timedelta(seconds=1),
                "finished_at": queued + timedelta(seconds=30),
                "progress": {"processed": 40, "total": 40, "message": "Done: 40 products checked", "seq": 5},
                "counts": counts,
                "errors": [],
                "checkpoint": None,
                "attempts": 1,
                "cancel_requested": False,
            }
        )
        for offset, kind, text in ((1, "SYNC_STARTED", "Sync started"), (30, "SYNC_SUCCEEDED", "Sync finished")):
            activity.append(
                {
                    "_id": uuid.uuid4().hex,
                    "account_id": ACCOUNT,
                    "integration_id": integration.id,
                    "at": queued + timedelta(seconds=offset),
                    "kind": kind,
                    "message": text,
                    "run_id": run_id,
                    "product_id": None,
                    "conflict_id": None,
                    "details": {},
                }
            )
        calls.append({"integration_id": integration.id, "hour": queued.replace(minute=0, second=0, microsecond=0)})
    for n in range(300):
        conflicts.append(
            {
                "_id": uuid.uuid4().hex,
                "account_id": ACCOUNT,
                "integration_id": integration.id,
                "product_id": f"{integration.id}:{rng.randrange(1000)}",
                "field": "title",
                "store_value": f"Store title {n}",
                "alana_value": f"Alana title {n}",
                "overlay_id": uuid.uuid4().hex,
                "detected_at": now - timedelta(minutes=rng.randint(1, 30 * 24 * 60)),
                "status": "STORE_WON" if n % 3 else "REAPPLIED",
                "run_id": None,
            }
        )
    await gw.db.runs.insert_many(runs)
    await gw.db.activity.insert_many(activity)
    await gw.db.conflicts.insert_many(conflicts)
    days: dict[str, Doc] = {}
    for call in calls:  # hourly counts, kept as the gateway keeps them: a document per day
        day = days.setdefault(
            api_call_day(integration.id, call["hour"]), {"integration_id": integration.id, "hours": {}}
        )
        day["hours"][f"{call['hour'].hour:02d}"] = rng.randint(1, 80)
    await gw.db.api_call_days.insert_many([{"_id": key, **doc} for key, doc in days.items()])


# ---- the API under test --------------------------------------------------------------------------
def _env(settings: Settings) -> dict[str, str]:
    return process_env(
        settings,
        GATEWAY_ALLOW_PRIVATE_URLS="true",
        # One client asking as fast as it can is not what the cost budget is for.
        GATEWAY_QUERY_COST_BURST=str(10**12),
        GATEWAY_QUERY_COST_RATE=str(10**12),
    )


@contextlib.asynccontextmanager
async def api_server(settings: Settings) -> AsyncIterator[str]:
    """A real `alana-gateway serve` process on the benchmark's database."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "serve", "--port", str(port),
        env=_env(settings), cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{url}/healthz") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.1)  # a benchmark poll, not a test wait
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self.session, self.url, self.token = session, f"{url}/graphql", token

    async def query(self, query: str, variables: dict[str, Any] | None = None) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        async with self.session.post(
            self.url,
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            body = await response.json()
        elapsed = (time.perf_counter() - started) * 1000
        if body.get("errors"):
            raise RuntimeError(f"query failed: {body['errors'][:1]}")
        return elapsed, body["data"]


def _cases(integrations: list[Integration], next_cursor: str) -> dict[str, tuple[str, dict[str, Any]]]:
    one = integrations[1].id
    return {
        "page (Page: platforms, 3 integrations, 100 conflicts)": (PAGE, {}),
        "page (Resync)": (RESYNC, {}),
        "integrations (health, counts, current run, 5 runs)": (INTEGRATIONS_5, {}),
        "conflicts (STORE_WON, first 100)": (CONFLICTS, {}),
        "integration card (Counts)": (COUNTS, {"id": one}),
        "find: a word (Find, first 10)": (FIND, {"id": one, "q": "cotton"}),
        "find: a word being typed (Find)": (FIND, {"id": one, "q": "blan"}),
        "find: a SKU (Find)": (FIND, {"id": one, "q": "SKU-48213"}),
        "find: two words (Find)": (FIND, {"id": one, "q": "linen tee"}),
        "activity, one store (Activity)": (ACTIVITY_PAGE, {"id": one, "after": None}),
        "activity, all stores (ActivityHead)": (ACTIVITY_HEAD, {"id": None}),
        "products(first: 50) + totalCount": (PRODUCTS, {}),
        "products(first: 50), next page": (PRODUCTS, {"after": next_cursor}),
        "products(first: 50), one store": (PRODUCTS, {"id": one}),
        "products(first: 50), status DRAFT": (PRODUCTS, {"status": "DRAFT"}),
        "products(first: 50), one store, ARCHIVED": (PRODUCTS, {"id": one, "status": "ARCHIVED"}),
        "products(first: 50), one store, search": (SEARCH_50, {"id": one, "q": "organic"}),
        "products(first: 50), all stores, search": (SEARCH_50, {"q": "vintage sc"}),
    }


async def _sample(
    client: Client, cases: dict[str, tuple[str, dict[str, Any]]], rounds: int, until: asyncio.Event | None = None
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (query, variables) in cases.items():
            if until is not None and until.is_set():
                return times
            elapsed, _ = await client.query(query, variables)
            times[name].append(elapsed)
    return times


def _summary(times: dict[str, list[float]]) -> dict[str, Any]:
    return {
        name: {
            "n": len(values),
            "p50": round(percentile(values, 50), 1),
            "p95": round(percentile(values, 95), 1),
            "max": round(max(values), 1),
        }
        for name, values in times.items()
        if values
    }


async def _explains(gw: Gateway, integrations: list[Integration]) -> dict[str, str]:
    """The plan of each list's range query: IXSCAN on the list's own index is what keeps it narrow."""
    sample = {
        "account_id": ACCOUNT,
        "integration_id": integrations[0].id,
        "removed": False,
        "status": "ACTIVE",
        "search_tokens": "cot",
        "product_id": f"{integrations[0].id}:1",
    }
    plans: dict[str, str] = {}
    for shape in PAGED:
        eq = {f: sample[f] for f in shape.fields}
        low: Any = 0 if shape.axis.name == "feed" else datetime(2020, 1, 1, tzinfo=UTC)
        command = {
            "find": shape.collection,
            "filter": {**eq, shape.key: {"$gte": low}},
            "sort": {shape.key: -1, "_id": -1},
        }
        explained = await gw.db.db.command("explain", command)
        stage = explained["queryPlanner"]["winningPlan"]
        while "inputStage" in stage and stage.get("stage") != "IXSCAN":
            stage = stage["inputStage"]
        plans[shape.index_name] = f"{stage.get('stage')} {stage.get('indexName', '')}".strip()
    return plans


async def read_latency(
    mongodb_url: str, redis_url: str, per_store: int, rounds: int, sync_products: int
) -> dict[str, Any]:
    settings = settings_for(mongodb_url, redis_url)
    async with gateway(settings) as gw:
        started = time.perf_counter()
        integrations = await build(gw, per_store)
        built = time.perf_counter() - started
        token = issue_token(settings.jwt_secret or "", ACCOUNT, 7200)
        result: dict[str, Any] = {
            # The machine may be shared: its load (1, 5, 15 minutes) says how far to trust the figures.
            "load_average": {"start": [round(x, 1) for x in os.getloadavg()]},
            "stores": len(integrations),
            "products_per_store": per_store,
            # p95 of each query idle is read from this many samples (30 made it the second slowest).
            "rounds": rounds,
            "build_seconds": round(built, 1),
            "explain": await _explains(gw, integrations),
        }
        async with api_server(settings) as url, aiohttp.ClientSession() as session:
            client = Client(session, url, token)
            _, first = await client.query(PRODUCTS, {})
            next_cursor = first["products"]["pageInfo"]["endCursor"]
            result["product_count"] = first["products"]["totalCount"]
            cases = _cases(integrations, next_cursor)
            await _sample(client, cases, 2)  # the API process's first requests, and the lists' first ranges
            result["idle_ms"] = _summary(await _sample(client, cases, rounds))
            result["during_sync"] = await _during_sync(gw, settings, client, cases, sync_products)
    result["load_average"]["end"] = [round(x, 1) for x in os.getloadavg()]
    return result


async def _during_sync(
    gw: Gateway, settings: Settings, client: Client, cases: dict[str, tuple[str, dict[str, Any]]], products: int
) -> dict[str, Any]:
    """The same queries while a worker process runs the full sync of another store (WooCommerce)."""
    async with (
        simulator("woocommerce", products, {"variable_share": 0.46}) as sim,
        worker_process(settings, GATEWAY_ALLOW_PRIVATE_URLS="true"),
    ):
        integration = await gw.integrations.connect(
            ACCOUNT, "woocommerce", "Synced meanwhile", sim.store_url, sim.credentials
        )
        run_id = (await gw.runs.latest(integration.id, 1))[0].id
        while True:  # a benchmark poll, not a test wait: measure only while the run is running
            run = await gw.runs.get_any(run_id)
            assert run is not None
            if run.status is not RunStatus.QUEUED:
                break
            await asyncio.sleep(0.05)
        done = asyncio.Event()

        async def watch() -> None:
            while True:
                found = await gw.runs.get_any(run_id)
                if found is None or found.status.finished:
                    done.set()
                    return
                await asyncio.sleep(0.2)

        watcher = asyncio.create_task(watch())
        started = time.perf_counter()
        times = await _sample(client, cases, 10_000, until=done)
        await watcher
        run = await gw.runs.get_any(run_id)
        assert run is not None
        return {
            "synced_products": products,
            "run_status": run.status.value,
            "run_added": run.counts.added,
            "run_failure": run.failure,
            "sync_seconds": round(time.perf_counter() - started, 1),
            "ms": _summary(times),
        }
