"""The API's DateTime scalar in the canonical shape: UTC, to the millisecond, always three decimals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import strawberry
from strawberry.printer import print_schema

from gateway.api.scalars import SCALAR_OVERRIDES
from gateway.api.schema import build_schema

NEW_YORK = timezone(timedelta(hours=-5))


@strawberry.type
class Query:
    @strawberry.field
    def stored(self) -> datetime:  # what MongoDB gives back: milliseconds, UTC
        return datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)

    @strawberry.field
    def clock(self) -> datetime:  # what the clock gives: microseconds
        return datetime(2026, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)

    @strawberry.field
    def whole(self) -> datetime:  # isoformat() would print no fraction at all
        return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    @strawberry.field
    def local(self) -> datetime:
        return datetime(2026, 1, 1, 22, 4, 5, 1000, tzinfo=NEW_YORK)

    @strawberry.field
    def echo(self, at: datetime) -> datetime:
        return at


def test_every_datetime_is_served_utc_to_the_millisecond() -> None:
    schema = strawberry.Schema(query=Query, scalar_overrides=SCALAR_OVERRIDES)
    result = schema.execute_sync('{ stored clock whole local echo(at: "2026-01-02T04:04:05.678901+01:00") }')
    assert result.errors is None, result.errors
    assert result.data == {
        "stored": "2026-01-02T03:04:05.678Z",
        "clock": "2026-01-02T03:04:05.678Z",
        "whole": "2026-01-02T03:04:05.000Z",
        "local": "2026-01-02T03:04:05.001Z",
        "echo": "2026-01-02T03:04:05.678Z",
    }
    bad = schema.execute_sync('{ echo(at: "yesterday") }')
    assert bad.errors and "cannot represent a DateTime" in bad.errors[0].message


def test_the_override_leaves_the_served_schema_as_it_is() -> None:
    served = build_schema()
    overridden = strawberry.Schema(
        query=served.query,
        mutation=served.mutation,
        subscription=served.subscription,
        scalar_overrides=SCALAR_OVERRIDES,
    )
    assert print_schema(overridden) == print_schema(served)


def test_the_served_schema_uses_the_canonical_datetime() -> None:
    served = build_schema()._schema.get_type("DateTime")
    assert served is not None
    assert served.serialize(datetime(2026, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"  # type: ignore[union-attr]
