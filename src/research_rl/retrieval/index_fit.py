"""Build a FAISS index of any factory string from vectors read a chunk at a time.

Training (IVF, PQ, SQ) sees a random sample, leaving out the held-out quality queries; vectors
are then added a chunk at a time, so memory holds the index being built and one chunk, never all
vectors as floats.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from research_rl.retrieval.vectors import VectorSource

CHUNK = 65536
MAX_TRAIN = 1_000_000


def _nlist(index) -> int | None:
    import faiss

    try:
        return int(faiss.extract_index_ivf(index).nlist)
    except RuntimeError:
        return None


def _train_size(index, available: int) -> int:
    # 64 points per centroid: within FAISS's advice (39 to 256) and a quarter of the k-means
    # time of its maximum (training IVF16384 on 2 cores is then minutes, not an hour); PQ's 256
    # centroids per sub-quantizer need as many; SQ's per-dimension ranges need few.
    nlist = _nlist(index) or 1
    return int(min(available, MAX_TRAIN, max(100_000, 64 * nlist, 64 * 256)))


def make_index(factory: str, dimension: int, inner_product: bool = True):
    import faiss

    metric = faiss.METRIC_INNER_PRODUCT if inner_product else faiss.METRIC_L2
    try:
        return faiss.index_factory(dimension, factory, metric)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1]
        raise ValueError(f"FAISS factory string {factory!r} is not valid: {reason}") from None


def apply_search_params(index, params: dict[str, Any]) -> None:
    """efSearch (HNSW) and nprobe (IVF), wherever they sit in the index (FAISS's ParameterSpace
    finds them inside pre-transforms and refinements too)."""
    import faiss

    space = faiss.ParameterSpace()
    for name, value in params.items():
        space.set_index_parameter(index, name, float(value))


def stored_search_params(index) -> dict[str, int]:
    """The search parameters a FAISS index carries (what it was written with)."""
    import faiss

    params: dict[str, int] = {}
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    if hnsw is not None:
        params["efSearch"] = int(hnsw.efSearch)
    with contextlib.suppress(RuntimeError):  # not an IVF index
        params["nprobe"] = int(faiss.extract_index_ivf(index).nprobe)
    return params


def fit_index(
    source: VectorSource,
    factory: str,
    *,
    inner_product: bool = True,
    held_out: np.ndarray | None = None,
    ef_construction: int | None = None,
    search_params: dict[str, int] | None = None,
    seed: int = 0,
    show_progress: bool = True,
):
    """A ``factory`` index of every vector of ``source``, trained on a sample without
    ``held_out``, with ``search_params`` set."""
    import faiss
    from tqdm.auto import tqdm

    index = make_index(factory, source.dimension, inner_product)
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    if hnsw is not None and ef_construction is not None:
        hnsw.efConstruction = ef_construction
    n = source.num_vectors
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        pool = np.setdiff1d(np.arange(n, dtype=np.int64), held_out if held_out is not None else [])
        if len(pool) == 0:
            pool = np.arange(n, dtype=np.int64)
        ids = np.sort(rng.choice(pool, size=_train_size(index, len(pool)), replace=False))
        index.train(source.take(ids))
    with tqdm(total=n, desc=f"adding to {factory}", unit="vec", disable=not show_progress) as bar:
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            index.add(source.rows(start, stop))
            bar.update(stop - start)
    if search_params:
        apply_search_params(index, search_params)
    return index
