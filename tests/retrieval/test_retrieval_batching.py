"""Request coalescing: requests that arrive while a batch runs are answered together by one call."""

from __future__ import annotations

import asyncio
import threading

import pytest

from research_rl.corpus import Passage
from research_rl.retrieval.base import Hit
from research_rl.retrieval.batching import Coalescer


class _RecordingSearch:
    """A fake index: hit i of query q is passage "q#i"; the first call blocks until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, queries: list[str], k: int) -> list[list[Hit]]:
        self.calls.append((list(queries), k))
        if len(self.calls) == 1:
            self.entered.set()
            self.release.wait(10)
        if "explode" in queries:
            raise RuntimeError("index on fire")
        return [[Hit(Passage(f"{q}#{i}", q), float(k - i)) for i in range(k)] for q in queries]


def test_waiting_requests_are_coalesced_into_one_batch():
    async def scenario():
        fake = _RecordingSearch()
        co = Coalescer(fake, max_batch_queries=100, wait_s=0.0)
        co.start()
        first = asyncio.create_task(co.search(["q0"], 1))
        await asyncio.to_thread(fake.entered.wait, 10)  # the worker is busy with q0 alone
        rest = [asyncio.create_task(co.search([f"q{i}", f"r{i}"], i)) for i in range(1, 6)]
        while len(co._pending) < 5:
            await asyncio.sleep(0.001)
        fake.release.set()
        results = await asyncio.gather(first, *rest)
        await co.stop()
        return fake.calls, results, co.batches

    calls, results, batches = asyncio.run(scenario())
    assert batches == 2
    assert calls[0] == (["q0"], 1)
    # All five waiting requests in one call, at the largest topk any of them asked for.
    assert calls[1] == ([q for i in range(1, 6) for q in (f"q{i}", f"r{i}")], 5)
    # Each request gets back its own rows, cut to its own topk.
    for i, rows in enumerate(results):
        names = [f"q{i}"] if i == 0 else [f"q{i}", f"r{i}"]
        assert [[h.passage.id for h in row] for row in rows] == [
            [f"{n}#{j}" for j in range(max(i, 1))] for n in names
        ]


def test_batches_respect_the_size_limit():
    async def scenario():
        fake = _RecordingSearch()
        fake.release.set()
        co = Coalescer(fake, max_batch_queries=4, wait_s=0.05)
        co.start()
        await asyncio.gather(*(co.search([f"q{i}"], 1) for i in range(10)))
        await co.stop()
        return fake.calls

    calls = asyncio.run(scenario())
    assert sorted(q for batch, _ in calls for q in batch) == sorted(f"q{i}" for i in range(10))
    assert all(len(batch) <= 4 for batch, _ in calls)
    assert len(calls) >= 3


def test_a_failing_batch_fails_its_requests_and_the_worker_goes_on():
    async def scenario():
        fake = _RecordingSearch()
        fake.release.set()
        co = Coalescer(fake, max_batch_queries=10, wait_s=0.0)
        co.start()
        with pytest.raises(RuntimeError, match="index on fire"):
            await co.search(["explode"], 1)
        rows = await co.search(["fine"], 2)
        await co.stop()
        return rows

    rows = asyncio.run(scenario())
    assert [h.passage.id for h in rows[0]] == ["fine#0", "fine#1"]


def test_a_lone_client_never_waits_for_the_window():
    async def scenario():
        fake = _RecordingSearch()
        fake.release.set()
        co = Coalescer(fake, max_batch_queries=100, wait_s=30.0)  # a window no test would outlast
        co.start()
        for i in range(5):  # one request after another, as a single client sends them
            await asyncio.wait_for(co.search([f"q{i}"], 1), timeout=5)
        await co.stop()
        return fake.calls, co.batches

    calls, batches = asyncio.run(scenario())
    assert batches == 5 and [c for c, _ in calls] == [[f"q{i}"] for i in range(5)]


def test_after_a_crowd_the_worker_waits_for_the_crowd_but_no_longer_than_the_window():
    async def scenario(wait_s: float):
        loop = asyncio.get_running_loop()
        fake = _RecordingSearch()
        co = Coalescer(fake, max_batch_queries=100, wait_s=wait_s)
        co.start()
        first = asyncio.create_task(co.search(["q0"], 1))
        await asyncio.to_thread(fake.entered.wait, 10)
        crowd = [asyncio.create_task(co.search([f"c{i}"], 1)) for i in range(3)]
        while len(co._pending) < 3:
            await asyncio.sleep(0.001)
        fake.release.set()
        await asyncio.gather(first, *crowd)  # batch 2 served 3 requests
        # The crowd's clients send again, a little apart: one batch, not three.
        again = []
        for i in range(3):
            again.append(asyncio.create_task(co.search([f"a{i}"], 1)))
            await asyncio.sleep(0.02)
        await asyncio.gather(*again)
        # Only one comes back: it waits for the other two until the window ends, then runs.
        t0 = loop.time()
        await co.search(["lone"], 1)
        waited = loop.time() - t0
        await co.stop()
        return fake.calls, waited

    calls, waited = asyncio.run(scenario(wait_s=0.5))
    assert [c for c, _ in calls] == [["q0"], ["c0", "c1", "c2"], ["a0", "a1", "a2"], ["lone"]]
    assert 0.4 <= waited < 5
