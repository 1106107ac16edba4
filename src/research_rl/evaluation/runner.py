"""Evaluation runs: every dataset x method, predictions on disk as they come, tables at the end.

Output directory (the layout in docs/contracts.md):
- ``predictions/<dataset>__<method>.jsonl``: one row per question with the prediction, its metrics,
  the judge's verdict and the full trajectory; rows are appended after every chunk of questions,
  so an interrupted run loses at most one chunk, and a rerun skips the questions already there;
- ``results.json``, ``results.md``, ``results.csv``: one row per dataset and method;
- ``judge_cache.jsonl``: the judge's verdicts by prompt (unless the config puts it elsewhere).

A local backend gets the questions in chunks, one generation batch each. With a server backend
every question runs its own loop in one of ``max_in_flight`` workers, so up to that many requests
wait on the server and no question waits for another's turn.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from research_rl.config import dump_config
from research_rl.evaluation.config import EvalConfig
from research_rl.evaluation.judge import Judge
from research_rl.evaluation.methods import LockedRetriever, MethodRunner
from research_rl.evaluation.metrics import summarize, trajectory_metrics
from research_rl.questions import Question, QuestionFileError, read_questions
from research_rl.trajectory import Trajectory

TABLE_COLUMNS = (
    "dataset",
    "method",
    "n",
    "em",
    "f1",
    "cover_em",
    "judge",
    "judge_failed",
    "searches",
    "response_tokens",
    "valid_format",
)


class PredictionFileError(QuestionFileError):
    """A predictions file (from an earlier run) with a malformed row."""


def prediction_row(traj: Trajectory, dataset: str, method: str) -> dict[str, Any]:
    metrics = trajectory_metrics(traj, method)
    return {
        "id": traj.question_id,
        "dataset": dataset,
        "method": method,
        "question": traj.question,
        "golden_answers": traj.golden_answers,
        **metrics,
        "num_searches": traj.num_searches,
        "response_tokens": traj.num_model_tokens,
        "finish_reason": traj.finish_reason,
        "valid_format": bool(traj.reward and traj.reward.valid_format),
        "reward": traj.reward.value if traj.reward else None,
        "trajectory": traj.to_json(with_ids=False),
    }


def read_predictions(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of an earlier run by question id. A last line cut short (the run was killed while
    writing it) is dropped from the file; a malformed line elsewhere is an error."""
    rows: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return rows
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            qid = row["id"]
        except (json.JSONDecodeError, KeyError, TypeError):
            if lineno == len(lines) and not line.endswith("\n"):
                path.write_text("".join(lines[:-1]), encoding="utf-8")
                break
            raise PredictionFileError(f"{path}:{lineno}: not a prediction row") from None
        rows[str(qid)] = row
    return rows


