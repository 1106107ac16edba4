"""The issue's "done when": a report of a *real* small run (the tiny CPU config through the real
trainer, retriever and rollout engine), written by the CLI and rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from report_driver import JS_HELPERS, assert_offline_and_clean, open_report

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, "-c", "from research_rl.cli import main; main()", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_report_of_a_real_tiny_training_run(browser, tmp_path):
    run_dir = tmp_path / "tiny"
    trained = _cli(
        "train",
        "--config",
        "configs/tiny-cpu.yaml",
        "--output-dir",
        str(run_dir),
        "--set",
        "grpo.max_steps=2",
        "--set",
        "run.eval_every=2",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    reported = _cli("report", str(run_dir))
    assert reported.returncode == 0, reported.stderr
    html = run_dir / "report.html"
    assert (run_dir / "figures" / "reward.png").is_file()

    assert_offline_and_clean(open_report(browser, html), html)
    browser.evaluate(JS_HELPERS)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [
        json.loads(line)
        for line in (run_dir / "rollouts" / "step_2.jsonl").read_text().splitlines()
    ]
    page = browser.evaluate("""({
        charts: Array.from(document.querySelectorAll('#main-charts .chart'))
          .map(c => c.dataset.chart),
        lines: document.querySelectorAll('#main-charts path.line').length,
        val: document.querySelectorAll('#main-charts rect.val-point').length,
        shown: +document.documentElement.dataset.shown, rows: __t.rows().length,
        segments: document.querySelectorAll('#detail .seg').length,
        question: document.querySelector('#detail h3').textContent})""")
    assert {"reward", "f1", "valid_format", "searches", "model_tokens", "kl", "entropy"} <= set(
        page["charts"]
    )
    assert page["lines"] >= 7 and page["val"] >= 1 and len(metrics) == 2
    assert page["shown"] == page["rows"] == len(rows) > 0
    assert page["question"] == rows[0]["question"] and page["segments"] >= 1
    finish = rows[0]["finish_reason"]
    state = browser.evaluate(f"__t.set('f-finish', '{finish}')")
    assert state["shown"] == sum(r["finish_reason"] == finish for r in rows)
    assert_offline_and_clean(browser.drain_events(), html)
