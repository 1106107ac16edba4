"""The ReSearch rollout as a verl agent loop (registered as ``research_agent``).

verl runs one agent loop per sample, many of them concurrently on an event loop in each
``AgentLoopWorker``, and generates through ``self.server_manager.generate`` (token ids in, token
ids out, on verl's async vLLM servers). This loop does not re-implement the ReSearch state machine:
it runs the core's :class:`research_rl.rollout.RolloutEngine` (the rollout profile's templates,
stops, query extraction, ``<result>`` insertion with loss mask 0, budgets and search cap, if any)
in a worker thread, with two bridges back to the event loop:

- generation: each engine turn becomes one ``server_manager.generate`` call with vLLM sampling
  params ``stop``, ``include_stop_str_in_output=True`` and ``max_tokens`` = the turn's budget;
- retrieval: every concurrent rollout's queries go through one :class:`~research_rl.retrieval.
  batching.Coalescer` per worker, so the retriever sees batches across rollouts, not single
  queries.

The trajectory's loss mask becomes verl's ``response_mask`` (1 model token, 0 inserted result
token; the EOS the model ended with is a model token), which verl applies to the policy loss, the
KL loss and the entropy. The rollout's text, its profile, its truncation and whether it ended with
EOS go to the reward entry point (``research_rl.scale.verl.reward``) through ``extra_fields``,
which verl's reward loop merges into ``extra_info``: verl decodes ``solution_str`` without special
tokens, so the reward could not tell an EOS from a cut by the budget on its own.

Settings (a YAML file, :class:`VerlLoopSettings`) are named in the agent-loop config verl reads
(``actor_rollout_ref.rollout.agent.agent_loop_config_path``)::

    - name: research_agent
      _target_: research_rl.scale.verl.agent_loop.ReSearchAgentLoop
      settings: /abs/path/to/verl_research.yaml
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from research_rl.backends.base import GenerationOutput, GenerationRequest, SamplingParams
from research_rl.backends.stopping import first_stop
from research_rl.config import StrictModel, load_config
from research_rl.questions import Question
from research_rl.retrieval import RetrieverConfig, make_retriever
from research_rl.retrieval.base import Hit, Retriever
from research_rl.retrieval.batching import Coalescer
from research_rl.rollout import RolloutConfig, RolloutEngine
from research_rl.scale.verl.compat import AgentLoopBase, AgentLoopOutput, register
from research_rl.templates import PromptTemplate
from research_rl.trajectory import Trajectory

AGENT_NAME = "research_agent"


class VerlLoopSettings(StrictModel):
    """The ``settings`` file of the verl agent loop."""

    rollout: RolloutConfig = RolloutConfig()
    retriever: RetrieverConfig
    # Client-side coalescing of the worker's concurrent queries (see retrieval.batching).
    retrieval_batch_queries: int = Field(512, ge=1)
    retrieval_wait_s: float = Field(0.005, ge=0)
    # Rollouts in flight per worker process (one thread each, blocked on the event loop).
    max_concurrent_rollouts: int = Field(1024, ge=1)
    # End-of-sequence ids besides the tokenizer's own (e.g. <|endoftext|> for chat models).
    extra_eos_token_ids: list[int] = []


@functools.lru_cache(maxsize=8)
def load_settings(path: str) -> VerlLoopSettings:
    return load_config(path, VerlLoopSettings)


class RowError(ValueError):
    """A dataset row the loop cannot turn into a question (names the field)."""


def _plain(value: Any) -> Any:
    """numpy arrays / scalars (what verl's non-tensor batch holds) as plain Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def golden_answers(ground_truth: Any) -> list[str]:
    """Golden answers from ``reward_model.ground_truth``: a list, one string, or Search-R1's
    ``{"target": [...]}``."""
    ground_truth = _plain(ground_truth)
    if isinstance(ground_truth, dict):
        ground_truth = _plain(ground_truth.get("target", []))
    if isinstance(ground_truth, str):
        return [ground_truth]
    if isinstance(ground_truth, list | tuple):
        return [str(a) for a in ground_truth]
    raise RowError(f"reward_model.ground_truth: expected answers, got {ground_truth!r}")


def question_from_row(row: dict[str, Any]) -> Question:
    """The question of a verl dataset row (as written by ``research_rl.scale.verl.prepare``)."""
    extra = _plain(row.get("extra_info")) or {}
    text = extra.get("question")
    if not text:  # rows from other converters: the last user message of the chat prompt
        messages = _plain(row.get("raw_prompt")) or []
        users = [
            m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"
        ]
        text = users[-1] if users and isinstance(users[-1], str) else None
    if not text:
        raise RowError(f"row {row.get('index')!r}: no extra_info.question and no user message")
    reward_model = _plain(row.get("reward_model")) or {}
    answers = _plain(extra.get("golden_answers")) or golden_answers(
        reward_model.get("ground_truth")
    )
    qid = str(extra.get("question_id", row.get("index", "")))
    return Question(id=qid, question=str(text), golden_answers=[str(a) for a in answers])


def eos_token_ids(tokenizer: Any, extra: list[int]) -> frozenset[int]:
    ids = set(extra)
    eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, list):
        ids.update(eos)
    return frozenset(ids)


