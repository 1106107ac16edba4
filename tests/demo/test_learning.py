"""The demo learns: a shortened schedule of the real pipeline (world, format training, GRPO through
``research train``'s code path, greedy held-out evaluation) must clearly raise held-out F1 on both
question types, for two seeds. A flipped advantage sign, a result mask letting retrieved tokens
into the loss, or a broken reward cannot pass."""

from __future__ import annotations

import json

import pytest

from research_rl.demo.run import DemoConfig, run_demo

pytestmark = pytest.mark.slow

# Shorter than configs/demo.yaml: a smaller world and fewer steps of both stages.
SHORT = {
    "world": {"countries": 6, "cities": 20, "people": 100, "films": 100, "test_per_hops": 30},
    "format_training": {"steps": 200},
    "grpo": {"max_steps": 40, "group_size": 5},  # 5, not the demo's 8: the suite's time budget
}
MIN_GAIN = {"one_hop": 0.3, "two_hop": 0.1}


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,  # a crash of the pipeline is a real failure
    reason="issue 5 target not met yet: with name spans the policy learns one-hop search from "
    "the reward, but its before-GRPO F1 is already above 0.2 (a name picked among the one or two "
    "a passage holds is often right) and the two-hop gain stays small within the CPU budget "
    "(docs/demo.md, Status). "
    "strict: once the demo learns this passes, fails as XPASS, and the mark must go.",
)
@pytest.mark.parametrize("seed", [0, 1])
def test_grpo_raises_heldout_f1_on_both_question_types(tmp_path, seed):
    cfg = DemoConfig.model_validate(SHORT).seeded(seed)
    summary = run_demo(cfg, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["before"] == summary["before"] and saved["after"] == summary["after"]
    for kind, gain in MIN_GAIN.items():
        before, after = summary["before"][kind], summary["after"][kind]
        assert before["f1"] < 0.2, (kind, before)
        assert after["f1"] >= before["f1"] + gain, (kind, before, after)
    assert (tmp_path / "run" / "plots" / "reward.png").is_file()
