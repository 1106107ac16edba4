"""Retrieval: corpus indexes (BM25, dense+FAISS), an HTTP service and the clients the core calls."""

from research_rl.retrieval.base import Hit, Retriever, RetrieverError

__all__ = ["Hit", "Retriever", "RetrieverError"]
