"""verl's custom reward entry point: the ReSearch rule reward (``research_rl.reward.score``).

verl config::

    reward.custom_reward_function.path=<this file>  (or the installed module's file)
    reward.custom_reward_function.name=compute_score

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)``. ``solution_str``
is the response decoded by verl with ``skip_special_tokens=True``: it shows neither the EOS that
ended a rollout nor its absence, which the research rules need. The ReSearch agent loop therefore
also passes the exact rollout text, its profile and whether it was cut by the length budget
(``research_text``, ``research_profile``, ``research_truncated`` in ``extra_info``; also
``research_ended_with_eos``), and those are scored when present, so verl's reward is the one the
core computed. Rows rolled out by another agent loop fall back to ``solution_str`` under the
research rules, taken as ended (their truncation is unknown here).
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
        bool(extra.get("research_truncated", False)),
        rules=str(extra.get("research_profile") or "research"),  # type: ignore[arg-type]
    )
    return {
        "score": reward.value,
        "f1": reward.f1,
        "em": reward.em,
        "valid_format": float(reward.valid_format),
    }
