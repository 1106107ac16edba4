"""``research report``'s job: read a run directory, write the HTML page and the PNG figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from research_rl.report.figures import write_figures
from research_rl.report.html import render_html
from research_rl.report.payload import build_payload
from research_rl.report.rundir import read_run


@dataclass
class ReportResult:
    html: Path
    figures: list[Path] = field(default_factory=list)
    trajectories: int = 0  # embedded in the page
    total_trajectories: int = 0  # read from the run
    steps: int = 0
    problems: list[str] = field(default_factory=list)


DEFAULT_MAX_TRAJECTORIES = 20_000  # a page of about 60 MB with realistic passages


def build_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    figures_dir: str | Path | None = None,
    figures: bool = True,
    max_trajectories: int | None = DEFAULT_MAX_TRAJECTORIES,
    allow_different: bool = False,
) -> ReportResult:
    """Write ``out`` (default ``RUN_DIR/report.html``) and, unless ``figures`` is False, the PNGs
    into ``figures_dir`` (default ``RUN_DIR/figures``). At most ``max_trajectories`` rollouts are
    embedded (None: all), shared fairly between steps and evaluation files. Evaluations under
    different protocol cards are refused one table unless ``allow_different``."""
    run = read_run(run_dir)
    payload = build_payload(run, max_trajectories, allow_different)
    out_path = Path(out) if out is not None else run.path / "report.html"
    if out_path.is_dir():  # --out some/dir: the page goes inside it
        out_path = out_path / "report.html"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(render_html(payload.data), encoding="utf-8")
    written: list[Path] = []
    if figures:
        fig_dir = Path(figures_dir) if figures_dir is not None else run.path / "figures"
        # The curves only: the page has the rest, and each PNG costs matplotlib time.
        charts = [*payload.main_charts, *payload.eval_charts]
        written = write_figures(charts, payload.behaviours, fig_dir)
    return ReportResult(
        out_path,
        written,
        len(payload.data["trajectories"]),
        payload.data["total_trajectories"],
        len(run.metrics),
        run.problems,
    )
