"""The TRL adapter in two CPU processes (torchrun, gloo, loopback) with collective generation,
where in every step one rank finishes its rollouts two turns before the other."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.slow
def test_two_process_trl_training_with_ranks_finishing_at_different_turns(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(HERE / "scale_trl_worker.py"),
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    # Each rank's own lines first: the launcher's traceback after them can hide the cause.
    ranks = [line for line in proc.stderr.splitlines() if line.startswith("[rank")]
    assert proc.returncode == 0, "\n".join(ranks[-60:]) + proc.stderr[-2000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))

    assert r0["final_step"] == r1["final_step"] == 2
    # Every step: the same number of collective generation calls on both ranks, and the rank
    # holding the question answered at once padded with exactly two empty calls.
    assert r0["calls"] == r1["calls"] == [3, 3]
    for p0, p1 in zip(r0["padding"], r1["padding"], strict=True):
        assert sorted([p0, p1]) == [0, 2]

    records = r0["metrics"]
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        assert math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"])
        assert r["finish/answer"] == 10  # both ranks' rollouts, gathered: all answered
        assert r["searches_per_rollout"] == 1.0  # 0 on one rank, 2 on the other
        assert r["reward_std"] > 0  # right and wrong answers in each group: a real gradient
    assert records[1]["kl"] > 0  # the policy moved after the first update
