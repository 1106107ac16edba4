"""The whole demo pipeline on a tiny schedule (seconds, not learning): every stage runs through the
CLI, the run directory holds what docs/demo.md lists, and ``research ask`` answers from the trained
checkpoint and from the pre-trained model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from research_rl.cli import app

pytestmark = pytest.mark.slow

TINY = {
    "world.countries": 3,
    "world.cities": 8,
    "world.people": 16,
    "world.films": 16,
    "world.test_per_hops": 4,
    "vocab_size": 600,
    "pretraining.copy_steps": 5,
    "pretraining.format_steps": 20,
    "grpo.max_steps": 2,
    "grpo.questions_per_step": 2,
    "grpo.group_size": 4,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    args = ["demo", "-o", str(out), "--seed", "1"]
    for key, value in TINY.items():
        args += ["--set", f"{key}={value}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_the_run_directory_holds_every_stage(run):
    out, printed = run
    for name in ("demo.yaml", "prompt.txt", "metrics.jsonl", "summary.json", "config.yaml"):
        assert (out / name).is_file(), name
    for name in ("corpus.jsonl", "train.jsonl", "test.jsonl", "world.json"):
        assert (out / "world" / name).is_file(), name
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "checkpoints" / "step_2" / "model.safetensors").is_file()
    assert (out / "plots" / "reward.png").is_file() and (out / "plots" / "curves.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 1 and summary["steps"] == 2
    for phase in ("before", "after"):
        assert {summary[phase][h]["n"] for h in ("one_hop", "two_hop")} == {4}
        assert len((out / "eval" / f"{phase}.jsonl").read_text().splitlines()) == 8
    assert "before → after GRPO" in printed
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "reward_mean" in m] == [1, 2]


def test_ask_answers_from_the_trained_and_the_pretrained_policy(run):
    out, _ = run
    question = json.loads((out / "world" / "test.jsonl").read_text().splitlines()[0])["question"]
    for extra in ([], ["--initial"]):
        result = CliRunner().invoke(app, ["ask", question, "--run", str(out), *extra])
        assert result.exit_code == 0, result.output
        assert f"Q: {question}" in result.output and "searches:" in result.output
