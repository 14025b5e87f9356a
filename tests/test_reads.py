"""Fast reads (issue 13): lists read through narrow key ranges, product counts kept by the writes.

Every list is compared with the same rows sorted in Python, whatever the keys look like (one
millisecond shared by many rows, years between rows); the product counts are compared with a count of
the products themselves after every kind of write, under concurrent writers, after a disconnect and
after a recount. The list queries are checked with `explain` to use their own index (what keeps them
narrow on the embedded server). No timing here: the latencies are measured in benchmarks/reads.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from gwtest import Api, connect, wait_run
from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from gateway.constants import account_channel
from gateway.jobs import Workers
from gateway.migrations import COLLECTION, run_migrations
from gateway.model import Identifiers, Product, ProductStatus, Variant
from gateway.pagination import PageRequest
from gateway.product_counts import ProductCountStore
from gateway.products import ProductStore, Search, feed_key, product_id, search_tokens
from gateway.services import Gateway
from gateway.storage.keyset import DATETIME, KeyPage, Paged, read_page
from gateway.storage.mongo import PAGED
from gateway.storage.mongo import connect as connect_db
from gateway.testing.toy import ToySimulator

ACCOUNT = "acct-1"
BASE = datetime(2026, 3, 1, tzinfo=UTC)
STATUSES = [s.value for s in ProductStatus]


def product(
    external_id: str,
    *,
    status: str = "ACTIVE",
    at: datetime = BASE,
    title: str | None = None,
    sku: str | None = None,
    version: int = 0,
) -> Product:
    return Product(
        external_id=external_id,
        status=ProductStatus(status),
        title=title or f"Product {external_id} v{version}",
        identifiers=Identifiers(sku=sku),
        variants=[Variant(external_id=f"{external_id}-1", sku=sku)] if sku else [],
        store_updated_at=at,
    )


async def actual_counts(gw: Gateway, integration_id: str) -> dict[str, int]:
    """The products themselves, counted (a scan: what the kept counts spare every request)."""
    found: dict[str, int] = {}
    async for doc in gw.db.products.find({"integration_id": integration_id, "removed": False}, {"status": 1}):
        found[doc["status"]] = found.get(doc["status"], 0) + 1
    return found


async def kept_counts(gw: Gateway, integration_id: str) -> dict[str, int]:
    return dict((await gw.products.counts.get(integration_id)).by_status)


async def assert_counts_exact(gw: Gateway, *integration_ids: str) -> None:
    for integration_id in integration_ids:
        assert await kept_counts(gw, integration_id) == await actual_counts(gw, integration_id)


# ---- lists read through ranges ---------------------------------------------------------------------
SCRATCH = Paged("keyset_scratch", ("scope",), "at", DATETIME)


def scenario_keys(rng: random.Random, n: int) -> list[datetime]:
    """Keys a list may have: bursts sharing one millisecond, ordinary spreads, and years between groups."""
    keys: list[datetime] = []
    while len(keys) < n:
        shape = rng.choice(["burst", "spread", "far"])
        start = BASE - timedelta(days=rng.choice([0, 3, 400, 3000]))
        if shape == "burst":
            keys += [start] * rng.randint(5, 40)
        elif shape == "spread":
            keys += [start - timedelta(seconds=rng.uniform(0, 86_400 * 30)) for _ in range(rng.randint(5, 40))]
        else:
            keys.append(start - timedelta(days=rng.randint(1, 5000)))
    return [k.replace(microsecond=k.microsecond - k.microsecond % 1000) for k in keys[:n]]


async def page_all(gw: Gateway, eq: dict[str, Any], first: int, accept: Any = None) -> list[str]:
    ids: list[str] = []
    after: tuple[Any, str] | None = None
    while True:
        found = await read_page(gw.db.db[SCRATCH.collection], SCRATCH, eq, KeyPage(first, after), accept=accept)
        ids += [doc["_id"] for doc in found.items]
        assert len(found.items) <= first
        if not found.has_next:
            return ids
        assert len(found.items) == first
        after = found.positions[-1]


async def test_a_list_reads_every_row_once_in_order_whatever_its_keys(gw: Gateway) -> None:
    collection = gw.db.db[SCRATCH.collection]
    await collection.create_indexes([IndexModel(SCRATCH.index, name=SCRATCH.index_name)])
    for seed in range(6):
        rng = random.Random(seed)
        await collection.delete_many({})
        rows = [
            {"_id": f"row-{seed}-{n:04d}", "scope": rng.choice("ab"), "at": at}
            for n, at in enumerate(scenario_keys(rng, rng.randint(0, 300)))
        ]
        if rows:
            await collection.insert_many(rows)
        for scope in "ab":
            expected = sorted((r for r in rows if r["scope"] == scope), key=lambda r: (r["at"], r["_id"]), reverse=True)
            for first in (1, 7, 50):
                assert await page_all(gw, {"scope": scope}, first) == [r["_id"] for r in expected]
            # Rows an index cannot decide (a search): the page is still full, in order, each row once.
            odd = [r["_id"] for r in expected if int(r["_id"][-1]) % 2]
            assert await page_all(gw, {"scope": scope}, 5, accept=lambda doc: int(doc["_id"][-1]) % 2) == odd


async def test_a_list_is_read_only_by_equality_on_its_fields(gw: Gateway) -> None:
    collection = gw.db.db[SCRATCH.collection]
    for wrong in ({"scope": {"$in": ["a"]}}, {"other": "a"}, {}):
        try:
            await read_page(collection, SCRATCH, wrong, KeyPage(5))
        except ValueError:
            continue
        raise AssertionError(f"{wrong} was accepted")


async def test_every_list_query_is_served_by_its_own_index(gw: Gateway) -> None:
    values = {
        "account_id": ACCOUNT,
        "integration_id": "i1",
        "removed": False,
        "status": "ACTIVE",
        "search_tokens": "cot",
        "product_id": "i1:1",
    }
    for shape in PAGED:
        eq = {f: values[f] for f in shape.fields}
        low: Any = 0 if shape.axis.name == "feed" else BASE
        for key in ({"$gte": low}, {"$gte": low, "$lt": low if shape.axis.name == "feed" else BASE}):
            command = {"find": shape.collection, "filter": {**eq, shape.key: key}, "sort": {shape.key: -1, "_id": -1}}
            assert index_of(await gw.db.db.command("explain", command)) == shape.index_name, shape
        ties = {"find": shape.collection, "filter": {**eq, shape.key: low, "_id": {"$lt": "z"}}}
        assert index_of(await gw.db.db.command("explain", ties)) == shape.index_name, shape
    active = {"find": "sync_runs", "filter": {"integration_id": {"$in": ["i1", "i2"]}, "active": True}}
    assert index_of(await gw.db.db.command("explain", active)) == "one_active_run"
    calls = {"find": "api_call_days", "filter": {"_id": {"$in": ["i1:2026-03-01", "i2:2026-03-01"]}}}
    assert index_of(await gw.db.db.command("explain", calls)) == "_id_"


def index_of(explained: dict[str, Any]) -> str | None:
    stage = explained["queryPlanner"]["winningPlan"]
    while stage.get("stage") != "IXSCAN" and "inputStage" in stage:
        stage = stage["inputStage"]
    return stage.get("indexName") if stage.get("stage") == "IXSCAN" else None


# ---- products: lists, search, totals ---------------------------------------------------------------
async def seed_products(gw: Gateway, integration_id: str, rng: random.Random, n: int) -> None:
    # A third share one millisecond (an import), the rest are spread over a year.
    page = {
        str(i): product(
            str(i),
            status=rng.choices(STATUSES, [6, 2, 1])[0],
            at=BASE if i % 3 == 0 else BASE - timedelta(seconds=rng.randint(1, 365 * 86_400)),
            title=f"{rng.choice(['Organic', 'Linen', 'Vintage'])} {rng.choice(['Cotton Tee', 'Mug', 'T-Shirt'])} {i}",
            sku=f"SKU-{integration_id[:2]}-{i:04d}",
        )
        for i in range(n)
    }
    await gw.products.write_page(ACCOUNT, integration_id, "load", page, nothing_stored=True)


async def listed(gw: Gateway, first: int, **filters: Any) -> list[str]:
    ids: list[str] = []
    page = PageRequest(first)
    while True:
        found = await gw.products.page(ACCOUNT, page, **filters)
        ids += [p.id for p in found.items]
        if not found.has_next:
            return ids
        page = PageRequest(first, found.positions[-1])


async def expected(
    gw: Gateway, integration_id: str | None = None, status: str | None = None, search: str | None = None
) -> list[str]:
    query: dict[str, Any] = {"account_id": ACCOUNT, "removed": False}
    if integration_id:
        query["integration_id"] = integration_id
    if status:
        query["status"] = status
    docs = [d async for d in gw.db.products.find(query)]
    term = Search.of(search)
    if term is not None:
        docs = [d for d in docs if term.matcher(status)(d)]
    return [d["_id"] for d in sorted(docs, key=lambda d: (d["feed"], d["_id"]), reverse=True)]


async def test_product_lists_read_each_product_once_in_order_with_exact_totals(gw: Gateway) -> None:
    rng = random.Random(7)
    await seed_products(gw, "i1", rng, 140)
    await seed_products(gw, "i2", rng, 90)
    await gw.products.mark_removed("i1", [str(i) for i in range(0, 140, 9)], None)
    cases: list[dict[str, Any]] = [
        {},
        {"integration_id": "i1"},
        {"status": "DRAFT"},
        {"integration_id": "i2", "status": "ARCHIVED"},
        {"search": "cot"},
        {"integration_id": "i1", "search": "vintage t-sh"},
        {"search": "linen co"},  # a phrase: looked up by its pair token ("linen co")
        {"integration_id": "i2", "search": "organic mug"},
        {"integration_id": "i2", "search": "sku-i2-00"},
        {"search": "l", "status": "ACTIVE"},
    ]
    for filters in cases:
        want = await expected(gw, filters.get("integration_id"), filters.get("status"), filters.get("search"))
        assert want, filters  # every case lists something
        for first in (1, 7, 250):
            assert await listed(gw, first, **filters) == want, (filters, first)
        assert await gw.products.total(ACCOUNT, **filters) == len(want), filters
    # Store-updated times, newest first; products of one millisecond by their list key.
    ordered = await listed(gw, 50)
    docs = {d["_id"]: d async for d in gw.db.products.find({})}
    times = [docs[i]["store_updated_at"] for i in ordered]
    assert times == sorted(times, reverse=True)
    assert docs[ordered[0]]["feed"] == feed_key(docs[ordered[0]]["store_updated_at"], docs[ordered[0]]["external_id"])
    # Another account sees none of it, even naming the integration.
    other = await gw.products.page("acct-2", PageRequest(50), integration_id="i1")
    assert other.items == [] and await gw.products.total("acct-2", integration_id="i1") == 0


async def test_a_cursor_stays_valid_while_products_change(gw: Gateway) -> None:
    rng = random.Random(11)
    await seed_products(gw, "i1", rng, 120)
    before = await expected(gw, "i1")
    first = await gw.products.page(ACCOUNT, PageRequest(20), integration_id="i1")
    assert [p.id for p in first.items] == before[:20]
    # Meanwhile: new products (newest: above the cursor), one of the rest changed (it moves above it too),
    # one of the rest removed.
    later = datetime.now(UTC)
    news = {f"new-{i}": product(f"new-{i}", at=later) for i in range(5)}
    await gw.products.write_page(ACCOUNT, "i1", "run-2", news)
    changed, gone = before[60], before[70]
    await gw.products.write_one(ACCOUNT, "i1", product(changed.split(":", 1)[1], at=later, version=9), "changed", None)
    assert await gw.products.mark_removed("i1", [gone.split(":", 1)[1]], None) == 1
    rest: list[str] = []
    page = PageRequest(20, first.positions[-1])
    while True:
        found = await gw.products.page(ACCOUNT, page, integration_id="i1")
        rest += [p.id for p in found.items]
        if not found.has_next:
            break
        page = PageRequest(20, found.positions[-1])
    # The rest of the list as it was, each once and in order, less what moved above the cursor or went.
    assert rest == [pid for pid in before[20:] if pid not in (changed, gone)]


def test_a_phrase_is_looked_up_by_a_word_and_the_start_of_the_next() -> None:
    assert "vintage sc" in search_tokens("vintage scarf", [])
    assert Search("vintage sc").token == "vintage sc"
    assert Search("linen tee").token == "linen te"
    # Digits: one part is rarer than the pair ("sku 48" is a thousand SKUs, "482" a hundred).
    assert Search("sku-48213").token == "482"
    assert Search("vintage s").token == "vintage"  # one letter of the next word: the word alone


async def test_search_finds_words_from_their_start_and_skus_from_theirs(gw: Gateway) -> None:
    titles = {
        "1": ("Organic Cotton Tee", "ABC-123-RED"),
        "2": ("Cottage Mug", "MUG-7"),
        "3": ("Linen T-Shirt", "LIN-55"),
        "4": ("Scotland Scarf", None),
    }
    page = {e: product(e, title=t, sku=s, at=BASE - timedelta(minutes=int(e))) for e, (t, s) in titles.items()}
    await gw.products.write_page(ACCOUNT, "i1", "load", page, nothing_stored=True)

    async def found(term: str) -> set[str]:
        listed = await gw.products.page(ACCOUNT, PageRequest(50), integration_id="i1", search=term)
        return {p.external_id for p in listed.items}

    assert await found("cot") == {"1", "2"}  # a word being typed
    assert await found("COTTON tee") == {"1"}
    assert await found("otton") == set()  # inside a word: not a word's start
    assert await found("abc-12") == {"1"}  # a SKU from its start
    assert await found("123") == set()  # inside a SKU
    assert await found("t-sh") == {"3"}
    assert await found("s") == {"4", "3"}  # too short for a token: read in order, decided one by one
    assert await found("scarf ") == {"4"}
    assert await found("  ") == {"1", "2", "3", "4"}  # no term: no search


async def test_a_search_reads_the_same_page_whole_or_by_its_deciding_fields(gw: Gateway, monkeypatch: Any) -> None:
    """A word's rows are read whole (most of them match), a SKU number's by the fields deciding a match and
    the page's documents after; what a term's last read found decides the next. Either way: the same page."""
    rng = random.Random(7)
    page = {
        str(n): product(
            str(n),
            title=f"{rng.choice(['Cotton', 'Cottage', 'Linen'])} {rng.choice(['Tee', 'Mug'])} {n}",
            sku=f"SKU-{n}",
            at=BASE - timedelta(minutes=n),
        )
        for n in range(300)
    }
    await gw.products.write_page(ACCOUNT, "i1", "load", page, nothing_stored=True)
    reads: list[dict[str, Any] | None] = []
    find = AsyncCollection.find

    def spying(self: AsyncCollection[Any], *args: Any, **kwargs: Any) -> Any:
        if self.name == "products":
            reads.append(args[1] if len(args) > 1 else kwargs.get("projection"))
        return find(self, *args, **kwargs)

    monkeypatch.setattr(AsyncCollection, "find", spying)
    store = gw.products

    async def listed(term: str, *, whole: bool | None = None) -> list[str]:
        if whole is not None:  # what the last read found, as if it had found this
            store._acceptance[("i1", term.casefold(), None)] = 1.0 if whole else 0.0
        reads.clear()
        found = await store.page(ACCOUNT, PageRequest(20), integration_id="i1", search=term)
        return [p.external_id for p in found.items]

    for term, matching in (("cotton", lambda t: t.startswith("Cotton ")), ("sku-12", None)):
        expected = [e for e, p in page.items() if (matching(p.title) if matching else e.startswith("12"))][:20]
        by_default = await listed(term)
        assert (reads[0] is None) is (term == "cotton")  # a word is read whole; a term with a digit is not
        assert by_default == expected
        assert await listed(term, whole=True) == expected and reads == [None] * len(reads)
        assert await listed(term, whole=False) == expected and reads[0] is not None
        assert reads[-1] is None  # then the page's documents, whole
    monkeypatch.undo()
    # "cot" matches Cotton and Cottage (most rows): remembered as mostly matching, read whole next time.
    await store.page(ACCOUNT, PageRequest(20), integration_id="i1", search="cot")
    assert store._acceptance[("i1", "cot", None)] > 0.5


async def test_an_account_wide_search_pages_through_every_store_in_order(gw: Gateway) -> None:
    """Each store is asked for its share of a page, then only the store bounding the merge for more: the
    pages still list every match once, newest first, however unevenly the matches are spread."""
    at = iter(range(10_000))
    expected: list[tuple[datetime, str]] = []
    # i1 holds most matches, and the newest ones; i2 a few spread out; i3 none (only other products).
    for integration_id, titles in {
        "i1": ["Linen Shirt"] * 40 + ["Wool Hat"] * 5,
        "i2": ["Wool Sock", "Linen Towel", "Wool Scarf"] * 6,
        "i3": ["Cotton Tee"] * 10,
    }.items():
        page = {}
        for n, title in enumerate(titles):
            when = BASE - timedelta(minutes=next(at) * (1 if integration_id == "i1" else 7))
            page[f"{n}"] = product(f"{n}", title=title, at=when)
            if title.startswith("Linen"):
                expected.append((when, f"{integration_id}:{n}"))
        await gw.products.write_page(ACCOUNT, integration_id, "load", page, nothing_stored=True)
    expected.sort(reverse=True)

    listed: list[tuple[datetime, str]] = []
    request = PageRequest(7)
    while True:
        found = await gw.products.page(ACCOUNT, request, search="linen")
        listed += [(p.store_updated_at, f"{p.integration_id}:{p.external_id}") for p in found.items]
        if not found.has_next:
            break
        request = PageRequest(7, found.positions[-1])
    assert listed == expected
    assert await gw.products.total(ACCOUNT, search="linen") == len(expected) == 46


async def test_an_account_wide_search_finds_a_store_that_got_products_since_the_last_search(gw: Gateway) -> None:
    """The last search's stores are asked while the counts are read: the counts still decide, so a store
    with products since then is searched (and one with none left is not), from the first search after."""

    async def found() -> set[str]:
        listed = await gw.products.page(ACCOUNT, PageRequest(50), search="linen")
        return {f"{p.integration_id}:{p.external_id}" for p in listed.items}

    await gw.products.write_page(ACCOUNT, "i1", "load", {"1": product("1", title="Linen Shirt")}, nothing_stored=True)
    assert await found() == {"i1:1"}
    assert await found() == {"i1:1"}  # the guess was right
    later = BASE + timedelta(minutes=5)
    await gw.products.write_page(
        ACCOUNT, "i2", "load", {"7": product("7", title="Linen Towel", at=later)}, nothing_stored=True
    )
    assert await found() == {"i1:1", "i2:7"}  # the guess missed i2: asked again
    assert await gw.products.mark_removed("i1", ["1"], None) == 1
    assert await found() == {"i2:7"}


# ---- product counts ---------------------------------------------------------------------------------
async def test_a_retried_run_counts_as_added_what_its_dead_attempt_inserted_whatever_came_since(gw: Gateway) -> None:
    """Found by the fault matrix (a worker killed mid-run, webhooks arriving): the retry walked a product
    its dead attempt had inserted and a webhook had changed since, and counted it "unchanged" while a
    recount of the products the run created said "added"."""
    page = {"1": product("1"), "2": product("2")}
    await gw.products.write_page(ACCOUNT, "i1", "run-1", page, nothing_stored=True)  # then the worker dies
    newer = product("1", at=BASE + timedelta(hours=1), title="Changed in the store", version=1)
    await gw.products.write_one(ACCOUNT, "i1", newer, "webhook", None)
    again = await gw.products.write_page(ACCOUNT, "i1", "run-1", page)  # the retry walks the page again
    assert (again.counts.added, again.counts.updated, again.counts.unchanged) == (2, 0, 0)
    assert await gw.db.products.count_documents({"created_run": "run-1"}) == 2


async def test_counts_follow_every_kind_of_write(gw: Gateway) -> None:
    products = gw.products
    first = {str(i): product(str(i), status=STATUSES[i % 3]) for i in range(30)}
    await products.write_page(ACCOUNT, "i1", "run-1", first, nothing_stored=True)
    assert await kept_counts(gw, "i1") == {"ACTIVE": 10, "DRAFT": 10, "ARCHIVED": 10}
    # A page that changes some statuses, inserts some, keeps some.
    later = BASE + timedelta(hours=1)
    second = {str(i): product(str(i), status="ACTIVE", at=later, version=1) for i in range(20, 40)}
    await products.write_page(ACCOUNT, "i1", "run-2", second)
    await assert_counts_exact(gw, "i1")
    # Webhooks: a status change, a removal, a product coming back with another status.
    await products.write_one(ACCOUNT, "i1", product("0", status="DRAFT", at=later), "h0", None)
    assert await products.mark_removed("i1", ["1", "2", "3", "missing"], None) == 3
    assert await products.mark_removed("i1", ["1"], None) == 0  # removed already: not counted twice
    await products.write_one(ACCOUNT, "i1", product("2", status="ARCHIVED", at=later + timedelta(hours=1)), "h2", None)
    await assert_counts_exact(gw, "i1")
    # The end of a full run: what it did not see is removed.
    started = datetime.now(UTC) + timedelta(minutes=1)  # after every write above
    removed = await products.sweep_unseen("i1", "run-3", started, {str(i) for i in range(10)}, retried=False)
    assert removed == 30  # 10 to 39: the run saw 0 to 9
    await assert_counts_exact(gw, "i1")
    assert await products.count(ACCOUNT, "i1") == sum((await actual_counts(gw, "i1")).values())
    await products.delete_integration("i1")
    assert await kept_counts(gw, "i1") == {} and await gw.db.product_counts.count_documents({}) == 0


async def test_counts_stay_exact_under_concurrent_writers(gw: Gateway) -> None:
    # A second store on its own connection: two processes writing the same products.
    other_db = connect_db(gw.settings.effective_mongodb_url(), gw.settings.mongodb_database)
    other = ProductStore(other_db)
    stores = [gw.products, other]
    try:
        rng = random.Random(3)
        ids = [str(i) for i in range(40)]
        clock = [BASE]

        def fresh(external_id: str) -> Product:
            clock[0] += timedelta(milliseconds=1)
            return product(external_id, status=rng.choice(STATUSES), at=clock[0], version=rng.randint(0, 9))

        for round_ in range(6):
            work = []
            for n in range(12):
                store = stores[n % 2]
                kind = rng.choice(["page", "one", "remove", "sweep"])
                chosen = rng.sample(ids, rng.randint(1, 15))
                if kind == "page":
                    work.append(store.write_page(ACCOUNT, "i1", f"run-{round_}-{n}", {e: fresh(e) for e in chosen}))
                elif kind == "one":
                    work += [store.write_one(ACCOUNT, "i1", fresh(e), f"h{rng.random()}", None) for e in chosen[:4]]
                elif kind == "remove":
                    work.append(store.mark_removed("i1", chosen, None))
                else:
                    seen = set(rng.sample(ids, 30))
                    started = datetime.now(UTC)
                    work.append(store.sweep_unseen("i1", f"sweep-{round_}-{n}", started, seen, retried=False))
            await asyncio.gather(*work)
            await assert_counts_exact(gw, "i1")
            assert not (await gw.db.product_counts.find_one({"_id": "i1"}) or {}).get("pending")
    finally:
        await other_db.close()


async def test_a_recount_repairs_drift_but_never_races_a_writer(gw: Gateway) -> None:
    counts: ProductCountStore = gw.products.counts
    await gw.products.write_page(
        ACCOUNT, "i1", "run", {str(i): product(str(i)) for i in range(12)}, nothing_stored=True
    )
    await gw.db.product_counts.update_one({"_id": "i1"}, {"$inc": {"counts.ACTIVE": 5, "counts.DRAFT": 2}})
    # Nothing says these counts drifted (no process died mid-write, recounted recently): left alone.
    assert await counts.repair("i1") is None and await kept_counts(gw, "i1") == {"ACTIVE": 17, "DRAFT": 2}
    # A recount while a write is in flight would race it: it leaves the counts to a later one.
    async with counts.change("i1", ACCOUNT) as change:
        assert await counts.recount("i1") is None
        change.add("DRAFT", 0)
    recounted = await counts.recount("i1")
    assert recounted is not None and dict(recounted.by_status) == {"ACTIVE": 12}
    await assert_counts_exact(gw, "i1")
    # A process died between its write and its count: its token is stale, so `repair` recounts.
    dead = {"t": "dead-process", "at": datetime.now(UTC) - timedelta(hours=1)}
    await gw.db.product_counts.update_one({"_id": "i1"}, {"$push": {"pending": dead}, "$inc": {"counts.ACTIVE": -3}})
    await gw.db.products.update_one({"_id": product_id("i1", "0")}, {"$set": {"status": "DRAFT"}})  # its write
    repaired = await counts.repair("i1")
    assert repaired is not None and dict(repaired.by_status) == {"ACTIVE": 11, "DRAFT": 1}
    assert (await gw.db.product_counts.find_one({"_id": "i1"}) or {})["pending"] == []
    await assert_counts_exact(gw, "i1")


async def wait_for_applied(gw: Gateway, integration_id: str, count: int) -> None:
    """Until `count` deliveries were received and none waits to be applied (woken by the account's events)."""

    async def applied() -> None:
        async with gw.hub.listen(account_channel(ACCOUNT)) as queue:
            while await gw.db.deliveries.count_documents({"integration_id": integration_id}) < count or (
                await gw.db.queue.count_documents({"integration_id": integration_id})
            ):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), 0.5)

    await asyncio.wait_for(applied(), 30)


