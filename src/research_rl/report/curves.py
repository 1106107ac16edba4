"""Which metrics the report plots, shared by the HTML page and the PNG figures.

Training logs ``key`` on every step and validation logs ``val/key`` on the steps it ran
(docs/contracts.md); each chart draws the training line and marks the validation points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

VAL_PREFIX = "val/"
NOT_PLOTTED = frozenset({"step", "epoch"})  # bookkeeping, not a figure of the run


@dataclass(frozen=True)
class ChartSpec:
    name: str  # file stem for the PNG
    title: str
    keys: tuple[str, ...]  # training keys drawn as lines; the first one present is the main one


MAIN_CHARTS = (
    ChartSpec("reward", "Reward (mean)", ("reward_mean", "reward")),
    ChartSpec("f1", "Answer F1", ("f1",)),
    ChartSpec("valid_format", "Valid-format rate", ("valid_format",)),
    ChartSpec("searches", "Searches per rollout", ("searches_per_rollout",)),
    ChartSpec("model_tokens", "Model tokens per rollout", ("model_tokens_per_rollout",)),
    ChartSpec("kl", "KL to reference", ("kl",)),
    ChartSpec("entropy", "Entropy", ("entropy",)),
)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class Series:
    key: str
    steps: list[int]
    values: list[float]
    validation: bool


def series(metrics: list[dict[str, Any]], key: str) -> Series:
    """The (step, value) points of ``key``, skipping steps where it is missing or not finite."""
    steps, values = [], []
    for row in metrics:
        v = _finite(row.get(key))
        if v is not None:
            steps.append(row["step"])
            values.append(v)
    return Series(key, steps, values, key.startswith(VAL_PREFIX))


def numeric_keys(metrics: list[dict[str, Any]]) -> list[str]:
    """Every key holding a finite number on some step, in first-seen order."""
    seen: dict[str, None] = {}
    for row in metrics:
        for k, v in row.items():
            if k not in NOT_PLOTTED and _finite(v) is not None:
                seen.setdefault(k, None)
    return list(seen)


@dataclass
class Chart:
    name: str
    title: str
    lines: list[Series]  # a validation series is drawn as points: a chart of points uses only them
    x_label: str = "step"  # another label: a chart over something else (no step to browse)


def charts(metrics: list[dict[str, Any]]) -> tuple[list[Chart], list[Chart]]:
    """(main charts, other charts): the issue's curves first, then one chart per remaining metric
    (``finish/*`` counts share one), each with its validation points."""
    present = numeric_keys(metrics)
    used: set[str] = set()

    def with_val(name: str, title: str, keys: list[str]) -> Chart:
        lines = []
        for k in keys:
            for key in (k, VAL_PREFIX + k):
                if key in present and key not in used:
                    used.add(key)
                    lines.append(series(metrics, key))
        return Chart(name, title, lines)

    main = []
    for spec in MAIN_CHARTS:
        key = next((k for k in spec.keys if k in present or VAL_PREFIX + k in present), None)
        if key is not None:
            main.append(with_val(spec.name, spec.title, [key]))
    other = []
    finish = [k for k in present if k.startswith("finish/")]
    if finish:
        other.append(with_val("finish", "Finish reasons (rollouts)", finish))
    for key in present:
        base = key[len(VAL_PREFIX) :] if key.startswith(VAL_PREFIX) else key
        if key not in used and not base.startswith("finish/"):
            other.append(with_val(base.replace("/", "_"), base, [base]))
    val_finish = [k for k in present if k.startswith(VAL_PREFIX + "finish/") and k not in used]
    if val_finish:
        other.append(
            Chart(
                "val_finish",
                "Validation finish reasons (rollouts)",
                [series(metrics, k) for k in val_finish],
            )
        )
    return main, [c for c in other if c.lines]
