"""``research report``: a self-contained HTML report of a run directory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from research_rl.cli.errors import user_errors
from research_rl.report.build import DEFAULT_MAX_TRAJECTORIES  # light: no matplotlib until used


@user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A training, evaluation or demo run directory.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="HTML file to write (default: RUN_DIR/report.html)."),
    ] = None,
    figures: Annotated[
        bool, typer.Option("--figures/--no-figures", help="Also write the curves as PNG files.")
    ] = True,
    figures_dir: Annotated[
        Path | None, typer.Option(help="Where the PNGs go (default: RUN_DIR/figures).")
    ] = None,
    max_trajectories: Annotated[
        int,
        typer.Option(
            min=0,
            help="Embed at most this many rollouts, shared fairly between steps "
            "and evaluation files (0: all). Behaviour counts always use every rollout.",
        ),
    ] = DEFAULT_MAX_TRAJECTORIES,
    allow_different: Annotated[
        bool,
        typer.Option(
            help="Put evaluations whose protocol cards differ in one table (the differing fields "
            "are listed above it); without it such a report is refused."
        ),
    ] = False,
) -> None:
    """Write one self-contained HTML page (curves, evaluation tables, a trajectory browser and
    flagged behaviours; viewing it needs no network) and the curves as PNG files."""
    from research_rl.report import RunDirError, build_report

    try:
        result = build_report(
            run_dir, out, figures_dir, figures, max_trajectories or None, allow_different
        )
    except RunDirError as err:  # not among user_errors' types: reported the same way
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(2) from None
    for problem in result.problems:
        print(f"warning: skipped {problem}", file=sys.stderr)
    shown = f"{result.trajectories} trajectories"
    if result.trajectories < result.total_trajectories:
        shown += f" of {result.total_trajectories}: raise --max-trajectories to embed more"
    print(f"wrote {result.html} ({result.steps} steps, {shown})")
    if result.figures:
        print(f"wrote {len(result.figures)} figures to {result.figures[0].parent}")
