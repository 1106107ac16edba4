"""The generation protocol: token ids in, new token ids out.

The rollout engine (``research_rl.rollout``) is the only caller. A backend never decodes and
re-encodes model tokens: it returns exactly the ids the model sampled, so the trainer sees the
sequence the model produced.

Stop semantics, identical for every backend:
- a request stops when the decoded text of its *new* tokens contains one of its stop strings; the
  returned ids end with the token that completed the stop string (that token may carry text past
  the stop string, or the stop string may end inside it: the ids are kept as sampled, and the
  rollout engine takes the query from the text up to the stop string);
- ``finish_reason`` is ``"stop"`` (stop string), ``"eos"`` (an end-of-sequence token, which is
  included in ``token_ids``) or ``"length"`` (``max_new_tokens`` reached);
- each request in a batch has its own stop strings and budget; one finishing does not stop others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "eos", "length"]


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 disables top-k
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class GenerationRequest:
    prompt_ids: list[int]  # the whole context so far: prompt plus completion up to now
    max_new_tokens: int
    stop: list[str] = field(default_factory=list)


@dataclass
class GenerationOutput:
    token_ids: list[int]
    finish_reason: FinishReason
    stop_string: str | None = None  # which stop string ended it, when finish_reason == "stop"
    logprobs: list[float] | None = None  # one per token id, under the sampling distribution


@runtime_checkable
class GenerationBackend(Protocol):
    """A batch of requests in, one output per request, in order.

    Two optional methods, which the rollout engine calls where a backend has them:
    ``clear_prefix_cache()`` before and after each run (a backend that keeps KV caches between
    calls drops them: the weights may change between runs), and ``finish_run(sampling)`` when a
    run's rollouts are all done (a collective backend waits there for the other ranks).
    """

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams
    ) -> list[GenerationOutput]: ...
