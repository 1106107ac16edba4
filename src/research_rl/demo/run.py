"""The whole demo: world -> tokenizer -> index -> pre-trained policy -> evaluation -> GRPO ->
evaluation, plots and a before/after table (the run directory is described in docs/demo.md).

GRPO runs through ``research_rl.training.run.train``, the code path of ``research train``; the
evaluations run the core's ``RolloutEngine`` on the transformers backend, greedy, on held-out
questions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from transformers import AutoModelForCausalLM, AutoTokenizer

from research_rl.backends.base import SamplingParams
from research_rl.backends.factory import hf_backend
from research_rl.bpe import train_tokenizer
from research_rl.config import ConfigError, StrictModel, dump_config, load_config
from research_rl.corpus import read_corpus
from research_rl.demo.policy import PolicyConfig, count_parameters, create_policy, save_policy
from research_rl.demo.pretraining import (
    FINAL_THOUGHT,
    FIRST_THOUGHT,
    NEXT_THOUGHT,
    PretrainingConfig,
    TranscriptSampler,
    copy_train,
    format_train,
)
from research_rl.metrics import batch_metrics
from research_rl.questions import Question, read_questions
from research_rl.report.curves import charts
from research_rl.report.figures import write_figures
from research_rl.report.payload import before_after
from research_rl.report.rundir import read_metrics
from research_rl.retrieval.config import RetrieverConfig
from research_rl.retrieval.index import build_index, load_index
from research_rl.rollout import RolloutConfig, RolloutEngine, format_passages, result_block
from research_rl.run_dir import write_json_atomic, write_jsonl_atomic
from research_rl.synthetic_world import WorldConfig, write_world
from research_rl.templates import load_template
from research_rl.training.checkpoints import latest_checkpoint
from research_rl.training.config import (
    DataSettings,
    GRPOSettings,
    ModelSettings,
    RunSettings,
    TrainConfig,
)
from research_rl.training.run import train
from research_rl.trajectory import Trajectory

# The base template's protocol in one line: every prompt token is computed in every generation and
# training pass, and the built-in base prompt (hundreds of tokens) would triple the run's compute.
DEMO_PROMPT = (
    "Answer the question. Think in <think> </think>, search with <search> query </search>, and "
    "answer in <answer> \\boxed{} </answer>.\nUser: {question}\nAssistant:"
)
HOPS = {1: "one_hop", 2: "two_hop"}
EVAL_BATCH = 64  # held-out questions per generation batch
# Repeated this often in the tokenizer's training texts, each protocol word becomes one token.
PROTOCOL_REPEATS = 50
# The thought phrases, in the tokenizer's texts: the used ones (demo.pretraining) among the variants
# of an option since removed, in their former order. That keeps the tokenizer's merges, and so the
# shipped run, the measured one.
THOUGHT_TEXTS = (
    "I need to find I found",
    FIRST_THOUGHT,
    "I should look this up.",
    "Let me search.",
    NEXT_THOUGHT,
    "Let me search again.",
    "I should search more.",
    FINAL_THOUGHT,
    "I have the answer.",
    "I know the answer now.",
)


class DemoConfig(StrictModel):
    """``configs/demo.yaml``, the only place the demo's values are written. ``seed`` seeds the
    world, the initial weights, pre-training and GRPO (``grpo.seed`` is overwritten with it)."""

    seed: int
    world: WorldConfig
    vocab_size: int = Field(ge=300)
    policy: PolicyConfig
    pretraining: PretrainingConfig
    rollout: RolloutConfig
    grpo: GRPOSettings
    threads: int | None = Field(ge=1)  # torch CPU threads (null: torch's default)

    def seeded(self, seed: int | None = None) -> DemoConfig:
        """A copy with one seed everywhere (``seed`` if given, else ``self.seed``)."""
        cfg = self.model_copy(deep=True)
        cfg.seed = cfg.grpo.seed = self.seed if seed is None else seed
        return cfg


def default_config_path() -> Path:
    """The packaged ``demo.yaml`` (``configs/demo.yaml`` in a checkout links to it)."""
    return Path(str(resources.files("research_rl.demo") / "demo.yaml"))


def load_demo_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> DemoConfig:
    """``path`` (default: the packaged demo.yaml) with dotted ``overrides``, seeded."""
    return load_config(path or default_config_path(), DemoConfig, overrides).seeded()


# -- stages ------------------------------------------------------------------------------------
def evaluate(model, tokenizer, retriever, rollout: RolloutConfig, questions, on_batch=None):
    """One greedy rollout per question, through the core's engine and the transformers backend."""

    engine = RolloutEngine(None, tokenizer, retriever, rollout)
    backend, greedy = hf_backend(model, tokenizer), SamplingParams(temperature=0.0)
    out: list[Trajectory] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(questions), EVAL_BATCH):
            chunk = list(questions[start : start + EVAL_BATCH])
            out += engine.run(chunk, n=1, sampling=greedy, backend=backend)
            if on_batch is not None:
                on_batch(len(chunk))
    return out


