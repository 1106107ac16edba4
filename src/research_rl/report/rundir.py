"""Read a run directory (training, evaluation or demo) into one in-memory view, tolerantly.

A report must come out of whatever a run left behind: a crashed run has a half-written last line,
an evaluation has no metrics, an old run lacks newer keys. So missing files and keys are skipped,
and a malformed line is recorded as ``file:line: why`` in :attr:`RunData.problems` and skipped
without losing the rest of the file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from research_rl.run_dir import (
    CARD,
    CHECKPOINTS,
    METRICS,
    PREDICTIONS,
    ROLLOUTS,
    TENSORBOARD,
    iter_jsonl,
    read_json,
)

_STEP_FILE = re.compile(r"^step_(\d+)\.jsonl$")


class RunDirError(ValueError):
    """A run directory with nothing a report can show."""


@dataclass
class RolloutGroup:
    """Trajectories shown together in the browser: one training step or one evaluation file."""

    key: str  # unique id, e.g. "step 12" or "eval nq__research"
    label: str  # what the user picks in the browser
    # "step" (training rollouts), "val" (validation rollouts), "eval" (evaluation predictions) or
    # "file" (any other JSONL of trajectories)
    kind: str
    source: Path
    step: int | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunData:
    path: Path
    metrics: list[dict[str, Any]] = field(default_factory=list)  # one dict per step, by step
    groups: list[RolloutGroup] = field(default_factory=list)
    eval_results: dict[str, Any] = field(default_factory=dict)  # results.json, by relative path
    # Beside each results.json (same keys): its protocol card (None: an older run without one)
    # and its timings.json (wall time per predictions file).
    eval_cards: dict[str, Any] = field(default_factory=dict)
    eval_timings: dict[str, Any] = field(default_factory=dict)
    val_cards: dict[str, Any] = field(default_factory=dict)  # rollouts/val/card.json, by path
    summaries: dict[str, Any] = field(default_factory=dict)  # demo summary.json, by relative path
    config_text: str | None = None  # the resolved config.yaml, shown as is
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def is_empty(self) -> bool:
        return not (self.metrics or self.groups or self.eval_results or self.summaries)


def iter_objects(path: Path, problems: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each JSON object line; bad lines and an unreadable file go to
    ``problems``: a report shows what it can."""
    try:
        for where, obj in iter_jsonl(path, problems=problems):
            lineno = int(where.rsplit(":", 1)[1])
            if not isinstance(obj, dict):
                problems.append(f"{where}: expected a JSON object, got {type(obj).__name__}")
                continue
            yield lineno, obj
    except OSError as err:
        problems.append(f"{path}: cannot read: {err.strerror or err}")


