"""The search-interleaved rollout: the ReSearch state machine, independent of any trainer.

Every active rollout generates until one of its profile's stop strings (``</search>``; also
``</answer>`` when the profile stops there), end of sequence or its token budget. The queries of
the turn go to the retriever in one batched call, the result block is appended as tokens with loss
mask 0, and the rollouts still going continue together. What the profiles choose (stops, search
cap, result layout, passage cut, budget) is in ``research_rl.profiles``.

Generation runs in chunks of ``chunk_tokens``: a rollout that stopped to search rejoins the batch
at the next chunk instead of idling until the longest turn in the batch ends. A turn cut by a chunk
continues in the next call (the backend reuses its KV cache); a stop string split across two calls
is found by the engine, which drops the tokens sampled after it, exactly as if generation had
stopped there. A round's queries still go to the retriever in one batched call.

Model tokens are kept exactly as the backend sampled them: the engine only decodes them (to find
the query and to build ``text``), it never re-encodes them. Only the system's inserted block is
encoded, on its own.

The query is the text between the last ``<search>`` of the turn and the ``</search>`` that stopped
it, wherever that ``<search>`` stands. An empty query is not sent: it gets a block without passages,
and no inserted text ever holds protocol tags of its own making.

Limits: with a search cap (``max_searches``), a further ``</search>`` ends the rollout with
``finish_reason="max_searches"`` (no final answer chance: the rollout has no answer and scores 0).
``max_response_tokens`` bounds the whole completion, inserted results included; a result that does
not fit is cut and the rollout ends with ``"length"``. A prompt longer than ``max_prompt_tokens``
is an error naming the question.

Retriever faults: a turn's batched search that raises ``RetrieverError`` (the HTTP client raises
it only after its own bounded retries) ends every rollout whose query it carried, with
``finish_reason="retriever_error"``, the message in ``error`` and no reward: no result block is
inserted, and such a rollout is never scored as if the failure were a search result. Rollouts of
the same turn whose empty query was not sent go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import Field, model_serializer

from research_rl import tags
from research_rl.backends.base import (
    GenerationBackend,
    GenerationOutput,
    GenerationRequest,
    SamplingParams,
)
from research_rl.config import StrictModel
from research_rl.profiles import PROFILES, Profile, ProfileName, ResultFormat
from research_rl.questions import Question
from research_rl.retrieval.base import Hit, Retriever, RetrieverError
from research_rl.reward import score
from research_rl.templates import PromptTemplate, load_template
from research_rl.trajectory import RETRIEVER_ERROR, Trajectory

# The search-r1 layout's note for an empty query (the research layout inserts no passages).
EMPTY_QUERY_TEXT = "The search query was empty."

# Keys whose unset value is the profile's. For max_searches and max_passage_tokens an explicit
# null means "no cap" / "no cut", so only an unset key takes the profile's value.
_PROFILE_KEYS = (
    "stop_at_answer",
    "max_searches",
    "result_format",
    "max_passage_tokens",
    "max_response_tokens",
)


class PromptTooLongError(ValueError):
    """A rendered prompt longer than ``max_prompt_tokens``."""


class RolloutConfig(StrictModel):
    """How rollouts are run (the ``rollout:`` section of training, evaluation and rollout
    configs). The keys after ``topk`` default to the profile's value (``effective()``); a config
    written back (``model_dump``) holds the values in effect."""

    profile: ProfileName = "research"
    template: Literal["base", "instruct"] = "base"
    template_path: str | None = None  # a user template file with a {question} slot
    system_prompt_path: str | None = None  # instruct only: replaces the built-in system prompt
    topk: int = Field(5, ge=1)  # passages per search
    stop_at_answer: bool | None = None  # also stop at </answer> (research: no; strict: yes)
    max_searches: int | None = Field(None, ge=0)  # null: no cap (research); strict: 5
    result_format: ResultFormat | None = None  # research | search-r1 (strict)
    max_passage_tokens: int | None = Field(None, ge=1)  # null: no cut (research); strict: 200
    max_response_tokens: int | None = Field(None, ge=1)  # research 8192, strict 1024
    max_prompt_tokens: int = Field(1024, ge=1)
    # Generate at most this many tokens per backend call (0: a turn runs to its stop in one call).
    # Rollouts that searched rejoin the batch at the next chunk instead of waiting for the longest
    # turn of the batch to end; a turn cut by a chunk continues seamlessly in the next call.
    chunk_tokens: int = Field(64, ge=0)

    def effective(self) -> Profile:
        """The profile with this config's own values for the points it sets."""
        base = PROFILES[self.profile]
        given = self.model_fields_set
        return replace(
            base,
            stop_at_answer=base.stop_at_answer
            if self.stop_at_answer is None
            else self.stop_at_answer,
            max_searches=self.max_searches if "max_searches" in given else base.max_searches,
            result_format=self.result_format or base.result_format,
            max_passage_tokens=self.max_passage_tokens
            if "max_passage_tokens" in given
            else base.max_passage_tokens,
            max_response_tokens=self.max_response_tokens or base.max_response_tokens,
        )

    @model_serializer(mode="wrap")
    def _dump_effective(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        # Written back, a config must mean the same when read again: the values in effect, not
        # "unset" (which a reader would take as null, i.e. no cap).
        data = handler(self)
        effective = self.effective()
        for key in _PROFILE_KEYS:
            if key in data:
                data[key] = getattr(effective, key)
        return data

    def load_template(self) -> PromptTemplate:
        return load_template(
            self.template, self.template_path, self.system_prompt_path, self.profile
        )


@dataclass
class _Rollout:
    """One rollout in progress."""

    traj: Trajectory
    text_parts: list[str] = field(default_factory=list)
    turn_start: int = 0  # where the current model turn begins in completion_ids
    turn_calls: int = 0  # backend calls the current turn has taken so far

    @property
    def context(self) -> list[int]:
        return self.traj.prompt_ids + self.traj.completion_ids


def _cut(text: str, tokenizer: Any, max_tokens: int | None) -> str:
    if max_tokens is None:
        return text
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) <= max_tokens:
        return text
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True).rstrip()


