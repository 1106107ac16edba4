"""Batch metrics of rollouts: the same figures for training steps and evaluation runs."""

from __future__ import annotations

import math
from collections.abc import Sequence

from research_rl.reward import score
from research_rl.trajectory import FINISH_REASONS, Trajectory


def batch_metrics(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """Means over the batch (``reward_std`` is the population standard deviation), per finish
    reason the count of rollouts that ended that way, and ``retriever_failed_share``, the share of
    rollouts that lost a search to the retriever. Those are left out of the means (they have no
    reward and are not trained on); with none left the means are 0. A rollout without a reward is
    scored here, under the rules of its own profile."""
    finishes: dict[str, float] = {f"finish/{r}": 0.0 for r in FINISH_REASONS}
    for t in trajectories:
        if t.finish_reason in FINISH_REASONS:
            finishes[f"finish/{t.finish_reason}"] += 1
    scored = [t for t in trajectories if not t.failed]
    failed_share = 1 - len(scored) / len(trajectories) if trajectories else 0.0
    n = len(scored)
    if n == 0:
        names = (
            "reward_mean",
            "reward_std",
            "f1",
            "em",
            "valid_format",
            "searches_per_rollout",
            "model_tokens_per_rollout",
        )
        return {**dict.fromkeys(names, 0.0), **finishes, "retriever_failed_share": failed_share}
    rewards = [
        t.reward or score(t.text, t.golden_answers, t.truncated, rules=t.profile)  # type: ignore[arg-type]
        for t in scored
    ]
    values = [r.value for r in rewards]
    mean = sum(values) / n
    out: dict[str, float] = dict(
        reward_mean=mean,
        reward_std=math.sqrt(sum((v - mean) ** 2 for v in values) / n),
        f1=sum(r.f1 for r in rewards) / n,
        em=sum(r.em for r in rewards) / n,
        valid_format=sum(r.valid_format for r in rewards) / n,
        searches_per_rollout=sum(t.num_searches for t in scored) / n,
        model_tokens_per_rollout=sum(t.num_model_tokens for t in scored) / n,
    )
    return {**out, **finishes, "retriever_failed_share": failed_share}
