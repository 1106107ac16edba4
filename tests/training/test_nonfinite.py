"""A non-finite reward or loss stops the run with a message and keeps the last good checkpoint.

The runs here use the real trainer on configs/tiny-cpu.yaml with a scripted generation backend (so
they take seconds); the transformers backend is exercised by test_train_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from research_rl.backends.scripted import ScriptedBackend
from research_rl.cli import app
from research_rl.reward import Reward
from research_rl.training import checkpoints, rollouts
from research_rl.training.run import load_train_config, train
from research_rl.training.trainer import ResearchGRPOTrainer

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"
PER_STEP = 10  # configs/tiny-cpu.yaml: 2 questions x group of 5
SCRIPTS = [
    [
        "<think> a </think> <search> Kalo </search>",
        " <think> b </think> <answer> \\boxed{Kaloton} </answer>",
    ],
    [
        "<think> a </think> <search> Nowhere </search>",
        " <think> c </think> <answer> \\boxed{Nowhere} </answer>",
    ],
]


def _train(out: Path):
    # 3 steps, a checkpoint every 2: the bad third step must leave step_2's checkpoint alone.
    cfg = load_train_config(
        CONFIG, {"grpo.max_steps": 3, "run.eval_every": 10, "run.progress": False}
    )
    backend: dict[str, ScriptedBackend] = {}

    def factory(trainer, model):
        return backend.setdefault("b", ScriptedBackend(trainer.processing_class, default=SCRIPTS))

    return train(cfg, output_dir=out, backend_factory=factory)


def _check_stopped_after_step_2(out: Path, err: Exception, what: str) -> None:
    message = str(err)
    assert message.startswith("step 3") and what in message
    assert f"the last good checkpoint is {out / 'checkpoints' / 'step_2'}" in message
    assert [s for s, _ in checkpoints.complete_checkpoints(out)] == [2]
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_a_nan_reward_stops_the_run(tmp_path, monkeypatch):
    real_score = rollouts.score
    calls = {"n": 0}

    def score(text, golden, truncated=False, **rules):
        calls["n"] += 1
        if calls["n"] > 2 * PER_STEP:  # the third step's rewards
            return Reward(float("nan"), 0.0, 0.0, False, "poisoned")
        return real_score(text, golden, truncated, **rules)

    monkeypatch.setattr(rollouts, "score", score)
    with pytest.raises(rollouts.NonFiniteError) as err:
        _train(tmp_path / "run")
    _check_stopped_after_step_2(tmp_path / "run", err.value, "reward is nan")


def test_a_nan_loss_stops_the_run_before_the_optimiser_step(tmp_path, monkeypatch):
    real = ResearchGRPOTrainer.compute_loss
    seen = {}

    def compute_loss(self, model, inputs, *args, **kwargs):
        loss = real(self, model, inputs, *args, **kwargs)
        if self.state.global_step == 2:
            seen["weights"] = [p.detach().clone() for p in model.parameters()]
            seen["model"] = model
            return loss * torch.nan
        return loss

    monkeypatch.setattr(ResearchGRPOTrainer, "compute_loss", compute_loss)
    with pytest.raises(rollouts.NonFiniteError) as err:
        _train(tmp_path / "run")
    _check_stopped_after_step_2(tmp_path / "run", err.value, "the loss is nan")
    # no optimiser step was taken with the NaN gradients
    after = list(seen["model"].parameters())
    assert all(torch.equal(a, b) for a, b in zip(seen["weights"], after, strict=True))
    assert all(torch.isfinite(p).all() for p in after)


def test_the_cli_reports_the_stop_and_exits_1(tmp_path, monkeypatch):
    import research_rl.training.run as run

    def stop(*args, **kwargs):
        raise rollouts.NonFiniteError(
            "step 7: the loss is nan: training stopped; the last good checkpoint is X"
        )

    monkeypatch.setattr(run, "train", stop)
    result = CliRunner().invoke(
        app, ["train", "--config", str(CONFIG), "--output-dir", str(tmp_path / "run")]
    )
    assert result.exit_code == 1
    assert "error: step 7: the loss is nan" in result.output


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_research_reward_refuses_non_finite_values(monkeypatch, value):
    monkeypatch.setattr(rollouts, "score", lambda *a, **k: Reward(float(value), 0, 0, False, "x"))
    with pytest.raises(rollouts.NonFiniteError, match=f"reward is {value}"):
        rollouts.research_reward([], ["t"], [["a"]], [False])
