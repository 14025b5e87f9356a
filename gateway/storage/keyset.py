"""Keyset pages read through narrow key ranges: the one way every list reads a page.

Why ranges: what a query costs the embedded server (SecantusDB) is every document its index lookup
returns. It fetches, decodes, filters and sorts all of them before it applies `limit` (there is no
limit push-down, and it takes the order from an index only when the filter is empty), so
`find({integration_id: X}).sort(...).limit(51)` over a 50,000-product store decodes 50,000 documents
(seconds). A range on the key is different: `{<equalities>, key: {$gte: lo, $lt: hi}}` is answered
from an index (equality fields..., key, _id) with exactly the rows in the range. So a page is read as
a few such ranges, each sized to hold about a page, walking down from the cursor:

- the rows that share the cursor's key come first (`{key: at, _id: {$lt: id}}`, the same index);
- the first range is sized from what the last read of the same list found (its rows per key unit,
  and where its newest row was), or from what the caller knows (the product counts);
- a range that comes back short is followed by one below it, sized from the rows seen so far (16
  times wider after an empty one), until the page is full; past `MAX_SPAN`, or below the caller's
  `floor`, one last query takes everything left.

Every query is a plain keyset query, so the result is exact whatever the sizes guessed: a bad guess
costs a query more or a few rows decoded too many, never a wrong page. On MongoDB the same queries use
the same indexes. What this cannot help is a single key value shared by thousands of rows: the
products' key mixes a hash of the id into the timestamp for that reason (gateway.products.feed_key).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from gateway.pagination import Slice

Doc = dict[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: Hints kept per process (one per list read): bounded, least recently used dropped first.
HINTS_KEPT = 4096
#: A short range is followed by one at most this much wider (and this much wider after an empty one).
GROWTH = 16.0
#: Ranges are sized for this many times the rows still missing (a little slack saves a query).
SLACK = 1.25


@dataclass(frozen=True)
class Axis:
    """How a key's values map to numbers, so ranges can be sized and moved.

    `unit_ms` is how many numbers make one millisecond (1 for a datetime key in milliseconds).
    """

    name: str
    unit_ms: int

    def number(self, value: Any) -> int:
        if isinstance(value, datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=UTC)
            return (aware - _EPOCH) // _MS
        return int(value)

    def value(self, number: float) -> Any:
        if self.name == "datetime":
            return _EPOCH + _MS * int(number)
        return int(number)

    def now(self) -> int:
        return ((datetime.now(UTC) - _EPOCH) // _MS) * self.unit_ms

    @property
    def first_width(self) -> float:
        """The first range's width when nothing is known about the list: a day."""
        return 86_400_000.0 * self.unit_ms

    @property
    def max_span(self) -> float:
        """Past this far below where the walk began, the last query takes everything left: 20 years."""
        return 20 * 365.25 * 86_400_000.0 * self.unit_ms


#: Keys that are datetimes (milliseconds).
DATETIME = Axis("datetime", 1)


@dataclass(frozen=True)
class Paged:
    """A list read newest first by `key` (ties by _id) among the rows equal on `fields`.

    Each one has the index (fields..., key desc, _id desc) (gateway.storage.mongo.ensure_indexes),
    which is what makes every range query of `read_page` read only its rows.
    """

    collection: str
    fields: tuple[str, ...]
    key: str
    axis: Axis = DATETIME

    @property
    def index(self) -> list[tuple[str, int]]:
        return [*((f, 1) for f in self.fields), (self.key, DESCENDING), ("_id", DESCENDING)]

    @property
    def index_name(self) -> str:
        return "page_" + "_".join((*self.fields, self.key))


@dataclass(frozen=True)
class KeyPage:
    """`first` rows after the row at (`after` key value, its _id); from the newest when None."""

    first: int
    after: tuple[Any, str] | None = None


@dataclass
class _Hint:
    #: Where the newest row was when this list was last read from its top.
    anchor: int | None
    #: Rows per key unit near where it was last read (None: none found yet).
    density: float | None


_hints: OrderedDict[tuple[str, str, str], _Hint] = OrderedDict()


def _hint_key(collection: AsyncCollection[Doc], shape: Paged, eq: Mapping[str, Any]) -> tuple[str, str, str]:
    return (collection.full_name, shape.key, repr(sorted(eq.items())))


