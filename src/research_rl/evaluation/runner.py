"""Evaluation runs: every dataset x method (x seed), predictions on disk as they come, tables at
the end.

Output directory (the layout in docs/contracts.md):
- ``card.json``: the protocol card (:mod:`research_rl.evaluation.card`), written before the first
  question; a rerun in the same directory under another protocol is refused;
- ``predictions/<dataset>__<method>.jsonl`` (``__seed<k>`` for seed k > 0 of ``--seeds``): one row
  per question with the prediction, its metrics, its cost, the judge's verdict and the full
  trajectory, in question order; rows are appended after every chunk of questions, so an
  interrupted run loses at most one chunk, and a rerun skips the questions already there;
- ``results.json``, ``results.md``, ``results.csv``: one row per dataset and method, intervals and
  cost included (:mod:`research_rl.evaluation.tables`); ``timings.json``: wall time;
- ``retrieval/``: every search and its passages (:mod:`research_rl.evaluation.replay`), unless the
  config records them elsewhere or the run replays a store;
- ``judge_cache.jsonl``: the judge's verdicts by prompt (unless the config puts it elsewhere).

A local backend gets the questions in chunks, one generation batch each. With a server backend
every question runs its own loop in one of ``max_in_flight`` workers, so up to that many requests
wait on the server and no question waits for another's turn.
"""

from __future__ import annotations

import threading
import time
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

from research_rl.backends.factory import open_backend
from research_rl.config import dump_config
from research_rl.evaluation.card import (
    CARD_FILE,
    ProtocolMismatchError,
    differences,
    eval_card,
    read_card,
    retrieval_section,
    write_card,
)
from research_rl.evaluation.config import SEED_STRIDE, EvalConfig, Method
from research_rl.evaluation.judge import Judge
from research_rl.evaluation.methods import LockedRetriever, MethodRunner
from research_rl.evaluation.metrics import trajectory_metrics
from research_rl.evaluation.presets import check_preset
from research_rl.evaluation.replay import (
    STORE_DIR,
    RecordingRetriever,
    ReplayRetriever,
    RetrievalStore,
    resolve_store,
)
from research_rl.evaluation.tables import results_csv, results_markdown, table_row
from research_rl.models import with_resolved_model
from research_rl.questions import Question, QuestionFileError, read_questions
from research_rl.retrieval import make_retriever
from research_rl.run_dir import (
    PREDICTIONS,
    TIMINGS,
    append_jsonl,
    iter_jsonl,
    read_json,
    write_json_atomic,
    write_jsonl_atomic,
)
from research_rl.trajectory import Trajectory


def prediction_file(run_dir: Path, dataset: str, method: str, seed: int = 0) -> Path:
    """Where a run keeps the predictions of a dataset, method and seed (``__seed<k>``, k > 0)."""
    suffix = f"__seed{seed}" if seed else ""
    return Path(run_dir) / PREDICTIONS / f"{dataset}__{method}{suffix}.jsonl"


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
        # Cost: a generation turn ends at each search and once more with the answer; only
        # non-empty queries reach the retriever; rag retrieves once, before its one turn.
        "model_calls": traj.num_searches + 1,
        "retriever_calls": 1
        if method == "rag"
        else sum(1 for q in traj.search_queries if q.strip()),
        "finish_reason": traj.finish_reason,
        # Lost a search to the retriever: counted apart (tables), never scored or judged.
        "retriever_failed": traj.failed,
        "valid_format": None if traj.failed else bool(traj.reward and traj.reward.valid_format),
        "reward": traj.reward.value if traj.reward else None,
        "trajectory": traj.to_json(with_ids=False),
    }


