"""Two real processes (torch.distributed, gloo, loopback) whose rollouts finish at different turns
on a collective generation backend: with the lockstep every rank makes the same number of
collective calls and the trainer's next collectives see the right data; without it they do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def launch(out: Path, *extra: str) -> tuple[int, list[dict], str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(HERE / "scale_lockstep_worker.py"),
        "--out",
        str(out),
        *extra,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    reports = [
        json.loads((out / f"rank{r}.json").read_text())
        for r in range(2)
        if (out / f"rank{r}.json").exists()
    ]
    return proc.returncode, reports, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_ranks_finishing_at_different_turns_make_the_same_number_of_calls(tmp_path):
    code, reports, log = launch(tmp_path, "--steps", "2")
    assert code == 0, log
    r0, r1 = sorted(reports, key=lambda r: r["rank"])
    assert "error" not in r0 and "error" not in r1
    for s0, s1 in zip(r0["steps"], r1["steps"], strict=True):
        # rank 0 answered in one turn, rank 1 needed three: rank 0 padded with two empty calls
        assert s0["finish"] == ["eos", "eos"] and s0["searches"] == [0, 0]
        assert s1["finish"] == ["eos", "eos"] and s1["searches"] == [2, 2]
        assert (s0["calls"], s0["padding"]) == (3, 2)
        assert (s1["calls"], s1["padding"]) == (3, 0)
        # inserted results are masked out on the rank that searched
        assert all(m > 0 for m in s1["masked"]) and s0["masked"] == [0, 0]
        # the trainer's collectives after the rollout got the right data
        assert s0["grad"] == s1["grad"] == [3.0, 3.0, 3.0]
        assert s0["gathered_rewards"] == s1["gathered_rewards"] == [s0["rewards"], s1["rewards"]]
        assert s0["rewards"] == [1.0, 1.0] and s1["rewards"] == [1.0, 1.0]


@pytest.mark.slow
def test_without_lockstep_the_collectives_mismatch(tmp_path):
    """The control: the same run unwrapped fails (rank 0's gradient all-reduce meets rank 1's
    generation all-gather and times out), so the test above can fail."""
    code, reports, log = launch(tmp_path, "--steps", "1", "--no-lockstep", "--timeout-s", "5")
    ok = (
        code == 0
        and len(reports) == 2
        and all("error" not in r for r in reports)
        and reports[0]["steps"][0]["gathered_rewards"] == [[1.0, 1.0], [1.0, 1.0]]
    )
    assert not ok, log
