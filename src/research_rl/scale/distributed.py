"""Collective generation across training ranks, and the lockstep that keeps it from deadlocking.

Some generation engines are collective: every rank of a process group must call them together
(vLLM colocated with tensor parallelism, where each rank of a TP group runs the same batch; TRL's
own vLLM path, which gathers prompts to rank 0 and broadcasts completions). The ReSearch rollout
calls ``backend.generate`` once per turn, and ranks need different numbers of turns: a rank whose
rollouts all answered early would stop calling while the others wait in a collective, or, worse,
meet them in the trainer's next collective with mismatched data.

:class:`LockstepBackend` fixes this without the rollout engine knowing: before each call, every
rank votes whether it still has work (an ``all_reduce`` of an "active" flag); a rank that has
finished drains (:meth:`LockstepBackend.finish_run`, which the engine calls at the end of each
run): it keeps voting "inactive" and making empty calls until a vote shows that no rank is
active. Every rank therefore makes the same number of collective generation calls per step, and
all leave the rollout together.
"""

from __future__ import annotations

from typing import Any

from research_rl.backends.base import (
    GenerationBackend,
    GenerationOutput,
    GenerationRequest,
    SamplingParams,
)


def _distributed() -> Any | None:
    """``torch.distributed`` when a process group is up, else None (single process)."""
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


class GatheredBackend:
    """Makes a backend collective the way TRL's colocated tensor-parallel vLLM is: every rank of
    ``group`` gathers all ranks' requests, runs the whole batch on its engine (which, for vLLM with
    ``distributed_executor_backend="external_launcher"``, is one collective computation), and keeps
    its own slice. Each call is a collective: use it under :class:`LockstepBackend`."""

    def __init__(self, inner: GenerationBackend, group: Any = None) -> None:
        self.inner = inner
        self.group = group

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams
    ) -> list[GenerationOutput]:
        dist = _distributed()
        if dist is None:
            return self.inner.generate(requests, sampling)
        gathered: list[list[GenerationRequest] | None] = [None] * dist.get_world_size(self.group)
        dist.all_gather_object(gathered, list(requests), group=self.group)
        me = dist.get_rank(self.group)
        start = sum(len(batch or []) for batch in gathered[:me])
        flat = [r for batch in gathered for r in batch or []]
        outputs = self.inner.generate(flat, sampling) if flat else []
        return outputs[start : start + len(requests)]


class LockstepBackend:
    """Wraps a collective backend so that every rank makes the same number of calls.

    The rollout engine uses it as any backend and drains it at the end of each run
    (:meth:`finish_run`). Outside a process group (one process) the votes are skipped and it is a
    plain pass-through.
    """

    def __init__(self, inner: GenerationBackend, group: Any = None) -> None:
        self.inner = inner
        self.group = group
        self.calls = 0  # collective calls this rank made, real and padding
        self.padding_calls = 0

    def _any_active(self, active: bool) -> bool:
        dist = _distributed()
        if dist is None:
            return active
        import torch

        # gloo reduces CPU tensors; NCCL needs the rank's device.
        device = "cpu"
        if dist.get_backend(self.group) == "nccl":
            device = f"cuda:{torch.cuda.current_device()}"
        flag = torch.tensor([1 if active else 0], dtype=torch.int64, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.SUM, group=self.group)
        return int(flag.item()) > 0

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams
    ) -> list[GenerationOutput]:
        self._any_active(True)
        self.calls += 1
        return self.inner.generate(requests, sampling)

    def drain(self, sampling: SamplingParams) -> int:
        """Pad with empty calls until no rank has work left; returns how many this rank made."""
        made = 0
        while self._any_active(False):
            self.inner.generate([], sampling)
            made += 1
        self.calls += made
        self.padding_calls += made
        return made

    def finish_run(self, sampling: SamplingParams) -> None:
        self.drain(sampling)