async def test_syncs_and_disconnect_keep_counts_exact(
    gw: Gateway, api: Api, worker: object, toy_store: ToySimulator
) -> None:
    integration_id = await connect(api, toy_store)
    await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id)
    card = "query($id: ID!) { integration(id: $id) { productCount } }"
    assert (await api.query(card, {"id": integration_id}))["integration"]["productCount"] == 30
    toy_store.deliver_webhooks = False  # the changes reach the gateway only through the next full run
    for external_id in toy_store.product_ids()[:4]:
        toy_store.delete_product(external_id)
    toy_store.create_product()
    data = await api.query(
        "mutation($id: ID!) { syncNow(integrationId: $id, full: true) { id } }", {"id": integration_id}
    )
    await wait_run(gw, data["syncNow"]["id"])
    assert (await api.query(card, {"id": integration_id}))["integration"]["productCount"] == 27
    totals = await api.query("{ products { totalCount } all: products(integrationId: null) { totalCount } }")
    assert totals["products"]["totalCount"] == totals["all"]["totalCount"] == 27
    await assert_counts_exact(gw, integration_id)
    # Webhooks, applied by the worker as they arrive: a removal, a new product, a status change.
    toy_store.deliver_webhooks = True
    kept = toy_store.product_ids()
    toy_store.delete_product(kept[0])
    toy_store.create_product()
    toy_store.update_product(kept[1], status="DRAFT")
    await wait_for_applied(gw, integration_id, 3)
    assert (await api.query(card, {"id": integration_id}))["integration"]["productCount"] == 27
    drafts = await api.query("{ products(status: DRAFT) { totalCount edges { node { externalId } } } }")
    assert drafts["products"]["totalCount"] == 1
    assert [e["node"]["externalId"] for e in drafts["products"]["edges"]] == [kept[1]]
    await assert_counts_exact(gw, integration_id)
    await api.query("mutation($id: ID!) { disconnectIntegration(integrationId: $id) }", {"id": integration_id})
    assert await gw.db.product_counts.find_one({"_id": integration_id}) is None
    assert (await api.query("{ products { totalCount } }"))["products"]["totalCount"] == 0