def format_passages(hits: Sequence[Hit], tokenizer: Any, max_passage_tokens: int | None) -> str:
    """Search-R1's ``Doc 1 (Title: …) text`` lines, each passage's text cut to
    ``max_passage_tokens`` tokens (None: not cut)."""
    lines = []
    for i, hit in enumerate(hits, start=1):
        text = _cut(" ".join(hit.passage.text.split()), tokenizer, max_passage_tokens)
        lines.append(f"Doc {i} (Title: {hit.passage.title.strip()}) {text}")
    return "\n".join(lines) if lines else "No passages found."


def result_block(body: str) -> str:
    """Search-R1's layout: a newline on each side so its tokens never merge with the model's."""
    return f"\n{tags.RESULT_OPEN}\n{body}\n{tags.RESULT_CLOSE}\n"


def research_passages(
    hits: Sequence[Hit], tokenizer: Any = None, max_passage_tokens: int | None = None
) -> str:
    """ReSearch's result body: each hit's ``contents`` as the index stores it, separated by blank
    lines, the whole stripped at both ends (empty without hits); each passage cut to
    ``max_passage_tokens`` tokens when given."""
    return "\n\n".join(
        _cut(h.passage.contents, tokenizer, max_passage_tokens) for h in hits
    ).strip()


def research_result_block(body: str) -> str:
    """ReSearch's layout: a space, ``<result>``, a newline, the body, a newline, ``</result>``."""
    return f" {tags.RESULT_OPEN}\n{body}\n{tags.RESULT_CLOSE}"