def to_generation_output(
    token_ids: list[int],
    log_probs: list[float] | None,
    request: GenerationRequest,
    tokenizer: Any,
    eos_ids: frozenset[int],
) -> GenerationOutput:
    """verl's ``TokenOutput`` carries no finish reason: recover it as the protocol defines it.

    An EOS id last is ``eos``; else a stop string in the decoded text is ``stop``; else a full
    budget is ``length``; else vLLM stopped early on another special token (an end id from the
    model's generation config), which is ``eos`` too; anything else was cut by the server
    (context window), which is ``length``.
    """
    if token_ids and token_ids[-1] in eos_ids:
        return GenerationOutput(token_ids, "eos", None, log_probs)
    text = tokenizer.decode(token_ids, skip_special_tokens=False)
    stop = first_stop(text, request.stop)
    if stop is not None:
        return GenerationOutput(token_ids, "stop", stop, log_probs)
    special = set(getattr(tokenizer, "all_special_ids", None) or [])
    if token_ids and len(token_ids) < request.max_new_tokens and token_ids[-1] in special:
        return GenerationOutput(token_ids, "eos", None, log_probs)
    return GenerationOutput(token_ids, "length", None, log_probs)


@dataclass
class _Timings:
    generate_s: float = 0.0
    retrieve_s: float = 0.0


class _ServerManagerBackend:
    """The core's generation protocol over verl's ``server_manager``, called from the rollout's
    thread: each call is scheduled on the agent loop's event loop and waited for."""

    def __init__(
        self,
        agent: ReSearchAgentLoop,
        sampling_params: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        timings: _Timings,
    ) -> None:
        self.agent = agent
        self.sampling_params = dict(sampling_params)
        self.loop = loop
        self.timings = timings
        self.request_id = uuid.uuid4().hex  # one per rollout: verl routes its turns to one server

    async def _generate_one(self, request: GenerationRequest) -> GenerationOutput:
        if request.max_new_tokens <= 0:
            return GenerationOutput([], "length", None, [])
        params = {
            **self.sampling_params,
            "stop": list(request.stop),
            "include_stop_str_in_output": True,
            "skip_special_tokens": False,
            "max_tokens": request.max_new_tokens,
        }
        out = await self.agent.server_manager.generate(
            request_id=self.request_id, prompt_ids=list(request.prompt_ids), sampling_params=params
        )
        if getattr(out, "stop_reason", None) == "aborted":
            raise RuntimeError(f"verl request {self.request_id}: generation was aborted")
        ids = list(out.token_ids)
        log_probs = list(out.log_probs) if getattr(out, "log_probs", None) else None
        if self.sampling_params.get("logprobs") and log_probs is None and ids:
            raise RuntimeError(f"verl request {self.request_id}: asked for log-probs, got none")
        return to_generation_output(
            ids, log_probs, request, self.agent.tokenizer, self.agent.eos_ids
        )

    async def _generate(self, requests: list[GenerationRequest]) -> list[GenerationOutput]:
        return list(await asyncio.gather(*(self._generate_one(r) for r in requests)))

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams
    ) -> list[GenerationOutput]:
        # ``sampling`` is the engine's; verl's sampling params (temperature, top-p, validation
        # overrides) come from the trainer config and win.
        start = time.perf_counter()
        try:
            return asyncio.run_coroutine_threadsafe(self._generate(requests), self.loop).result()
        finally:
            self.timings.generate_s += time.perf_counter() - start


class _CoalescedRetriever:
    """The core's retriever protocol over the worker's shared coalescer (thread -> event loop)."""

    def __init__(self, coalescer: Coalescer, loop: asyncio.AbstractEventLoop, timings: _Timings):
        self.coalescer = coalescer
        self.loop = loop
        self.timings = timings

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        start = time.perf_counter()
        try:
            future = asyncio.run_coroutine_threadsafe(
                self.coalescer.search(queries, topk), self.loop
            )
            return future.result()
        finally:
            self.timings.retrieve_s += time.perf_counter() - start

    def close(self) -> None:  # the shared retriever lives as long as the worker
        pass


