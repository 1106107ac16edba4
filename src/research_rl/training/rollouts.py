"""The two hooks TRL calls: the rollout function (the core's RolloutEngine) and the reward.

TRL's sampler hands the rollout function the step's prompts already repeated ``group_size``
times; here a prompt is a question id. The whole local batch goes to ONE ``RolloutEngine.run``
call (``n=1`` per repeated id), so every turn of every rollout is batched through the backend and
every turn's queries through the retriever; batching is the main speed-up on CPU. The function
returns the token ids, the generation log-probs and ``env_mask`` (the core's loss mask: 0 on the
inserted ``<result>`` tokens), which TRL 1.16 turns into ``tool_mask`` and multiplies into the
completion mask of the policy loss, the KL term and every token count. The completion text the
reward reads travels as extra fields (``response_text``, ``truncated`` and ``profile``, whose rules
score it): TRL's own decoding skips special tokens and would not show what the core scored.

A rollout that lost a search to the retriever (``Trajectory.failed``) is left out of the step:
its ``env_mask`` is all 0 (no token of it reaches the loss, the KL, the entropy or the token
count) and its reward is None, which TRL 1.16 turns into NaN and leaves out of its group's mean and
std (``nanmean``/``nanstd``), then gives advantage 0. When the failed share of a step exceeds
``retriever.max_failed_share`` the run stops before the step trains
(:class:`RetrieverFailureError`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from research_rl.backends.base import SamplingParams
from research_rl.backends.factory import BackendFactory
from research_rl.questions import Question
from research_rl.reward import score
from research_rl.rollout import RolloutEngine
from research_rl.trajectory import Trajectory


class TrainingStopped(RuntimeError):
    """The run stops with a message; the last good checkpoint stays."""


class NonFiniteError(TrainingStopped):
    """A non-finite loss, gradient norm or reward: the run stops, the last good checkpoint stays."""


class RetrieverFailureError(TrainingStopped):
    """More of a step's rollouts failed on the retriever than ``retriever.max_failed_share``."""


@dataclass
class StepRollouts:
    """What the rollout function saw and did during one optimiser step (read by the callbacks)."""

    step: int
    trajectories: list[Trajectory] = field(default_factory=list)
    seconds: float = 0.0


