"""Retrieval: corpus indexes (BM25, dense+FAISS), an HTTP service and the clients the core calls."""

from __future__ import annotations

from research_rl.retrieval.base import Hit, Retriever, RetrieverError
from research_rl.retrieval.config import RetrieverConfig


def make_retriever(cfg: RetrieverConfig) -> Retriever:
    """The retriever ``cfg`` names: the index in-process (``index``) or the HTTP service
    (``url``)."""
    if cfg.index is not None:
        from research_rl.retrieval.index import load_index

        return load_index(cfg.index, corpus=cfg.corpus, encoder=cfg.encoder)
    from research_rl.retrieval.client import HTTPRetriever

    assert cfg.url is not None  # RetrieverConfig guarantees exactly one of index / url
    return HTTPRetriever(
        cfg.url, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries, backoff_s=cfg.backoff_s
    )


__all__ = ["Hit", "Retriever", "RetrieverConfig", "RetrieverError", "make_retriever"]
