"""GraphQL connections from data-access slices: opaque cursors, `first` limits, edges and pageInfo.

The idea of saleor's `create_connection_slice`: a resolver asks for a `PageRequest`, the data-access
class answers with a `Slice`, and `create_connection_slice` builds the edges and page info, so the
cursor format and the page rules exist once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import strawberry

from gateway.errors import BadInput
from gateway.pagination import PageRequest, Position, Slice

R = TypeVar("R")
E = TypeVar("E")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def encode_cursor(position: Position) -> str:
    at, row_id = position
    raw = json.dumps([at.isoformat() if at else None, row_id])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str | None, field: str = "after") -> Position | None:
    if not cursor:
        return None
    try:
        at, row_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return (datetime.fromisoformat(at) if at else None, str(row_id))
    except (ValueError, TypeError):
        raise BadInput("the cursor is not one this API returned", field=field) from None


def check_first(first: int, maximum: int, field: str = "first") -> int:
    if first < 1 or first > maximum:
        raise BadInput(f"{field} must be between 1 and {maximum}", field=field)
    return first


def page_request(first: int | None, after: str | None, *, default: int, maximum: int) -> PageRequest:
    """The page a connection field's `first` / `after` arguments ask for (BAD_USER_INPUT when invalid)."""
    return PageRequest(check_first(default if first is None else first, maximum), decode_cursor(after))


def create_connection_slice(
    page: Slice[R], node: Callable[[R], object], edge: Callable[..., E]
) -> tuple[list[E], PageInfo]:
    """The edges (`edge(cursor=..., node=...)`, an Edge type) and the page info of one slice."""
    edges = [
        edge(cursor=encode_cursor(position), node=node(row))
        for row, position in zip(page.items, page.positions, strict=True)
    ]
    end = encode_cursor(page.positions[-1]) if page.positions else None
    return edges, PageInfo(has_next_page=page.has_next, end_cursor=end)
