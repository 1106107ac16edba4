"""The shipped training configs validate and map onto TRL with the paper's values."""

from __future__ import annotations

from pathlib import Path

import pytest

from research_rl.config import ConfigError
from research_rl.profiles import PROFILES
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
    assert g.entropy_coef == 1e-3 and cfg.generation.vllm_importance_sampling_correction is False
    assert cfg.rollout.template == ("instruct" if "instruct" in name else "base")
    # ReSearch's protocol: stop at </search> and EOS only, no search cap, its result block
    assert cfg.rollout.effective() == PROFILES["research"]
    # on 8 GPUs: 1280 completions per step = 8 per micro-batch x 20 accumulation steps x 8 GPUs
    assert device_batch(g, world_size=8) == (8, 20)
    args = grpo_args(cfg, tmp_path, world_size=8, use_vllm=False, bf16=False)
    assert args.use_bias_correction_kl is False and args.loss_type == "dapo"
    assert args.steps_per_generation == args.gradient_accumulation_steps == 20
    assert args.entropy_coef == 1e-3 and args.vllm_importance_sampling_correction is False
    assert args.max_completion_length == 8192


def test_tiny_config_runs_the_strict_profile():
    """The tiny model was primed on strict rollouts (it never learnt to end with EOS)."""
    cfg = load_train_config(CONFIGS / "tiny-cpu.yaml")
    assert cfg.rollout.profile == "strict"
    assert cfg.rollout.effective().stop_strings == ("</search>", "</answer>")


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
