"""The typed GraphQL context: the service container and the caller's account."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry
from aiohttp import web

from gateway.auth import account_from_authorization
from gateway.errors import Unauthenticated
from gateway.services import Gateway


@dataclass
class Context:
    gw: Gateway
    request: web.Request
    response: Any = None
    #: The graphql-transport-ws connection_init payload (websocket only).
    connection_params: dict[str, Any] | None = None
    _account_id: str | None = field(default=None, repr=False)

    @property
    def account_id(self) -> str:
        """The caller's account (fields declare IsAuthenticated, gateway.api.permissions)."""
        return self.authenticate()

    def authenticate(self) -> str:
        """The account of the caller's token (checked once per request); UNAUTHENTICATED without one."""
        if self._account_id is None:
            secret = self.gw.settings.jwt_secret
            if not secret:
                raise Unauthenticated("the gateway has no GATEWAY_JWT_SECRET configured")
            if self.connection_params is not None:
                header = self.connection_params.get("Authorization") or self.connection_params.get("authorization")
                header = header if isinstance(header, str) else None
            else:
                header = self.request.headers.get("Authorization")
            self._account_id = account_from_authorization(secret, header)
        return self._account_id


Info = strawberry.Info[Context, None]
