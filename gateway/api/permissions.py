"""Who may call a field, declared on the field (strawberry permission classes).

Every root Query, Mutation and Subscription field names its permission classes; a test walks the
schema and fails on a root field without one, so a new field is never public by accident. Fields of
the returned types are reached only through an authorised root field and read that caller's account.
"""

from __future__ import annotations

from typing import Any

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
