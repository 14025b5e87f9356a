"""A toy platform: the smallest complete plugin (adapter, mapper, webhooks, simulator).

The engine's tests run on it, and `alana-gateway new-plugin` copies its shape. Its API:
    GET    /api/products?page=&per_page=&updated_since=&ids=a,b   (X-Toy-Token auth)
           -> {"products": [...], "total": N, "next_page": N | null}
    POST   /api/hooks {"url": ...} -> {"id": ..., "secret": ...};  DELETE /api/hooks/{id}
Deliveries: POST to the hook URL, headers X-Toy-Delivery (id), X-Toy-Signature (hex HMAC-SHA256 of
the body with the hook's secret), body {"event": "upsert" | "delete", "product": {...}}.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from gateway import hookimpl
from gateway.adapter import (
    ChangeKind,
    Connection,
    CredentialField,
    FetchMode,
    FetchRequest,
    MappingContext,
    Page,
    PlatformAdapter,
    PlatformInfo,
    WebhookEvent,
    WebhookRegistration,
    make_http_client,
)
from gateway.errors import MappingError, StorePayloadError
from gateway.httpclient import HttpClient
from gateway.model import Availability, Image, Money, Product, ProductStatus, Variant
from gateway.simkit import Hook, Simulator

PAGE_SIZE = 100


class ToyAdapter(PlatformAdapter):
    info = PlatformInfo(
        id="toy",
        name="Toy Store",
        version="1.0",
        capabilities=("webhooks", "incremental", "fetch_by_ids"),
        credential_fields=(CredentialField("token", "API token"),),
    )

    def http(self, conn: Connection) -> HttpClient:
        # Options a test can set at connect: `timeout` (seconds per request) lets a fault test see a
        # store that stops answering in seconds rather than the default half minute.
        extra = {"timeout": float(conn.options["timeout"])} if "timeout" in conn.options else {}
        return make_http_client(conn, headers={"X-Toy-Token": conn.credentials.get("token", "")}, **extra)

    async def check_credentials(self, conn: Connection) -> None:
        await self.client(conn).get_json("/api/products", params={"per_page": 1})

    async def count_products(self, conn: Connection, request: FetchRequest) -> int | None:
        body = await self.client(conn).get_json("/api/products", params={**_filters(request), "per_page": 1})
        return int(body["total"])

    async def fetch_products(self, conn: Connection, request: FetchRequest) -> AsyncIterator[Page]:
        page = int(request.cursor or 1)
        per_page = int(conn.options.get("page_size", PAGE_SIZE))
        found: set[str] = set()  # asked-for ids the pages so far returned
        while True:
            body = await self.client(conn).get_json(
                "/api/products", params={**_filters(request), "page": page, "per_page": per_page}
            )
            if not isinstance(body, dict) or not isinstance(body.get("products"), list):
                raise StorePayloadError("the toy store answered without a product list")
            items = body["products"]
            missing: list[str] = []
            next_page = body.get("next_page")
            if request.mode is FetchMode.IDS:
                found |= {str(p.get("id")) for p in items if isinstance(p, dict)}
                # Missing only once every page is read: an id past this page is on a later one.
                if not next_page:
                    missing = [i for i in request.ids if i not in found]
            yield Page(
                items=items,
                cursor=str(next_page) if next_page else None,
                total=body.get("total"),
                missing_ids=missing,
            )
            if not next_page:
                return
            page = int(next_page)

    def map_product(self, native: Mapping[str, Any], context: MappingContext) -> Product:
        external_id = str(native.get("id") or "")
        if not external_id or not native.get("name"):
            raise MappingError("product has no id or name", external_id=external_id or None)
        try:
            variants = [
                Variant(
                    external_id=str(v["id"]),
                    title=v.get("title", ""),
                    sku=v.get("sku"),
                    price=Money(amount=Decimal(str(v["price"])), currency=context.currency),
                    inventory_quantity=v.get("stock"),
                    inventory_tracked=v.get("stock") is not None,
                    availability=Availability.IN_STOCK if (v.get("stock") or 0) > 0 else Availability.OUT_OF_STOCK,
                    position=n,
                )
                for n, v in enumerate(native.get("variants", []))
            ]
            price = Money(amount=Decimal(str(native["price"])), currency=context.currency)
        except (KeyError, InvalidOperation, TypeError) as exc:
            raise MappingError(f"bad price or variant: {exc!r}", external_id=external_id, code="BAD_PRICE") from None
        stock = [v.inventory_quantity for v in variants if v.inventory_quantity is not None]
        return Product(
            external_id=external_id,
            title=str(native["name"]),
            description=native.get("description"),
            handle=native.get("slug"),
            images=[
                Image(url=str(image["url"]), alt=image.get("alt"), position=n)
                for n, image in enumerate(native.get("images", []))
            ],
            status=ProductStatus(native.get("status", "ACTIVE")),
            price=price,
            tags=list(native.get("tags", [])),
            variants=variants,
            inventory_quantity=sum(stock) if stock else None,
            inventory_tracked=bool(stock),
            store_updated_at=datetime.fromisoformat(native["updated_at"]),
        )

    async def register_webhooks(self, conn: Connection, callback_url: str) -> WebhookRegistration:
        body = (await self.client(conn).request("POST", "/api/hooks", json_body={"url": callback_url})).json()
        return WebhookRegistration(hook_ids=(str(body["id"]),), secrets={"hook_secret": body["secret"]})

    async def remove_webhooks(self, conn: Connection, registration: WebhookRegistration) -> None:
        for hook_id in registration.hook_ids:
            await self.client(conn).request("DELETE", f"/api/hooks/{hook_id}", allow=(404,))

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]) -> bool:
        secret = secrets.get("hook_secret")
        given = headers.get("X-Toy-Signature")
        if not secret or not given:
            return False
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, given)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent | None:
        payload = json.loads(body)
        product = payload["product"]
        delete = payload["event"] == "delete"
        return WebhookEvent(
            delivery_id=headers["X-Toy-Delivery"],
            topic=payload["event"],
            kind=ChangeKind.DELETE if delete else ChangeKind.UPSERT,
            external_id=str(product["id"]),
            product=None if delete else product,
            store_updated_at=None if delete else datetime.fromisoformat(product["updated_at"]),
        )

    @classmethod
    def simulator(cls) -> type[Simulator]:
        return ToySimulator


def _filters(request: FetchRequest) -> dict[str, str]:
    if request.mode is FetchMode.SINCE and request.since is not None:
        return {"updated_since": request.since.isoformat()}
    if request.mode is FetchMode.IDS:
        return {"ids": ",".join(request.ids)}
    return {}


class ToySimulator(Simulator):
    platform = "toy"

    def __init__(self, products: int = 100, *, seed: int = 1, **options: Any) -> None:
        super().__init__(products, seed=seed, **options)
        self.token = "toy-token"
        self.clock = datetime(2026, 1, 1, tzinfo=UTC)
        self.catalog: dict[str, dict[str, Any]] = {}
        self.next_id = 1
        for _ in range(products):
            self._add(silent=True)

    def tick(self) -> str:
        self.clock += timedelta(seconds=1)
        return self.clock.isoformat()

    def _add(self, silent: bool = False, **fields: Any) -> str:
        pid = str(self.next_id)
        self.next_id += 1
        n_variants = self.random.randint(1, 3)
        self.catalog[pid] = {
            "id": pid,
            "name": fields.get("name", f"Toy product {pid} ✓"),
            "slug": f"toy-product-{pid}",
            "images": [{"url": f"https://toy.test/{pid}/{n}.jpg", "alt": None} for n in range(int(pid) % 3)],
            "price": f"{self.random.randint(1, 9999) / 100:.2f}",
            "tags": ["toy", f"t{int(pid) % 5}"],
            "updated_at": self.tick(),
            "variants": [
                {
                    "id": f"{pid}-{n}",
                    "sku": f"TOY-{pid}-{n}",
                    "price": f"{n + 1}.50",
                    "stock": self.random.randint(0, 9),
                }
                for n in range(n_variants)
            ],
        }
        if not silent:
            self._notify("upsert", self.catalog[pid])
        return pid

    def credentials(self) -> dict[str, str]:
        return {"token": self.token}

    def product_ids(self) -> list[str]:
        return list(self.catalog)

    def create_product(self, **fields: Any) -> str:
        return self._add(**fields)

    def update_product(self, external_id: str, **changes: Any) -> None:
        product = self.catalog[external_id]
        product.update(changes or {"name": f"{product['name']} (edited)"})
        product["updated_at"] = self.tick()
        self._notify("upsert", product)

    def notify_again(self, external_id: str) -> None:
        """Send a product's change notification again, unchanged (stores repeat deliveries)."""
        self._notify("upsert", self.catalog[external_id])

    def delete_product(self, external_id: str) -> None:
        product = self.catalog.pop(external_id)
        self._notify("delete", {"id": product["id"]})

    def _notify(self, event: str, product: dict[str, Any]) -> None:
        body = json.dumps({"event": event, "product": product}).encode()
        for hook in self.hooks.values():
            signature = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
            self.deliver(
                hook.destination,
                body,
                {
                    "X-Toy-Delivery": secrets.token_hex(8),
                    "X-Toy-Signature": signature,
                    "Content-Type": "application/json",
                },
            )

    def build_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/products", self._list)
        app.router.add_post("/api/hooks", self._add_hook)
        app.router.add_delete("/api/hooks/{id}", self._remove_hook)

    def _authorized(self, request: web.Request) -> bool:
        return hmac.compare_digest(request.headers.get("X-Toy-Token", ""), self.token)

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "bad token"}, status=401)
        items = sorted(self.catalog.values(), key=lambda p: int(p["id"]))
        if since := request.query.get("updated_since"):
            items = [p for p in items if datetime.fromisoformat(p["updated_at"]) >= datetime.fromisoformat(since)]
        if ids := request.query.get("ids"):
            wanted = set(ids.split(","))
            items = [p for p in items if p["id"] in wanted]
        page = int(request.query.get("page", 1))
        per_page = min(int(request.query.get("per_page", PAGE_SIZE)), 250)
        chunk = items[(page - 1) * per_page : page * per_page]
        broken = set(self.faults.plan.malformed_ids)
        chunk = [({**p, "price": "not-a-price"} if p["id"] in broken else p) for p in chunk]
        more = page * per_page < len(items)
        return web.json_response({"products": chunk, "total": len(items), "next_page": page + 1 if more else None})

    async def _add_hook(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "bad token"}, status=401)
        body = await request.json()
        hook = Hook(
            id=str(len(self.hooks) + 1),
            topic="product",
            destination=body["url"],
            secret=secrets.token_hex(16),
        )
        self.hooks[hook.id] = hook
        return web.json_response({"id": hook.id, "secret": hook.secret}, status=201)

    async def _remove_hook(self, request: web.Request) -> web.Response:
        if self.hooks.pop(request.match_info["id"], None) is None:
            return web.json_response({"error": "no such hook"}, status=404)
        return web.json_response({}, status=200)


@hookimpl
def register_platforms() -> list[type[PlatformAdapter]]:
    return [ToyAdapter]
