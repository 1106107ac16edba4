"""configs/demo.yaml is the demo's only set of defaults; the CLI rejects bad configs with a clear
error and applies --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.config import ConfigError
from research_rl.demo.run import DemoConfig, default_config_path, load_demo_config

ROOT = Path(__file__).resolve().parents[2]


def test_configs_demo_yaml_is_the_packaged_default():
    assert (ROOT / "configs" / "demo.yaml").resolve() == default_config_path().resolve()
    cfg = load_demo_config()
    assert cfg.grpo.max_steps == 300 and cfg.rollout.profile == "strict"


def test_every_demo_key_comes_from_the_file(tmp_path):
    """No value hides in the code: dropping any key of demo.yaml outside the core's rollout and
    grpo sections is an error that names it."""
    data = yaml.safe_load(default_config_path().read_text())
    leaves = [
        (section, key)
        for section, value in data.items()
        if section not in ("rollout", "grpo")
        for key in (value if isinstance(value, dict) else [None])
    ]
    assert len(leaves) <= 15
    for section, key in leaves:
        trimmed = yaml.safe_load(default_config_path().read_text())
        if key is None:
            del trimmed[section]
        else:
            del trimmed[section][key]
        path = tmp_path / "demo.yaml"
        path.write_text(yaml.safe_dump(trimmed))
        with pytest.raises(ConfigError, match=key or section):
            load_demo_config(path)


def test_seeded_sets_one_seed_everywhere():
    cfg = load_demo_config().seeded(7)
    assert (cfg.seed, cfg.grpo.seed) == (7, 7)


def test_overrides_change_one_key_and_keep_the_rest():
    cfg = load_demo_config(None, {"world.people": 100, "grpo.max_steps": 40})
    default = load_demo_config()
    assert (cfg.world.people, cfg.grpo.max_steps) == (100, 40)
    assert cfg.world.films == default.world.films
    assert cfg.grpo.questions_per_step == default.grpo.questions_per_step == 8


def test_demo_rejects_an_unknown_config_key(tmp_path):
    bad = tmp_path / "demo.yaml"
    data = yaml.safe_load(default_config_path().read_text())
    data["grpo"]["learning_rat"] = 0.1
    bad.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["demo", "--config", str(bad), "-o", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "learning_rat" in result.output and str(bad) in result.output
    assert not (tmp_path / "run").exists()


def test_demo_rejects_a_bad_set_value(tmp_path):
    args = ["demo", "--set", "world.distractors=5", "-o", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "distractors" in result.output
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


def test_a_resolved_run_config_loads_back():
    # A run directory keeps its resolved demo.yaml; `research ask` reads it with DemoConfig.
    dumped = load_demo_config().model_dump(mode="json")
    assert DemoConfig.model_validate(dumped).model_dump(mode="json") == dumped


def test_the_terminal_table_reads_before_to_after_per_question_type():
    import io

    from rich.console import Console

    from research_rl.demo.run import results_table

    summary = {
        "before": {"one_hop": {"f1": 0.02, "n": 50}, "two_hop": {"f1": 0.06, "n": 50}},
        "after": {"one_hop": {"f1": 1.0, "n": 50}, "two_hop": {"f1": 0.82, "n": 50}},
        "steps": 300,
    }
    console = Console(file=io.StringIO(), width=100)
    console.print(results_table(summary))
    printed = console.file.getvalue()
    assert "before → after GRPO" in " ".join(printed.split())
    lines = printed.splitlines()
    (one_hop,) = [line for line in lines if "one-hop" in line]
    (two_hop,) = [line for line in lines if "two-hop" in line]
    assert "0.02 → 1.00" in one_hop and "50" in one_hop
    assert "0.06 → 0.82" in two_hop