def _remember(key: tuple[str, str, str], anchor: int | None, density: float | None) -> None:
    old = _hints.pop(key, None)
    if old is not None:
        anchor = anchor if anchor is not None else old.anchor
        density = density if density is not None else old.density
    _hints[key] = _Hint(anchor, density)
    while len(_hints) > HINTS_KEPT:
        _hints.popitem(last=False)


async def read_page(
    collection: AsyncCollection[Doc],
    shape: Paged,
    eq: Mapping[str, Any],
    page: KeyPage,
    *,
    projection: Mapping[str, Any] | None = None,
    accept: Callable[[Doc], bool] | None = None,
    newest: int | None = None,
    density: float | None = None,
    expect: int | None = None,
    floor: Any = None,
) -> Slice[Doc]:
    """One page of the rows equal to `eq` on `shape.fields`, newest `shape.key` first, after `page.after`.

    `accept` keeps only some of the rows (what an index cannot decide, e.g. a search); the ranges are
    sized by the rows it keeps. What the caller knows sizes the first range when this process has not
    read the list before: `newest` (the newest key as a number on the shape's axis), `density` (rows
    per key unit) and `expect` (how many rows the list has). `floor` is a key value no row is below.
    None of them changes the result, only how many queries it takes.
    """
    if set(eq) != set(shape.fields) or any(isinstance(v, Mapping) for v in eq.values()):
        raise ValueError(f"a {shape.collection} page is read by equality on {shape.fields}, not {list(eq)}")
    axis, key = shape.axis, shape.key
    if projection is not None and any(v and not isinstance(v, Mapping) for v in projection.values()):
        projection = {**projection, key: 1}  # an inclusion projection still reads the key (the positions)
    need = page.first + 1
    batch = max(101, 2 * need)
    rows: list[Doc] = []

    async def find(bound: Any, below_id: str | None = None) -> int:
        query: Doc = {**eq, key: bound} if bound is not None else dict(eq)
        if below_id is not None:
            query["_id"] = {"$lt": below_id}
        before = len(rows)
        # A range is sized to hold about a page: one batch takes it all (the driver's first batch is 101
        # rows, so a page of 100 took a second round trip for its last rows).
        cursor = collection.find(query, projection, batch_size=batch).sort([(key, DESCENDING), ("_id", DESCENDING)])
        async for doc in cursor:
            if accept is None or accept(doc):
                rows.append(doc)
        return len(rows) - before

    hint_key = _hint_key(collection, shape, eq)
    hint = _hints.get(hint_key)
    #: The walk's upper bound (exclusive; None: none, the first range reaches up past `top`).
    hi: int | None = None
    if page.after is not None:
        at, row_id = page.after
        # The rows sharing the cursor's key, then the ranges below it.
        await find(at, row_id)
        hi = top = axis.number(at)
    elif hint is not None and hint.anchor is not None:
        top = hint.anchor
    else:
        top = newest if newest is not None else axis.now()
    floor_number = axis.number(floor) if floor is not None else None
    rate = hint.density if hint and hint.density else density
    width = max(1.0, (need - len(rows)) / rate * SLACK) if rate else axis.first_width
    found_span, found = 0.0, 0
    while len(rows) < need:
        lo = top - width if hi is None else hi - width
        last = (
            top - lo > axis.max_span
            or (floor_number is not None and lo <= floor_number)
            or (expect is not None and page.after is None and len(rows) >= expect)
        )
        if last:
            await find({"$lt": axis.value(hi)} if hi is not None else None)
            break
        bound: Doc = {"$gte": axis.value(lo)}
        if hi is not None:
            bound["$lt"] = axis.value(hi)
        got = await find(bound)
        found += got
        found_span += (top if hi is None else hi) - lo
        hi = int(lo)
        if len(rows) >= need:
            break
        if found == 0:
            width *= GROWTH
        else:
            wanted = (need - len(rows)) * found_span / found * SLACK
            width = min(max(wanted, 1.0), width * GROWTH)
    anchor = axis.number(rows[0][key]) if page.after is None and rows else None
    _remember(hint_key, anchor, found / found_span if found and found_span > 0 else None)
    kept = rows[: page.first]
    return Slice(kept, [(doc.get(key), doc["_id"]) for doc in kept], len(rows) > page.first)
