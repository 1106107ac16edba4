"""What an approximate index costs and loses: recall@k against exact search, its memory, its QPS.

Queries are a held-out sample of the corpus's own vectors (no query text is known when an index
is built); each query's own passage is dropped from both result lists, so recall measures the
neighbours around it, not the trivial self-match. Sampled vectors are also left out of training
an IVF or PQ index. Passage-to-passage neighbourhoods are denser than question-to-passage ones,
so this recall is an indicator for comparing index types, not a retrieval accuracy.
"""

from __future__ import annotations

import time

import numpy as np
from pydantic import Field

from research_rl.config import StrictModel
from research_rl.retrieval.vectors import VectorSource

DEFAULT_SAMPLE = 200
DEFAULT_K = 10


class Quality(StrictModel):
    recall_at_k: float = Field(ge=0, le=1)
    k: int
    sample: int  # held-out queries measured
    ram_bytes: int  # the FAISS index's size in memory (its file's size)
    qps: float | None  # FAISS searches per second of one batch of the sample (no encoding)
    reference: str = "exact search over the same vectors"


def held_out_ids(n: int, sample: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(sample, n), replace=False)).astype(np.int64)


def _top(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    part = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    s, i = np.take_along_axis(scores, part, 1), np.take_along_axis(ids, part, 1)
    order = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)


def exact_neighbours(
    source: VectorSource, queries: np.ndarray, k: int, inner_product: bool, chunk: int = 65536
) -> np.ndarray:
    """Ids of the ``k`` best vectors of ``source`` for each query, by a streamed exhaustive scan."""
    m = len(queries)
    best_s = np.full((m, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((m, 0), dtype=np.int64)
    for start in range(0, source.num_vectors, chunk):
        x = source.rows(start, min(start + chunk, source.num_vectors))
        scores = queries @ x.T
        if not inner_product:  # L2: rank by -(|x|^2 - 2 q.x), |q|^2 being the same per row
            scores = 2 * scores - (x * x).sum(1)[None, :]
        ids = np.broadcast_to(np.arange(start, start + len(x), dtype=np.int64), scores.shape)
        best_s, best_i = _top(
            np.concatenate([best_s, scores], 1), np.concatenate([best_i, ids], 1), k
        )
    return best_i


def _without_self(rows: np.ndarray, own: np.ndarray, k: int) -> list[set[int]]:
    return [
        set([int(i) for i in row if i != o and i >= 0][:k])
        for row, o in zip(rows, own, strict=True)
    ]


def measure_quality(
    index, source: VectorSource, sample_ids: np.ndarray, ram_bytes: int, k: int = DEFAULT_K
) -> Quality | None:
    """Recall@k of ``index`` against exact search over ``source`` (the vectors it was built from),
    and its QPS on one batch of the held-out sample; None for a corpus too small to measure."""
    import faiss

    k = min(k, source.num_vectors - 1)
    if k < 1 or len(sample_ids) == 0:
        return None
    queries = source.take(sample_ids)
    t0 = time.perf_counter()
    _, approx = index.search(queries, k + 1)
    seconds = time.perf_counter() - t0
    exact = exact_neighbours(
        source, queries, k + 1, index.metric_type == faiss.METRIC_INNER_PRODUCT
    )
    found = _without_self(approx, sample_ids, k)
    truth = _without_self(exact, sample_ids, k)
    recall = float(np.mean([len(f & t) / len(t) for f, t in zip(found, truth, strict=True) if t]))
    return Quality(
        recall_at_k=round(recall, 4),
        k=k,
        sample=len(sample_ids),
        ram_bytes=ram_bytes,
        qps=round(len(sample_ids) / max(seconds, 1e-9), 1),
    )
