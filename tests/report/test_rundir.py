import json
from pathlib import Path

import pytest
from report_synthetic import write_demo_dir, write_eval_dir, write_training_run

from research_rl.report.rundir import RunDirError, normalise_row, read_run


def _lines(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def test_training_run_metrics_and_rollouts(tmp_path):
    run_dir = write_training_run(tmp_path / "run", steps=6, questions=2, group=5, val_every=3)
    run = read_run(run_dir)
    assert [m["step"] for m in run.metrics] == [1, 2, 3, 4, 5, 6]
    assert "val/reward_mean" in run.metrics[2] and "val/reward_mean" not in run.metrics[1]
    assert [(g.kind, g.step) for g in run.groups] == [
        *[("step", s) for s in range(1, 7)],
        ("val", 3),
        ("val", 6),
    ]
    assert all(len(g.rows) == 10 for g in run.groups if g.kind == "step")
    assert run.groups[-1].label == "validation step 6" and len(run.groups[-1].rows) == 8
    raw = json.loads((run_dir / "rollouts" / "step_4.jsonl").read_text().splitlines()[3])
    row = run.groups[3].rows[3]
    assert row["text"] == raw["text"] and row["reward"]["value"] == raw["reward"]["value"]
    assert row["step"] == 4
    assert run.config_text and "group_size: 5" in run.config_text
    assert run.problems == []


def test_steps_sort_numerically_not_by_name(tmp_path):
    for step in (10, 2, 1):
        _lines(tmp_path / "rollouts" / f"step_{step}.jsonl", json.dumps({"question": f"q{step}"}))
    run = read_run(tmp_path)
    assert [g.step for g in run.groups] == [1, 2, 10]
    assert run.groups[2].rows[0]["step"] == 10  # rows without "step" take the file's


def test_malformed_lines_are_reported_with_file_and_line_and_skipped(tmp_path):
    _lines(
        tmp_path / "metrics.jsonl",
        json.dumps({"step": 1, "reward_mean": 0.1}),
        '{"step": 2, "reward_mean": 0.',  # a crash mid-write
        "[1, 2]",
        json.dumps({"reward_mean": 0.3}),
        "",
        json.dumps({"step": 5, "reward_mean": 0.5}),
    )
    _lines(
        tmp_path / "rollouts" / "step_1.jsonl",
        json.dumps({"question": "a", "text": "<answer>x</answer>"}),
        "not json",
        json.dumps({"question": "b"}),
    )
    run = read_run(tmp_path)
    assert [m["step"] for m in run.metrics] == [1, 5]
    assert [r["question"] for r in run.groups[0].rows] == ["a", "b"]
    metrics, rollouts = tmp_path / "metrics.jsonl", tmp_path / "rollouts" / "step_1.jsonl"
    assert len(run.problems) == 4
    assert run.problems[0].startswith(f"{metrics}:2: invalid JSON")
    assert run.problems[1] == f"{metrics}:3: expected a JSON object, got list"
    assert run.problems[2].startswith(f"{metrics}:4: no integer 'step'")
    assert run.problems[3].startswith(f"{rollouts}:2: invalid JSON")


def test_a_step_logged_twice_is_merged_later_keys_winning(tmp_path):
    _lines(
        tmp_path / "metrics.jsonl",
        json.dumps({"step": 3, "reward_mean": 0.1, "kl": 0.01}),
        json.dumps({"step": 3, "val/f1": 0.4}),
        json.dumps({"step": 3.0, "reward_mean": 0.2}),
        json.dumps({"step": 1, "reward_mean": 0.0}),
    )
    run = read_run(tmp_path)
    assert run.metrics == [
        {"step": 1, "reward_mean": 0.0},
        {"step": 3, "reward_mean": 0.2, "kl": 0.01, "val/f1": 0.4},
    ]


def test_rows_missing_fields_get_neutral_defaults():
    row = normalise_row(
        {
            "question": "q",
            "golden_answers": "Paris",
            "reward": {"value": "high"},
            "num_searches": 2.0,
            "finish_reason": None,
        }
    )
    assert row["golden_answers"] == ["Paris"]
    assert row["reward"]["value"] is None and row["reward"]["valid_format"] is None
    assert row["num_searches"] == 2 and row["finish_reason"] == "unknown" and row["text"] == ""
    assert row["num_model_tokens"] is None


def test_evaluation_dir(tmp_path):
    run = read_run(write_eval_dir(tmp_path / "eval"))
    assert run.metrics == []
    labels = [g.label for g in run.groups]
    assert labels == [
        "eval synthetic_bridge / naive",
        "eval synthetic_bridge / research",
        "eval synthetic_hop / naive",
        "eval synthetic_hop / research",
    ]
    assert all(g.kind == "eval" and len(g.rows) == 6 for g in run.groups)
    assert {r["dataset"] for r in run.eval_results["results.json"]["results"]} == {
        "synthetic_hop",
        "synthetic_bridge",
    }
    row = run.groups[0].rows[0]  # an evaluator row: the trajectory nested, scores beside it
    raw = json.loads(
        (tmp_path / "eval" / "predictions" / "synthetic_bridge__naive.jsonl")
        .read_text()
        .splitlines()[0]
    )
    assert row["text"] == raw["trajectory"]["text"] and row["question_id"] == raw["id"]
    assert row["reward"]["reason"] == raw["trajectory"]["reward"]["reason"]
    assert row["extras"]["f1"] == raw["f1"] and "judge correct" not in row["extras"]


def test_prediction_rows_without_a_nested_trajectory_still_read():
    row = normalise_row(
        {
            "id": "q7",
            "question": "q",
            "reward": 0.4,
            "judge": {"correct": True},
            "trajectory": None,
            "text": "<answer>x</answer>",
        }
    )
    assert row["question_id"] == "q7" and row["reward"]["value"] == 0.4
    assert row["text"] == "<answer>x</answer>" and row["extras"] == {}


def test_demo_dir_with_training_and_evaluation_side_by_side(tmp_path):
    run = read_run(write_demo_dir(tmp_path / "demo"))
    assert len(run.metrics) == 4
    labels = [g.label for g in run.groups]
    assert labels == [
        "step 1",
        "step 2",
        "step 3",
        "step 4",
        "validation step 2",
        "validation step 4",
        "eval: after",
        "eval: before",
    ]  # not world/*.jsonl
    assert [len(g.rows) for g in run.groups[-2:]] == [6, 6]
    assert set(run.summaries["summary.json"]) == {"steps", "seed", "before", "after"}
    assert run.problems == []


def test_evaluation_in_a_sub_directory(tmp_path):
    write_training_run(tmp_path / "train", steps=2, questions=1, val_every=2)
    write_eval_dir(tmp_path / "eval")
    run = read_run(tmp_path)
    assert len(run.metrics) == 2
    assert [g.label for g in run.groups][:2] == [
        "eval: eval synthetic_bridge / naive",
        "eval: eval synthetic_bridge / research",
    ]
    assert {"train: step 1", "train: validation step 2"} <= {g.label for g in run.groups}
    assert set(run.eval_results) == {"eval/results.json"}


def test_unusable_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing: run directory not found"):
        read_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="nothing to report: expected metrics.jsonl"):
        read_run(tmp_path / "empty")
    _lines(tmp_path / "metrics.jsonl", "{}")
    with pytest.raises(RunDirError, match="not a directory"):
        read_run(tmp_path / "metrics.jsonl")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{oops")
    with pytest.raises(RunDirError, match="nothing to report"):
        read_run(tmp_path / "broken")


def test_a_second_training_log_is_named_not_silently_dropped(tmp_path):
    write_training_run(tmp_path, steps=2, questions=1)
    write_training_run(tmp_path / "other", steps=3, questions=1)
    run = read_run(tmp_path)
    assert len(run.metrics) == 2
    assert run.problems == [
        f"{tmp_path / 'other' / 'metrics.jsonl'}: not plotted (one run's "
        f"curves per page: {tmp_path / 'metrics.jsonl'}); report its "
        "directory on its own"
    ]
    assert "other: step 3" in [g.label for g in run.groups]  # its rollouts are still browsable


def test_other_trajectory_files_are_browsable_question_files_are_not(tmp_path):
    write_training_run(tmp_path / "train", steps=1, questions=1)
    rows = (tmp_path / "train" / "rollouts" / "step_1.jsonl").read_text().splitlines()
    (tmp_path / "samples_after.jsonl").write_text("\n".join(rows[:3]) + "\n")
    (tmp_path / "questions.jsonl").write_text(
        json.dumps({"id": "q1", "question": "Where?", "golden_answers": ["Port Alder"]}) + "\n"
    )
    (tmp_path / "notes.jsonl").write_text("not json\n")
    run = read_run(tmp_path)
    files = [g for g in run.groups if g.kind == "file"]
    assert [(g.label, len(g.rows)) for g in files] == [("samples_after", 3)]
    assert files[0].rows[0]["text"] == json.loads(rows[0])["text"]
    assert run.problems == []  # files that are not trajectories are not read, so not reported


def test_reads_what_the_evaluator_writes(tmp_path):
    """Contract check against the evaluator's own row builder, not a copy of its format."""
    from research_rl.evaluation.runner import prediction_row
    from research_rl.reward import score
    from research_rl.trajectory import Trajectory

    text = (
        "<think>find it</think><search>capital of Elnobo</search><result>Doc 1: Tekaton is "
        "the capital of Elnobo.</result><answer>\\boxed{Tekaton}</answer>"
    )
    traj = Trajectory(
        question_id="q9",
        question="Capital of Elnobo?",
        golden_answers=["Tekaton"],
        sample_index=0,
        prompt_ids=[1, 2],
        text=text,
        loss_mask=[1, 1, 0, 1],
        num_searches=1,
        search_queries=["capital of Elnobo"],
        finish_reason="answer",
        reward=score(text, ["Tekaton"]),
    )
    _lines(
        tmp_path / "predictions" / "toy__research.jsonl",
        json.dumps(prediction_row(traj, "toy", "research")),
    )
    (row,) = read_run(tmp_path).groups[0].rows
    assert (row["question_id"], row["text"], row["num_searches"]) == ("q9", text, 1)
    assert row["reward"] == {
        "value": 1.0,
        "f1": 1.0,
        "em": 1.0,
        "valid_format": True,
        "reason": traj.reward.reason,
    }
    assert row["num_model_tokens"] == 3
    assert row["extras"]["prediction"] == "Tekaton" and row["extras"]["em"] == 1.0
