"""``research eval``: evaluate a model with search, without it, or with retrieve-once RAG;
``research eval compare``: put evaluation runs side by side and test their difference."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from research_rl.cli.errors import user_errors

app = typer.Typer(
    help="Evaluate a model (research eval --config FILE), or compare runs (research eval compare).",
    invoke_without_command=True,
    no_args_is_help=False,
)


@app.callback()
@user_errors
def evaluate(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option(help="evaluation config (YAML), e.g. configs/eval-tiny.yaml")
    ] = None,
    output_dir: Annotated[str | None, typer.Option(help="overrides output_dir")] = None,
    limit: Annotated[
        int | None, typer.Option(help="overrides limit (questions per dataset)")
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(min=1, help="overrides seeds: sampled runs per question (needs temperature)"),
    ] = None,
    replay: Annotated[
        str | None,
        typer.Option(
            help="answer every search from this recorded retrieval store (or the run directory "
            "that holds it): no index, no retrieval server"
        ),
    ] = None,
    retrieval_store: Annotated[
        str | None, typer.Option(help="overrides retrieval_store: where searches are recorded")
    ] = None,
    progress: Annotated[bool, typer.Option(help="show the progress bars")] = True,
) -> None:
    """Evaluate on each dataset with each method; rerunning resumes where the last run stopped.
    Writes the predictions, the tables (with intervals and cost), the protocol card and the
    recorded retrieval."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        print(
            "error: missing option '--config' (or use: research eval compare RUN RUN)",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    from research_rl.config import load_config
    from research_rl.evaluation.config import EvalConfig, resolve_relative_paths
    from research_rl.evaluation.runner import open_evaluation, seconds_per_question
    from research_rl.evaluation.tables import results_markdown

    overrides: dict[str, object] = {}
    for key, value in (
        ("output_dir", output_dir),
        ("limit", limit),
        ("seeds", seeds),
        ("replay", replay),
        ("retrieval_store", retrieval_store),
    ):
        if value is not None:
            overrides[key] = value
    cfg = resolve_relative_paths(load_config(config, EvalConfig, overrides), config.parent)
    evaluation = open_evaluation(cfg, progress=progress)  # errors: user_errors reports them
    table = evaluation.run()
    seconds = seconds_per_question(evaluation.timings)
    typer.echo(results_markdown(table, seconds, cfg.stats.confidence))
    typer.echo(f"predictions, results and the protocol card (card.json) in {cfg.output_dir}")


@app.command("compare")
@user_errors
def compare(
    runs: Annotated[list[Path], typer.Argument(help="evaluation output directories")],
    allow_different: Annotated[
        bool,
        typer.Option(
            help="tabulate runs whose protocol cards differ (the differing fields are listed)"
        ),
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the comparison as JSON here")
    ] = None,
) -> None:
    """Put evaluation runs in one table (only under one protocol card unless --allow-different);
    for two runs, a paired test per dataset says whether their difference is significant."""
    import json

    from research_rl.evaluation.compare import compare as run_compare
    from research_rl.evaluation.compare import comparison_markdown

    comparison = run_compare(runs, allow_different=allow_different)
    typer.echo(comparison_markdown(comparison))
    if json_out is not None:
        json_out.write_text(json.dumps(comparison.to_json(), indent=2) + "\n", encoding="utf-8")
