"""verl's custom reward entry point: the ReSearch rule reward (``research_rl.reward.score``).

verl config::

    reward.custom_reward_function.path=<this file>  (or the installed module's file)
    reward.custom_reward_function.name=compute_score

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)``. ``solution_str``
is the response decoded by verl with ``skip_special_tokens=True``; the ReSearch agent loop also
passes the exact rollout text and whether the rollout hit its length budget (``research_text``,
``research_truncated`` in ``extra_info``), and those are scored when present, so verl's reward is
the one the core computes. Rows rolled out by another agent loop fall back to ``solution_str``,
untruncated.
"""

from __future__ import annotations

from typing import Any

from research_rl.reward import score
from research_rl.scale.verl.agent_loop import golden_answers


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **_: Any,
) -> dict[str, float]:
    """``score`` is the reward; the other keys are logged by verl as reward metrics."""
    extra = extra_info or {}
    text = extra.get("research_text")
    reward = score(
        solution_str if text is None else str(text),
        golden_answers(ground_truth),
        truncated=bool(extra.get("research_truncated", False)),
    )
    return {
        "score": reward.value,
        "f1": reward.f1,
        "em": reward.em,
        "valid_format": float(reward.valid_format),
    }
