"""``research demo`` and ``research ask``: the embedded default run and asking its model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from research_rl.cli.errors import user_errors
from research_rl.config import parse_set_options

STYLES = {
    "think": "dim",
    "search": "bold yellow",
    "result": "cyan",
    "answer": "bold green",
    "other": "",
}


@user_errors
def demo(
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir", "-o", help="Run directory (default: runs/demo-<date>-<time>)."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of everything (default: the config's).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="GRPO steps (default: the config's).")] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Demo config YAML (default: configs/demo.yaml)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: --set world.people=100 (repeatable)."),
    ] = None,
) -> None:
    """Learn to search on a synthetic world on a laptop CPU: world, index, tiny policy,
    pre-training, held-out evaluation, GRPO, evaluation again, plots and a before/after table."""
    from research_rl.demo.run import load_demo_config, run_demo

    overrides = parse_set_options(set_ or [])
    if steps is not None:
        overrides["grpo.max_steps"] = steps
    cfg = load_demo_config(config, overrides).seeded(seed)
    out = output_dir or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    run_demo(cfg, out)


@user_errors
def ask(
    question: Annotated[str, typer.Argument(help="The question to ask.")],
    run: Annotated[Path, typer.Option(help="A demo run directory.")],
    initial: Annotated[
        bool, typer.Option(help="Ask the format-trained model (before GRPO) instead.")
    ] = False,
) -> None:
    """Answer a question with a demo run's trained model, showing its searches and results."""
    from rich.console import Console
    from rich.text import Text

    from research_rl import tags
    from research_rl.demo.run import ask_run

    traj = ask_run(run, question, initial=initial)
    text = Text()
    for seg in tags.parse_segments(traj.text):
        text.append(traj.text[seg.start : seg.end], style=STYLES.get(seg.kind, ""))
    console = Console()
    console.print(Text(f"Q: {question}", style="bold"))
    console.print(text)
    from research_rl.reward import extract_prediction

    prediction = extract_prediction(traj.text, traj.profile, traj.truncated)
    console.print(
        f"[bold]answer:[/] {prediction.strip() if prediction else '(none)'}   "
        f"[bold]searches:[/] {traj.num_searches}   [bold]finish:[/] {traj.finish_reason}"
    )
