"""A non-finite reward or loss stops the run with a message and keeps the last good checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.reward import Reward
from research_rl.training import checkpoints, rollouts
from research_rl.training.trainer import ResearchGRPOTrainer

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"
PER_STEP = 10  # configs/tiny-cpu.yaml: 2 questions x group of 5


def _run(out: Path):
    # 3 steps, a checkpoint every 2: the bad third step must not touch step_2's checkpoint.
    args = ["train", "--config", str(CONFIG), "--output-dir", str(out), "--set", "grpo.max_steps=3"]
    args += ["--set", "run.eval_every=10", "--set", "run.progress=false"]
    return CliRunner().invoke(app, args)


def _check_stopped_after_step_2(out: Path, result, what: str) -> None:
    assert result.exit_code == 1, result.output
    assert "error: step 3" in result.output and what in result.output
    assert f"the last good checkpoint is {out / 'checkpoints' / 'step_2'}" in result.output
    assert [s for s, _ in checkpoints.complete_checkpoints(out)] == [2]
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_a_nan_reward_stops_the_run(tmp_path, monkeypatch):
    real_score = rollouts.score
    calls = {"n": 0}

    def score(text, golden, truncated=False):
        calls["n"] += 1
        if calls["n"] > 2 * PER_STEP:  # the third step's rewards
            return Reward(float("nan"), 0.0, 0.0, False, "poisoned")
        return real_score(text, golden, truncated)

    monkeypatch.setattr(rollouts, "score", score)
    out = tmp_path / "run"
    _check_stopped_after_step_2(out, _run(out), "reward is nan")


def test_a_nan_loss_stops_the_run_before_the_optimiser_step(tmp_path, monkeypatch):
    real = ResearchGRPOTrainer.compute_loss

    def compute_loss(self, model, inputs, *args, **kwargs):
        loss = real(self, model, inputs, *args, **kwargs)
        return loss * torch.nan if self.state.global_step == 2 else loss

    monkeypatch.setattr(ResearchGRPOTrainer, "compute_loss", compute_loss)
    out = tmp_path / "run"
    _check_stopped_after_step_2(out, _run(out), "the loss is nan")


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_research_reward_refuses_non_finite_values(monkeypatch, value):
    monkeypatch.setattr(rollouts, "score", lambda *a, **k: Reward(float(value), 0, 0, False, "x"))
    with pytest.raises(rollouts.NonFiniteError, match=f"reward is {value}"):
        rollouts.research_reward([], ["t"], [["a"]], [False])
