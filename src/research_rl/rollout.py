"""The search-interleaved rollout: the ReSearch state machine, independent of any trainer.

Every active rollout generates until ``</search>``, ``</answer>``, end of sequence or its token
budget. The queries of the turn go to the retriever in one batched call, ``<result>…</result>`` is
appended as tokens with loss mask 0, and the rollouts still going continue together.

Model tokens are kept exactly as the backend sampled them: the engine only decodes them (to find
the query and to build ``text``), it never re-encodes them. Only the system's inserted text is
encoded, on its own, starting and ending with a newline so the token boundary is clean.

Limits: ``max_searches`` executed searches per rollout; a further ``</search>`` ends the rollout with
``finish_reason="max_searches"`` (no final answer chance: the rollout has no answer, scores 0, and
the policy learns to answer within the limit). ``max_response_tokens`` bounds the whole completion,
inserted results included; a result that does not fit is cut and the rollout ends with
``"length"``. A prompt longer than ``max_prompt_tokens`` is an error naming the question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import Field

from research_rl import tags
from research_rl.backends.base import (
    GenerationBackend,
    GenerationOutput,
    GenerationRequest,
    SamplingParams,
)
from research_rl.config import StrictModel
from research_rl.questions import Question
from research_rl.retrieval.base import Hit, Retriever, RetrieverError
from research_rl.reward import score
from research_rl.templates import PromptTemplate, load_template
from research_rl.trajectory import Trajectory

EMPTY_QUERY_TEXT = "The search query was empty: write the query between <search> and </search>."


class PromptTooLongError(ValueError):
    """A rendered prompt longer than ``max_prompt_tokens``."""


class RolloutConfig(StrictModel):
    """How rollouts are run (the ``rollout:`` section of training, evaluation and rollout configs)."""

    template: Literal["base", "instruct"] = "base"
    template_path: str | None = None  # a user template file with a {question} slot
    system_prompt_path: str | None = None  # instruct only: replaces the built-in system prompt
    topk: int = Field(5, ge=1)  # passages per search
    max_passage_tokens: int = Field(200, ge=1)  # each passage's text is cut to this many tokens
    max_searches: int = Field(5, ge=0)
    max_response_tokens: int = Field(1024, ge=1)  # the completion, inserted results included
    max_prompt_tokens: int = Field(1024, ge=1)

    def load_template(self) -> PromptTemplate:
        return load_template(self.template, self.template_path, self.system_prompt_path)


@dataclass
class _Rollout:
    """One rollout in progress."""

    traj: Trajectory
    text_parts: list[str] = field(default_factory=list)

    @property
    def context(self) -> list[int]:
        return self.traj.prompt_ids + self.traj.completion_ids


def format_passages(hits: Sequence[Hit], tokenizer: Any, max_passage_tokens: int) -> str:
    """``Doc 1 (Title: …) text`` lines, each passage's text cut to ``max_passage_tokens`` tokens."""
    lines = []
    for i, hit in enumerate(hits, start=1):
        text = " ".join(hit.passage.text.split())
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) > max_passage_tokens:
            text = tokenizer.decode(ids[:max_passage_tokens], skip_special_tokens=True).rstrip()
        lines.append(f"Doc {i} (Title: {hit.passage.title.strip()}) {text}")
    return "\n".join(lines) if lines else "No passages found."


def result_block(body: str) -> str:
    """The inserted text: a newline on each side so its tokens never merge with the model's."""
    return f"\n{tags.RESULT_OPEN}\n{body}\n{tags.RESULT_CLOSE}\n"


