"""Ranks of one training run open one retrieval store at the same moment."""

from __future__ import annotations

import multiprocessing as mp

from research_rl.evaluation.replay import RetrievalStore

IDENTITY = {"retriever": {"kind": "bm25"}, "corpus": {"sha256": "0" * 64}}


def _open_at_once(path: str, barrier, errors) -> None:
    barrier.wait()
    try:
        RetrievalStore(path, IDENTITY)
    except Exception as err:  # noqa: BLE001 - reported to the parent
        errors.put(f"{type(err).__name__}: {err}")


def test_ranks_opening_a_new_store_together_never_read_a_half_written_description(tmp_path):
    ctx = mp.get_context("fork")
    errors = ctx.Queue()
    for attempt in range(40):
        path = str(tmp_path / f"store{attempt}")
        barrier = ctx.Barrier(8)
        procs = [ctx.Process(target=_open_at_once, args=(path, barrier, errors)) for _ in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert all(p.exitcode == 0 for p in procs)
        assert errors.empty(), errors.get()
        assert RetrievalStore(path).retriever == IDENTITY
