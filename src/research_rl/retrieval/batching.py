"""Request coalescing: concurrent requests are queued and answered in batches by one worker.

The encoder and FAISS are far faster per query on a batch than one query at a time, so under many
concurrent clients the server drains whatever is waiting (plus what arrives within a short window)
into one search call, then hands each request its own rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from research_rl.retrieval.base import Hit

SearchFn = Callable[[list[str], int], list[list[Hit]]]


@dataclass
class _Pending:
    queries: list[str]
    topk: int
    future: asyncio.Future = field(repr=False)


class Coalescer:
    def __init__(self, search: SearchFn, max_batch_queries: int, wait_s: float) -> None:
        self._search = search
        self._max_batch = max_batch_queries
        self._wait_s = wait_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None
        self.batches = 0  # batches run so far (reported by /health)

    def start(self) -> None:
        """Start the worker on the running event loop (an app may be started more than once)."""
        self._queue = asyncio.Queue()
        # One worker thread: searches never overlap, and the event loop stays free to accept
        # (and queue) requests while a batch runs.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrieval-batch")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        if self._task is None:
            raise RuntimeError("the coalescer is not running (start() it inside the event loop)")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(queries, topk, future))
        return await future

    async def _collect(self) -> list[_Pending]:
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        size = len(batch[0].queries)
        deadline = loop.time() + self._wait_s
        while size < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            batch.append(item)
            size += len(item.queries)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [p for p in await self._collect() if not p.future.done()]
            if not batch:
                continue
            queries = [q for p in batch for q in p.queries]
            topk = max(p.topk for p in batch)
            try:
                rows = await loop.run_in_executor(self._executor, self._search, queries, topk)
            except Exception as err:  # handed to each waiting request, which reports it
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(err)
                continue
            self.batches += 1
            start = 0
            for p in batch:
                mine = rows[start : start + len(p.queries)]
                start += len(p.queries)
                if not p.future.done():  # the client may have gone away
                    p.future.set_result([row[: p.topk] for row in mine])