async def test_the_integrations_page_reads_each_kind_of_row_once_for_all_stores(
    gw: Gateway, api: Api, worker: Workers, monkeypatch: Any
) -> None:
    stores = [ToySimulator(products=5, seed=n) for n in range(3)]
    for sim in stores:
        await sim.start()
    try:
        ids = [await connect(api, sim) for sim in stores]
        for integration_id in ids:
            await wait_run(gw, (await gw.runs.latest(integration_id, 1))[0].id)
        # A finished run's job still refreshes the light (runs read): only the page's own reads are counted.
        await worker.running_jobs()
        calls: dict[str, int] = {}

        def counted(name: str, method: Any) -> Any:
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                calls[name] = calls.get(name, 0) + 1
                return await method(*args, **kwargs)

            return wrapper

        for target, name in (
            (gw.runs, "active"),
            (gw.runs, "active_of"),
            (gw.runs, "latest"),
            (gw.products, "counts_of"),
        ):
            monkeypatch.setattr(target, name, counted(name, getattr(target, name)))
        fields = "productCount apiCallsLast24h health { status } currentRun { id } syncRuns(first: 10) { id }"
        page = await api.query(f"{{ integrations {{ {fields} }} }}")
        assert [i["productCount"] for i in page["integrations"]] == [5, 5, 5]
        assert all(i["health"]["status"] == "GREEN" and len(i["syncRuns"]) == 1 for i in page["integrations"])
        # One query for every integration's counts, one for their active runs, one run list each.
        assert calls == {"counts_of": 1, "active_of": 1, "latest": 3}
    finally:
        for sim in stores:
            await sim.stop()


