"""The results table: one row per dataset and method, with intervals and cost, as JSON, Markdown
and CSV.

Every metric gets a bootstrap interval (:mod:`research_rl.evaluation.stats`) over the questions,
and over seeds too with ``--seeds N``; the point value is the mean over the same questions (and
seeds). Cost per question: model calls (generation turns: one per search plus the answering one),
retriever calls (searches sent to the retriever; one for ``rag``), generated tokens (model tokens,
inserted results excluded). A question whose rollout lost a search to the retriever is counted
(``n``, ``retriever_failed``) and left out of every metric and interval, not scored as wrong.
Wall time is not in these files: it differs between two runs of the same protocol, while these
files are reproduced byte for byte by ``--replay``; it lives in ``timings.json`` and is shown
beside the table on the console and in the report.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from research_rl.evaluation.metrics import summarize
from research_rl.evaluation.stats import bootstrap_intervals

INTERVAL_METRICS = ("em", "f1", "cover_em", "judge", "valid_format")
COST_COLUMNS = ("model_calls", "retriever_calls", "response_tokens")
TABLE_COLUMNS = (
    "dataset",
    "method",
    "n",
    "seeds",
    *(c for m in INTERVAL_METRICS for c in (m, f"{m}_lo", f"{m}_hi")),
    "judge_failed",
    "retriever_failed",
    "searches",
    *COST_COLUMNS,
)
_LABELS = {
    "em": "EM",
    "f1": "F1",
    "cover_em": "cover-EM",
    "judge": "judge",
    "valid_format": "valid format",
    "model_calls": "model calls",
    "retriever_calls": "retriever calls",
    "response_tokens": "generated tokens",
}


def question_scores(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, float]:
    """One run's score per question id; ``judge`` only where the judge gave a verdict."""
    out = {}
    for r in rows:
        if metric == "judge":
            verdict = (r.get("judge") or {}).get("correct")
            if verdict is not None:
                out[str(r["id"])] = float(verdict)
        elif r.get(metric) is not None:
            out[str(r["id"])] = float(r[metric])
    return out


def score_matrix(
    runs: Sequence[Sequence[Mapping[str, Any]]], metric: str
) -> tuple[list[str], list[list[float]]]:
    """(question ids, ``seeds x questions`` scores): the questions every seed scored, in the first
    seed's order."""
    per_seed = [question_scores(rows, metric) for rows in runs]
    shared = [q for q in per_seed[0] if all(q in s for s in per_seed[1:])] if per_seed else []
    return shared, [[s[q] for q in shared] for s in per_seed]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def table_row(
    dataset: str,
    method: str,
    runs: Sequence[Sequence[Mapping[str, Any]]],
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The row of one dataset and method from its prediction rows, one list per seed."""
    pooled = [r for rows in runs for r in rows]
    row: dict[str, Any] = {
        "dataset": dataset,
        "method": method,
        **summarize(pooled),
        "n": len(runs[0]) if runs else 0,
        "seeds": len(runs),
    }
    # Metrics over the same questions share one bootstrap (the judge's may cover fewer).
    by_questions: dict[tuple[str, ...], list[tuple[str, list[list[float]]]]] = {}
    for metric in INTERVAL_METRICS:
        ids, matrix = score_matrix(runs, metric)
        by_questions.setdefault(tuple(ids), []).append((metric, matrix))
    for ids, group in by_questions.items():
        bounds = (
            bootstrap_intervals([m for _, m in group], confidence, resamples, seed)
            if ids
            else [None] * len(group)
        )
        for (metric, matrix), interval in zip(group, bounds, strict=True):
            row[metric] = _mean([v for seed_row in matrix for v in seed_row])
            row[f"{metric}_lo"], row[f"{metric}_hi"] = interval or (None, None)
    for column in COST_COLUMNS:
        row[column] = _mean([float(r[column]) for r in pooled if r.get(column) is not None])
    ordered = {k: row[k] for k in TABLE_COLUMNS if k in row}  # results.json keys: column order
    return {**ordered, **row}


# -- formats -----------------------------------------------------------------------------------
_PERCENT = set(INTERVAL_METRICS)


def _fmt(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column in _PERCENT:
        return f"{100 * value:.1f}"
    if column in ("searches", "model_calls", "retriever_calls"):
        return f"{value:.2f}"
    if column == "response_tokens":
        return f"{value:.1f}"
    if column == "seconds":
        return f"{value:.3f}"
    return str(value)


def metric_cell(row: Mapping[str, Any], metric: str) -> str:
    """``41.2 [38.0, 44.5]``: the value and its interval, in %."""
    value, lo, hi = row.get(metric), row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    if value is None:
        return "-"
    if lo is None or hi is None:
        return _fmt(metric, value)
    return f"{_fmt(metric, value)} [{_fmt(metric, lo)}, {_fmt(metric, hi)}]"


def results_markdown(
    table: Sequence[Mapping[str, Any]],
    seconds: Mapping[tuple[str, str], float | None] | None = None,
    confidence: float = 0.95,
) -> str:
    """All rows (metrics in % with their intervals, cost per question), then EM and judge
    accuracy by dataset (the paper's layout). ``seconds``: wall seconds per question by (dataset,
    method), for the console; the files leave it out (see the module docstring)."""
    seeded = any((r.get("seeds") or 1) > 1 for r in table)
    header = ["dataset", "method", "n", *(["seeds"] if seeded else [])]
    header += [_LABELS[m] for m in INTERVAL_METRICS]
    header += ["judge failed", "retriever failed", "searches"]
    header += [_LABELS[c] for c in COST_COLUMNS] + (["s / question"] if seconds is not None else [])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in table:
        cells = [str(row["dataset"]), str(row["method"]), str(row["n"])]
        cells += [str(row.get("seeds", 1))] if seeded else []
        cells += [metric_cell(row, m) for m in INTERVAL_METRICS]
        cells += [_fmt(c, row.get(c)) for c in ("judge_failed", "retriever_failed")]
        cells.append(_fmt("searches", row["searches"]))
        cells += [_fmt(c, row.get(c)) for c in COST_COLUMNS]
        if seconds is not None:
            cells.append(_fmt("seconds", seconds.get((row["dataset"], row["method"]))))
        lines.append("| " + " | ".join(cells) + " |")
    pct = f"{100 * confidence:g}"
    lines += ["", f"Metrics in %, [{pct}% bootstrap interval]; cost per question."]
    datasets = list(dict.fromkeys(r["dataset"] for r in table))
    methods = list(dict.fromkeys(r["method"] for r in table))
    by_key = {(r["dataset"], r["method"]): r for r in table}
    for metric, title in (("em", "EM"), ("judge", "LLM-as-judge accuracy")):
        if all(r[metric] is None for r in table):
            continue
        lines += [
            "",
            f"{title} (%)",
            "",
            "| method | " + " | ".join(datasets) + " |",
            "|" + " --- |" * (len(datasets) + 1),
        ]
        for m in methods:
            cells = [
                metric_cell(by_key[(d, m)], metric) if (d, m) in by_key else "-" for d in datasets
            ]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def results_csv(table: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(TABLE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in TABLE_COLUMNS})
    return out.getvalue()
