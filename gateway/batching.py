"""Group commit: what concurrent callers write goes to the database together, in one round trip.

`WriteBatcher.submit(item)` waits for its item's result. An idle batcher writes a lone item at once
(no timer: nothing is added to the latency of a quiet moment); items that arrive while a write is in
flight wait for it and then go together in the next one, up to `max_items`. So the wait is bounded by
about one write, and under load each write carries everything that arrived during the previous one:
the round trips per item fall as the load rises, which is what keeps a burst from queueing up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class WriteBatcher(Generic[T, R]):
    """`flush(items)` writes a batch and returns one result per item, in order; if it raises, every
    caller of that batch gets the exception (nothing of a failed batch is reported written)."""

    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_items: int = 500) -> None:
        self._flush = flush
        self.max_items = max_items
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        # A caller that went away leaves its result unread: read here, so nothing is logged as lost.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pending.append((item, future))
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._drain())
        # Shielded: a caller that goes away (its client hung up) does not cancel a write others share.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_items], self._pending[self.max_items :]
                await self._write(batch)
        except asyncio.CancelledError:  # the process is stopping: nobody will write what waits
            for _, future in self._pending:
                future.cancel()
            self._pending = []
            raise
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} writes returned {len(results)} results")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
