"""The mapping pipeline shared by sync runs and webhooks: native payload -> canonical Product.

`map_one` maps and enriches one product and turns every way that can fail into a SyncError entry
(one bad product never fails a run); `prefetch` reads pages ahead of the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import ValidationError

from gateway.adapter import MappingContext, Page, PlatformAdapter
from gateway.errors import MappingError
from gateway.model import Product
from gateway.plugins import PluginRegistry
from gateway.runs import SyncError

log = logging.getLogger(__name__)


def sync_error(external_id: str | None, code: str, message: str) -> SyncError:
    """One entry of a run summary's `errors`."""
    return SyncError(external_id, code, message[:500])


def native_id(native: Mapping[str, Any]) -> str | None:
    value = native.get("id") if isinstance(native, Mapping) else None
    return None if value is None else str(value)


def map_one(
    registry: PluginRegistry, adapter: PlatformAdapter, native: Mapping[str, Any], context: MappingContext
) -> Product | SyncError:
    """Map and enrich one native product; a SyncError when it cannot be mapped."""
    try:
        product = adapter.map_product(native, context)
        result: Product = registry.process_product(adapter.info.id, native, product)
        return result
    except MappingError as exc:
        return sync_error(exc.external_id or native_id(native), exc.code, exc.message)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return sync_error(native_id(native), "INVALID_PRODUCT", f"{where}: {first.get('msg')}")
    except Exception as exc:  # noqa: BLE001 - one bad product never fails a run
        log.warning("mapper crashed on a product", exc_info=True)
        return sync_error(native_id(native), "MAPPING_FAILED", f"{type(exc).__name__}: {exc}")


async def prefetch(pages: AsyncIterator[Page], ahead: int) -> AsyncIterator[Page]:
    """Yield from `pages` while a background task reads up to `ahead` pages in advance."""
    queue: asyncio.Queue[Page | BaseException | None] = asyncio.Queue(maxsize=ahead)

    async def produce() -> None:
        try:
            async for page in pages:
                await queue.put(page)
            await queue.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            await queue.put(exc)
        finally:
            closer = getattr(pages, "aclose", None)
            if closer is not None:
                with contextlib.suppress(BaseException):
                    await closer()

    producer = asyncio.get_running_loop().create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