def read_predictions(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of an earlier run by question id. A last line cut short (the run was killed while
    writing it) is dropped from the file; a malformed line elsewhere is an error."""
    rows: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return rows
    for where, row in iter_jsonl(path, PredictionFileError, repair_cut_tail=True):
        if not isinstance(row, dict) or "id" not in row:
            raise PredictionFileError(f"{where}: not a prediction row")
        rows[str(row["id"])] = row
    return rows


def _chunks(items: Sequence[Question], size: int) -> Iterator[Sequence[Question]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Evaluation:
    """One ``research eval`` run over already-built parts (backend, tokenizer, retriever, judge).

    The retriever is wrapped when the run starts: searches are recorded into the retrieval store,
    or, with ``replay``, answered from a recorded store (the retriever given is then not used and
    may be None)."""

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
        self.store: RetrievalStore | None = None
        self.retrieval: dict[str, Any] | None = None  # the card's retriever and corpus sections
        self.timings: dict[str, dict[str, float]] = {}

    def prediction_path(self, dataset: str, method: str, seed: int = 0) -> Path:
        return prediction_file(self.out, dataset, method, seed)

    def run(self) -> list[dict[str, Any]]:
        check_preset(self.cfg)
        (self.out / PREDICTIONS).mkdir(parents=True, exist_ok=True)
        dump_config(self.cfg, self.out / "config.yaml")
        questions = {
            d.name: read_questions(d.path, limit=self.cfg.limit) for d in self.cfg.datasets
        }
        self._open_retrieval()
        self._write_card(questions)
        self.timings = read_timings(self.out / TIMINGS)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, disable=not self.show_progress) as bar:
            for seed in range(self.cfg.seeds):
                runners = {m: self._runner(m, seed) for m in self.cfg.methods}
                for name, qs in questions.items():
                    for method, runner in runners.items():
                        self._generate(name, method, seed, qs, runner, bar)
            if self.judge is not None:
                for seed in range(self.cfg.seeds):
                    for name, qs in questions.items():
                        for method in self.cfg.methods:
                            self._judge(name, method, seed, qs, bar)
        if self.store is not None and self.store.conflicts:
            self.console.print(
                f"warning: {self.store.conflicts} searches got other passages on a later call "
                "than on their first (a retriever that is not deterministic); the store keeps "
                "the first answer, so a replay may differ where they were used"
            )
        table = self._table(questions)
        self._write_tables(table)
        return table

    # -- set-up --------------------------------------------------------------------------------
    def _open_retrieval(self) -> None:
        """Replay a recorded store, or record every search the live retriever answers."""
        cfg = self.cfg
        if cfg.replay is not None:
            self.store = RetrievalStore(resolve_store(cfg.replay))
            self.retrieval = {**self.store.retriever, "where": None}
            self.retriever = ReplayRetriever(self.store)
            return
        if self.retriever is None or cfg.retriever is None:
            return
        self.retrieval = retrieval_section(cfg.retriever.index, cfg.retriever.url)
        identity = {k: self.retrieval[k] for k in ("retriever", "corpus")}
        self.store = RetrievalStore(cfg.retrieval_store or self.out / STORE_DIR, identity)
        self.retriever = RecordingRetriever(self.retriever, self.store)

    def _write_card(self, questions: dict[str, list[Question]]) -> None:
        card = eval_card(
            self.cfg,
            questions,
            self.retrieval,
            replayed_from=str(self.store.path) if self.cfg.replay and self.store else None,
        )
        check_preset(self.cfg, card["protocol"]["datasets"])
        old = read_card(self.out)
        if old is not None:
            # More questions (a larger limit) or more seeds extend a run; anything else would mix
            # two protocols (or two models) in one predictions file.
            changed = differences([old, card], ignore=("datasets", "seeds"))
            changed += differences([_model_identity(old), _model_identity(card)])
            if changed:
                raise ProtocolMismatchError(
                    f"{self.out} holds an evaluation under another protocol or model "
                    f"({'; '.join(str(d) for d in changed)}); its predictions would be mixed "
                    f"with this run's: choose another output_dir (see {self.out / CARD_FILE})"
                )
        write_card(self.out / CARD_FILE, card)

    def _runner(self, method: Method, seed: int) -> MethodRunner:
        cfg = self.cfg
        if seed:
            base = cfg.sampling.seed or 0
            sampling = cfg.sampling.model_copy(update={"seed": base + SEED_STRIDE * seed})
            cfg = cfg.model_copy(update={"sampling": sampling})
        return MethodRunner(method, self.backend, self.tokenizer, self.retriever, cfg)

    # -- generation ----------------------------------------------------------------------------
    def _generate(
        self,
        dataset: str,
        method: str,
        seed: int,
        questions: list[Question],
        runner: MethodRunner,
        bar: Progress,
    ) -> None:
        path = self.prediction_path(dataset, method, seed)
        done = read_predictions(path)
        todo = [q for q in questions if q.id not in done]
        label = f"{dataset} / {method}" + (f" / seed {seed}" if self.cfg.seeds > 1 else "")
        task = bar.add_task(label, total=len(questions), completed=len(questions) - len(todo))
        if not todo:
            return
        start = time.perf_counter()
        if self.cfg.model.is_server:
            self._generate_pipelined(
                dataset, method, todo, runner, path, lambda n: bar.advance(task, n)
            )
            _in_question_order(path, questions)
        else:
            for chunk in _chunks(todo, self.cfg.effective_chunk_size):
                trajectories = runner.run(chunk)
                append_jsonl(
                    path, [prediction_row(t, dataset, method) for t in trajectories], sync=True
                )
                bar.advance(task, len(chunk))
        self._time(path.stem, time.perf_counter() - start, len(todo))

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
                append_jsonl(path, [row], sync=True)
                advance(1)

        pool = ThreadPoolExecutor(max_workers=self.cfg.model.max_in_flight)
        try:
            futures = [pool.submit(one, q) for q in todo]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in finished:
                future.result()  # re-raise the first failure; finished rows are already saved
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _judge(
        self, dataset: str, method: str, seed: int, questions: list[Question], bar: Progress
    ) -> None:
        assert self.judge is not None
        path = self.prediction_path(dataset, method, seed)
        rows = read_predictions(path)
        wanted = {q.id for q in questions}
        # Rows never judged, and rows the judge failed on before (a verdict of None): ask again.
        # A rollout that failed on the retriever has nothing to judge (it is not wrong).
        todo = [
            r
            for qid, r in rows.items()
            if qid in wanted
            and not r.get("retriever_failed")
            and (r.get("judge") or {}).get("correct") is None
        ]
        task = bar.add_task(f"judge {path.stem.replace('__', ' / ')}", total=len(todo))
        start = time.perf_counter()
        verdicts = self.judge.judge_many(
            [(r["question"], r["golden_answers"], r["prediction"]) for r in todo],
            on_done=lambda i, v: bar.advance(task),
        )
        for row, verdict in zip(todo, verdicts, strict=True):
            row["judge"] = verdict.to_json()
        if todo:
            write_jsonl_atomic(path, list(rows.values()))
            self._time(path.stem, time.perf_counter() - start, len(todo), "judge")

    # -- tables --------------------------------------------------------------------------------
    def _time(self, key: str, seconds: float, questions: int, kind: str = "generation") -> None:
        """Add to the wall time of a predictions file (summed over the runs that resumed it)."""
        entry = self.timings.setdefault(kind, {}).setdefault(key, {"seconds": 0.0, "questions": 0})
        entry["seconds"] += seconds
        entry["questions"] += questions
        write_json_atomic(self.out / TIMINGS, self.timings)

    def _table(self, questions: dict[str, list[Question]]) -> list[dict[str, Any]]:
        table = []
        s = self.cfg.stats
        for name, qs in questions.items():
            for method in self.cfg.methods:
                runs = []
                for seed in range(self.cfg.seeds):
                    rows = read_predictions(self.prediction_path(name, method, seed))
                    runs.append([rows[q.id] for q in qs if q.id in rows])
                table.append(table_row(name, method, runs, s.confidence, s.resamples, s.seed))
        return table

    def _write_tables(self, table: list[dict[str, Any]]) -> None:
        # Only what a replay reproduces: no paths, no times (config.yaml and card.json hold the
        # rest), so two runs of one protocol can be compared byte for byte.
        write_json_atomic(self.out / "results.json", {"results": table})
        conf = self.cfg.stats.confidence
        (self.out / "results.md").write_text(
            results_markdown(table, confidence=conf), encoding="utf-8"
        )
        (self.out / "results.csv").write_text(results_csv(table), encoding="utf-8")


def _model_identity(card: dict[str, Any]) -> dict[str, Any]:
    """The model a card's predictions came from, shaped for :func:`differences` (a backend may
    change between two resumed runs; the weights may not)."""
    model = card.get("subject", {}).get("model", {})
    return {"protocol": {"model": model.get("path"), "model_revision": model.get("revision")}}


def read_timings(path: Path) -> dict[str, dict[str, Any]]:
    """A ``timings.json`` ({} when missing or unreadable: wall time is informative only)."""
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def seconds_per_question(timings: dict[str, dict[str, Any]]) -> dict[tuple[str, str], float | None]:
    """Wall seconds per question (and seed) by (dataset, method) from a ``timings.json``: its
    generation time, plus its judging time where the judge ran, over the questions generated."""
    totals: dict[tuple[str, str], list[float]] = {}
    for kind in ("generation", "judge"):
        for stem, entry in (timings.get(kind) or {}).items():
            dataset, _, rest = stem.partition("__")
            method = rest.split("__seed")[0]
            t = totals.setdefault((dataset, method), [0.0, 0.0])
            t[0] += float(entry.get("seconds", 0.0))
            if kind == "generation":
                t[1] += float(entry.get("questions", 0))
    return {k: (s / n if n else None) for k, (s, n) in totals.items()}


def _in_question_order(path: Path, questions: Sequence[Question]) -> None:
    """Rewrite a predictions file in question order (server backends append rows as questions
    finish), so two runs of the same questions write the same file."""
    rows = read_predictions(path)
    wanted = {q.id for q in questions}
    ordered = [rows[q.id] for q in questions if q.id in rows]
    ordered += [r for qid, r in rows.items() if qid not in wanted]
    if list(rows) != [r["id"] for r in ordered]:
        write_jsonl_atomic(path, ordered)


def open_evaluation(cfg: EvalConfig, progress: bool = True) -> Evaluation:
    """Load the tokenizer, the backend (transformers model or server client), the retriever and
    the judge that ``cfg`` names."""
    from transformers import AutoTokenizer

    check_preset(cfg)  # before loading a model that would not be evaluated
    cfg = with_resolved_model(cfg)  # GGUF: import once
    m = cfg.model
    tokenizer = AutoTokenizer.from_pretrained(m.path)
    backend = open_backend(m, tokenizer)
    # A replay answers every search from its store: the index and the server are never opened.
    live = cfg.retriever is not None and cfg.replay is None
    retriever = make_retriever(cfg.retriever) if live and cfg.retriever is not None else None
    if retriever is not None and cfg.retriever is not None and cfg.retriever.index is not None:
        retriever = LockedRetriever(retriever)
    judge = None
    if cfg.judge is not None:
        cache = cfg.judge.cache or str(Path(cfg.output_dir) / "judge_cache.jsonl")
        judge = Judge(cfg.judge, cache)
    return Evaluation(cfg, backend, tokenizer, retriever, judge, progress=progress)
