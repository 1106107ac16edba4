"""Per-question answer metrics and their per-table aggregates.

The prediction is what the rule reward reads, under the rules of the rollout's profile
(:func:`research_rl.reward.extract_prediction`): for ``research``, the rightmost ``\\boxed{}`` of
the closed ``<answer>…</answer>`` span, none when the response was cut by the budget. It is
normalised the same way (:func:`research_rl.reward.normalize_answer`), so evaluation and training
agree on what an answer is.

The ``direct`` and ``rag`` baselines also score an answer written in plain text (an instruct
model asked to answer directly often leaves out ``\\boxed{}``). Rules, in order, the first that
gives a non-empty answer wins; ``prediction_rule`` records which:

- ``boxed``: the profile's prediction (as for ``research``);
- ``boxed_anywhere``: the last complete ``\\boxed{}`` anywhere in the response;
- ``answer_span``: the text of the last ``<answer>`` span (closed or not), tags removed;
- ``last_line``: the last non-empty line outside ``<think>`` spans, tags removed, without a
  leading "Answer:" / "Final answer:" / "The answer is" and a trailing period.

A response cut by the budget gets no plain-text fallback under the research rules either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from research_rl import tags
from research_rl.reward import Rules, best_f1, exact_match, extract_prediction, normalize_answer
from research_rl.trajectory import Trajectory

PLAIN_TEXT_METHODS = frozenset({"direct", "rag"})
_ANSWER_PREFIX = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\b\s*(?:is\b)?\s*:?\s*", re.IGNORECASE)


def cover_em(prediction: str, golden_answers: Sequence[str]) -> float:
    """1 when a normalised golden answer appears in the normalised prediction as whole words
    ("Paris, France" covers "Paris"; "1990s" does not cover "1990")."""
    pred = f" {normalize_answer(prediction)} "
    return float(any((g := normalize_answer(a)) and f" {g} " in pred for a in golden_answers))


def _last_line(response: str) -> str | None:
    outside = "".join(s.content for s in tags.parse_segments(response) if s.kind != "think")
    lines = [line.strip() for line in tags.strip_tags(outside).splitlines() if line.strip()]
    if not lines:
        return None
    answer = _ANSWER_PREFIX.sub("", lines[-1]).strip()
    return answer.removesuffix(".").strip() or None


def plain_text_prediction(response: str) -> tuple[str | None, str]:
    """(answer, rule) for a response without the profile's boxed answer (see the module doc)."""
    boxed = tags.last_boxed(response)
    if boxed is not None and boxed.strip():
        return boxed, "boxed_anywhere"
    span = tags.answer_content(response)
    if span is not None and tags.strip_tags(span).strip():
        return tags.strip_tags(span).strip(), "answer_span"
    line = _last_line(response)
    return (line, "last_line") if line else (None, "none")


def predict(
    response: str, rules: Rules = "research", truncated: bool = False, plain_text: bool = False
) -> tuple[str | None, str]:
    """(prediction, the rule that gave it): ``boxed``, a plain-text rule, or ``none``."""
    prediction = extract_prediction(response, rules, truncated)
    if prediction is not None:
        return prediction, "boxed"
    if plain_text and not (rules == "research" and truncated):
        return plain_text_prediction(response)
    return None, "none"


def answer_metrics(
    response: str,
    golden_answers: Sequence[str],
    rules: Rules = "research",
    truncated: bool = False,
    plain_text: bool = False,
) -> dict[str, Any]:
    """``prediction`` (None when there is none), ``prediction_rule``, ``em``, ``f1``,
    ``cover_em``."""
    prediction, rule = predict(response, rules, truncated, plain_text)
    if prediction is None:
        return {"prediction": None, "prediction_rule": rule, "em": 0.0, "f1": 0.0, "cover_em": 0.0}
    golden = list(golden_answers)
    return {
        "prediction": prediction.strip(),
        "prediction_rule": rule,
        "em": exact_match(prediction, golden),
        "f1": best_f1(prediction, golden),
        "cover_em": cover_em(prediction, golden),
    }


def trajectory_metrics(traj: Trajectory, method: str) -> dict[str, Any]:
    """:func:`answer_metrics` of one rollout, under its own profile's rules; plain-text answers
    count for the baselines. A rollout that lost a search to the retriever is not scored (its
    metrics are None, so it is counted apart, not as wrong)."""
    if traj.failed:
        return {
            "prediction": None,
            "prediction_rule": "none",
            "em": None,
            "f1": None,
            "cover_em": None,
        }
    return answer_metrics(
        traj.text,
        traj.golden_answers,
        rules=traj.profile,  # type: ignore[arg-type]
        truncated=traj.truncated,
        plain_text=method in PLAIN_TEXT_METHODS,
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The table row of one dataset and method, from its prediction rows.

    ``judge`` is the accuracy over the questions the judge gave a verdict on; ``judge_failed``
    counts those it could not (after retries), so a partial judge run is visible, never hidden.
    Likewise ``retriever_failed`` counts the questions whose rollout lost a search to the
    retriever: they are in ``n`` but in no metric (their metrics are None).
    """
    verdicts = [r["judge"]["correct"] for r in rows if r.get("judge")]
    judged = [float(v) for v in verdicts if v is not None]

    def scored(key: str) -> list[float]:
        return [float(r[key]) for r in rows if r.get(key) is not None]

    return {
        "n": len(rows),
        "em": _mean(scored("em")),
        "f1": _mean(scored("f1")),
        "cover_em": _mean(scored("cover_em")),
        "judge": _mean(judged),
        "judge_failed": sum(v is None for v in verdicts),
        "retriever_failed": sum(bool(r.get("retriever_failed")) for r in rows),
        "searches": _mean([r["num_searches"] for r in rows]),
        "response_tokens": _mean([r["response_tokens"] for r in rows]),
        "valid_format": _mean(scored("valid_format")),
    }
