"""Alana's edits and the conflicts the store wins (docs/reference/BEHAVIOUR.md "Conflicts: the store wins").

Edits are overlays on the store version (see gateway.products); this module records the conflicts a
store change causes and puts Alana's value back on request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway.activity import ActivityLog
from gateway.conflict_store import ConflictRecord, ConflictStore
from gateway.domain import ActivityKind, ConflictStatus
from gateway.errors import BadInput, NotFound
from gateway.events import ConflictDetected, EventPublisher
from gateway.model import EDITABLE_FIELDS
from gateway.pagination import PageRequest, Slice
from gateway.products import ConflictFound, ProductStore, StoredProduct


class ConflictService:
    def __init__(
        self,
        store: ConflictStore,
        products: ProductStore,
        activity: ActivityLog,
        publisher: EventPublisher,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.products = products
        self.activity = activity
        self.publisher = publisher
        self.clock = clock

    async def record(
        self, account_id: str, integration_id: str, product_id: str, found: ConflictFound, run_id: str | None
    ) -> ConflictRecord:
        """Store a conflict, log it for the merchant and publish a CONFLICT event."""
        conflict = ConflictRecord(
            id=found.conflict_id,
            account_id=account_id,
            integration_id=integration_id,
            product_id=product_id,
            field=found.field,
            store_value=found.store_value,
            alana_value=found.alana_value,
            overlay_id=found.overlay_id,
            detected_at=self.clock(),
            status=ConflictStatus.STORE_WON,
            run_id=run_id,
        )
        await self.store.insert_once(conflict)
        await self.activity.record(
            account_id,
            ActivityKind.CONFLICT,
            f"Your store changed {found.field!r} of a product Alana had edited: the store's value was kept. "
            "You can re-apply Alana's change.",
            integration_id=integration_id,
            run_id=run_id,
            product_id=product_id,
            conflict_id=conflict.id,
        )
        await self.publisher.publish(
            ConflictDetected(account_id=account_id, integration_id=integration_id, at=self.clock(), conflict=conflict)
        )
        return conflict

    async def get(self, account_id: str, conflict_id: str) -> ConflictRecord:
        conflict = await self.store.get(account_id, conflict_id)
        if conflict is None:
            raise NotFound("no conflict with that id", field="conflictId")
        return conflict

    async def page(
        self,
        account_id: str,
        integration_id: str | None,
        status: str | None,
        page: PageRequest,
        product_id: str | None = None,
    ) -> Slice[ConflictRecord]:
        return await self.store.page(
            account_id, page, integration_id=integration_id, status=status, product_id=product_id
        )

    async def edit_product(self, account_id: str, product_id: str, values: dict[str, Any]) -> StoredProduct:
        """Alana's edit: each field becomes an overlay on the current store version."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            raise BadInput("the edit changes nothing: give at least one field", field="input")
        for name in values:
            if name not in EDITABLE_FIELDS:
                raise BadInput(f"{name!r} cannot be edited", field=f"input.{name}")
        if "title" in values and not str(values["title"]).strip():
            raise BadInput("title must not be empty", field="input.title")
        product = await self.products.add_overlays(account_id, product_id, values)
        await self.activity.record(
            account_id,
            ActivityKind.PRODUCT_EDITED,
            f"Alana edited {', '.join(sorted(values))} of {product.store.get('title')!r}",
            integration_id=product.integration_id,
            product_id=product_id,
        )
        return product

    async def reapply(self, account_id: str, conflict_id: str) -> ConflictRecord:
        """Put Alana's value back as a fresh overlay; the conflict becomes REAPPLIED (idempotent)."""
        conflict = await self.get(account_id, conflict_id)
        if conflict.status is ConflictStatus.REAPPLIED:
            return conflict
        product = await self.products.get(account_id, conflict.product_id)
        if product is None:
            raise NotFound("the product of this conflict no longer exists", field="conflictId")
        # Claim the conflict first so two concurrent re-applies add one overlay, not two.
        claimed = await self.store.claim_reapply(account_id, conflict_id, self.clock())
        if claimed is None:
            return await self.get(account_id, conflict_id)
        await self.products.add_overlays(account_id, conflict.product_id, {conflict.field: conflict.alana_value})
        await self.activity.record(
            account_id,
            ActivityKind.CHANGE_REAPPLIED,
            f"Alana's change to {conflict.field!r} was re-applied on top of the store's version",
            integration_id=conflict.integration_id,
            product_id=conflict.product_id,
            conflict_id=conflict_id,
        )
        return claimed