def by_hops(trajectories: Sequence[Trajectory], questions: Sequence[Question]) -> dict[str, dict]:
    """EM, F1, searches per question and valid-format rate, per question type (hop count)."""
    hops = {q.id: q.metadata.get("hops") for q in questions}
    out: dict[str, dict] = {}
    for h, name in HOPS.items():
        group = [t for t in trajectories if hops.get(t.question_id) == h]
        m = batch_metrics(group)
        keys = ("em", "f1", "searches_per_rollout", "valid_format")
        out[name] = {k.removesuffix("_per_rollout"): m[k] for k in keys} | {"n": len(group)}
    return out


def tokenizer_texts(world_texts: list[str], prompt: str) -> list[str]:
    """The world's texts and, repeated, the protocol's: prompt, result layout, thoughts."""
    protocol = [
        prompt,
        "Doc 1 (Title: ) Doc 2 (Title: ) Doc 3 (Title: ) No passages found.",
        "The final answer is \\boxed{ }",
        *THOUGHT_TEXTS,
    ]
    return world_texts + protocol * PROTOCOL_REPEATS


def train_config(cfg: DemoConfig, out: Path):
    """The ``research train`` config of the demo's GRPO stage."""

    steps = cfg.grpo.max_steps
    if steps is None:
        raise ConfigError(
            "demo config: grpo.max_steps must be set (the demo runs a fixed schedule)"
        )
    return TrainConfig(
        model=ModelSettings(path=str(out / "model")),
        data=DataSettings(train=str(out / "world" / "train.jsonl")),
        retriever=RetrieverConfig(index=str(out / "index")),
        rollout=cfg.rollout,
        grpo=cfg.grpo,
        run=RunSettings(
            output_dir=str(out),
            save_every=steps,
            keep_checkpoints=1,
            eval_every=steps,
            rollouts_every=max(1, steps // 20),
            rollouts_per_dump=cfg.grpo.questions_per_step * cfg.grpo.group_size,
            tensorboard=False,
            progress=True,
        ),
    )


def grpo(cfg: DemoConfig, out: Path) -> Path:
    """Train (the trainer prints each step); return the last checkpoint, the trained policy."""

    last = train(train_config(cfg, out), out).last_checkpoint or latest_checkpoint(out)
    if last is None:
        raise RuntimeError(f"{out}: GRPO finished without a checkpoint")
    return last


def plot(out: Path) -> None:
    """The report module's main curves of the GRPO run, as PNGs under ``plots/``."""

    main, _ = charts(read_metrics(out / "metrics.jsonl", problems=[]))
    write_figures(main, None, out / "plots")


def results_table(summary: dict):
    """The before/after table for the terminal: a metric's cell reads ``before → after``."""

    phases, metrics, groups = before_after(summary)
    table = Table(title=f"held-out questions (greedy), {' → '.join(phases)} GRPO")
    table.add_column("questions")
    for m in metrics:
        table.add_column(m.replace("_", " "), justify="right")
    for group, by_phase in groups.items():
        cells = []
        for m in metrics:
            values = [by_phase.get(p, {}).get(m) for p in phases]
            text = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in values]
            cells.append(text[-1] if m == "n" else " → ".join(text))
        table.add_row(group.replace("_", "-"), *cells)
    return table


# -- the pipeline ------------------------------------------------------------------------------
@contextmanager
def _bar(console, label: str, total: int):
    """A progress bar; yields ``advance(n=1, loss=None)``."""

    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, TextColumn("{task.description}"), console=console) as progress:
        task = progress.add_task("", total=total)

        def advance(n: int = 1, loss: float | None = None) -> None:
            progress.update(task, advance=n, description="" if loss is None else f"loss {loss:.3f}")

        yield advance


