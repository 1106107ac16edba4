"""``research eval compare RUN...``: evaluation runs side by side, and whether two differ.

Runs go in one table only when their protocol cards agree (:func:`card.differences`); with
``allow_different`` they do, and the differing fields are listed above the table. For two runs a
paired test per dataset and method (EM, and judge accuracy where both runs were judged), on the
questions both answered, joined by question id, says whether the difference is significant.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from research_rl.config import ConfigError
from research_rl.evaluation.card import Difference, read_card, require_same_protocol
from research_rl.evaluation.runner import (
    prediction_file,
    read_predictions,
    read_timings,
    seconds_per_question,
)
from research_rl.evaluation.stats import SIGNIFICANCE, PairedResult, paired_test
from research_rl.evaluation.tables import metric_cell, question_scores
from research_rl.run_dir import TIMINGS

TESTED_METRICS = ("em", "judge")
_LABEL = {"em": "EM", "judge": "judge"}


@dataclass
class EvalRun:
    path: Path
    name: str  # A, B, ... in tables
    card: dict[str, Any] | None
    results: list[dict[str, Any]]
    seconds: dict[tuple[str, str], float | None] = field(default_factory=dict)

    @property
    def model(self) -> str:
        if self.card is None:
            return "unknown model (no card.json)"
        return str(self.card["subject"]["model"].get("path"))

    def row(self, dataset: str, method: str) -> dict[str, Any] | None:
        return next(
            (r for r in self.results if (r.get("dataset"), r.get("method")) == (dataset, method)),
            None,
        )

    def question_means(self, dataset: str, method: str, metric: str) -> dict[str, float]:
        """Each question's score, averaged over the run's seeds (one file per seed)."""
        row = self.row(dataset, method) or {}
        sums: dict[str, list[float]] = {}
        for seed in range(int(row.get("seeds") or 1)):
            path = prediction_file(self.path, dataset, method, seed)
            for qid, v in question_scores(list(read_predictions(path).values()), metric).items():
                sums.setdefault(qid, []).append(v)
        return {q: sum(v) / len(v) for q, v in sums.items()}


def load_run(path: str | Path, name: str) -> EvalRun:
    p = Path(path)
    results = p / "results.json"
    if not results.is_file():
        raise ConfigError(f"{p}: not an evaluation run (no results.json; run research eval)")
    try:
        rows = json.loads(results.read_text(encoding="utf-8"))["results"]
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{results}: not an evaluation results file ({err})") from None
    seconds = seconds_per_question(read_timings(p / TIMINGS))
    return EvalRun(p, name, read_card(p), rows, seconds)


@dataclass(frozen=True)
class PairedEntry:
    dataset: str
    method: str
    metric: str
    result: PairedResult

    def verdict(self, a: str = "A", b: str = "B") -> str:
        r = self.result
        pct = f"{100 * (1 - SIGNIFICANCE):g}"
        head = (
            f"{self.dataset} / {self.method}, {_LABEL[self.metric]}: {a} {100 * r.mean_a:.1f} vs "
            f"{b} {100 * r.mean_b:.1f} on {r.n} shared questions, {a} - {b} = "
            f"{100 * r.difference:+.1f} points [{pct}% CI {100 * r.interval[0]:+.1f}, "
            f"{100 * r.interval[1]:+.1f}], p = {r.p_value:.3g}"
        )
        level = f"{100 * r.significance:g}%"
        if r.significant:
            return f"{head}: significant at the {level} level"
        return f"{head}: not significant at the {level} level"


def _table_keys(runs: Sequence[EvalRun]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r["dataset"], r["method"]) for run in runs for r in run.results))


@dataclass
class Comparison:
    runs: list[EvalRun]
    differences: list[Difference]
    tests: list[PairedEntry]

    def table_keys(self) -> list[tuple[str, str]]:
        """Every (dataset, method) of any run, in the order the runs list them."""
        return _table_keys(self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": {r.name: str(r.path) for r in self.runs},
            "differences": [{"key": d.key, "values": list(d.values)} for d in self.differences],
            "tests": [
                {"dataset": t.dataset, "method": t.method, "metric": t.metric, **t.result.to_json()}
                for t in self.tests
            ],
        }


def compare(
    paths: Sequence[str | Path], allow_different: bool = False, seed: int = 0
) -> Comparison:
    """Load the runs, check their cards, and (for two) test each shared dataset and method."""
    if len(paths) < 2:
        raise ConfigError("compare needs at least two evaluation runs")
    runs = [load_run(p, chr(ord("A") + i) if i < 26 else f"R{i}") for i, p in enumerate(paths)]
    found = require_same_protocol(
        [r.card for r in runs], [str(r.path) for r in runs], allow_different
    )
    tests: list[PairedEntry] = []
    if len(runs) == 2:
        a, b = runs
        for dataset, method in _table_keys(runs):
            if a.row(dataset, method) is None or b.row(dataset, method) is None:
                continue
            for metric in TESTED_METRICS:
                sa = a.question_means(dataset, method, metric)
                sb = b.question_means(dataset, method, metric)
                shared = [q for q in sa if q in sb]
                if not shared:
                    continue
                result = paired_test([sa[q] for q in shared], [sb[q] for q in shared], seed=seed)
                tests.append(PairedEntry(dataset, method, metric, result))
    return Comparison(runs, found, tests)


def _cell(row: dict[str, Any] | None, metric: str) -> str:

    return "-" if row is None else metric_cell(row, metric)


def _num(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def comparison_markdown(comp: Comparison) -> str:
    lines = [f"{r.name} = {r.path} ({r.model})" for r in comp.runs]
    if comp.differences:
        lines += [
            "",
            "Different protocols, tabulated together because of --allow-different; they differ in:",
        ]
        lines += [
            f"- {d.key}: " + " vs ".join(json.dumps(v) for v in d.values) for d in comp.differences
        ]
    else:
        lines += ["", "Same protocol card."]
    header = (
        "dataset",
        "method",
        "run",
        "n",
        "EM",
        "F1",
        "judge",
        "model calls",
        "retriever calls",
        "generated tokens",
        "s / question",
    )
    lines += ["", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for dataset, method in comp.table_keys():
        for run in comp.runs:
            row = run.row(dataset, method)
            if row is None:
                continue
            cells = [dataset, method, run.name, str(row.get("n", "-"))]
            cells += [_cell(row, m) for m in ("em", "f1", "judge")]
            cells += [_num(row.get("model_calls"), 2), _num(row.get("retriever_calls"), 2)]
            cells += [_num(row.get("response_tokens"), 1)]
            cells += [_num(run.seconds.get((dataset, method)), 3)]
            lines.append("| " + " | ".join(cells) + " |")
    if comp.tests:
        lines += ["", "Paired tests (sign-flip permutation test, bootstrap CI of the difference):"]
        lines += [f"- {t.verdict()}" for t in comp.tests]
    elif len(comp.runs) == 2:
        lines += ["", "No dataset and method in both runs: nothing to test."]
    return "\n".join(lines) + "\n"
