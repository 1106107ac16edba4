"""Batch metrics over hand-made trajectories."""

from __future__ import annotations

import pytest

from research_rl.metrics import batch_metrics
from research_rl.trajectory import Trajectory

GOOD = "<think>t</think><answer>\\boxed{Paris}</answer>"


def traj(text, finish, searches=0, model_tokens=3, inserted=2, profile="strict"):
    return Trajectory(
        question_id="q",
        question="?",
        golden_answers=["Paris"],
        sample_index=0,
        prompt_ids=[1],
        completion_ids=[5] * (model_tokens + inserted),
        loss_mask=[1] * model_tokens + [0] * inserted,
        text=text,
        num_searches=searches,
        finish_reason=finish,
        profile=profile,
    )


def test_batch_metrics():
    trajs = [
        traj(GOOD, "answer", searches=2),  # 1.0
        traj(GOOD.replace("Paris", "Rome"), "answer"),  # 0.1
        traj(GOOD, "length", model_tokens=5),  # truncated: 0
        traj("no format", "max_searches", searches=3),  # 0
    ]
    m = batch_metrics(trajs)
    assert m["reward_mean"] == pytest.approx(1.1 / 4)
    mean = 1.1 / 4
    std = ((1 - mean) ** 2 + (0.1 - mean) ** 2 + 2 * mean**2) / 4
    assert m["reward_std"] == pytest.approx(std**0.5)
    assert m["f1"] == pytest.approx(0.5) and m["em"] == pytest.approx(0.5)  # truncated still has F1
    assert m["valid_format"] == pytest.approx(0.75)
    assert m["searches_per_rollout"] == pytest.approx(5 / 4)
    assert m["model_tokens_per_rollout"] == pytest.approx((3 + 3 + 5 + 3) / 4)
    assert (m["finish/answer"], m["finish/eos"], m["finish/length"], m["finish/max_searches"]) == (
        2,
        0,
        1,
        1,
    )


def test_a_rollout_without_a_reward_is_scored_by_its_own_profile():
    # Truncated: 0 under both rules, but only the strict rules keep the cut answer's F1.
    cut = [traj(GOOD, "length", profile="strict"), traj(GOOD, "length", profile="research")]
    assert batch_metrics(cut[:1])["f1"] == 1.0 and batch_metrics(cut[1:])["f1"] == 0.0
    # A model-written <result>: valid for the research rules, not the strict ones.
    made_up = "<think>t</think><result>guess</result><answer>\\boxed{Paris}</answer>"
    assert batch_metrics([traj(made_up, "eos", profile="research")])["reward_mean"] == 1.0
    assert batch_metrics([traj(made_up, "eos", profile="strict")])["reward_mean"] == 0.0


def test_empty_batch_has_every_key():
    m = batch_metrics([])
    assert set(m) == set(batch_metrics([traj(GOOD, "eos")])) and all(v == 0 for v in m.values())


def test_rollouts_failed_on_the_retriever_are_counted_not_scored():
    failed = traj("<think>t</think><search> x </search>", "retriever_error", searches=1)
    trajs = [traj(GOOD, "answer", searches=2), traj(GOOD.replace("Paris", "Rome"), "answer")]
    m = batch_metrics([*trajs, failed, failed])
    assert m == {**batch_metrics(trajs), "finish/retriever_error": 2, "retriever_failed_share": 0.5}
    assert batch_metrics(trajs)["retriever_failed_share"] == 0.0
    only_failed = batch_metrics([failed])
    assert only_failed["retriever_failed_share"] == 1.0 and only_failed["reward_mean"] == 0.0
