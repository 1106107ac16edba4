"""``research ask`` reads the answer by the rules of the profile its rollout ran under."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.trajectory import Trajectory

# Two answer spans: ReSearch's rules read the first closed one, the strict rules the last.
TWO_ANSWERS = (
    "<think> x </think> <answer> \\boxed{Kemora} </answer> <answer> \\boxed{Lisbon} </answer>"
)


@pytest.mark.parametrize(("profile", "answer"), [("strict", "Lisbon"), ("research", "Kemora")])
def test_ask_prints_the_answer_its_profile_reads(monkeypatch, tmp_path, profile, answer):
    def fake_ask_run(run, question, initial=False):
        return Trajectory(
            question_id="ask",
            question=question,
            golden_answers=["?"],
            sample_index=0,
            prompt_ids=[1],
            text=TWO_ANSWERS,
            finish_reason="answer",
            profile=profile,
        )

    monkeypatch.setattr("research_rl.demo.run.ask_run", fake_ask_run)
    result = CliRunner().invoke(app, ["ask", "Where?", "--run", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"answer: {answer}" in " ".join(result.output.split())
