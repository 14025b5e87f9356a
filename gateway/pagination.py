"""Keyset pagination shared by every list the API serves (products, runs, conflicts, activity).

Each list is read newest first by a (timestamp, _id) key. The data-access classes read one row more
than asked for (that is how they know a next page exists) and return a `Slice`; the API turns a
slice into a GraphQL connection in one place (gateway.api.pagination). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")

#: Where a row sits in its list: its sort timestamp and its id (the tie-breaker).
Position = tuple[datetime | None, str]


@dataclass(frozen=True)
class PageRequest:
    """`first` rows after `after` (None: from the newest)."""

    first: int
    after: Position | None = None


@dataclass(frozen=True)
class Slice(Generic[T]):
    """One page of rows, each with its position (the cursor of its edge)."""

    items: Sequence[T]
    positions: Sequence[Position]
    has_next: bool
    #: How many rows the whole list has, for the lists that report it.
    total: int | None = None

    @classmethod
    def of(cls, rows: Sequence[T], positions: Sequence[Position], page: PageRequest) -> Slice[T]:
        """From `first + 1` rows read: the extra one only says that there is a next page."""
        return cls(rows[: page.first], positions[: page.first], len(rows) > page.first)