@dataclass
class _Shared:
    """Per worker process and event loop: one retriever, one coalescer, one thread pool."""

    retriever: Retriever
    coalescer: Coalescer
    pool: ThreadPoolExecutor
    template: PromptTemplate


_SHARED: dict[tuple[int, str], _Shared] = {}


def _shared_for(loop: asyncio.AbstractEventLoop, key: str, settings: VerlLoopSettings) -> _Shared:
    shared = _SHARED.get((id(loop), key))
    if shared is None:
        retriever = make_retriever(settings.retriever)
        coalescer = Coalescer(
            retriever.search, settings.retrieval_batch_queries, settings.retrieval_wait_s
        )
        coalescer.start()
        pool = ThreadPoolExecutor(
            settings.max_concurrent_rollouts, thread_name_prefix="research-rollout"
        )
        shared = _Shared(retriever, coalescer, pool, settings.rollout.load_template())
        _SHARED[(id(loop), key)] = shared
    return shared


async def close_shared() -> None:
    """Stop this event loop's coalescer, thread pool and retriever (verl workers live as long as
    the job and never need this; tests and embedding applications do)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _SHARED if k[0] == loop_id]:
        shared = _SHARED.pop(key)
        await shared.coalescer.stop()
        shared.pool.shutdown(wait=False)
        shared.retriever.close()


@register(AGENT_NAME)
class ReSearchAgentLoop(AgentLoopBase):
    """verl agent loop running the ReSearch rollout; see the module docstring."""

    def __init__(self, *args: Any, settings: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if settings is None:
            raise ValueError(
                f"agent loop {AGENT_NAME!r}: set 'settings: /path/to/settings.yaml' in the agent "
                "loop config (actor_rollout_ref.rollout.agent.agent_loop_config_path)"
            )
        self.settings_path = str(settings)
        self.settings = load_settings(self.settings_path)
        self.response_length = int(self.rollout_config.response_length)
        # One server call per turn: vLLM batches continuously across all of the worker's
        # rollouts, so the engine's chunking (for the in-process HF backend) would only multiply
        # calls and prefills.
        self.engine_config = self.settings.rollout.model_copy(update={"chunk_tokens": 0})
        rollout = self.engine_config
        budget = rollout.effective().max_response_tokens
        if budget > self.response_length:
            raise ValueError(
                f"{settings}: rollout.max_response_tokens={budget} exceeds "
                f"actor_rollout_ref.rollout.response_length={self.response_length}"
            )
        prompt_length = int(self.rollout_config.prompt_length)
        if rollout.max_prompt_tokens > prompt_length:
            raise ValueError(
                f"{settings}: rollout.max_prompt_tokens={rollout.max_prompt_tokens} exceeds "
                f"actor_rollout_ref.rollout.prompt_length={prompt_length}"
            )
        self.eos_ids = eos_token_ids(self.tokenizer, self.settings.extra_eos_token_ids)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        loop = asyncio.get_running_loop()
        shared = _shared_for(loop, self.settings_path, self.settings)
        question = question_from_row(kwargs)
        timings = _Timings()
        engine = RolloutEngine(
            _ServerManagerBackend(self, sampling_params, loop, timings),
            self.tokenizer,
            _CoalescedRetriever(shared.coalescer, loop, timings),
            self.engine_config,
            template=shared.template,
        )
        [traj] = await loop.run_in_executor(shared.pool, engine.run, [question], 1)
        return self.to_output(traj, timings)

    def to_output(self, traj: Trajectory, timings: _Timings) -> AgentLoopOutput:
        n = self.response_length
        reward = traj.reward
        return AgentLoopOutput(
            prompt_ids=traj.prompt_ids,
            response_ids=traj.completion_ids[:n],
            response_mask=traj.loss_mask[:n],
            response_logprobs=traj.logprobs[:n] if traj.logprobs is not None else None,
            # user turn, then a model turn per search plus the final one, and a tool turn per search
            num_turns=2 + 2 * traj.num_searches,
            metrics={"generate_sequences": timings.generate_s, "tool_calls": timings.retrieve_s},
            extra_fields={
                # read by research_rl.scale.verl.reward.compute_score (via extra_info)
                "research_text": traj.text,
                "research_profile": traj.profile,
                "research_truncated": traj.truncated,
                "research_ended_with_eos": traj.finish_reason == "eos",
                "research_finish_reason": traj.finish_reason,
                "research_num_searches": traj.num_searches,
                "research_rollout_reward": reward.value if reward else None,
                "turn_scores": [],
                "tool_rewards": [],
            },
        )
