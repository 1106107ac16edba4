"""A BM25 index over a corpus, built and searched with ``bm25s`` (sparse, precomputed scores)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from research_rl.retrieval.tokenize import tokenize

SUBDIR = "bm25"


class BM25Index:
    """Document numbers and scores for queries; passages are looked up by the caller."""

    def __init__(self, model) -> None:  # model: bm25s.BM25
        self._model = model
        self._vocab: dict[str, int] = model.vocab_dict
        self.num_docs: int = int(model.scores["num_docs"])

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        show_progress: bool = True,
    ) -> BM25Index:
        import bm25s

        model = bm25s.BM25(k1=k1, b=b, method=method)
        model.index([tokenize(t) for t in texts], show_progress=show_progress)
        return cls(model)

    def save(self, index_dir: Path) -> None:
        self._model.save(str(index_dir / SUBDIR), show_progress=False)

    @classmethod
    def load(cls, index_dir: Path) -> BM25Index:
        import bm25s

        # bm25s logs a line per load; the manifest already says what was loaded.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        return cls(bm25s.BM25.load(str(index_dir / SUBDIR), show_progress=False))

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        """Top ``k`` (doc number, score) per query, best first. Only documents sharing at least one
        term with the query score above zero; the rest are not hits, so a query with no known
        term (or only stopwords) gets an empty list."""
        out: list[list[tuple[int, float]]] = []
        for query in queries:
            ids = [self._vocab[t] for t in tokenize(query) if t in self._vocab]
            if not ids:
                out.append([])
                continue
            scores = self._model.get_scores_from_ids(ids)
            kk = min(k, self.num_docs)
            top = np.argpartition(-scores, kk - 1)[:kk] if kk < self.num_docs else np.arange(kk)
            # Stable order on ties (by document number) keeps results reproducible.
            top = top[np.lexsort((top, -scores[top]))]
            out.append([(int(i), float(scores[i])) for i in top if scores[i] > 0])
        return out
