"""Request coalescing: concurrent requests are queued and answered in batches by one worker.

The encoder and FAISS are far faster per query on a batch than one query at a time, so under many
concurrent clients the server runs whatever is waiting as one search call, then hands each request
its own rows.

No request waits for company it is not going to get. Requests that arrive while a batch runs go
into the next batch the moment it ends. A request that finds the worker idle runs at once, unless
the previous batch served several requests: then it waits (at most ``wait_s``) until as many have
arrived again, since their clients, just answered, are sending their next ones. A lone client
therefore never pays the coalescing window; a crowd pays at most one window per batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
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
        self._pending: deque[_Pending] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._running = False  # a batch is in the worker thread
        self._expected = 1  # requests the last batch served: how many to wait for when idle
        self.batches = 0  # batches run so far (reported by /health)

    def start(self) -> None:
        """Start on the running event loop (an app may be started more than once)."""
        self._loop = asyncio.get_running_loop()
        self._pending = deque()
        self._running, self._expected = False, 1
        # One worker thread: searches never overlap, and the event loop stays free to accept
        # (and queue) requests while a batch runs.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrieval-batch")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            p = self._pending.popleft()
            if not p.future.done():
                p.future.set_exception(RuntimeError("the retrieval server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._loop = None

    async def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        if self._loop is None:
            raise RuntimeError("the coalescer is not running (start() it inside the event loop)")
        future = self._loop.create_future()
        self._pending.append(_Pending(queries, topk, future))
        self._dispatch()
        return await future

    def _dispatch(self, window_over: bool = False) -> None:
        """Run the next batch if one should run now; otherwise make sure a timer will."""
        while self._pending and self._pending[0].future.done():  # clients that went away
            self._pending.popleft()
        if self._running or not self._pending:
            return
        size = sum(len(p.queries) for p in self._pending)
        if window_over or len(self._pending) >= self._expected or size >= self._max_batch:
            self._launch()
        elif self._timer is None:
            self._timer = self._loop.call_later(self._wait_s, self._window_over)

    def _window_over(self) -> None:
        self._timer = None
        self._dispatch(window_over=True)

    def _launch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = [self._pending.popleft()]
        size = len(batch[0].queries)  # a single larger request still runs as one batch
        while self._pending and size + len(self._pending[0].queries) <= self._max_batch:
            p = self._pending.popleft()
            if not p.future.done():
                batch.append(p)
                size += len(p.queries)
        queries = [q for p in batch for q in p.queries]
        topk = max(p.topk for p in batch)
        self._running = True
        done = self._loop.run_in_executor(self._executor, self._search, queries, topk)
        done.add_done_callback(lambda f: self._finish(batch, f))

    def _finish(self, batch: list[_Pending], done: asyncio.Future) -> None:
        self._running = False
        self._expected = len(batch)
        err = None if done.cancelled() else done.exception()
        if done.cancelled() or err is not None:  # handed to each waiting request, which reports it
            err = err or RuntimeError("the search was cancelled")
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)
        else:
            self.batches += 1
            rows, start = done.result(), 0
            for p in batch:
                mine = rows[start : start + len(p.queries)]
                start += len(p.queries)
                if not p.future.done():  # the client may have gone away
                    p.future.set_result([row[: p.topk] for row in mine])
        if self._loop is not None:
            self._dispatch(window_over=True)  # these waited while the batch ran
