"""Who may call a field, declared on the field (strawberry permission classes).

Every root Query, Mutation and Subscription field names its permission classes; a test walks the
schema and fails on a root field without one, so a new field is never public by accident. Fields of
the returned types are reached only through an authorised root field and read that caller's account.

The HTTP routes that are not GraphQL (webhooks, the connect callbacks, the page, probes) take no
account token: each handler says so with `@public(reason)`, and a test fails on a route without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from strawberry.permission import BasePermission

from gateway.api.context import Info


class IsAuthenticated(BasePermission):
    """A valid token for an account; the resolver then acts for `info.context.account_id`.

    A missing, expired or forged token raises Unauthenticated here, so the error carries
    extensions.code UNAUTHENTICATED and says what is wrong with the token.
    """

    message = "a valid token is required"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return bool(info.context.authenticate())


#: The permissions of every root field that reads or changes one account's data.
ACCOUNT: list[type[BasePermission]] = [IsAuthenticated]


_Handler = TypeVar("_Handler", bound=Callable[..., Any])
_PUBLIC = "_alana_public_because"


def public(reason: str) -> Callable[[_Handler], _Handler]:
    """Mark an HTTP route handler as open without an account token, saying who calls it and what checks
    the request instead (a signature, the flow's verification, nothing to protect)."""

    def mark(handler: _Handler) -> _Handler:
        setattr(handler, _PUBLIC, reason)
        return handler

    return mark


def public_because(handler: Any) -> str | None:
    """Why a route handler is open (None: it was never marked)."""
    reason = getattr(handler, _PUBLIC, None)
    return reason if isinstance(reason, str) else None
