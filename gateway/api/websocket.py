"""graphql-transport-ws sessions that end with their token.

The token arrives once, in connection_init, and the socket may stay open for days. At the token's
`exp` every open operation ends with an UNAUTHENTICATED error message (the protocol's way to end one
operation), and every later operation on the socket is refused the same way; the socket itself stays
open so the client can read why before it reconnects with a new token.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from graphql import GraphQLError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage, SubscribeMessage

from gateway.api.context import Context
from gateway.errors import ErrorCode, GatewayError

EXPIRED = "the token has expired; reconnect with a new one"


def _expired_payload() -> list[Any]:
    return [GraphQLError(EXPIRED, extensions={"code": ErrorCode.UNAUTHENTICATED.value}).formatted]


class ExpiringSessionHandler(BaseGraphQLTransportWSHandler[Context, None]):
    expires_at: float | None = None
    expiry: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if not self.connection_acknowledged or self.expiry is not None:
            return
        try:
            self.expires_at = self.context.expires_at
        except GatewayError:
            return  # no valid token: each operation answers UNAUTHENTICATED on its own
        self.expiry = asyncio.create_task(self._end_at_expiry(self.expires_at))
        self.expiry.add_done_callback(self._task_done)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged and self.expires_at is not None and time.time() >= self.expires_at:
            await self.send_message({"id": message["id"], "type": "error", "payload": _expired_payload()})
            return
        await super().handle_subscribe(message)

    async def _end_at_expiry(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        for operation in list(self.operations.values()):
            if operation.completed or self.operations.get(operation.id) is not operation:
                continue  # it ended while an earlier one was being told
            if operation.task is not None:
                operation.task.cancel()
            # Marks the operation completed first, so nothing the cancelled task still sends goes out.
            with contextlib.suppress(WebSocketDisconnected):
                await operation.send_operation_message(
                    {"id": operation.id, "type": "error", "payload": _expired_payload()}
                )

    async def shutdown(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.expiry
        await super().shutdown()