# ---- an existing database -----------------------------------------------------------------------------
async def test_products_from_before_get_their_list_fields_and_counts(gw: Gateway) -> None:
    await seed_products(gw, "i1", random.Random(1), 60)
    await gw.db.integrations.insert_one({"_id": "i1", "account_id": ACCOUNT})
    before = {d["_id"]: d async for d in gw.db.products.find({})}
    await gw.db.products.update_many({}, {"$unset": {"feed": "", "search_tokens": ""}})
    await gw.db.products.update_many({"external_id": {"$in": ["1", "2"]}}, {"$unset": {"removed": ""}})
    await gw.db.product_counts.delete_many({})
    await gw.db.db[COLLECTION].delete_many({"_id": {"$regex": "^0002"}})

    assert await run_migrations(gw.db) == ["0002-product-list-fields-and-counts"]
    after = {d["_id"]: d async for d in gw.db.products.find({})}
    assert {k: (d["feed"], d["search_tokens"], d["removed"]) for k, d in after.items()} == {
        k: (d["feed"], d["search_tokens"], d["removed"]) for k, d in before.items()
    }
    await assert_counts_exact(gw, "i1")
    assert await listed(gw, 25, integration_id="i1") == await expected(gw, "i1")


async def test_a_page_is_written_in_chunks_and_what_another_writer_inserted_is_decided_again(gw: Gateway) -> None:
    # A run's page goes to the database WRITE_CHUNK products a command (so other stores' writes get in
    # between); products a webhook inserted meanwhile collide in whichever chunk holds them, and each is
    # found, decided again, and counted once.
    from gateway.products import WRITE_CHUNK

    n = WRITE_CHUNK * 3 + 7
    page = {f"{i}": product(f"{i}", at=BASE - timedelta(seconds=i)) for i in range(n)}
    raced = [f"{i}" for i in (1, WRITE_CHUNK + 2, 2 * WRITE_CHUNK + 3, n - 1)]
    for external_id in raced:  # written first, by "a webhook", with an older version
        older = product(external_id, at=BASE - timedelta(days=1), version=1)
        await gw.products.write_one(ACCOUNT, "i1", older, older.content_hash(), None)

    written = await gw.products.write_page(ACCOUNT, "i1", "run-1", page, nothing_stored=True)

    assert written.counts.added == n - len(raced)
    assert written.counts.updated == len(raced)  # decided again: the run's version is newer
    stored = {d["external_id"]: d["store"]["title"] async for d in gw.db.products.find({"integration_id": "i1"})}
    assert stored == {e: p.title for e, p in page.items()}
    await assert_counts_exact(gw, "i1")
