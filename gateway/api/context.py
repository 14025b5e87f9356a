"""The typed GraphQL context: the service container and the caller's account."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import strawberry
from aiohttp import web

from gateway.api.loaders import Loaders
from gateway.auth import claims_from_authorization
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
    _expires_at: float = field(default=0.0, repr=False)

    @cached_property
    def loaders(self) -> Loaders:
        """Batched reads for this request's fields (gateway/api/loaders.py)."""
        return Loaders(self.gw)

    @property
    def account_id(self) -> str:
        """The caller's account (fields declare IsAuthenticated, gateway.api.permissions)."""
        return self.authenticate()

    def authenticate(self) -> str:
        """The account of the caller's token; UNAUTHENTICATED without a valid token, or once it expires (a
        websocket context lives as long as its connection)."""
        if self._account_id is None or time.time() >= self._expires_at:
            secret = self.gw.settings.jwt_secret
            if not secret:
                raise Unauthenticated("the gateway has no GATEWAY_JWT_SECRET configured")
            if self.connection_params is not None:
                header = self.connection_params.get("Authorization") or self.connection_params.get("authorization")
                header = header if isinstance(header, str) else None
            else:
                header = self.request.headers.get("Authorization")
            claims = claims_from_authorization(secret, header, self.gw.settings.max_token_ttl)
            self._account_id, self._expires_at = claims.account_id, claims.expires_at
        return self._account_id

    @property
    def expires_at(self) -> float:
        """When the caller's token expires (epoch seconds); UNAUTHENTICATED without a valid token."""
        self.authenticate()
        return self._expires_at


Info = strawberry.Info[Context, None]