def run_demo(cfg: DemoConfig, output_dir: str | Path, console=None) -> dict:
    """Run the whole demo into ``output_dir``; return the summary (also written to summary.json)."""

    console = console or Console()
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: exists and is not empty; choose another --output-dir")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads is not None:
        torch.set_num_threads(min(cfg.threads, os.cpu_count() or 1))
    started, timings = time.perf_counter(), {}

    def done(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 1)
        console.print(f"[green]done[/] {name} in {timings[name]:.0f}s")

    # 1. the world, its tokenizer and its index
    t0 = time.perf_counter()
    (out / "prompt.txt").write_text(DEMO_PROMPT + "\n", encoding="utf-8")
    rollout = cfg.rollout.model_copy(
        update={"template": "base", "template_path": str(out / "prompt.txt")}
    )
    cfg = cfg.model_copy(update={"rollout": rollout})
    dump_config(cfg, out / "demo.yaml")
    files = write_world(cfg.world, out / "world", cfg.seed)
    template = load_template("base", out / "prompt.txt")
    texts = tokenizer_texts(files.world.vocabulary_text(), template.text)
    # Saved, then loaded back as every later stage loads it (a Qwen2Tokenizer: research_rl.bpe).
    train_tokenizer(texts, cfg.vocab_size).save_pretrained(str(out / "model"))
    tokenizer = AutoTokenizer.from_pretrained(str(out / "model"))
    build_index(files.corpus, out / "index", kind="bm25", show_progress=False)
    retriever = load_index(out / "index")
    train_qs, test_qs = read_questions(files.train), read_questions(files.test)
    passages = list(read_corpus(files.corpus))
    console.print(
        f"world: {len(passages)} passages, {len(train_qs)} training and {len(test_qs)} held-out "
        f"questions; tokenizer: {len(tokenizer)} tokens"
    )
    done("world, tokenizer and index", t0)

    # 2. the policy: copy stage, then format stage
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = create_policy(cfg.policy, tokenizer, seed=cfg.seed)
    console.print(f"policy: Qwen2, {count_parameters(model) / 1e6:.2f}M parameters")
    steps = cfg.pretraining
    with _bar(console, "copy pretraining", steps.copy_steps) as advance:
        copy_train(
            model, tokenizer, passages, steps.copy_steps, cfg.seed, lambda _, x: advance(loss=x)
        )
    sampler = TranscriptSampler(
        retriever,
        rollout.topk,
        template.render,
        lambda hits: result_block(format_passages(hits, tokenizer, rollout.max_passage_tokens)),
    )
    with _bar(console, "format training", steps.format_steps) as advance:
        on_step = lambda _, x: advance(loss=x)  # noqa: E731
        format_train(
            model, tokenizer, sampler, train_qs, passages, steps.format_steps, cfg.seed, on_step
        )
    save_policy(model, tokenizer, out / "model")
    done("copy pretraining and format training", t0)

    def held_out(name: str, policy) -> dict:
        t = time.perf_counter()
        with _bar(console, f"evaluate ({name})", len(test_qs)) as advance:
            trajs = evaluate(policy, tokenizer, retriever, rollout, test_qs, advance)
        write_jsonl_atomic(
            out / "eval" / f"{name}.jsonl", [t.to_json(with_ids=False) for t in trajs]
        )
        done(f"evaluation {name} GRPO", t)
        return by_hops(trajs, test_qs)

    # 3. held-out evaluation, GRPO through research train's code path, evaluation again
    summary: dict[str, Any] = {"before": held_out("before", model)}
    console.print(results_table(summary))
    del model
    t0 = time.perf_counter()
    final = grpo(cfg, out)
    done("GRPO", t0)
    summary["after"] = held_out("after", AutoModelForCausalLM.from_pretrained(str(final)))
    retriever.close()

    # 4. plots and the summary
    plot(out)
    summary |= {"steps": cfg.grpo.max_steps, "seed": cfg.seed}
    summary["seconds"] = {**timings, "total": round(time.perf_counter() - started, 1)}
    write_json_atomic(out / "summary.json", summary)
    console.print(results_table(summary))
    console.print(f'run directory: {out}  (ask it: research ask "Where was ... born?" --run {out})')
    return summary


# -- asking a run ------------------------------------------------------------------------------
def ask_run(run_dir: str | Path, question: str, initial: bool = False) -> Trajectory:
    """One greedy rollout of ``question`` by a demo run's trained policy (``initial``: the
    pre-trained one)."""

    run = Path(run_dir)
    cfg = load_config(run / "demo.yaml", DemoConfig)
    model_dir = run / "model" if initial else latest_checkpoint(run)
    if model_dir is None or not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{run}: no trained model here (did the demo run finish?)")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    # The run directory may have moved since: its own prompt file, wherever it is now.
    rollout = cfg.rollout.model_copy(update={"template_path": str(run / "prompt.txt")})
    retriever = load_index(run / "index")
    try:
        q = Question(id="ask", question=question, golden_answers=["?"])
        return evaluate(model, tokenizer, retriever, rollout, [q])[0]
    finally:
        retriever.close()
