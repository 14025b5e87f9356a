"""GraphQL types of the install flows (beginConnect, reconnectIntegration, connectAttempt): thin views over
gateway.connect's attempt documents."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.api.context import Info
from gateway.api.types import Integration, SyncSettingsInput
from gateway.domain import ConnectStatus
from gateway.storage.mongo import Doc

strawberry.enum(ConnectStatus, name="ConnectStatus")


@strawberry.type(description="One run through a platform's install flow (beginConnect or reconnectIntegration).")
class ConnectAttempt:
    id: strawberry.ID
    platform: str
    status: ConnectStatus
    expires_at: datetime
    error: str | None = strawberry.field(description="Why it did not connect, in a merchant's words (FAILED, EXPIRED).")
    _doc: strawberry.Private[Doc]

    @staticmethod
    def from_doc(doc: Doc) -> ConnectAttempt:
        return ConnectAttempt(
            id=strawberry.ID(doc["_id"]),
            platform=doc["platform"],
            status=ConnectStatus(doc["status"]),
            expires_at=doc["expires_at"],
            error=doc.get("error"),
            _doc=doc,
        )

    @strawberry.field(description="Where to send the merchant's browser; null once the attempt has ended.")
    def authorize_url(self, info: Info) -> str | None:
        if self.status is not ConnectStatus.PENDING or not self._doc.get("state_hash"):
            return None
        from gateway.connect import ConnectService

        return ConnectService(info.context.gw).start_url(self.platform, str(self.id))

    @strawberry.field(description="The connected (or reconnected) integration, once status is CONNECTED.")
    async def integration(self, info: Info) -> Integration | None:
        integration_id = self._doc.get("integration_id")
        if self.status is not ConnectStatus.CONNECTED or not integration_id:
            return None
        doc = await info.context.gw.db.integrations.find_one(
            {"_id": integration_id, "account_id": info.context.account_id}
        )
        return Integration.from_doc(doc) if doc else None


@strawberry.input
class BeginConnectInput:
    platform: str
    name: str
    store: str | None = strawberry.field(
        default=None,
        description="Shopify: the shop (name.myshopify.com, or a simulator's URL); WooCommerce: the site URL; "
        "BigCommerce: optional (the merchant picks the store on BigCommerce's side).",
    )
    settings: SyncSettingsInput | None = None
    return_url: str | None = strawberry.field(
        default=None,
        description="Where the merchant's browser lands afterwards; must be on an allowed frontend origin. The "
        "gateway appends connectAttempt=<id>&status=<ConnectStatus>.",
    )
