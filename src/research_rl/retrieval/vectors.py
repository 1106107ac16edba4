"""Where an index's vectors are read from, a chunk at a time: an embedding memmap written while
encoding, or the vectors stored in an existing FAISS index (to re-index a prebuilt file without
re-encoding its corpus)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class VectorSource(Protocol):
    num_vectors: int
    dimension: int

    def rows(self, start: int, stop: int) -> np.ndarray: ...

    def take(self, ids: np.ndarray) -> np.ndarray: ...


class ArraySource:
    """Rows of a 2-d array or memmap (float32 or float16), handed out as float32."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array
        self.num_vectors, self.dimension = (int(x) for x in array.shape)

    def rows(self, start: int, stop: int) -> np.ndarray:
        return np.ascontiguousarray(self._array[start:stop], dtype=np.float32)

    def take(self, ids: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._array[ids], dtype=np.float32)


class FaissSource:
    """The vectors a FAISS index stores (exactly for Flat and HNSW-Flat, decoded for quantised
    ones), read back with ``reconstruct``."""

    def __init__(self, index) -> None:
        import faiss

        try:
            ivf = faiss.extract_index_ivf(index)
        except RuntimeError:
            ivf = None
        if ivf is not None:
            ivf.make_direct_map()  # IVF indexes find a vector by id only through this map
        self._index = index
        self.num_vectors, self.dimension = int(index.ntotal), int(index.d)

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self._index.reconstruct_n(start, stop - start)

    def take(self, ids: np.ndarray) -> np.ndarray:
        return np.stack([self._index.reconstruct(int(i)) for i in ids]).astype(np.float32)


def open_memmap(path: Path, n: int, d: int, dtype: str = "float32", mode: str = "w+"):
    return np.memmap(path, dtype=np.dtype(dtype), mode=mode, shape=(n, d))
