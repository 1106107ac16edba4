"""``research rollout``: run search-interleaved rollouts of a model and write them as JSONL.

    research rollout --model PATH --index DIR --questions FILE --n 5 --out FILE.jsonl

One row per rollout: ``Trajectory.to_json()`` (question id, text, search queries, finish reason,
token ids, loss mask, log-probs) with the reward, so a user can watch what a model does with
search before training it. ``--config`` reads a YAML file (``RolloutCommandConfig``); options
given on the command line win over it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import Field

from research_rl.cli.errors import user_errors
from research_rl.config import StrictModel
from research_rl.models import resolve_model
from research_rl.rollout import RolloutConfig


class SamplingConfig(StrictModel):
    temperature: float = Field(1.0, ge=0)  # 0 = greedy
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    seed: int | None = 0


class RolloutCommandConfig(StrictModel):
    """The YAML file ``research rollout --config`` reads."""

    model: str | None = None  # a local directory (or a hub id, for users with hub access)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    index: str | None = None  # an index directory (research index build), searched in-process
    url: str | None = None  # or a `research serve` URL
    questions: str | None = None
    n: int = Field(5, ge=1)
    limit: int | None = Field(None, ge=1)  # the first questions only
    out: str | None = None
    max_batch_size: int = Field(64, ge=1)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)


def _required(value: str | None, name: str) -> str:
    if not value:
        raise typer.BadParameter(f"give --{name} (or '{name}' in the --config file)")
    return value


@user_errors
def rollout(
    model: Annotated[str | None, typer.Option(help="model directory (transformers format)")] = None,
    index: Annotated[str | None, typer.Option(help="index directory, searched in-process")] = None,
    url: Annotated[
        str | None, typer.Option(help="retrieval service URL (instead of --index)")
    ] = None,
    questions: Annotated[
        str | None, typer.Option(help="questions JSONL (id, question, golden_answers)")
    ] = None,
    n: Annotated[int | None, typer.Option(help="rollouts per question")] = None,
    out: Annotated[str | None, typer.Option(help="output JSONL, one trajectory a line")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (RolloutCommandConfig)")] = None,
    template: Annotated[str | None, typer.Option(help="prompt template: base or instruct")] = None,
    template_path: Annotated[
        str | None, typer.Option(help="your template file, with a {question} slot")
    ] = None,
    temperature: Annotated[float | None, typer.Option(help="0 = greedy")] = None,
    top_p: Annotated[float | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    limit: Annotated[int | None, typer.Option(help="only the first N questions")] = None,
) -> None:
    """Roll out a model with search and write its trajectories (with rewards) as JSONL."""
    from research_rl.config import load_config, validate_config, with_overrides
    from research_rl.questions import read_questions
    from research_rl.rollout import PromptTooLongError
    from research_rl.templates import TemplateError

    overrides = {
        k: v
        for k, v in {
            "model": model,
            "index": index,
            "url": url,
            "questions": questions,
            "n": n,
            "out": out,
            "limit": limit,
            "rollout.template": template,
            "rollout.template_path": template_path,
            "sampling.temperature": temperature,
            "sampling.top_p": top_p,
            "sampling.seed": seed,
        }.items()
        if v is not None
    }
    if config is not None:
        cfg = load_config(config, RolloutCommandConfig, overrides)
    else:
        cfg = validate_config(with_overrides({}, overrides), RolloutCommandConfig, "command line")
    model_path = _required(cfg.model, "model")
    questions_path = _required(cfg.questions, "questions")
    out_path = Path(_required(cfg.out, "out"))
    if (cfg.index is None) == (cfg.url is None):
        raise typer.BadParameter("give exactly one of --index or --url")

    qs = read_questions(questions_path, limit=cfg.limit)
    try:
        metrics = _run(cfg, model_path, qs, out_path)
    except (TemplateError, PromptTooLongError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(2) from None
    summary = ", ".join(f"{k}={v:.3g}" for k, v in metrics.items())
    typer.echo(f"wrote {len(qs) * cfg.n} rollouts to {out_path}\n{summary}")


def _run(cfg: RolloutCommandConfig, model_path: str, qs: list, out_path: Path) -> dict[str, float]:
    from transformers import AutoTokenizer

    from research_rl.backends.base import SamplingParams
    from research_rl.backends.factory import open_backend
    from research_rl.backends.settings import BackendSettings
    from research_rl.metrics import batch_metrics
    from research_rl.retrieval import RetrieverConfig, make_retriever
    from research_rl.rollout import RolloutEngine
    from research_rl.run_dir import write_jsonl_atomic

    template = cfg.rollout.load_template()  # a bad template fails before the model loads
    model_path = resolve_model(model_path)  # GGUF
    if not Path(model_path).is_dir() and (
        model_path.startswith((".", "/")) or Path(model_path).suffix
    ):
        raise FileNotFoundError(f"{model_path}: model directory not found")
    retriever = make_retriever(RetrieverConfig(index=cfg.index, url=cfg.url))
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        settings = BackendSettings(path=model_path, dtype=cfg.dtype, batch_size=cfg.max_batch_size)
        engine = RolloutEngine(
            open_backend(settings, tokenizer),
            tokenizer,
            retriever,
            cfg.rollout,
            template,
        )
        s = cfg.sampling
        trajectories = engine.run(
            qs, cfg.n, SamplingParams(s.temperature, s.top_p, s.top_k, s.seed)
        )
    finally:
        retriever.close()
    write_jsonl_atomic(out_path, (t.to_json() for t in trajectories))
    return batch_metrics(trajectories)
