"""Dynamic batching: concurrent HTTP requests -> one jitted generation call.

Handlers `await batcher.submit(engine_requests)`. One worker task takes the first queued item,
then keeps collecting until `max_batch_size` items are in hand or `max_wait_s` has passed since
that first item, and runs `engine.generate(batch)` on a single worker thread (off the event
loop, so the server keeps accepting requests while the device works). Items that arrive during
a call form the next batch. `stop()` lets queued items finish, then ends the worker.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import logging
from collections.abc import Callable, Sequence

from jaxmethods.llm.batching import EngineRequest, EngineResult

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Item:
    request: EngineRequest
    future: asyncio.Future


_STOP = object()


class Batcher:
    """Args: run (`engine.generate`), max_batch_size, max_wait_s.

    Attributes:
      batch_sizes: items per generation call (the last 10k calls), for `/stats` and tests.
    """

    def __init__(
        self,
        run: Callable[[list[EngineRequest]], list[EngineResult]],
        *,
        max_batch_size: int,
        max_wait_s: float,
    ):
        if max_batch_size < 1 or max_wait_s < 0:
            raise ValueError(
                f"Batcher: need max_batch_size >= 1 and max_wait_s >= 0, got "
                f"{max_batch_size}, {max_wait_s}"
            )
        self.run, self.max_batch_size, self.max_wait_s = run, max_batch_size, max_wait_s
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=10_000)
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "generate")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._worker(), name="batcher")

    async def submit(self, requests: Sequence[EngineRequest]) -> list[EngineResult]:
        """Queues the requests and waits for their results (in order)."""
        if self._queue is None:
            raise RuntimeError("Batcher.submit before start()")
        loop = asyncio.get_running_loop()
        items = [_Item(r, loop.create_future()) for r in requests]
        for item in items:
            self._queue.put_nowait(item)
        return list(await asyncio.gather(*(item.future for item in items)))

    async def stop(self) -> None:
        """Finishes the queued items, then stops the worker and its thread."""
        if self._queue is not None and self._task is not None:
            self._queue.put_nowait(_STOP)
            await self._task
        self._executor.shutdown(wait=True)

    async def _collect(self, first: _Item) -> tuple[list[_Item], bool]:
        loop = asyncio.get_running_loop()
        batch, deadline = [first], loop.time() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            timeout = deadline - loop.time()
            try:
                if timeout > 0:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                else:
                    item = self._queue.get_nowait()
            except (TimeoutError, asyncio.QueueEmpty):
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is _STOP:
                break
            batch, stopping = await self._collect(first)
            live = [it for it in batch if not it.future.done()]  # cancelled: client went away
            if not live:
                continue
            self.batch_sizes.append(len(live))
            try:
                results = await loop.run_in_executor(
                    self._executor, self.run, [it.request for it in live]
                )
            except Exception as e:  # the whole call failed: every request in it gets the error
                log.exception("generation failed for a batch of %d", len(live))
                for it in live:
                    if not it.future.done():
                        it.future.set_exception(e)
                continue
            for it, result in zip(live, results):
                if not it.future.done():
                    it.future.set_result(result)
