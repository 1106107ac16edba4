"""The whole demo: world -> tokenizer -> index -> format-trained policy -> evaluation -> GRPO ->
evaluation, plots and a before/after table.

GRPO runs through ``research_rl.training.run.train``, the code path of ``research train``; the
evaluation runs the core's ``RolloutEngine`` on the transformers backend, greedy, on held-out
questions. Run directory (``--output-dir``)::

    demo.yaml            the resolved demo config
    prompt.txt           the prompt template the policy sees (a short base template)
    world/               corpus.jsonl, train.jsonl, test.jsonl, world.json
    index/               the BM25 index of the corpus
    model/               the copy- and format-trained policy (tokenizer included): GRPO starts here
    config.yaml, metrics.jsonl, rollouts/, checkpoints/, tensorboard/   the GRPO run
    final_model/         the policy after GRPO (what ``research ask`` loads)
    eval/before.jsonl, eval/after.jsonl   held-out trajectories
    plots/*.png, summary.json
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from research_rl.config import ConfigError, StrictModel, dump_config
from research_rl.demo.copy_training import CopyTrainingConfig
from research_rl.demo.format_training import (
    FINAL_THOUGHTS,
    FIRST_THOUGHTS,
    NEXT_THOUGHTS,
    FormatTrainingConfig,
)
from research_rl.demo.policy import PolicyConfig
from research_rl.demo.world import WorldConfig
from research_rl.questions import Question
from research_rl.rollout import RolloutConfig
from research_rl.training.config import GRPOSettings
from research_rl.trajectory import Trajectory

# The base template's protocol in one line: the tiny policy reads this prompt on every rollout, and
# every prompt token is computed in every generation and training pass (the built-in base prompt,
# hundreds of tokens, would triple the compute of the run on a CPU).
DEMO_PROMPT = (
    "Answer the question. Think in <think> </think>, search with <search> query </search>, and "
    "answer in <answer> \\boxed{} </answer>.\nUser: {question}\nAssistant:"
)
HOPS = {1: "one_hop", 2: "two_hop"}


# The demo's own values for the sections it shares with `research train`, whose defaults are the
# paper's (256 questions a step, 8192-token responses): far too big for a laptop CPU.
_DEMO_ROLLOUT: dict[str, Any] = dict(
    topk=1, max_passage_tokens=32, max_searches=3, max_response_tokens=256, max_prompt_tokens=192
)
_DEMO_ROLLOUT["profile"] = "strict"  # the protocol the demo was built and measured with
# Group 8 at the paper's temperature 1.0, 300 steps: with groups of 5, or from a policy whose
# format training had not converged, the policy drifted to answering without searching; at 0.7
# it explored second searches less. KL 1e-2, ten times the paper's: one-hop questions are learnt
# within a few dozen steps, and with 1e-3 the policy then dropped to one search for every question
# before it had learnt the second hop (docs/demo.md).
_DEMO_GRPO: dict[str, Any] = dict(
    group_size=8,
    questions_per_step=8,
    learning_rate=3e-4,
    temperature=1.0,
    max_steps=300,
    weight_decay=0.0,
    beta=0.01,
    entropy_coef=0.0,  # no entropy bonus: the recipe the demo was measured with
)


def _default_rollout() -> RolloutConfig:
    return RolloutConfig(**_DEMO_ROLLOUT)


def _default_grpo() -> GRPOSettings:
    return GRPOSettings(**_DEMO_GRPO)


class DemoConfig(StrictModel):
    """``configs/demo.yaml``. ``seed`` seeds everything: the world, the initial weights, format
    training and GRPO (their own ``seed`` keys are overwritten with it)."""

    seed: int = 0
    world: WorldConfig = Field(default_factory=WorldConfig)
    vocab_size: int = Field(4096, ge=300)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    copy_training: CopyTrainingConfig = Field(default_factory=CopyTrainingConfig)
    format_training: FormatTrainingConfig = Field(default_factory=FormatTrainingConfig)
    rollout: RolloutConfig = Field(default_factory=_default_rollout)
    grpo: GRPOSettings = Field(default_factory=_default_grpo)
    eval_batch_size: int = Field(64, ge=1)  # held-out questions per generation batch
    log_every: int = Field(5, ge=1)  # a printed line every N GRPO steps
    # torch CPU threads (at most the machine's cores); None keeps torch's default. Two ran the
    # demo 1.6-1.8x faster than one on a 2-core CPU; the model's matrices are too small for many.
    threads: int | None = Field(2, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _partial_sections_keep_demo_values(cls, data: Any) -> Any:
        """A partial ``rollout:`` or ``grpo:`` section changes the keys it names and keeps the
        demo's values for the rest, not the paper's (a 256-question step ran out of memory)."""
        if isinstance(data, dict):
            data = dict(data)
            for key, defaults in (("rollout", _DEMO_ROLLOUT), ("grpo", _DEMO_GRPO)):
                if isinstance(data.get(key), dict):
                    data[key] = {**defaults, **data[key]}
        return data

    def seeded(self, seed: int | None = None) -> DemoConfig:
        """A copy with one seed everywhere (``seed`` if given, else ``self.seed``)."""
        s = self.seed if seed is None else seed
        cfg = self.model_copy(deep=True)
        cfg.seed = s
        cfg.world.seed = s
        cfg.copy_training.seed = s
        cfg.format_training.seed = s
        cfg.grpo.seed = s
        return cfg


def load_demo_config(
    path: str | Path | None, overrides: dict[str, Any] | None = None
) -> DemoConfig:
    from research_rl.config import load_config, validate_config

    if path is None:
        cfg = validate_config({}, DemoConfig, "<demo defaults>")
        for dotted, value in (overrides or {}).items():
            node: Any = cfg
            *parents, leaf = dotted.split(".")
            for p in parents:
                node = getattr(node, p)
            setattr(node, leaf, value)
        return cfg
    return load_config(path, DemoConfig, overrides)


# -- evaluation --------------------------------------------------------------------------------
def by_hops(trajectories: Sequence[Trajectory], questions: Sequence[Question]) -> dict[str, dict]:
    """EM, F1, searches per question and valid-format rate, per question type (hop count)."""
    from research_rl.metrics import batch_metrics

    hops = {q.id: q.metadata.get("hops") for q in questions}
    out: dict[str, dict] = {}
    for h, name in HOPS.items():
        group = [t for t in trajectories if hops.get(t.question_id) == h]
        m = batch_metrics(group)
        out[name] = {
            "em": m["em"],
            "f1": m["f1"],
            "searches": m["searches_per_rollout"],
            "valid_format": m["valid_format"],
            "n": len(group),
        }
    return out


def evaluate(
    model,
    tokenizer,
    retriever,
    rollout: RolloutConfig,
    questions: Sequence[Question],
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> list[Trajectory]:
    """One greedy rollout per question, through the core's engine and the transformers backend."""
    import torch

    from research_rl.backends.base import SamplingParams
    from research_rl.backends.hf import HFBackend
    from research_rl.rollout import RolloutEngine

    engine = RolloutEngine(HFBackend(model, tokenizer), tokenizer, retriever, rollout)
    out: list[Trajectory] = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(questions), batch_size):
            chunk = list(questions[start : start + batch_size])
            out += engine.run(chunk, n=1, sampling=SamplingParams(temperature=0.0))
            if on_batch is not None:
                on_batch(len(chunk))
    return out


