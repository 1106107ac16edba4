"""PNG curves of a GRPO run's ``metrics.jsonl``: reward, F1, searches and response length."""

from __future__ import annotations

import json
from pathlib import Path

# (metrics key, title, file name)
CURVES = (
    ("reward_mean", "reward (mean over rollouts)", "reward.png"),
    ("f1", "answer F1 (training rollouts)", "f1.png"),
    ("searches_per_rollout", "searches per rollout", "searches.png"),
    ("model_tokens_per_rollout", "response length (model tokens)", "response_length.png"),
)


def read_metrics(path: str | Path) -> list[dict]:
    rows = []
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
    return rows


def _smooth(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_run(metrics_path: str | Path, out_dir: str | Path) -> list[Path]:
    """One PNG per curve in ``out_dir`` (raw steps faint, a moving average bold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, title, name in CURVES:
        points = [(r["step"], float(r[key])) for r in rows if key in r]
        if not points:
            continue
        steps, values = zip(*points, strict=True)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(steps, values, alpha=0.3, color="tab:blue")
        ax.plot(steps, _smooth(list(values), max(1, len(values) // 15)), color="tab:blue")
        ax.set_title(title)
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(out / name)
    return written