def _append(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _rewrite(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def _chunks(items: Sequence[Question], size: int) -> Iterator[Sequence[Question]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_PERCENT = {"em", "f1", "cover_em", "judge", "valid_format"}


def _fmt(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column in _PERCENT:
        return f"{100 * value:.1f}"
    if column == "searches":
        return f"{value:.2f}"
    if column == "response_tokens":
        return f"{value:.1f}"
    return str(value)


def results_markdown(table: Sequence[dict[str, Any]]) -> str:
    """All rows (metrics in %), then EM and judge accuracy by dataset (the paper's layout)."""
    header = (
        "dataset",
        "method",
        "n",
        "EM",
        "F1",
        "cover-EM",
        "judge",
        "judge failed",
        "searches",
        "response tokens",
        "valid format",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in table:
        lines.append("| " + " | ".join(_fmt(c, row[c]) for c in TABLE_COLUMNS) + " |")
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
                _fmt(metric, by_key[(d, m)][metric]) if (d, m) in by_key else "-" for d in datasets
            ]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def results_csv(table: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(TABLE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in TABLE_COLUMNS})
    return out.getvalue()


class Evaluation:
    """One ``research eval`` run over already-built parts (backend, tokenizer, retriever, judge)."""

    def __init__(
        self,
        cfg: EvalConfig,
        backend: Any,
        tokenizer: Any,
        retriever: Any,
        judge: Judge | None = None,
        console: Console | None = None,
        progress: bool = True,
    ) -> None:
        self.cfg = cfg
        self.backend = backend
        self.tokenizer = tokenizer
        self.retriever = retriever
        self.judge = judge
        self.out = Path(cfg.output_dir)
        self.console = console or Console(stderr=True)
        self.show_progress = progress

    def prediction_path(self, dataset: str, method: str) -> Path:
        return self.out / "predictions" / f"{dataset}__{method}.jsonl"

    def run(self) -> list[dict[str, Any]]:
        (self.out / "predictions").mkdir(parents=True, exist_ok=True)
        dump_config(self.cfg, self.out / "config.yaml")
        questions = {
            d.name: read_questions(d.path, limit=self.cfg.limit) for d in self.cfg.datasets
        }
        runners = {
            m: MethodRunner(m, self.backend, self.tokenizer, self.retriever, self.cfg)
            for m in self.cfg.methods
        }
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, disable=not self.show_progress) as bar:
            for name, qs in questions.items():
                for method, runner in runners.items():
                    self._generate(name, method, qs, runner, bar)
            if self.judge is not None:
                for name, qs in questions.items():
                    for method in runners:
                        self._judge(name, method, qs, bar)
        table = self._table(questions)
        self._write_tables(table)
        return table

    def _generate(
        self,
        dataset: str,
        method: str,
        questions: list[Question],
        runner: MethodRunner,
        bar: Progress,
    ) -> None:
        path = self.prediction_path(dataset, method)
        done = read_predictions(path)
        todo = [q for q in questions if q.id not in done]
        task = bar.add_task(
            f"{dataset} / {method}", total=len(questions), completed=len(questions) - len(todo)
        )
        if self.cfg.model.is_server:
            self._generate_pipelined(
                dataset, method, todo, runner, path, lambda n: bar.advance(task, n)
            )
            return
        for chunk in _chunks(todo, self.cfg.effective_chunk_size):
            trajectories = runner.run(chunk)
            _append(path, [prediction_row(t, dataset, method) for t in trajectories])
            bar.advance(task, len(chunk))

    def _generate_pipelined(
        self,
        dataset: str,
        method: str,
        todo: list[Question],
        runner: MethodRunner,
        path: Path,
        advance: Any,
    ) -> None:
        """Server backends: every question runs its own loop in one of ``max_in_flight``
        workers, so a question's next turn goes out as soon as its last one returns (no batch
        waits for its slowest rollout). Rows are appended in the order questions finish."""
        lock = threading.Lock()

        def one(question: Question) -> None:
            [trajectory] = runner.run([question])
            row = prediction_row(trajectory, dataset, method)
            with lock:
                _append(path, [row])
                advance(1)

        pool = ThreadPoolExecutor(max_workers=self.cfg.model.max_in_flight)
        try:
            futures = [pool.submit(one, q) for q in todo]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in finished:
                future.result()  # re-raise the first failure; finished rows are already saved
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _judge(self, dataset: str, method: str, questions: list[Question], bar: Progress) -> None:
        assert self.judge is not None
        path = self.prediction_path(dataset, method)
        rows = read_predictions(path)
        wanted = {q.id for q in questions}
        # Rows never judged, and rows the judge failed on before (a verdict of None): ask again.
        todo = [
            r
            for qid, r in rows.items()
            if qid in wanted and (r.get("judge") or {}).get("correct") is None
        ]
        task = bar.add_task(f"judge {dataset} / {method}", total=len(todo))
        verdicts = self.judge.judge_many(
            [(r["question"], r["golden_answers"], r["prediction"]) for r in todo],
            on_done=lambda i, v: bar.advance(task),
        )
        for row, verdict in zip(todo, verdicts, strict=True):
            row["judge"] = verdict.to_json()
        if todo:
            _rewrite(path, list(rows.values()))

    def _table(self, questions: dict[str, list[Question]]) -> list[dict[str, Any]]:
        table = []
        for name, qs in questions.items():
            for method in self.cfg.methods:
                rows = read_predictions(self.prediction_path(name, method))
                mine = [rows[q.id] for q in qs if q.id in rows]
                table.append({"dataset": name, "method": method, **summarize(mine)})
        return table

    def _write_tables(self, table: list[dict[str, Any]]) -> None:
        (self.out / "results.json").write_text(
            json.dumps({"results": table, "config": self.cfg.model_dump(mode="json")}, indent=2),
            encoding="utf-8",
        )
        (self.out / "results.md").write_text(results_markdown(table), encoding="utf-8")
        (self.out / "results.csv").write_text(results_csv(table), encoding="utf-8")


def open_evaluation(cfg: EvalConfig, progress: bool = True) -> Evaluation:
    """Load the tokenizer, the backend (transformers model or server client), the retriever and
    the judge that ``cfg`` names."""
    from transformers import AutoTokenizer

    from research_rl.retrieval import make_retriever

    m = cfg.model
    tokenizer = AutoTokenizer.from_pretrained(m.path)
    if m.backend == "hf":
        import torch
        from transformers import AutoModelForCausalLM

        from research_rl.backends.hf import HFBackend

        device = m.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = "auto" if m.dtype == "auto" else getattr(torch, m.dtype)
        model = AutoModelForCausalLM.from_pretrained(m.path, dtype=dtype).to(device).eval()
        backend: Any = HFBackend(model, tokenizer, max_batch_size=m.batch_size)
    elif m.backend == "vllm":
        from research_rl.backends.vllm import VLLMBackend

        backend = VLLMBackend.from_pretrained(
            m.path,
            dtype=m.dtype,
            tensor_parallel_size=m.tensor_parallel_size,
            gpu_memory_utilization=m.gpu_memory_utilization,
        )
    elif m.backend == "vllm-server":
        from research_rl.backends.vllm import VLLMServerBackend

        assert m.url is not None  # ModelSettings checks it
        # VLLMServerBackend takes the server root; the config names the .../v1 base like openai.
        backend = VLLMServerBackend(
            m.url.rstrip("/").removesuffix("/v1"),
            model=m.name,
            timeout_s=m.timeout_s,
            max_in_flight=m.max_in_flight,
        )
    else:
        from research_rl.evaluation.openai_backend import OpenAICompletionsBackend

        assert m.url is not None  # ModelSettings checks it
        backend = OpenAICompletionsBackend(
            m.url,
            tokenizer,
            model=m.name,
            api_key_env=m.api_key_env,
            max_in_flight=m.max_in_flight,
            timeout_s=m.timeout_s,
            max_retries=m.max_retries,
        )
    retriever = make_retriever(cfg.retriever) if cfg.retriever is not None else None
    if retriever is not None and cfg.retriever is not None and cfg.retriever.index is not None:
        retriever = LockedRetriever(retriever)
    judge = None
    if cfg.judge is not None:
        cache = cfg.judge.cache or str(Path(cfg.output_dir) / "judge_cache.jsonl")
        judge = Judge(cfg.judge, cache)
    return Evaluation(cfg, backend, tokenizer, retriever, judge, progress=progress)
