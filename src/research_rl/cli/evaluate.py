"""``research eval``: evaluate a model with search, without it, or with retrieve-once RAG."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from research_rl.cli.errors import user_errors


@user_errors
def evaluate(
    config: Annotated[
        Path, typer.Option(help="evaluation config (YAML), e.g. configs/eval-tiny.yaml")
    ],
    output_dir: Annotated[str | None, typer.Option(help="overrides output_dir")] = None,
    limit: Annotated[
        int | None, typer.Option(help="overrides limit (questions per dataset)")
    ] = None,
    progress: Annotated[bool, typer.Option(help="show the progress bars")] = True,
) -> None:
    """Evaluate on each dataset with each method; rerunning resumes where the last run stopped."""
    from research_rl.config import load_config
    from research_rl.evaluation.config import EvalConfig, resolve_relative_paths
    from research_rl.evaluation.judge import JudgeError
    from research_rl.evaluation.openai_backend import ServerBackendError
    from research_rl.evaluation.runner import open_evaluation, results_markdown
    from research_rl.rollout import PromptTooLongError
    from research_rl.templates import TemplateError

    overrides: dict[str, object] = {}
    if output_dir is not None:
        overrides["output_dir"] = output_dir
    if limit is not None:
        overrides["limit"] = limit
    cfg = resolve_relative_paths(load_config(config, EvalConfig, overrides), config.parent)
    try:
        evaluation = open_evaluation(cfg, progress=progress)
        table = evaluation.run()
    except (ServerBackendError, JudgeError, PromptTooLongError, TemplateError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(2) from None
    typer.echo(results_markdown(table))
    typer.echo(f"predictions and results in {cfg.output_dir}")
