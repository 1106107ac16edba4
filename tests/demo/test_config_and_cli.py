"""configs/demo.yaml is the built-in default; the CLI rejects bad configs with a clear error."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.config import load_config
from research_rl.demo.run import DemoConfig

ROOT = Path(__file__).resolve().parents[2]


def test_configs_demo_yaml_equals_the_builtin_defaults():
    assert load_config(ROOT / "configs" / "demo.yaml", DemoConfig) == DemoConfig()


def test_seeded_sets_one_seed_everywhere():
    cfg = DemoConfig().seeded(7)
    assert (cfg.seed, cfg.world.seed, cfg.format_training.seed, cfg.grpo.seed) == (7, 7, 7, 7)


def test_demo_rejects_an_unknown_config_key(tmp_path):
    bad = tmp_path / "demo.yaml"
    bad.write_text("grpo:\n  learning_rat: 0.1\n")
    result = CliRunner().invoke(app, ["demo", "--config", str(bad), "-o", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "learning_rat" in result.output and str(bad) in result.output
    assert not (tmp_path / "run").exists()


def test_ask_names_a_missing_run(tmp_path):
    result = CliRunner().invoke(app, ["ask", "Where was Kemora born?", "--run", str(tmp_path)])
    assert result.exit_code == 2
    assert "demo.yaml" in result.output


def test_demo_refuses_a_non_empty_output_dir(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    result = CliRunner().invoke(app, ["demo", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "not empty" in result.output


def test_a_partial_grpo_or_rollout_section_keeps_the_demo_values():
    # Filling the rest from the paper's defaults (256 questions a step) ran out of memory.
    from research_rl.demo.run import DemoConfig

    cfg = DemoConfig.model_validate({"grpo": {"max_steps": 40}, "rollout": {"topk": 3}})
    default = DemoConfig()
    assert cfg.grpo.max_steps == 40 and cfg.rollout.topk == 3
    assert cfg.grpo.questions_per_step == default.grpo.questions_per_step == 8
    assert cfg.rollout.max_response_tokens == default.rollout.max_response_tokens == 256