def write_trajectories(trajectories: Sequence[Trajectory], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for t in trajectories:
            f.write(json.dumps(t.to_json(with_ids=False)) + "\n")


# -- the pipeline ------------------------------------------------------------------------------
# The protocol's text is in every rollout, the world's text spread over many: repeated this often
# in the tokenizer's training texts, each protocol word becomes one token.
PROTOCOL_REPEATS = 50


def tokenizer_texts(world_texts: list[str], prompt: str) -> list[str]:
    protocol = [
        prompt,
        "Doc 1 (Title: ) Doc 2 (Title: ) Doc 3 (Title: ) No passages found.",
        "The final answer is \\boxed{ }",
        "I need to find I found",
        *FIRST_THOUGHTS,
        *NEXT_THOUGHTS,
        *FINAL_THOUGHTS,
    ]
    return world_texts + protocol * PROTOCOL_REPEATS


def run_demo(
    cfg: DemoConfig,
    output_dir: str | Path,
    console=None,
    evaluate_before: bool = True,
) -> dict:
    """Run the whole demo into ``output_dir``; return the summary (also written to summary.json)."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from research_rl.corpus import read_corpus
    from research_rl.demo.copy_training import copy_train
    from research_rl.demo.format_training import TranscriptSampler, format_train
    from research_rl.demo.policy import count_parameters, create_policy, save_policy
    from research_rl.demo.tokenizer import train_tokenizer
    from research_rl.demo.world import generate_world, write_world
    from research_rl.questions import read_questions
    from research_rl.retrieval.index import build_index, load_index
    from research_rl.rollout import format_passages, result_block
    from research_rl.templates import load_template

    console = console or Console()
    if cfg.threads is not None:
        torch.set_num_threads(min(cfg.threads, os.cpu_count() or 1))
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: exists and is not empty; choose another --output-dir")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def phase(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 1)
        console.print(f"[green]done[/] {name} in {timings[name]:.0f}s")

    def bar(label: str) -> Progress:
        return Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=False,
        )

    # 1. the world, its tokenizer and its index
    t0 = time.perf_counter()
    files = write_world(cfg.world, out / "world")
    prompt_path = out / "prompt.txt"
    prompt_path.write_text(DEMO_PROMPT + "\n", encoding="utf-8")
    rollout_cfg = cfg.rollout.model_copy(
        update={"template": "base", "template_path": str(prompt_path)}
    )
    cfg = cfg.model_copy(update={"rollout": rollout_cfg})
    dump_config(cfg, out / "demo.yaml")
    template = load_template("base", prompt_path)
    world = generate_world(cfg.world)
    trained = train_tokenizer(
        tokenizer_texts(world.vocabulary_text(), template.text), cfg.vocab_size
    )
    # Train with the tokenizer as saved: beside the policy's config every later stage loads these
    # files as a Qwen2Tokenizer, which encodes the same (research_rl.demo.tokenizer).
    trained.save_pretrained(str(out / "model"))
    tokenizer = AutoTokenizer.from_pretrained(str(out / "model"))
    build_index(files.corpus, out / "index", kind="bm25", show_progress=False)
    retriever = load_index(out / "index")
    train_qs, test_qs = read_questions(files.train), read_questions(files.test)
    passages = list(read_corpus(files.corpus))
    console.print(
        f"world: {len(passages)} passages, {len(train_qs)} training and {len(test_qs)} held-out "
        f"questions; tokenizer: {len(tokenizer)} tokens"
    )
    phase("world, tokenizer and index", t0)

    # 2. the policy: copy pretraining, then format training
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = create_policy(cfg.policy, tokenizer, seed=cfg.seed)
    console.print(f"policy: Qwen2, {count_parameters(model) / 1e6:.2f}M parameters")

    def render_result(hits) -> str:
        return result_block(format_passages(hits, tokenizer, rollout_cfg.max_passage_tokens))

    with bar("copy pretraining") as progress:
        task = progress.add_task("", total=cfg.copy_training.steps)
        copy_train(
            model,
            tokenizer,
            passages,
            cfg.copy_training,
            lambda step, loss: progress.update(task, advance=1, description=f"loss {loss:.3f}"),
        )
    sampler = TranscriptSampler(
        retriever,
        rollout_cfg.topk,
        lambda q: template.render(q),
        render_result,
        cfg.format_training,
    )
    with bar("format training") as progress:
        task = progress.add_task("", total=cfg.format_training.steps)

        def on_step(step: int, loss: float) -> None:
            progress.update(task, advance=1, description=f"loss {loss:.3f}")

        format_train(
            model,
            tokenizer,
            sampler,
            train_qs,
            passages,
            cfg.format_training,
            on_step,
            cfg.copy_training,
        )
    save_policy(model, tokenizer, out / "model")
    phase("copy pretraining and format training", t0)

    # 3. held-out evaluation before GRPO
    def run_eval(name: str, policy) -> dict:
        t = time.perf_counter()
        with bar(f"evaluate ({name})") as progress:
            task = progress.add_task("", total=len(test_qs))
            trajs = evaluate(
                policy,
                tokenizer,
                retriever,
                rollout_cfg,
                test_qs,
                cfg.eval_batch_size,
                lambda n: progress.advance(task, n),
            )
        write_trajectories(trajs, out / "eval" / f"{name}.jsonl")
        phase(f"evaluation {name} GRPO", t)
        return by_hops(trajs, test_qs)

    summary: dict[str, Any] = {}
    if evaluate_before:
        summary["before"] = run_eval("before", model)
        console.print(results_table({"before": summary["before"]}))

    # 4. GRPO through research train's code path
    t0 = time.perf_counter()
    summary["after"] = {}
    del model
    final = grpo(cfg, out, console)
    phase("GRPO", t0)

    # 5. held-out evaluation after GRPO, plots, summary
    policy = AutoModelForCausalLM.from_pretrained(str(final))
    summary["after"] = run_eval("after", policy)
    retriever.close()
    from research_rl.demo.plots import plot_run

    plot_run(out / "metrics.jsonl", out / "plots")
    summary["steps"] = cfg.grpo.max_steps
    summary["seed"] = cfg.seed
    summary["seconds"] = {**timings, "total": round(time.perf_counter() - started, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    console.print(results_table(summary))
    console.print(f'run directory: {out}  (ask it: research ask "Where was ... born?" --run {out})')
    return summary


def train_config(cfg: DemoConfig, out: Path):
    """The ``research train`` config of the demo's GRPO stage."""
    from research_rl.retrieval.config import RetrieverConfig
    from research_rl.training.config import DataSettings, ModelSettings, RunSettings, TrainConfig

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


def grpo(cfg: DemoConfig, out: Path, console) -> Path:
    """Train; copy the last checkpoint's model to ``final_model/`` and return that path."""
    from research_rl.training import checkpoints
    from research_rl.training.run import train

    steps = cfg.grpo.max_steps or 0

    def on_record(record: dict) -> None:
        step = record.get("step", 0)
        if step % cfg.log_every and step != steps:
            return
        console.print(
            f"step {step:>4}/{steps}  reward {record.get('reward_mean', 0):.3f}  "
            f"f1 {record.get('f1', 0):.3f}  searches {record.get('searches_per_rollout', 0):.2f}  "
            f"tokens {record.get('model_tokens_per_rollout', 0):.0f}  "
            f"{record.get('seconds_per_step', 0):.1f}s/step"
        )

    result = train(train_config(cfg, out), out, callbacks=[on_record])
    last = result.last_checkpoint or checkpoints.latest_checkpoint(out)
    if last is None:
        raise RuntimeError(f"{out}: GRPO finished without a checkpoint")
    final = out / "final_model"
    if final.exists():
        shutil.rmtree(final)
    final.mkdir()
    for p in last.iterdir():
        # The model and tokenizer files; optimizer and trainer state stay in the checkpoint.
        if p.suffix in (".json", ".safetensors", ".jinja") and not p.name.startswith(
            ("trainer_state", "COMPLETE")
        ):
            shutil.copy2(p, final / p.name)
    return final


# -- the table ---------------------------------------------------------------------------------
def results_table(summary: dict):
    from rich.table import Table

    table = Table(title="held-out questions (greedy)")
    table.add_column("")
    for col in ("EM", "F1", "searches", "valid format", "n"):
        table.add_column(col, justify="right")
    for when in ("before", "after"):
        for name in HOPS.values():
            m = summary.get(when, {}).get(name)
            if m:
                table.add_row(
                    f"{when} GRPO, {name.replace('_', '-')}",
                    f"{m['em']:.3f}",
                    f"{m['f1']:.3f}",
                    f"{m['searches']:.2f}",
                    f"{m['valid_format']:.3f}",
                    str(m.get("n", "")),
                )
    return table


# -- asking a run ------------------------------------------------------------------------------
def ask_run(run_dir: str | Path, question: str, initial: bool = False) -> Trajectory:
    """One greedy rollout of ``question`` by a demo run's trained policy (``initial``: the
    format-trained one)."""
    from research_rl.config import load_config
    from research_rl.retrieval.index import load_index

    run = Path(run_dir)
    cfg = load_config(run / "demo.yaml", DemoConfig)
    model_dir = run / ("model" if initial else "final_model")
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: no model here (did the demo run finish?)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
