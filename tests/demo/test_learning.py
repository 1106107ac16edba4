"""The demo learns: a shortened schedule of the real pipeline (``research demo``: world, format
training, GRPO through ``research train``'s code path, greedy held-out evaluation) must clearly
raise held-out F1 on both question types, for two seeds. A flipped advantage sign, a result mask
letting retrieved tokens into the loss, or a broken reward cannot pass.

The two seeds run at once, as two ``research demo`` processes of one CPU thread each: the suite
waits for the slower of them, not for their sum."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from research_rl.demo.run import DemoConfig

pytestmark = pytest.mark.slow

SEEDS = (0, 1)
# The world, format stage and KL coefficient this test was measured on (the demo's former defaults:
# 150 people, 150 films, 8 countries, one distractor per passage, transcripts searching twice most
# often, KL 1e-3), pinned so that a change of the demo's defaults does not silently change it, and
# GRPO cut to a third of the default 300 steps. In that world both hops gain within 100 steps; in
# the default one the second hop comes later (sampled two-hop F1 0.17-0.44 over steps 51-100 on
# seeds 0 and 1, 0.70-0.84 over 151-200: docs/demo.md), and a longer schedule would more than
# double the suite's time. One-hop questions are learnt first, so the two-hop bar is lower.
# Measured (CI, clean clone), held-out F1 before -> after: seed 0 0.04 -> 0.56 / 0.14 -> 0.28,
# seed 1 0.06 -> 0.58 / 0.24 -> 0.40, searches 1.00 / 2.00 after; 12-14.5 minutes for both.
SHORT = {
    "world": {"countries": 8, "cities": 30, "people": 150, "films": 150, "distractors": 1},
    "format_training": {"search_count_probs": [0.05, 0.15, 0.6, 0.2]},
    "grpo": {"max_steps": 100, "beta": 0.001},
    "threads": 1,
}
MIN_GAIN = {"one_hop": 0.3, "two_hop": 0.1}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("learning")
    config = root / "short.yaml"
    config.write_text(yaml.safe_dump(DemoConfig.model_validate(SHORT).model_dump(mode="json")))
    procs = {}
    for seed in SEEDS:
        cmd = [
            sys.executable,
            "-m",
            "research_rl",
            "demo",
            "--config",
            str(config),
            "--seed",
            str(seed),
            "--output-dir",
            str(root / f"seed{seed}"),
        ]
        with (root / f"seed{seed}.log").open("w") as log:  # the child keeps its own descriptor
            procs[seed] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "120"}
            )
    for seed, proc in procs.items():
        proc.wait()
        tail = (root / f"seed{seed}.log").read_text()[-3000:]
        assert proc.returncode == 0, f"research demo --seed {seed} failed:\n{tail}"
    return {seed: root / f"seed{seed}" for seed in SEEDS}


@pytest.mark.parametrize("seed", SEEDS)
def test_grpo_raises_heldout_f1_on_both_question_types(runs, seed):
    run = runs[seed]
    summary = json.loads((run / "summary.json").read_text())
    before, after = summary["before"], summary["after"]
    for kind, gain in MIN_GAIN.items():
        assert after[kind]["f1"] >= before[kind]["f1"] + gain, (kind, before[kind], after[kind])
        assert after[kind]["valid_format"] >= 0.9, (kind, after[kind])
    # It learnt when to search: once for one-hop questions, twice for two-hop ones.
    assert after["one_hop"]["searches"] <= 1.3 and after["two_hop"]["searches"] >= 1.7, after
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum("reward_mean" in r for r in steps) == SHORT["grpo"]["max_steps"]
    assert (run / "plots" / "reward.png").is_file()
