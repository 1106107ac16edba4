"""The report's evaluation section: one results table for every evaluation in the run directory,
their protocol cards, and accuracy against retriever calls.

Evaluations go in one table only when their protocol cards agree
(:func:`research_rl.evaluation.card.require_same_protocol`); told to (``allow_different``), the
report tabulates them anyway and lists the fields that differ above the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from research_rl.evaluation.card import require_same_protocol
from research_rl.evaluation.runner import seconds_per_question
from research_rl.evaluation.tables import metric_cell
from research_rl.report.curves import Chart, Series
from research_rl.report.rundir import RunData
from research_rl.report.table import Table

# (row key, column title); metric columns show the value and its interval in %.
METRIC_COLUMNS = (
    ("em", "EM"),
    ("f1", "F1"),
    ("cover_em", "cover-EM"),
    ("judge", "judge"),
    ("valid_format", "valid format"),
)
COUNT_COLUMNS = (("n", "n"), ("seeds", "seeds"))  # before the metrics
NUMBER_COLUMNS = (  # after them: failures and cost per question
    ("judge_failed", "judge failed"),
    ("searches", "searches"),
    ("model_calls", "model calls"),
    ("retriever_calls", "retriever calls"),
    ("response_tokens", "generated tokens"),
)


@dataclass
class EvalSection:
    tables: list[Any] = field(default_factory=list)  # Table
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cards: list[dict[str, str]] = field(default_factory=list)  # {"title", "text"}


def eval_rows(obj: Any) -> list[dict[str, Any]] | None:
    """The evaluator's rows of a results.json, None for any other shape."""
    rows = obj.get("results") if isinstance(obj, dict) else None
    if isinstance(rows, list) and all(isinstance(r, dict) and "dataset" in r for r in rows):
        return rows
    return None


def _json(card: Any) -> str:
    return json.dumps(card, indent=2, ensure_ascii=False)


def _run_name(rel: str) -> str:
    parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
    return parent or "."


def _seconds(timings: Any) -> dict[tuple[str, str], float | None]:

    return seconds_per_question(timings) if isinstance(timings, dict) else {}


def evaluation_section(run: RunData, allow_different: bool = False) -> EvalSection:
    """Tables, charts, notes and cards of every evaluator results.json in ``run``; a
    results.json of another shape is left to the caller (tabled as it is)."""

    runs = {
        rel: rows for rel, obj in run.eval_results.items() if (rows := eval_rows(obj)) is not None
    }
    section = EvalSection()
    for rel, card in run.val_cards.items():  # what the validation figures were measured under
        section.cards.append({"title": f"Validation protocol card ({rel})", "text": _json(card)})
    if not runs:
        return section
    names = [_run_name(rel) for rel in runs]
    cards = [run.eval_cards.get(rel) for rel in runs]
    found = require_same_protocol(cards, [str(run.path / n) for n in names], allow_different)
    if found:
        section.notes.append(
            "Different protocols, tabulated together because of --allow-different; they differ "
            "in: " + "; ".join(str(d) for d in found)
        )
    multi = len(runs) > 1
    present = {k for rows in runs.values() for r in rows for k, v in r.items() if v is not None}
    metrics = [(k, t) for k, t in METRIC_COLUMNS if k in present]
    counts = [(k, t) for k, t in COUNT_COLUMNS if k in present]
    numbers = [(k, t) for k, t in NUMBER_COLUMNS if k in present]
    timed = any(run.eval_timings.get(rel) for rel in runs)
    columns = [*(["run"] if multi else []), "dataset", "method"]
    columns += [t for _, t in counts] + [t for _, t in metrics] + [t for _, t in numbers]
    columns += ["s / question"] if timed else []
    table = Table("Evaluation results", columns, [])
    points: dict[str, tuple[list[float], list[float]]] = {}
    for name, (rel, rows) in zip(names, runs.items(), strict=True):
        seconds = _seconds(run.eval_timings.get(rel))
        for r in rows:
            cells: list[Any] = [*([name] if multi else []), r.get("dataset"), r.get("method")]
            cells += [r.get(k) for k, _ in counts]
            cells += [metric_cell(r, k) for k, _ in metrics]
            cells += [r.get(k) for k, _ in numbers]
            if timed:
                cells.append(seconds.get((r.get("dataset"), r.get("method"))))
            table.rows.append(cells)
            calls, em = r.get("retriever_calls"), r.get("em")
            if isinstance(calls, (int, float)) and isinstance(em, (int, float)):
                key = f"{name} {r.get('method')}" if multi else str(r.get("method"))
                xs, ys = points.setdefault(key, ([], []))
                xs.append(float(calls))
                ys.append(100 * float(em))
    section.tables.append(table)
    if points:
        lines = [Series(key, xs, ys, True) for key, (xs, ys) in points.items()]
        section.charts.append(
            Chart("cost", "EM (%) against retriever calls per question", lines, "retriever calls")
        )
    for name, card in zip(names, cards, strict=True):
        if card is not None:
            section.cards.append({"title": f"Protocol card ({name})", "text": _json(card)})
    return section
