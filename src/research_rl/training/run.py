"""The training entry point: ``train(config, output_dir, resume)``, called by ``research train``
and by the demo.

Run directory (docs/contracts.md): ``config.yaml``, ``metrics.jsonl``, ``rollouts/step_N.jsonl``
(validation trajectories under ``rollouts/val/``), ``checkpoints/step_N/``, ``tensorboard/``.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from research_rl.backends.base import SamplingParams
from research_rl.backends.factory import BackendFactory, trainer_backend_factory
from research_rl.config import ConfigError, dump_config, load_config, validate_config
from research_rl.evaluation.card import retrieval_section, validation_card, write_card
from research_rl.evaluation.replay import (
    STORE_DIR,
    RecordingRetriever,
    ReplayRetriever,
    RetrievalStore,
    resolve_store,
)
from research_rl.models import with_resolved_model
from research_rl.questions import Question, QuestionFileError, read_questions
from research_rl.retrieval import make_retriever
from research_rl.retrieval.config import RetrieverConfig
from research_rl.rollout import RolloutEngine
from research_rl.run_dir import CARD, CHECKPOINTS, METRICS, ROLLOUTS, iter_jsonl, write_jsonl_atomic
from research_rl.training import checkpoints
from research_rl.training.config import (
    TrainConfig,
    grpo_args,
    no_accelerator,
    resolve_relative_paths,
)
from research_rl.training.memory import fit_memory
from research_rl.training.rollouts import (
    RolloutFunction,
    TrainingStopped,
    generation_model,
    research_reward,
)

TESTED_TRL = "1.16.0"  # pinned in pyproject.toml; TRL's rollout_func hook is experimental


@dataclass
class TrainResult:
    run_dir: Path
    final_step: int
    last_checkpoint: Path | None


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    cfg = load_config(path, TrainConfig, overrides)
    return resolve_relative_paths(cfg, Path(path).resolve().parent)


def _read_unique_questions(path: str, limit: int | None) -> list[Question]:
    questions = read_questions(path, limit=limit)
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise QuestionFileError(f"{path}: question id {q.id!r} appears more than once")
        seen.add(q.id)
    if not questions:
        raise QuestionFileError(f"{path}: no questions")
    return questions


# -- run directory ---------------------------------------------------------------------------
_ROLLOUT_RE = re.compile(r"^step_(\d+)\.jsonl$")


def _forget_after(run_dir: Path, step: int) -> None:
    """Drop what a killed run logged past the checkpoint it resumes from: those steps rerun."""
    metrics = run_dir / METRICS
    if metrics.is_file():
        problems: list[str] = []  # lines cut by the kill
        kept = [
            row for _, row in iter_jsonl(metrics, problems=problems) if row.get("step", 0) <= step
        ]
        write_jsonl_atomic(metrics, kept)
    for folder in (run_dir / ROLLOUTS, run_dir / ROLLOUTS / "val"):
        if folder.is_dir():
            for p in folder.iterdir():
                m = _ROLLOUT_RE.match(p.name)
                if m and int(m.group(1)) > step:
                    p.unlink()


def prepare_run_dir(run_dir: Path, cfg: TrainConfig, resume: bool) -> Path | None:
    """Create or reopen the run directory; return the checkpoint to resume from, if any."""

    resume_from = None
    if resume:
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: no run directory to resume")
        for broken in checkpoints.clear_partial(run_dir):
            print(f"note: removed the incomplete checkpoint {broken}", file=sys.stderr)
        resume_from = checkpoints.latest_checkpoint(run_dir)
        step = int(resume_from.name.split("_")[1]) if resume_from else 0
        _forget_after(run_dir, step)
        saved = run_dir / "config.yaml"
        if saved.is_file():
            old = validate_config(yaml.safe_load(saved.read_text()), TrainConfig, str(saved))
            changed = _diff(old.model_dump(mode="json"), cfg.model_dump(mode="json"))
            if changed:
                print(
                    f"warning: resuming with a changed config: {', '.join(changed)}",
                    file=sys.stderr,
                )
        if resume_from is None:
            print(
                f"note: {run_dir} has no complete checkpoint yet; starting from step 0",
                file=sys.stderr,
            )
    else:
        if (run_dir / METRICS).exists() or (run_dir / CHECKPOINTS).exists():
            raise ConfigError(
                f"{run_dir}: already holds a run; pass --resume to continue it or choose another "
                "--output-dir"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / "config.yaml")
    return resume_from


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


# -- building the trainer --------------------------------------------------------------------
def default_backend_factory(cfg: TrainConfig, tokenizer: Any) -> BackendFactory:
    return trainer_backend_factory(cfg.generation, tokenizer)


def retriever_name(cfg: RetrieverConfig, given: Any = None) -> str:
    """How a message names the retriever: the URL or index directory of the config, or for a
    retriever given instead, its URL or its class."""
    if given is not None:
        url = getattr(given, "url", None)
        return f"the retriever at {url}" if url else f"the retriever {type(given).__name__}"
    return f"the retriever at {cfg.url}" if cfg.url is not None else f"the index {cfg.index}"


def open_retrieval(cfg: TrainConfig, run_dir: Path, given: Any = None) -> tuple[Any, dict]:
    """The rollouts' retriever and the card's retrieval section. Live (``given``, or the one the
    config names), every search is recorded into ``run.retrieval_store`` (default
    ``<run>/retrieval``); with ``run.replay`` every search is answered from that store alone."""
    if cfg.run.replay is not None:
        store = RetrievalStore(resolve_store(cfg.run.replay))
        return ReplayRetriever(store), {**store.retriever, "where": None}
    retrieval = retrieval_section(cfg.retriever.index, cfg.retriever.url)
    identity = {k: retrieval[k] for k in ("retriever", "corpus")}
    store = RetrievalStore(cfg.run.retrieval_store or run_dir / STORE_DIR, identity)
    return RecordingRetriever(given or make_retriever(cfg.retriever), store), retrieval


def _peft_config(cfg: TrainConfig):
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def build_trainer(
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    backend_factory: BackendFactory | None = None,
    retriever: Any = None,
):
    """The TRL trainer wired to the core: (trainer, rollout function, validator or None)."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # the rollout hook is pinned and tested
    import trl

    if trl.__version__ != TESTED_TRL:
        warnings.warn(
            f"trl {trl.__version__} is installed; the rollout hook and its loss mask were tested "
            f"with trl {TESTED_TRL} (run tests/training/test_trl_equivalence.py)",
            stacklevel=2,
        )
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import AutoTokenizer

    from research_rl.training.trainer import ResearchGRPOTrainer

    run_dir = Path(run_dir)
    cfg = fit_memory(with_resolved_model(cfg))  # GGUF: import once; a micro-batch that fits
    train_qs = _read_unique_questions(cfg.data.train, cfg.data.max_train_questions)
    if len(train_qs) < cfg.grpo.questions_per_step:
        raise ConfigError(
            f"grpo.questions_per_step is {cfg.grpo.questions_per_step} but {cfg.data.train} has "
            f"only {len(train_qs)} questions"
        )
    tokenizer = AutoTokenizer.from_pretrained(
        cfg.model.tokenizer or cfg.model.path, trust_remote_code=cfg.model.trust_remote_code
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    name = retriever_name(cfg.retriever, retriever)
    retriever, retrieval = open_retrieval(cfg, run_dir, retriever)
    if cfg.run.replay is not None:
        name = f"the replay of {cfg.run.replay}"
    engine = RolloutEngine(None, tokenizer, retriever, cfg.rollout)  # backend given per run
    factory = backend_factory or default_backend_factory(cfg, tokenizer)
    rollout_func = RolloutFunction(
        {q.id: q for q in train_qs},
        engine,
        factory,
        cfg.grpo.seed,
        max_failed_share=cfg.retriever.max_failed_share,
        retriever_name=name,
    )
    dataset = Dataset.from_dict(
        {"prompt": [q.id for q in train_qs], "golden_answers": [q.golden_answers for q in train_qs]}
    )
    args = grpo_args(
        cfg,
        checkpoints.checkpoints_dir(run_dir) / checkpoints.PARTIAL_DIR,
        # cpu= must be decided here, first: under torchrun without a GPU a plain PartialState()
        # settles on a single process and the ranks would each think they are alone.
        world_size=PartialState(cpu=no_accelerator()).num_processes,
    )
    trainer = ResearchGRPOTrainer(
        model=cfg.model.path,
        reward_funcs=[research_reward],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        rollout_func=rollout_func,
        peft_config=_peft_config(cfg),
        run_dir=run_dir,
        keep_checkpoints=cfg.run.keep_checkpoints,
    )
    validator = None
    if cfg.data.validation:
        val_qs = _read_unique_questions(cfg.data.validation, cfg.data.max_validation_questions)
        validator = _make_validator(trainer, engine, factory, val_qs, cfg)
        if trainer.accelerator.is_main_process:  # what produced the val/ figures, beside them
            card = validation_card(cfg, val_qs, retrieval, replayed_from=cfg.run.replay)
            write_card(run_dir / ROLLOUTS / "val" / CARD, card)
    return trainer, rollout_func, validator


def _make_validator(trainer, engine, factory, questions: list[Question], cfg: TrainConfig):
    """Greedy rollouts (one per question) on this rank's share of the validation questions."""

    def validate():
        state = trainer.accelerator
        mine = questions[state.process_index :: state.num_processes]
        if trainer.args.use_vllm:  # the engine holds the weights of the last rollout: refresh
            trainer.vllm_generation.sync_weights()
        greedy = SamplingParams(temperature=0.0)
        with generation_model(trainer) as model:
            trajectories = engine.run(mine, n=1, sampling=greedy, backend=factory(trainer, model))
        return trajectories

    return validate


# -- the entry point -------------------------------------------------------------------------
def train(
    config: TrainConfig | str | Path,
    output_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Any] | None = None,
    backend_factory: BackendFactory | None = None,
    retriever: Any = None,
) -> TrainResult:
    """Train with GRPO. ``callbacks``: transformers ``TrainerCallback`` objects, or plain callables
    that get each step's metrics record (a dict, as written to metrics.jsonl). ``retriever``: a
    ``Retriever`` to use instead of the one ``cfg.retriever`` names (closed at the end)."""
    from transformers import PrinterCallback, TrainerCallback

    from research_rl.training.callbacks import RunMonitor

    cfg = config if isinstance(config, TrainConfig) else load_train_config(config)
    target = output_dir or cfg.run.output_dir
    if target is None:
        raise ConfigError("no output directory: pass --output-dir or set run.output_dir")
    run_dir = Path(target)
    if output_dir is not None:
        cfg = cfg.model_copy(deep=True)
        cfg.run.output_dir = str(run_dir)
    if cfg.run.wandb:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ConfigError(
                "run.wandb is true but wandb is not installed (pip install wandb)"
            ) from None

    resume_from = prepare_run_dir(run_dir, cfg, resume)
    trainer, rollout_func, validator = build_trainer(
        cfg, run_dir, backend_factory=backend_factory, retriever=retriever
    )
    hooks = [c for c in callbacks or [] if not isinstance(c, TrainerCallback)]
    monitor = RunMonitor(
        run_dir,
        rollout_func,
        validator=validator,
        eval_every=cfg.run.eval_every,
        rollouts_every=cfg.run.rollouts_every,
        rollouts_per_dump=cfg.run.rollouts_per_dump,
        tensorboard=cfg.run.tensorboard,
        wandb_project=cfg.run.wandb_project if cfg.run.wandb else None,
        run_name=cfg.run.run_name,
        progress=cfg.run.progress,
        config_dict=cfg.model_dump(mode="json"),
        extra=hooks,
    )
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts; the monitor reports
    trainer.add_callback(monitor)
    for cb in callbacks or []:
        if isinstance(cb, TrainerCallback):
            trainer.add_callback(cb)
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except TrainingStopped as err:  # a non-finite figure, or too many retriever failures
        last = checkpoints.latest_checkpoint(run_dir)
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        raise type(err)(f"{err}: training stopped; {kept}") from None
    finally:
        monitor.close()
        rollout_func.engine.retriever.close()
    # Once every rank has left train(): a rank still listing checkpoints/.partial at the end of
    # transformers' loop failed when another rank removed it under it. After an error the
    # staging directory stays until the next start clears it (nothing ever loads it).
    trainer.accelerator.wait_for_everyone()
    if trainer.args.should_save:
        checkpoints.clear_partial(run_dir)
    return TrainResult(run_dir, trainer.state.global_step, checkpoints.latest_checkpoint(run_dir))
