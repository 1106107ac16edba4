"""The data the report page embeds: plain JSON built from a :class:`RunData`.

Trajectories are compact (short keys, text pre-split into segments by the core's parser) so a
page with 10,000 of them stays a few tens of megabytes and parses quickly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from research_rl import tags
from research_rl.report.behaviours import BEHAVIOURS, Behaviours, flag, per_step
from research_rl.report.curves import Chart, Series, charts
from research_rl.report.evaluation import eval_rows, evaluation_section
from research_rl.report.rundir import RunData
from research_rl.report.segments import inserted, segments
from research_rl.report.table import Table

MAX_PROBLEMS = 200  # listed on the page; the count is always complete
SEGMENT_CODES = {"think": "t", "search": "s", "result": "r", "answer": "a", "other": "o"}
MODEL_RESULT_CODE = "w"  # a <result> the model wrote itself: not inserted, not masked


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if _scalar(value) else json.dumps(value)[:200]


def tables_from(obj: Any, title: str) -> list[Table]:
    """Tables from any nesting of dicts and lists (results.json, summary.json): every dict with
    scalar values is a row, the keys leading to it become its first columns."""
    rows: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            scalars = {k: v for k, v in node.items() if _scalar(v)}
            if scalars:
                rows.append((path, scalars))
            for k, v in node.items():
                if not _scalar(v):
                    walk(v, (*path, str(k)))
        elif isinstance(node, list):
            if all(_scalar(v) for v in node):
                rows.append((path, {"values": ", ".join(map(str, node))}))
            else:
                for i, v in enumerate(node):
                    walk(v, path if isinstance(v, dict) else (*path, str(i)))

    walk(obj, ())
    if not rows:
        return []
    depth = max(len(p) for p, _ in rows)
    keys: dict[str, None] = {}
    for _, scalars in rows:
        keys.update(dict.fromkeys(scalars))
    path_cols = ["name"] if depth == 1 else [f"level {i + 1}" for i in range(depth)]
    table = Table(title, [*path_cols, *keys], [])
    for path, scalars in rows:
        padded = [*path, *[""] * (depth - len(path))]
        table.rows.append([*padded, *(_cell(scalars.get(k)) for k in keys)])
    return [table]


PHASES = ("before", "after")


def before_after(summary: dict) -> tuple[list[str], list[str], dict[str, dict[str, dict]]]:
    """(phases, metric names, group -> phase -> metrics) of a demo summary's phase blocks:
    ``{"before": {group: {metric: v}}, "after": {...}}``; metrics straight under a phase are the
    group ``all``."""
    phases = [p for p in PHASES if isinstance(summary.get(p), dict)]
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for phase in phases:
        block = summary[phase]
        flat = {k: v for k, v in block.items() if _scalar(v)}
        if flat:
            groups.setdefault("all", {})[phase] = flat
        for name, metrics in block.items():
            if isinstance(metrics, dict):
                groups.setdefault(str(name), {})[phase] = {
                    k: v for k, v in metrics.items() if _scalar(v)
                }
    names: dict[str, None] = {}
    for by_phase in groups.values():
        for metrics in by_phase.values():
            names.update(dict.fromkeys(metrics))
    return phases, list(names), groups


def before_after_tables(summary: Any, rel: str) -> list[Table]:
    """A demo's summary.json as one table comparing each metric before and after training, plus
    whatever else it holds; any other shape is tabled as it is."""
    if not isinstance(summary, dict) or not any(isinstance(summary.get(p), dict) for p in PHASES):
        return tables_from(summary, f"Summary ({rel})")
    phases, names, groups = before_after(summary)
    columns = ["questions", *(f"{m} {p}" for m in names for p in phases)]
    rows = [
        [group, *(_cell(by_phase.get(p, {}).get(m)) for m in names for p in phases)]
        for group, by_phase in groups.items()
    ]
    rest = {k: v for k, v in summary.items() if k not in PHASES}
    return [
        Table(f"Before and after training ({rel})", columns, rows),
        *tables_from(rest, f"Run summary ({rel})"),
    ]


def _series_json(s: Series) -> dict[str, Any]:
    return {"key": s.key, "val": s.validation, "steps": s.steps, "values": s.values}


def _chart_json(c: Chart) -> dict[str, Any]:
    out = {"name": c.name, "title": c.title, "lines": [_series_json(s) for s in c.lines]}
    if c.x_label != "step":
        out["x"] = c.x_label
    return out


def _trajectory_json(
    row: dict[str, Any], group: int, flags: Behaviours, parsed: list[tags.Segment]
) -> dict[str, Any]:
    reward = row["reward"]
    segs = []
    for seg, from_retriever in zip(parsed, inserted(parsed), strict=True):
        if seg.kind == "other" and not seg.content.strip():
            continue  # the newlines between tags: nothing to read
        code = SEGMENT_CODES[seg.kind]
        if seg.kind == "result" and not from_retriever:
            code = MODEL_RESULT_CODE
        item: list[Any] = [code, seg.content]
        if not seg.closed:
            item.append(0)
        segs.append(item)
    bits = sum(1 << i for i, name in enumerate(BEHAVIOURS) if getattr(flags, name))
    vf = reward["valid_format"]
    return {
        "g": group,
        "i": row["sample_index"],
        "id": row["question_id"],
        "q": row["question"],
        "a": row["golden_answers"],
        "r": reward["value"],
        "f1": reward["f1"],
        "em": reward["em"],
        "vf": None if vf is None else int(vf),
        "why": reward["reason"],
        "fin": row["finish_reason"],
        "ns": row["num_searches"],
        "nt": row["num_model_tokens"],
        "fl": bits,
        "ev": list(flags.evidence),
        "s": segs,
        "x": {k: _cell(v) for k, v in row["extras"].items()},
    }


def behaviour_chart(per_step_counts: list[dict[str, Any]]) -> Chart | None:
    if not per_step_counts:
        return None
    steps = [e["step"] for e in per_step_counts]
    lines = [
        Series(f"{name} rate", steps, [e[f"{name}_rate"] for e in per_step_counts], False)
        for name in BEHAVIOURS
    ]
    return Chart("behaviours", "Flagged behaviours (share of rollouts)", lines)


@dataclass
class Payload:
    data: dict[str, Any]
    main_charts: list[Chart]
    other_charts: list[Chart]
    behaviours: Chart | None
    eval_charts: list[Chart]


def allocate(sizes: list[int], limit: int | None) -> list[int]:
    """How many rows of each group to embed so the total stays within ``limit``: a fair share
    each, what small groups leave over going to the larger ones."""
    if limit is None or sum(sizes) <= limit:
        return list(sizes)
    keep = [0] * len(sizes)
    left, open_groups = limit, sorted(range(len(sizes)), key=lambda i: sizes[i])
    while open_groups:
        share = left // len(open_groups)
        i = open_groups.pop(0)
        keep[i] = min(sizes[i], share)
        left -= keep[i]
    return keep


GRPO_STD_EPS = 1e-4  # TRL's: advantages are (r - mean) / (std + 1e-4)


def group_advantages(rows: list[dict[str, Any]]) -> list[tuple[int, float, float] | None]:
    """Per row of one step: (group size, group mean reward, group-normalised advantage) over the
    rows that share its question, as ``research_rl.grpo.group_advantages`` computes them with
    ``scale="group"`` (the default; plain Python here, so a report needs no torch). None for a row
    without a reward, or whose group the dump cut short (fewer rows than the step's largest
    group): an advantage over part of a group would mislead."""
    by_question: dict[str, list[float]] = {}
    for row in rows:
        if row["reward"]["value"] is not None:
            by_question.setdefault(row["question_id"], []).append(row["reward"]["value"])
    full = max((len(v) for v in by_question.values()), default=0)
    out: list[tuple[int, float, float] | None] = []
    for row in rows:
        values, r = by_question.get(row["question_id"], []), row["reward"]["value"]
        if r is None or len(values) < 2 or len(values) < full:
            out.append(None)
            continue
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        out.append((len(values), mean, (r - mean) / (std + GRPO_STD_EPS)))
    return out


def build_payload(
    run: RunData, max_trajectories: int | None = None, allow_different: bool = False
) -> Payload:
    """The page's data. With ``max_trajectories``, each group embeds only its first rows (the
    trainer writes whole question groups first); behaviour counts still use every row. Several
    evaluations share one results table only under one protocol card, or with
    ``allow_different`` (:mod:`research_rl.report.evaluation`)."""
    main, other = charts(run.metrics)
    trajectories = []
    flags_by_step: dict[int, list[Behaviours]] = {}
    groups = []
    keep = allocate([len(g.rows) for g in run.groups], max_trajectories)
    for gi, group in enumerate(run.groups):
        groups.append(
            {
                "key": group.key,
                "label": group.label,
                "kind": group.kind,
                "step": group.step,
                "count": keep[gi],
                "total": len(group.rows),
            }
        )
        advantages = group_advantages(group.rows) if group.kind == "step" else []
        for ri, row in enumerate(group.rows):
            parsed = segments(row["text"])
            flags = flag(row["text"], row["golden_answers"], parsed)
            if group.kind == "step" and group.step is not None:
                flags_by_step.setdefault(group.step, []).append(flags)
            if ri < keep[gi]:
                t = _trajectory_json(row, gi, flags, parsed)
                if advantages and advantages[ri] is not None:
                    t["grp"] = list(advantages[ri])
                trajectories.append(t)
    counts = per_step(flags_by_step.items())
    behaviours = behaviour_chart(counts)
    evaluation = evaluation_section(run, allow_different)
    tables = list(evaluation.tables)
    for rel, obj in run.eval_results.items():
        # The evaluator's results.json is in the table above; any other shape is tabled as it is
        # (an older evaluator's {"results": [rows], "config": {...}}: the rows, not the config).
        if eval_rows(obj) is not None:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("results"), list):
            obj = obj["results"]
        tables += tables_from(obj, f"Evaluation results ({rel})")
    for rel, obj in run.summaries.items():
        tables += before_after_tables(obj, rel)
    data = {
        "title": run.name,
        "path": str(run.path),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "steps": len(run.metrics),
        "total_trajectories": sum(len(g.rows) for g in run.groups),
        "problems": run.problems[:MAX_PROBLEMS],
        "problem_count": len(run.problems),
        "charts": [_chart_json(c) for c in main],
        "other_charts": [_chart_json(c) for c in other],
        "behaviour_names": list(BEHAVIOURS),
        "behaviours": counts,
        "behaviour_chart": _chart_json(behaviours) if behaviours else None,
        "tables": [t.__dict__ for t in tables],
        "eval_charts": [_chart_json(c) for c in evaluation.charts],
        "eval_notes": evaluation.notes,
        "cards": evaluation.cards,
        "config": run.config_text,
        "groups": groups,
        "trajectories": trajectories,
    }
    return Payload(data, main, other, behaviours, evaluation.charts)
