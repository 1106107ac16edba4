"""Shared by the real-model tests (a module of its own: every test folder has a conftest)."""

from __future__ import annotations

from pathlib import Path

from research_rl.corpus import Passage
from research_rl.retrieval.base import Hit

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples" / "tiny"


class TitleRetriever:
    """Passages whose title shares a word with the query (the real retriever's wire shape)."""

    passages = [
        Passage.from_title_text("1", "Paris", "Paris is the capital of France."),
        Passage.from_title_text("2", "France", "France is a country in western Europe."),
    ]

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        self.calls.append(list(queries))
        out = []
        for q in queries:
            words = set(q.lower().split())
            out.append(
                [Hit(p, 1.0) for p in self.passages if words & set(p.title.lower().split())][:topk]
            )
        return out

    def close(self) -> None:
        pass
