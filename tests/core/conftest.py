"""Fixtures for the core's tests: a small byte-level BPE tokenizer built offline and a fake
in-memory retriever."""

from __future__ import annotations

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from research_rl.bpe import train_tokenizer
from research_rl.corpus import Passage
from research_rl.retrieval.base import Hit, RetrieverError

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread; on a busy machine two threads spin-wait on each other
    (measured here: 18 s instead of 0.3 s for the same generation)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_TRAINING_TEXT = [
    "<think> I need to find the capital. </think> <search> capital of France </search>",
    "<result> Doc 1 (Title: Paris) Paris is the capital of France. </result>",
    "<answer> The answer is \\boxed{Paris} </answer>",
    "User: question? Assistant: the quick brown fox jumps over the lazy dog 0123456789",
]


def make_tokenizer() -> PreTrainedTokenizerFast:
    return train_tokenizer(
        _TRAINING_TEXT * 20, 400, min_frequency=0, added_tokens=(), chat_template=CHAT_TEMPLATE
    )


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


class FakeRetriever:
    """Passages whose title contains a word of the query; records every batched call. ``fail``:
    every call raises; ``fail_calls``: the calls (0-based) that raise."""

    def __init__(
        self, passages: list[Passage], fail: bool = False, fail_calls: set[int] | None = None
    ) -> None:
        self.passages = passages
        self.fail = fail
        self.fail_calls = fail_calls or set()
        self.calls: list[list[str]] = []

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        self.calls.append(list(queries))
        if self.fail or len(self.calls) - 1 in self.fail_calls:
            raise RetrieverError("index unavailable")
        out = []
        for q in queries:
            words = set(q.lower().split())
            hits = [Hit(p, 1.0) for p in self.passages if words & set(p.title.lower().split())]
            out.append(hits[:topk])
        return out

    def close(self) -> None:
        pass


@pytest.fixture
def retriever() -> FakeRetriever:
    return FakeRetriever(
        [
            Passage.from_title_text("1", "Paris", "Paris is the capital of France."),
            Passage.from_title_text("2", "France", "France is a country in Europe. " * 30),
            Passage.from_title_text("3", "Dune", "Dune is a novel by Frank Herbert."),
        ]
    )