class RolloutEngine:
    """Runs batches of search-interleaved rollouts on a generation backend and a retriever."""

    def __init__(
        self,
        backend: GenerationBackend | None,
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

    @property
    def protocol(self) -> Profile:
        """The profile in effect (read each time: a caller may swap ``config``)."""
        return self.config.effective()

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
        self,
        questions: Sequence[Question],
        n: int = 1,
        sampling: SamplingParams | None = None,
        backend: GenerationBackend | None = None,
    ) -> list[Trajectory]:
        """``n`` rollouts per question, question-major (q0 s0..s(n-1), q1 s0, ...), rewards
        filled, on ``backend`` (default: the engine's own; a trainer passes the one that holds
        this step's weights)."""
        if n < 1:
            raise ValueError(f"group size n must be at least 1, got {n}")
        backend = self.backend if backend is None else backend
        if backend is None:
            raise ValueError("RolloutEngine.run: no backend (give one here or to the engine)")
        sampling = sampling or SamplingParams()
        protocol = self.protocol
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
                    profile=protocol.name,
                )
                rollouts.append(_Rollout(traj))

        _clear_cache(backend)
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
                    max_new_tokens=self._budget(r),
                    stop=list(protocol.stop_strings),
                )
                for r in active
            ]
            outputs = backend.generate(requests, turn_sampling)
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

        _clear_cache(backend)
        finish = getattr(backend, "finish_run", None)
        if callable(finish):
            finish(sampling)
        for r in rollouts:
            t = r.traj
            t.text = "".join(r.text_parts)
            if t.logprobs is not None and len(t.logprobs) != len(t.completion_ids):
                t.logprobs = None  # the backend gave log-probs for some turns only
            if not t.failed:  # a rollout cut short by the retriever has no reward to give
                t.reward = score(t.text, t.golden_answers, t.truncated, rules=protocol.name)
        return [r.traj for r in rollouts]

    def _budget(self, r: _Rollout) -> int:
        left = self.protocol.max_response_tokens - len(r.traj.completion_ids)
        return min(left, self.config.chunk_tokens) if self.config.chunk_tokens else left

    def _earliest_stop(self, ids: list[int]) -> tuple[int, str] | None:
        """(number of tokens up to the one completing it, stop string) of the first stop string in
        ``ids``' text. Needed when a turn spans calls: a backend only watches the new tokens of a
        call, so a stop string split across two calls escapes it."""
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        found = [(text.find(s), s) for s in self.protocol.stop_strings if s in text]
        if not found:
            return None
        _, stop = min(found)
        lo, hi = 1, len(ids)  # the shortest prefix whose text holds the stop string
        while lo < hi:
            mid = (lo + hi) // 2
            if stop in self.tokenizer.decode(ids[:mid], skip_special_tokens=False):
                hi = mid
            else:
                lo = mid + 1
        return lo, stop

    def _take_turn(self, r: _Rollout, out: GenerationOutput) -> str | None:
        """Append a call's model tokens; close the turn when it stopped; return the query when the
        rollout wants a search."""
        t = r.traj
        t.completion_ids.extend(out.token_ids)
        t.loss_mask.extend([1] * len(out.token_ids))
        if t.logprobs is not None:
            if out.logprobs is None:
                t.logprobs = None
            else:
                t.logprobs.extend(out.logprobs)
        r.turn_calls += 1
        protocol = self.protocol
        reason, stop = out.finish_reason, out.stop_string
        if r.turn_calls > 1:
            found = self._earliest_stop(t.completion_ids[r.turn_start :])
            if found is not None:
                keep = r.turn_start + found[0]
                # Tokens sampled after the stop are dropped, as if generation had stopped there:
                # the kept tokens are exactly those the model produced up to the stop.
                del t.completion_ids[keep:], t.loss_mask[keep:]
                if t.logprobs is not None:
                    del t.logprobs[keep:]
                reason, stop = "stop", found[1]
        if reason == "length" and len(t.completion_ids) < protocol.max_response_tokens:
            return None  # a chunk ended, not the turn: the rollout goes on generating
        if reason == "stop" and stop not in protocol.stop_strings:
            raise RuntimeError(f"backend stopped on {stop!r}, which was not requested")

        turn_ids = t.completion_ids[r.turn_start :]
        # The eos token ends the ids but is not text (its string would pollute the reward's view).
        turn_text = self.tokenizer.decode(
            turn_ids[:-1] if reason == "eos" else turn_ids, skip_special_tokens=False
        )
        r.text_parts.append(turn_text)
        r.turn_calls = 0
        if reason in ("eos", "length"):
            t.finish_reason = reason
        elif stop == tags.ANSWER_CLOSE:
            t.finish_reason = "answer"
        elif protocol.max_searches is not None and t.num_searches >= protocol.max_searches:
            t.finish_reason = "max_searches"
        else:
            # The query is read up to the stop, from this turn's text only; text a token carried
            # past the stop stays in the ids.
            cut = turn_text.find(tags.SEARCH_CLOSE)
            query = tags.last_search_query(turn_text[: cut if cut >= 0 else len(turn_text)])
            return query or ""
        return None

    def _insert_results(self, searching: list[tuple[_Rollout, str]]) -> None:
        """Run this turn's queries in one batched call and append each result block; a failed
        call ends the rollouts it was searching for (``retriever_error``)."""
        if not searching:
            return
        protocol = self.protocol
        research = protocol.result_format == "research"
        wrap = research_result_block if research else result_block
        passages = research_passages if research else format_passages
        # An empty query is never sent: its block holds no passages (search-r1: a note).
        blocks: dict[int, str] = {
            i: wrap("" if research else EMPTY_QUERY_TEXT)
            for i, (_, q) in enumerate(searching)
            if not q
        }
        to_search = [(i, q) for i, (_, q) in enumerate(searching) if q]
        if to_search:
            queries = [q for _, q in to_search]
            try:
                hits = self.retriever.search(queries, self.config.topk)
                if len(hits) != len(queries):
                    raise RetrieverError(
                        f"retriever returned {len(hits)} hit lists for {len(queries)} queries"
                    )
                for (i, _), h in zip(to_search, hits, strict=True):
                    body = passages(h, self.tokenizer, protocol.max_passage_tokens)
                    blocks[i] = wrap(body)
            except RetrieverError as err:
                for i, _ in to_search:
                    t = searching[i][0].traj
                    t.finish_reason, t.error = RETRIEVER_ERROR, str(err)

        for i, (r, query) in enumerate(searching):
            t = r.traj
            t.num_searches += 1  # a failed search counts too: it was asked for and sent
            t.search_queries.append(query)
            if t.failed:  # the rollout ends here, nothing is inserted
                continue
            block = blocks[i]
            ids = self.tokenizer.encode(block, add_special_tokens=False)
            room = protocol.max_response_tokens - len(t.completion_ids)
            if len(ids) >= room:  # no room left for the model after this result
                ids = ids[:room]
                block = self.tokenizer.decode(ids, skip_special_tokens=False)
                t.finish_reason = "length"
            t.completion_ids.extend(ids)
            t.loss_mask.extend([0] * len(ids))
            if t.logprobs is not None:
                t.logprobs.extend([0.0] * len(ids))
            r.text_parts.append(block)
            r.turn_start = len(t.completion_ids)


def _clear_cache(backend: GenerationBackend) -> None:
    """Backends that keep KV caches between calls (``HFBackend``) drop them between runs: the
    weights may change between two runs (a training step), which makes them stale."""
    clear = getattr(backend, "clear_prefix_cache", None)
    if callable(clear):
        clear()
