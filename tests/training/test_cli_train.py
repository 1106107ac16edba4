"""``research train`` refuses bad invocations with one clear line and exit code 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from research_rl.cli import app

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"


def _invoke(*args: str):
    return CliRunner().invoke(app, ["train", "--config", str(CONFIG), *args])


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    result = _invoke("--output-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "already holds a run" in result.output and "--resume" in result.output
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_resume_needs_a_run_directory(tmp_path):
    result = _invoke("--output-dir", str(tmp_path / "missing"), "--resume")
    assert result.exit_code == 2
    assert "no run directory to resume" in result.output


def test_overrides_are_validated_like_the_file(tmp_path):
    result = _invoke("--output-dir", str(tmp_path), "--set", "grpo.group_size=1")
    assert result.exit_code == 2
    assert "grpo.group_size" in result.output
    result = _invoke("--output-dir", str(tmp_path), "--set", "grpo.max_steps")
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output
