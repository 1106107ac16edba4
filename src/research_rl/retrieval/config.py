"""Typed configuration of the retriever client and of the retrieval server."""

from __future__ import annotations

from pydantic import Field, model_validator

from research_rl.config import StrictModel


class RetrieverConfig(StrictModel):
    """Which retriever the core talks to: an index loaded in-process, or a ``research serve`` URL.

    Switching between them is one value: set ``index`` or ``url`` (exactly one).
    """

    index: str | None = None
    url: str | None = None
    # Optional pins, checked against the index manifest when loading in-process: a mismatched
    # corpus or encoder is refused instead of silently returning the wrong passages.
    corpus: str | None = None
    encoder: str | None = None
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(3, ge=0)
    backoff_s: float = Field(0.5, ge=0)
    # Training: the share of a step's rollouts that may lose a search to the retriever (after the
    # client's retries); above it the run stops, naming the retriever. 1 never stops.
    max_failed_share: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _exactly_one_target(self) -> RetrieverConfig:
        if (self.index is None) == (self.url is None):
            raise ValueError("set exactly one of 'index' (in-process) or 'url' (HTTP service)")
        if self.url is not None and (self.corpus is not None or self.encoder is not None):
            raise ValueError(
                "'corpus' and 'encoder' pin an in-process index; with 'url' the server checks "
                "them (research serve --corpus/--encoder)"
            )
        return self


class ServerConfig(StrictModel):
    """Limits and batching of ``research serve`` (configs/serve.yaml)."""

    default_topk: int = Field(5, ge=1)
    # Above what the peers' shipped scripts send (Search-R1's GRPO script: 2,560 queries a call).
    max_topk: int = Field(100, ge=1)
    max_queries: int = Field(4096, ge=1)
    # Longer queries are cut to this many characters, not refused; it bounds tokenisation and BM25
    # scoring cost. A dense encoder cuts further to its own maximum length in tokens (256-512),
    # which this many characters exceed unless a token averages over 32 characters.
    max_query_chars: int = Field(16384, ge=1)
    # Request coalescing: concurrent requests are queued and answered in batches by one worker,
    # so the encoder and FAISS see large batches instead of one query at a time.
    coalesce: bool = True
    max_batch_queries: int = Field(256, ge=1)
    batch_wait_ms: float = Field(2.0, ge=0)
    # Intra-op threads for the encoder and FAISS (None: the libraries' default, one per core). On a
    # machine shared with other busy processes, fewer threads avoid OpenMP oversubscription.
    num_threads: int | None = Field(None, ge=1)
