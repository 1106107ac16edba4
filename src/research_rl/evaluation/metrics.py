"""Per-question answer metrics and their per-table aggregates.

The prediction is what the rule reward reads (the last ``\\boxed{}`` of the answer), normalised
the same way (:func:`research_rl.reward.normalize_answer`), so evaluation and training agree on
what an answer is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from research_rl.reward import best_f1, exact_match, extract_prediction, normalize_answer


def cover_em(prediction: str, golden_answers: Sequence[str]) -> float:
    """1 when a normalised golden answer appears in the normalised prediction as whole words
    ("Paris, France" covers "Paris"; "1990s" does not cover "1990")."""
    pred = f" {normalize_answer(prediction)} "
    return float(any((g := normalize_answer(a)) and f" {g} " in pred for a in golden_answers))


def answer_metrics(response: str, golden_answers: Sequence[str]) -> dict[str, Any]:
    """``prediction`` (None without a complete ``\\boxed{}``), ``em``, ``f1``, ``cover_em``."""
    prediction = extract_prediction(response)
    if prediction is None:
        return {"prediction": None, "em": 0.0, "f1": 0.0, "cover_em": 0.0}
    golden = list(golden_answers)
    return {
        "prediction": prediction.strip(),
        "em": exact_match(prediction, golden),
        "f1": best_f1(prediction, golden),
        "cover_em": cover_em(prediction, golden),
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The table row of one dataset and method, from its prediction rows.

    ``judge`` is the accuracy over the questions the judge gave a verdict on; ``judge_failed``
    counts those it could not (after retries), so a partial judge run is visible, never hidden.
    """
    verdicts = [r["judge"]["correct"] for r in rows if r.get("judge")]
    judged = [float(v) for v in verdicts if v is not None]
    return {
        "n": len(rows),
        "em": _mean([r["em"] for r in rows]),
        "f1": _mean([r["f1"] for r in rows]),
        "cover_em": _mean([r["cover_em"] for r in rows]),
        "judge": _mean(judged),
        "judge_failed": sum(v is None for v in verdicts),
        "searches": _mean([r["num_searches"] for r in rows]),
        "response_tokens": _mean([r["response_tokens"] for r in rows]),
        "valid_format": _mean([float(r["valid_format"]) for r in rows]),
    }
