"""``research train``: GRPO training with search."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from research_rl.cli.errors import user_errors
from research_rl.config import parse_set_options


@user_errors
def train(
    config: Annotated[
        Path, typer.Option(help="Training config (YAML), e.g. configs/tiny-cpu.yaml.")
    ],
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Run directory (default: the config's run.output_dir)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run in the output directory from its newest complete checkpoint."
        ),
    ] = False,
    replay: Annotated[
        Path | None,
        typer.Option(
            help="Answer every search from a recorded retrieval store, or the run directory of a "
            "recorded run (its retrieval/); the index and the server are not opened."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: --set grpo.max_steps=10 (repeatable)."),
    ] = None,
) -> None:
    """Train a policy with GRPO on search-interleaved rollouts; metrics, rollouts and checkpoints
    go to the run directory."""
    from research_rl.training.rollouts import TrainingStopped
    from research_rl.training.run import load_train_config
    from research_rl.training.run import train as run_training

    overrides = parse_set_options(set_ or [])
    if replay is not None:
        overrides["run.replay"] = str(replay)
    cfg = load_train_config(config, overrides)
    try:
        result = run_training(cfg, output_dir=output_dir, resume=resume)
    except TrainingStopped as err:  # a non-finite figure, or a retriever that keeps failing
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(1) from None
    where = result.last_checkpoint or "no checkpoint"
    print(f"trained to step {result.final_step}: {result.run_dir} (latest checkpoint: {where})")
