"""The evaluated methods, all run through the core's rollout engine so they share one record
(:class:`~research_rl.trajectory.Trajectory`) and one answer rule (the rollout profile's boxed
answer; the baselines also count a plain-text answer, see ``evaluation.metrics``):

- ``research``: the search-interleaved ReSearch loop, with the ``rollout`` section's template;
- ``direct``: the model answers from its own knowledge (no search: ``max_searches=0`` and a
  retriever that refuses to be called);
- ``rag``: one retrieval with the question, the passages put in the prompt (FlashRAG's
  ``Doc i (Title: …) text`` lines, cut to the profile's ``max_passage_tokens``), then one answer.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from research_rl.backends.base import GenerationBackend, SamplingParams
from research_rl.evaluation.config import EvalConfig, Method
from research_rl.questions import Question
from research_rl.retrieval.base import Hit, Retriever, RetrieverError
from research_rl.rollout import RolloutEngine, format_passages
from research_rl.templates import PromptTemplate
from research_rl.trajectory import Trajectory


class NoSearch:
    """The retriever of the no-retrieval baseline: any call is a bug, so it fails loudly."""

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        raise RetrieverError("the direct method does not search")

    def close(self) -> None:
        pass


class LockedRetriever:
    """One search at a time: server backends run questions in worker threads, and an in-process
    index is not promised to be thread-safe (the HTTP client is, and needs no lock)."""

    def __init__(self, inner: Retriever) -> None:
        self.inner = inner
        self._lock = threading.Lock()

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        with self._lock:
            return self.inner.search(queries, topk)

    def close(self) -> None:
        self.inner.close()


class RagTemplate:
    """A prompt with ``{passages}`` and ``{question}`` slots, made for one batch of questions with
    their passages (the engine renders by question text). Each batch has its own, so concurrent
    workers share nothing."""

    def __init__(self, kind: str, text: str, passages: dict[str, str]) -> None:
        self.kind = kind
        self.text = text
        self.passages = passages

    def render(self, question: str, tokenizer: Any = None) -> str:
        filled = self.text.replace("{passages}", self.passages[question.strip()])
        template = PromptTemplate(kind=self.kind, text=filled, source="<rag prompt>")  # type: ignore[arg-type]
        return template.render(question, tokenizer)


def _search_once(retriever: Retriever, questions: Sequence[Question], topk: int) -> list[list[Hit]]:
    hits = retriever.search([q.question for q in questions], topk)
    if len(hits) != len(questions):
        raise RetrieverError(
            f"retriever returned {len(hits)} hit lists for {len(questions)} queries"
        )
    return hits


class MethodRunner:
    """Runs one method on batches of questions: one greedy (or configured) rollout per question."""

    def __init__(
        self,
        method: Method,
        backend: GenerationBackend,
        tokenizer: Any,
        retriever: Retriever | None,
        cfg: EvalConfig,
    ) -> None:
        self.method = method
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.retriever = retriever
        s = cfg.sampling
        self.sampling = SamplingParams(s.temperature, s.top_p, s.top_k, s.seed)
        kind = cfg.rollout.template
        if method == "research":
            if retriever is None:
                raise ValueError("the research method needs a retriever")
            self.engine = RolloutEngine(backend, tokenizer, retriever, cfg.rollout)
            return
        no_search = cfg.rollout.model_copy(update={"max_searches": 0})
        if method == "direct":
            text = cfg.prompts.direct_base if kind == "base" else cfg.prompts.direct_instruct
            template = PromptTemplate(kind=kind, text=text, source="prompts.direct")
            self.engine = RolloutEngine(backend, tokenizer, NoSearch(), no_search, template)
        elif method == "rag":
            if retriever is None:
                raise ValueError("the rag method needs a retriever")
            self.rag_text = cfg.prompts.rag_base if kind == "base" else cfg.prompts.rag_instruct
            self.engine = RolloutEngine(backend, tokenizer, NoSearch(), no_search)
        else:
            raise ValueError(f"unknown method {method!r}")

    def run(self, questions: Sequence[Question]) -> list[Trajectory]:
        passages: list[str] = []
        engine = self.engine
        if self.method == "rag":
            assert self.retriever is not None
            hits = _search_once(self.retriever, questions, self.cfg.rollout.topk)
            cut = self.cfg.rollout.effective().max_passage_tokens
            passages = [format_passages(h, self.tokenizer, cut) for h in hits]
            by_text = {q.question.strip(): p for q, p in zip(questions, passages, strict=True)}
            template = RagTemplate(self.cfg.rollout.template, self.rag_text, by_text)
            engine = RolloutEngine(
                engine.backend,
                self.tokenizer,
                engine.retriever,
                engine.config,
                template,  # type: ignore[arg-type]
            )
        trajectories = engine.run(questions, n=1, sampling=self.sampling)
        for i, t in enumerate(trajectories):
            t.metadata["method"] = self.method
            if passages:
                t.metadata["passages"] = passages[i]
        return trajectories