class RolloutEngine:
    """Runs batches of search-interleaved rollouts on a generation backend and a retriever."""

    def __init__(
        self,
        backend: GenerationBackend,
        tokenizer: Any,
        retriever: Retriever,
        config: RolloutConfig | None = None,
        template: PromptTemplate | None = None,
    ) -> None:
        self.backend = backend
        self.tokenizer = tokenizer
        self.retriever = retriever
        self.config = config or RolloutConfig()
        self.template = template or self.config.load_template()

    # -- prompts -------------------------------------------------------------------------------
    def render_prompt(self, question: Question) -> tuple[str, list[int]]:
        text = self.template.render(question.question, self.tokenizer)
        # The chat template already writes its special tokens (BOS included) as text.
        ids = self.tokenizer.encode(text, add_special_tokens=self.template.kind == "base")
        if len(ids) > self.config.max_prompt_tokens:
            raise PromptTooLongError(
                f"question {question.id!r}: prompt is {len(ids)} tokens, over max_prompt_tokens="
                f"{self.config.max_prompt_tokens}"
            )
        return text, ids

    # -- the loop ------------------------------------------------------------------------------
    def run(
        self, questions: Sequence[Question], n: int = 1, sampling: SamplingParams | None = None
    ) -> list[Trajectory]:
        """``n`` rollouts per question, question-major (q0 s0..s(n-1), q1 s0, ...), rewards filled."""
        if n < 1:
            raise ValueError(f"group size n must be at least 1, got {n}")
        sampling = sampling or SamplingParams()
        rollouts: list[_Rollout] = []
        for q in questions:
            prompt_text, prompt_ids = self.render_prompt(q)
            for s in range(n):
                traj = Trajectory(
                    question_id=q.id,
                    question=q.question,
                    golden_answers=list(q.golden_answers),
                    sample_index=s,
                    prompt_ids=list(prompt_ids),
                    prompt_text=prompt_text,
                    logprobs=[],
                )
                rollouts.append(_Rollout(traj))

        active = list(rollouts)
        turn = 0
        while active:
            # A fresh seed per turn: the same seed every turn would replay the same random stream.
            turn_sampling = (
                sampling if sampling.seed is None else replace(sampling, seed=sampling.seed + turn)
            )
            requests = [
                GenerationRequest(
                    prompt_ids=r.context,
                    max_new_tokens=self.config.max_response_tokens - len(r.traj.completion_ids),
                    stop=list(tags.STOP_STRINGS),
                )
                for r in active
            ]
            outputs = self.backend.generate(requests, turn_sampling)
            if len(outputs) != len(requests):
                raise RuntimeError(
                    f"backend returned {len(outputs)} outputs for {len(requests)} requests"
                )
            searching: list[tuple[_Rollout, str]] = []
            for r, out in zip(active, outputs, strict=True):
                query = self._take_turn(r, out)
                if query is not None:
                    searching.append((r, query))
            self._insert_results(searching)
            active = [r for r in active if r.traj.finish_reason is None]
            turn += 1

        for r in rollouts:
            t = r.traj
            t.text = "".join(r.text_parts)
            if t.logprobs is not None and len(t.logprobs) != len(t.completion_ids):
                t.logprobs = None  # the backend gave log-probs for some turns only
            t.reward = score(t.text, t.golden_answers, truncated=t.truncated)
        return [r.traj for r in rollouts]

    def _take_turn(self, r: _Rollout, out: GenerationOutput) -> str | None:
        """Append a turn's model tokens; return the query when the rollout wants a search."""
        t = r.traj
        t.completion_ids.extend(out.token_ids)
        t.loss_mask.extend([1] * len(out.token_ids))
        if t.logprobs is not None:
            if out.logprobs is None:
                t.logprobs = None
            else:
                t.logprobs.extend(out.logprobs)
        # The eos token ends the ids but is not text (its string would pollute the reward's view).
        text_ids = out.token_ids[:-1] if out.finish_reason == "eos" else out.token_ids
        turn_text = self.tokenizer.decode(text_ids, skip_special_tokens=False)
        r.text_parts.append(turn_text)

        if out.finish_reason == "eos":
            t.finish_reason = "eos"
        elif out.finish_reason == "length":
            t.finish_reason = "length"
        elif out.stop_string == tags.ANSWER_CLOSE:
            t.finish_reason = "answer"
        elif out.stop_string == tags.SEARCH_CLOSE:
            if t.num_searches >= self.config.max_searches:
                t.finish_reason = "max_searches"
                return None
            # The query is read up to the stop; text a token carried past it stays in the ids.
            cut = turn_text.find(tags.SEARCH_CLOSE)
            query = tags.last_search_query(turn_text[: cut if cut >= 0 else len(turn_text)])
            return query or ""
        else:
            raise RuntimeError(f"backend stopped on {out.stop_string!r}, which was not requested")
        return None

    def _insert_results(self, searching: list[tuple[_Rollout, str]]) -> None:
        """Run this turn's queries in one batched call and append each result block."""
        if not searching:
            return
        bodies: dict[int, str] = {}
        to_search = [(i, q) for i, (_, q) in enumerate(searching) if q]
        for i, (_, q) in enumerate(searching):
            if not q:
                bodies[i] = EMPTY_QUERY_TEXT
        if to_search:
            queries = [q for _, q in to_search]
            try:
                hits = self.retriever.search(queries, self.config.topk)
                if len(hits) != len(queries):
                    raise RetrieverError(
                        f"retriever returned {len(hits)} hit lists for {len(queries)} queries"
                    )
                for (i, _), h in zip(to_search, hits, strict=True):
                    bodies[i] = format_passages(h, self.tokenizer, self.config.max_passage_tokens)
            except RetrieverError as err:
                for i, _ in to_search:
                    bodies[i] = f"The search failed: {err}"

        for i, (r, query) in enumerate(searching):
            t = r.traj
            t.num_searches += 1
            t.search_queries.append(query)
            block = result_block(bodies[i])
            ids = self.tokenizer.encode(block, add_special_tokens=False)
            room = self.config.max_response_tokens - len(t.completion_ids)
            if len(ids) >= room:  # no room left for the model after this result
                ids = ids[:room]
                block = self.tokenizer.decode(ids, skip_special_tokens=False)
                t.finish_reason = "length"
            t.completion_ids.extend(ids)
            t.loss_mask.extend([0] * len(ids))
            if t.logprobs is not None:
                t.logprobs.extend([0.0] * len(ids))
            r.text_parts.append(block)
