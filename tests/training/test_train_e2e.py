"""End to end: ``research train`` on configs/tiny-cpu.yaml (a tiny Qwen2, the real BM25 index, the
real TRL trainer, the transformers backend) for a few steps on CPU; then a run killed with SIGKILL
mid-step and resumed, which must continue from its newest complete checkpoint with the step count
continuing and the data order (and, on CPU, the very samples) of the uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from research_rl.training import checkpoints

# Three CLI runs of the tiny model (about 1 min each on an idle 2-core CPU, several under load).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "tiny-cpu.yaml"
STEPS = 4  # configs/tiny-cpu.yaml: max_steps 4, save_every 2, eval_every 2, rollouts_every 1
STEP_KEYS = {
    "step", "reward_mean", "reward_std", "f1", "em", "valid_format", "searches_per_rollout",
    "model_tokens_per_rollout", "finish/answer", "finish/eos", "finish/length",
    "finish/max_searches", "finish/retriever_error", "retriever_failed_share", "kl",
    "clip_fraction", "entropy", "learning_rate", "loss",
    "seconds_per_step", "rollout_seconds", "rollout_share",
}  # fmt: skip


def _command(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-c", "from research_rl.cli import main; main()",
        "train", "--config", str(CONFIG), "--output-dir", str(out), *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _train(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _command(out, *extra), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600
    )


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _rollouts(run: Path, step: int) -> list[dict]:
    path = run / "rollouts" / f"step_{step}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("e2e") / "full"
    proc = _train(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_run_directory_holds_every_figure_rollout_and_checkpoint(full_run):
    rows = _metrics(full_run)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for row in rows:
        assert row.keys() >= STEP_KEYS, STEP_KEYS - row.keys()
        assert 0 < row["rollout_share"] < 1
        finishes = ("finish/answer", "finish/eos", "finish/length", "finish/max_searches")
        assert sum(row[k] for k in finishes) == 10  # counts over the step's 10 rollouts
    # greedy validation every 2 steps
    assert {r["step"] for r in rows if "val/reward_mean" in r} == {2, 4}
    # the policy moves away from the frozen reference
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-9) and rows[-1]["kl"] > 0
    for step in range(1, STEPS + 1):
        trajectories = _rollouts(full_run, step)
        assert len(trajectories) == 10 and all(t["step"] == step for t in trajectories)
        assert all(t["reward"] is not None and "text" in t for t in trajectories)
    assert (full_run / "rollouts" / "val" / "step_4.jsonl").is_file()
    assert [s for s, _ in checkpoints.complete_checkpoints(full_run)] == [2, 4]
    state = json.loads((full_run / "checkpoints" / "step_4" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        assert (full_run / "checkpoints" / "step_4" / name).is_file()
    assert list((full_run / "tensorboard").glob("events.out.tfevents.*"))
    assert (full_run / "config.yaml").is_file()
    assert not (full_run / "checkpoints" / checkpoints.PARTIAL_DIR).exists()


def test_a_run_killed_mid_step_resumes_where_it_left_off(full_run, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _command(out), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    marker = out / "checkpoints" / "step_2" / checkpoints.MARKER
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint at step 2 within 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert not (out / "checkpoints" / "step_4").exists(), "the run finished before the kill"
    # A half-written checkpoint newer than step 2 (no marker, garbage weights) and a staging
    # directory left by a kill during a save: neither may be loaded.
    fake = out / "checkpoints" / "step_3"
    fake.mkdir(exist_ok=True)
    (fake / "model.safetensors").write_bytes(b"not a model")
    (out / "checkpoints" / checkpoints.PARTIAL_DIR / "checkpoint-3").mkdir(
        parents=True, exist_ok=True
    )

    resumed = _train(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "trained to step 4" in resumed.stdout
    rows = _metrics(out)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))  # each step logged once
    full = _metrics(full_run)
    for step in (3, 4):  # the steps that ran after the resume
        again, first = _rollouts(out, step), _rollouts(full_run, step)
        assert [t["question_id"] for t in again] == [t["question_id"] for t in first]
        assert [t["text"] for t in again] == [t["text"] for t in first]
        assert rows[step - 1]["loss"] == pytest.approx(full[step - 1]["loss"], rel=1e-4, abs=1e-6)
    assert [s for s, _ in checkpoints.complete_checkpoints(out)] == [2, 4]
    assert not fake.exists() and "removed the incomplete checkpoint" in resumed.stderr


def test_a_replayed_run_gives_the_same_rollouts_without_the_index(full_run, tmp_path):
    """Every search of the run was recorded into <run>/retrieval; replayed from there with the
    index gone, the same seeds give byte-identical rollouts, validation passes and figures."""
    store = full_run / "retrieval"
    recorded = (store / "queries.jsonl").read_text().splitlines()
    assert any(json.loads(line)["hits"] for line in recorded)
    out = tmp_path / "replayed"
    gone = tmp_path / "no-index-here"
    proc = _train(out, "--replay", str(full_run), "--set", f"retriever.index={gone}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted(p.relative_to(full_run) for p in (full_run / "rollouts").rglob("step_*.jsonl"))
    assert len(files) == STEPS + 2  # every step's rollouts and the two validation passes
    for rel in files:
        assert (out / rel).read_bytes() == (full_run / rel).read_bytes(), rel
    timing = {"seconds_per_step", "rollout_seconds", "rollout_share", "peak_rss_gb", "val/seconds"}
    strip = [{k: v for k, v in r.items() if k not in timing} for r in _metrics(out)]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in _metrics(full_run)]
    card = json.loads((out / "rollouts" / "val" / "card.json").read_text())
    assert card["provenance"]["replayed_from"] == str(full_run)
    assert not (out / "retrieval").exists()  # a replay records nothing new
