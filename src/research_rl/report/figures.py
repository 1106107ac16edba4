"""The report's curves as PNG files (matplotlib, no display needed) for terminal users."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from research_rl.report.curves import Chart

# Training lines and validation markers share a colour per metric, as in the HTML page.
_COLOURS = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2")


def _draw(ax: Any, chart: Chart) -> None:
    colour_of: dict[str, str] = {}
    for line in chart.lines:
        base = line.key.removeprefix("val/")
        colour = colour_of.setdefault(base, _COLOURS[len(colour_of) % len(_COLOURS)])
        if line.validation:
            ax.plot(
                line.steps,
                line.values,
                linestyle="none",
                marker="D",
                markersize=5,
                color=colour,
                markeredgecolor="black",
                markeredgewidth=0.6,
                label=line.key,
            )
        else:
            ax.plot(
                line.steps,
                line.values,
                color=colour,
                linewidth=1.4,
                marker="." if len(line.steps) < 30 else None,
                label=line.key,
            )
    ax.set_title(chart.title, fontsize=10)
    ax.set_xlabel(chart.x_label, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if len(chart.lines) > 1:
        ax.legend(fontsize=7)


def _save(fig: Any, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def write_figures(
    charts: Sequence[Chart], behaviour_chart: Chart | None, out_dir: Path
) -> list[Path]:
    """One PNG per chart, ``curves.png`` with the main ones side by side, and ``behaviours.png``;
    returns the files written (none when there is nothing to plot)."""
    from matplotlib.figure import Figure  # Figure + Agg canvas: no global pyplot/backend state

    drawable = [c for c in charts if c.lines]
    if behaviour_chart is not None and behaviour_chart.lines:
        drawable.append(behaviour_chart)
    if not drawable:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in drawable:
        fig = Figure(figsize=(5, 3.2))
        # Fixed margins: constrained layout doubles the drawing time for no visible gain here.
        fig.subplots_adjust(left=0.13, right=0.97, bottom=0.15, top=0.9)
        _draw(fig.add_subplot(), chart)
        written.append(_save(fig, out_dir / f"{chart.name}.png"))
    cols = 3
    rows = -(-len(drawable) // cols)
    fig = Figure(figsize=(5 * cols, 3.2 * rows))
    fig.subplots_adjust(
        left=0.05, right=0.98, bottom=0.06 / rows, top=1 - 0.08 / rows, wspace=0.22, hspace=0.45
    )
    for i, chart in enumerate(drawable):
        _draw(fig.add_subplot(rows, cols, i + 1), chart)
    written.append(_save(fig, out_dir / "curves.png"))
    return written