def _as_step(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def read_metrics(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """Per-step metric dicts sorted by step. A step logged twice (a resumed run) is merged, the
    later line winning key by key, so a validation line and a training line for one step combine."""
    by_step: dict[int, dict[str, Any]] = {}
    for lineno, obj in iter_objects(path, problems):
        step = _as_step(obj.get("step"))
        if step is None:
            problems.append(f"{path}:{lineno}: no integer 'step' (got {obj.get('step')!r})")
            continue
        by_step.setdefault(step, {}).update(obj)
        by_step[step]["step"] = step
    return [by_step[s] for s in sorted(by_step)]


def _text_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _number(value: Any, default: float | None = None) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return default


# Evaluation rows carry these beside the trajectory (docs/contracts.md, evaluation output).
EVAL_EXTRAS = ("prediction", "em", "f1", "cover_em", "judge")


def _scalar_extras(obj: dict[str, Any]) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    for key in EVAL_EXTRAS:
        value = obj.get(key)
        if isinstance(value, dict):  # the judge's verdict: {"correct": ..., ...}
            for k, v in value.items():
                if v is None or isinstance(v, (str, int, float, bool)):
                    extras[f"{key} {k}"] = v
        elif key in obj and (value is None or isinstance(value, (str, int, float, bool))):
            extras[key] = value
    return extras


def normalise_row(obj: dict[str, Any]) -> dict[str, Any]:
    """A trajectory row with the fields the report reads, coerced to their types; missing fields
    get neutral defaults (an evaluation of an older version may lack some). An evaluation
    prediction row holds its trajectory under ``trajectory`` and its scores beside it."""
    extras: dict[str, Any] = {}
    if isinstance(obj.get("trajectory"), dict):
        extras = _scalar_extras(obj)
        obj = {**{k: v for k, v in obj.items() if k != "trajectory"}, **obj["trajectory"]}
    reward = obj.get("reward")
    if not isinstance(reward, dict):  # a bare number: the reward value alone
        reward = {"value": reward}
    text = obj.get("text")
    return {
        "question_id": str(obj.get("question_id", obj.get("id", ""))),
        "question": str(obj.get("question") or ""),
        "golden_answers": _text_list(obj.get("golden_answers")),
        "sample_index": _as_step(obj.get("sample_index")) or 0,
        "text": text if isinstance(text, str) else "",
        "num_searches": _as_step(obj.get("num_searches")) or 0,
        "search_queries": _text_list(obj.get("search_queries")),
        "finish_reason": str(obj.get("finish_reason") or "unknown"),
        "num_model_tokens": _as_step(obj.get("num_model_tokens")),
        "reward": {
            "value": _number(reward.get("value")),
            "f1": _number(reward.get("f1")),
            "em": _number(reward.get("em")),
            "valid_format": reward.get("valid_format")
            if isinstance(reward.get("valid_format"), bool)
            else None,
            "reason": str(reward.get("reason") or ""),
        },
        "step": _as_step(obj.get("step")),
        "extras": extras,
    }


def read_rollouts(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    return [normalise_row(obj) for _, obj in iter_objects(path, problems)]


_KNOWN_JSONL = frozenset({METRICS, "judge_cache.jsonl"})


def _holds_trajectories(path: Path) -> bool:
    """Whether the first non-blank line of ``path`` is a trajectory row (it has a question and a
    text, or a nested trajectory)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    return (
                        isinstance(row, dict)
                        and "question" in row
                        and (
                            isinstance(row.get("text"), str)
                            or isinstance(row.get("trajectory"), dict)
                        )
                    )
    except (OSError, json.JSONDecodeError):
        return False
    return False


def _step_files(folder: Path) -> list[tuple[int, Path]]:
    """``step_N.jsonl`` files in ``folder``, by N (numerically: step_10 after step_9)."""
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), f)
        for f in folder.iterdir()
        if (m := _STEP_FILE.match(f.name)) and f.is_file()
    ]
    return sorted(found)


def _rel(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return "" if rel == "." else rel


def _candidate_dirs(root: Path) -> list[Path]:
    """The run directory and its immediate sub-directories: a demo run keeps its training run and
    its evaluations side by side in sub-directories."""
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [
        root,
        *[
            d
            for d in subdirs
            if d.name not in (ROLLOUTS, PREDICTIONS, CHECKPOINTS, TENSORBOARD, "figures")
        ],
    ]


def read_run(path: str | Path) -> RunData:
    """Everything a report shows from ``path``. Raises ``FileNotFoundError`` for a missing
    directory and :class:`RunDirError` when it holds none of the known files."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: run directory not found")
    if not root.is_dir():
        raise RunDirError(f"{root}: not a directory (pass the run directory, not a file in it)")
    run = RunData(path=root)
    plotted: Path | None = None
    for d in _candidate_dirs(root):
        prefix = _rel(d, root)
        tag = f"{prefix}: " if prefix else ""
        metrics_file = d / METRICS
        if metrics_file.is_file():
            if plotted is None:  # the top-most training log is the one plotted
                plotted = metrics_file
                run.metrics = read_metrics(metrics_file, run.problems)
            else:
                run.problems.append(
                    f"{metrics_file}: not plotted (one run's curves per page: "
                    f"{plotted}); report its directory on its own"
                )
        # Training rollouts, then the validation rollouts the trainer keeps under rollouts/val/.
        for folder, kind, name in (
            (d / ROLLOUTS, "step", "step"),
            (d / ROLLOUTS / "val", "val", "validation step"),
        ):
            for step, f in _step_files(folder):
                rows = read_rollouts(f, run.problems)
                for row in rows:
                    row["step"] = step if row["step"] is None else row["step"]
                label = f"{tag}{name} {step}"
                run.groups.append(
                    RolloutGroup(
                        key=f"{prefix}/{label}" if prefix else label,
                        label=label,
                        kind=kind,
                        source=f,
                        step=step,
                        rows=rows,
                    )
                )
        predictions = d / "predictions"
        if predictions.is_dir():
            for f in sorted(predictions.glob("*.jsonl")):
                dataset, _, method = f.stem.partition("__")
                name = f"{dataset} / {method}" if method else dataset
                run.groups.append(
                    RolloutGroup(
                        key=f"eval {_rel(f, root)}",
                        label=f"{tag}eval {name}",
                        kind="eval",
                        source=f,
                        rows=read_rollouts(f, run.problems),
                    )
                )
        # Any other JSONL of trajectories (a demo's before/after samples, a `research rollout`
        # output): recognised by its first row, so question files and caches are left alone.
        for f in sorted(d.glob("*.jsonl")):
            if f.name not in _KNOWN_JSONL and _holds_trajectories(f):
                run.groups.append(
                    RolloutGroup(
                        key=f"file {_rel(f, root)}",
                        label=f"{tag}{f.stem}",
                        kind="file",
                        source=f,
                        rows=read_rollouts(f, run.problems),
                    )
                )
        config = d / "config.yaml"
        if config.is_file() and run.config_text is None:
            try:
                run.config_text = config.read_text(encoding="utf-8", errors="replace")
            except OSError as err:
                run.problems.append(f"{config}: cannot read: {err.strerror or err}")
        for name, target in (("results.json", run.eval_results), ("summary.json", run.summaries)):
            f = d / name
            if f.is_file():
                data = read_json(f, run.problems)
                if data is not None:
                    target[_rel(f, root)] = data
        val_card = d / ROLLOUTS / "val" / CARD
        if val_card.is_file():
            card = read_json(val_card, run.problems)
            if card is not None:
                run.val_cards[_rel(val_card, root)] = card
        if _rel(d / "results.json", root) in run.eval_results:
            rel = _rel(d / "results.json", root)
            for name, target in (("card.json", run.eval_cards), ("timings.json", run.eval_timings)):
                f = d / name
                target[rel] = read_json(f, run.problems) if f.is_file() else None
    if run.is_empty:
        raise RunDirError(
            f"{root}: nothing to report: expected metrics.jsonl, rollouts/step_N.jsonl, "
            "predictions/*.jsonl, a JSONL of trajectories, results.json or summary.json (here or "
            "one directory down)"
        )
    return run
