"""The shipped training configs validate and map onto TRL with the paper's values."""

from __future__ import annotations

from pathlib import Path

import pytest

from research_rl.config import ConfigError
from research_rl.training.config import device_batch, grpo_args
from research_rl.training.run import load_train_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["qwen2.5-7b-instruct-musique", "qwen2.5-7b-base-musique"])
def test_paper_configs_hold_the_paper_settings(name, tmp_path):
    cfg = load_train_config(CONFIGS / f"{name}.yaml")
    g = cfg.grpo
    assert (g.group_size, g.beta, g.clip_eps, g.learning_rate, g.temperature) == (
        5,
        1e-3,
        0.2,
        1e-6,
        1.0,
    )
    assert g.loss_aggregation == "token-mean" and g.scale_rewards == "group"
    assert cfg.rollout.template == ("instruct" if "instruct" in name else "base")
    # on 8 GPUs: 1280 completions per step = 8 per micro-batch x 20 accumulation steps x 8 GPUs
    assert device_batch(g, world_size=8) == (8, 20)
    args = grpo_args(cfg, tmp_path, world_size=8, use_vllm=False, bf16=False)
    assert args.use_bias_correction_kl is False and args.loss_type == "dapo"
    assert args.steps_per_generation == args.gradient_accumulation_steps == 20


def test_tiny_config_paths_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_train_config(CONFIGS / "tiny-cpu.yaml")
    for path in (cfg.model.path, cfg.data.train, cfg.retriever.index, cfg.rollout.template_path):
        assert Path(path).exists(), path


def test_bad_batch_layouts_are_refused():
    cfg = load_train_config(CONFIGS / "tiny-cpu.yaml")
    with pytest.raises(ValueError, match="do not split over 3 processes"):
        device_batch(cfg.grpo, world_size=3)
    with pytest.raises(ConfigError, match="micro_batch_size 3 must divide"):
        load_train_config(CONFIGS / "tiny-cpu.yaml", {"grpo.micro_batch_size": 3})
    with pytest.raises(ConfigError, match="unknown key 'grpo.kl_coef'"):
        load_train_config(CONFIGS / "tiny-cpu.yaml", {"grpo.kl_coef": 0.1})
