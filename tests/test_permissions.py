"""Auth is declared on every root field (strawberry permission classes), never a side effect; every other
HTTP route says why it is open."""

from __future__ import annotations

import strawberry

from gateway.api.app import create_app
from gateway.api.permissions import IsAuthenticated, public, public_because
from gateway.api.schema import build_schema
from gateway.services import Gateway


def unguarded(schema: strawberry.Schema) -> list[str]:
    """Root Query / Mutation / Subscription fields that declare no permission class."""
    found: list[str] = []
    for name in ("Query", "Mutation", "Subscription"):
        root = schema.get_type_by_name(name)
        if root is None:
            continue
        for field in root.fields:  # type: ignore[union-attr]
            if not field.permission_classes:
                found.append(f"{name}.{field.name}")
    return found


def test_every_root_field_declares_its_permissions() -> None:
    schema = build_schema()
    assert unguarded(schema) == []
    fields = [f for n in ("Query", "Mutation", "Subscription") for f in schema.get_type_by_name(n).fields]  # type: ignore[union-attr]
    assert len(fields) >= 15 and all(IsAuthenticated in f.permission_classes for f in fields)


def test_the_walk_finds_a_field_without_one() -> None:
    @strawberry.type
    class Query:
        @strawberry.field(permission_classes=[IsAuthenticated])
        def guarded(self) -> int:
            return 1

        @strawberry.field
        def forgotten(self) -> int:
            return 2

    assert unguarded(strawberry.Schema(query=Query)) == ["Query.forgotten"]


async def test_every_http_route_that_is_not_graphql_says_why_it_is_open(gw: Gateway) -> None:
    app = create_app(gw)
    routes = {(route.method, route.resource.canonical): route.handler for route in app.router.routes()}  # type: ignore[union-attr]
    unmarked = sorted(f"{method} {path}" for (method, path), handler in routes.items() if not public_because(handler))
    assert unmarked == []
    assert ("POST", "/webhooks/{platform}/{integration_id}") in routes and ("GET", "/") in routes
    assert public_because(routes[("*", "/connect/{platform}/callback")])


def test_a_route_without_a_reason_is_found() -> None:
    @public("a probe")
    async def marked() -> None:
        return None

    async def forgotten() -> None:
        return None

    assert public_because(marked) == "a probe" and public_because(forgotten) is None