def gather_all(objs: list[Any]) -> list[Any]:
    """All ranks' lists, concatenated (a no-op on one process); every rank must call it."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    return gather_object(objs) if PartialState().num_processes > 1 else objs


def step_seed(base: int, step: int, rank: int = 0) -> int:
    """The sampling seed of one step on one rank: a function of (seed, step, rank) only, so a
    resumed run samples exactly what the uninterrupted run would have."""
    return (base * 1_000_003 + step * 7_919 + rank) % (2**31 - 1)


@contextlib.contextmanager
def generation_model(trainer: Any) -> Iterator[Any]:
    """The policy as a plain module for ``generate``: unwrapped from DDP/DeepSpeed, with ZeRO-3
    parameters gathered (as TRL does for its own generation)."""
    from trl.models.utils import unwrap_model_for_generation

    with unwrap_model_for_generation(
        trainer.model_wrapped,
        trainer.accelerator,
        gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
    ) as model:
        was_training = model.training
        model.eval()
        try:
            yield model
        finally:
            model.train(was_training)


class RolloutFunction:
    """``rollout_func`` for ``GRPOTrainer``: runs the core's rollouts for the step's prompts.

    ``max_failed_share``: the share of a step's rollouts (all ranks) that may fail on the
    retriever; above it the step stops with a message naming ``retriever_name``."""

    def __init__(
        self,
        questions: dict[str, Question],
        engine: RolloutEngine,
        backend_factory: BackendFactory,
        seed: int,
        max_failed_share: float = 0.5,
        retriever_name: str = "the retriever",
    ) -> None:
        self.questions = questions
        self.engine = engine
        self.backend_factory = backend_factory
        self.seed = seed
        self.max_failed_share = max_failed_share
        self.retriever_name = retriever_name
        self.last: StepRollouts | None = None

    def sampling(self, trainer: Any, step: int) -> SamplingParams:
        args = trainer.args
        return SamplingParams(
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k or 0,
            seed=step_seed(self.seed, step, trainer.accelerator.process_index),
        )

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list]:
        unknown = [p for p in prompts if p not in self.questions]
        if unknown:
            raise KeyError(f"rollout prompts are question ids; unknown ids: {unknown[:5]}")
        step = trainer.state.global_step + 1  # the step these rollouts train
        questions = [self.questions[p] for p in prompts]
        start = time.perf_counter()
        sampling = self.sampling(trainer, step)
        with generation_model(trainer) as model:
            backend = self.backend_factory(trainer, model)
            trajectories = self.engine.run(questions, n=1, sampling=sampling, backend=backend)
        seconds = time.perf_counter() - start
        seen: Counter[str] = Counter()
        for t in trajectories:  # n=1 per repeated id: restore each rollout's index in its group
            t.sample_index = seen[t.question_id]
            seen[t.question_id] += 1
        if self.last is not None and self.last.step == step:  # gradient accumulation: same step
            self.last.trajectories.extend(trajectories)
            self.last.seconds += seconds
        else:
            self.last = StepRollouts(step, trajectories, seconds)
        self._check_failures(self.last)
        return to_trl_batch(trajectories)

    def _check_failures(self, rollouts: StepRollouts) -> None:
        """Stop before the step trains when too many of its rollouts (every rank's so far) failed
        on the retriever: a step of mostly masked rollouts would still move the optimiser."""
        failed = [t for t in rollouts.trajectories if t.failed]
        last_error = failed[-1].error if failed else None
        counts = gather_all([(len(failed), len(rollouts.trajectories), last_error)])
        n_failed, total = sum(c[0] for c in counts), sum(c[1] for c in counts)
        if not total or n_failed / total <= self.max_failed_share:
            return
        errors = [c[2] for c in counts if c[2]]
        raise RetrieverFailureError(
            f"step {rollouts.step}: {n_failed} of {total} rollouts ({n_failed / total:.0%}) "
            f"lost a search to {self.retriever_name}, over retriever.max_failed_share="
            f"{self.max_failed_share:g}; last error: {errors[-1]}"
        )


def to_trl_batch(trajectories: list[Trajectory]) -> dict[str, list]:
    """The dict TRL's ``rollout_func`` contract asks for, plus the mask and the reward inputs."""
    for t in trajectories:
        if len(t.loss_mask) != len(t.completion_ids):
            raise ValueError(
                f"question {t.question_id!r} sample {t.sample_index}: loss_mask has "
                f"{len(t.loss_mask)} entries for {len(t.completion_ids)} completion tokens"
            )
    have_logprobs = all(t.logprobs is not None for t in trajectories)
    return {
        "prompt_ids": [list(t.prompt_ids) for t in trajectories],
        "completion_ids": [list(t.completion_ids) for t in trajectories],
        "logprobs": [list(t.logprobs) for t in trajectories] if have_logprobs else None,
        # A failed rollout keeps its tokens (TRL needs a completion per prompt) but none counts.
        "env_mask": [
            [0] * len(t.loss_mask) if t.failed else list(t.loss_mask) for t in trajectories
        ],
        "response_text": [t.text for t in trajectories],
        "truncated": [t.truncated for t in trajectories],
        "profile": [t.profile for t in trajectories],
        "retriever_failed": [t.failed for t in trajectories],
    }


def research_reward(
    completions: list[Any],
    response_text: list[str],
    golden_answers: list[list[str]],
    truncated: list[bool],
    profile: list[str] | None = None,
    retriever_failed: list[bool] | None = None,
    trainer_state: Any = None,
    **_: Any,
) -> list[float | None]:
    """The rule reward (``research_rl.reward.score``) on the core's own completion text, under
    the rules of the profile each rollout ran with; None (no reward: TRL leaves the rollout out of
    its group's statistics) for a rollout that failed on the retriever."""
    step = "" if trainer_state is None else f"step {trainer_state.global_step + 1}: "
    profiles = profile or ["research"] * len(response_text)
    failed = retriever_failed or [False] * len(response_text)
    rewards: list[float | None] = []
    for text, golden, cut, rules, lost in zip(
        response_text, golden_answers, truncated, profiles, failed, strict=True
    ):
        if lost:
            rewards.append(None)
            continue
        value = score(text, golden, cut, rules=rules).value
        if not math.isfinite(value):
            raise NonFiniteError(f"{step}reward is {value} for golden answers {golden!r}")
        rewards.append(value)
    return rewards
