"""Scalars the API serves in the canonical shape (gateway/model.py).

`DATETIME` serves every DateTime as UTC to the millisecond, "2026-01-02T03:04:05.678Z", whether the
value comes from MongoDB (milliseconds, `+00:00`), from the clock (microseconds) or from a model:
strawberry's own DateTime prints `isoformat()`, whose digits and offset vary with the value. The
schema keeps the scalar's name and description, so the exported SDL does not change.

Wired in with `strawberry.Schema(..., scalar_overrides=SCALAR_OVERRIDES)`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dateutil.parser
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.types.scalar import ScalarDefinition

from gateway.model import format_timestamp, millis_utc


def _serialize(value: Any) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"DateTime cannot represent {type(value).__name__}")
    return format_timestamp(value)


def _parse(value: object) -> datetime:
    if not isinstance(value, str):
        raise StrawberryInputCoercionError(f'Value cannot represent a DateTime: "{value}". Expected a string.')
    try:
        return millis_utc(dateutil.parser.isoparse(value))
    except ValueError as exc:
        raise StrawberryInputCoercionError(f'Value cannot represent a DateTime: "{value}". {exc}') from None


DATETIME = ScalarDefinition(
    name="DateTime",
    description="Date with time (isoformat)",
    specified_by_url=None,
    serialize=_serialize,
    parse_value=_parse,
    parse_literal=None,
    origin=datetime,
)

SCALAR_OVERRIDES: dict[object, Any] = {datetime: DATETIME}
