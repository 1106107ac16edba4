"""The retriever interface the core depends on, whatever runs behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from research_rl.corpus import Passage


class RetrieverError(RuntimeError):
    """A retriever could not answer (server down, bad response, index failure)."""


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float


@runtime_checkable
class Retriever(Protocol):
    """Batched search: one list of hits, best first, per query.

    Implementations: in-process (loads an index) and HTTP (talks to ``research serve``).
    """

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]: ...

    def close(self) -> None: ...
