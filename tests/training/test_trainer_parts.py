"""Pieces of the adapter: the epoch-seeded data order, LoRA, the W&B switch, the step seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from research_rl.backends.scripted import ScriptedBackend
from research_rl.config import ConfigError
from research_rl.training.rollouts import step_seed
from research_rl.training.run import load_train_config, train
from research_rl.training.trainer import EpochSeededRepeatSampler

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny-cpu.yaml"


def _epochs(sampler, epochs):
    out = []
    for e in epochs:
        sampler.set_epoch(e)
        out.append(list(sampler))
    return out


def test_data_order_of_an_epoch_depends_only_on_seed_and_epoch():
    def make(seed=7):
        return EpochSeededRepeatSampler(
            list(range(12)), mini_repeat_count=3, batch_size=2, seed=seed
        )

    run = _epochs(make(), [0, 1, 2])
    assert _epochs(make(), [2]) == run[2:]  # a run resumed in epoch 2 sees epoch 2's order
    assert run[0] != run[1] != run[2]  # and epochs still differ
    assert run[0][:3] == [run[0][0]] * 3  # each question repeated group-size times, together
    assert _epochs(make(seed=8), [0]) != run[:1]


def test_step_seeds_differ_across_steps_and_ranks_but_not_runs():
    seeds = {step_seed(42, s, r) for s in range(1, 50) for r in range(8)}
    assert len(seeds) == 49 * 8
    assert step_seed(42, 3, 1) == step_seed(42, 3, 1)


def test_wandb_without_the_package_is_a_clear_config_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    cfg = load_train_config(CONFIG, {"run.wandb": True})
    with pytest.raises(ConfigError, match="wandb is not installed"):
        train(cfg, output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_lora_trains_only_the_adapter_and_checkpoints_it(tmp_path):
    cfg = load_train_config(
        CONFIG,
        {
            "lora.enabled": True,
            "lora.r": 4,
            "grpo.max_steps": 1,
            "run.save_every": 1,
            "run.eval_every": 10,
            "run.progress": False,
        },
    )
    scripts = [
        [
            "<think> a </think> <search> Kalo </search>",
            " <think> b </think> <answer> \\boxed{Kaloton} </answer>",
        ],
        [
            "<think> a </think> <search> Nowhere </search>",
            " <think> c </think> <answer> \\boxed{Nowhere} </answer>",
        ],
    ]
    seen = {}

    def factory(trainer, model):
        seen["model"] = trainer.model
        return seen.setdefault("b", ScriptedBackend(trainer.processing_class, default=scripts))

    result = train(cfg, output_dir=tmp_path / "run", backend_factory=factory)
    assert result.final_step == 1
    model = seen["model"]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    ckpt = result.last_checkpoint
    assert (ckpt / "adapter_model.safetensors").is_file() and (
        ckpt / "adapter_config.json"
    ).is_file()


def _one_step_weights(out: Path, micro_batch_size: int, entropy_coef: float = 0.0) -> dict:
    cfg = load_train_config(
        CONFIG,
        {
            "grpo.max_steps": 1,
            "grpo.micro_batch_size": micro_batch_size,
            "grpo.entropy_coef": entropy_coef,
            "grpo.learning_rate": 1e-3,
            "run.save_every": 1,
            "run.eval_every": 10,
            "run.progress": False,
        },
    )
    scripts = [
        [
            "<think> a </think> <search> Kalo </search>",
            " <think> b </think> <answer> \\boxed{Kaloton} </answer>",
        ],
        [
            "<think> a </think> <search> Nowhere Kalo </search>",
            " <think> c </think> <answer> \\boxed{Nowhere} </answer>",
        ],
        [
            "<think> a </think> <search> Radaton </search>",
            " <think> long answer here </think> <answer> \\boxed{Kaloton maybe} </answer>",
        ],
    ]
    backend = {}

    def factory(trainer, model):
        return backend.setdefault("b", ScriptedBackend(trainer.processing_class, default=scripts))

    result = train(cfg, output_dir=out, backend_factory=factory)
    return load_file(str(result.last_checkpoint / "model.safetensors"))


def test_micro_batching_does_not_change_the_step(tmp_path):
    """Token-mean over the whole step: 10 completions in one micro-batch or in two of 5 (with
    gradient accumulation, rollouts of different lengths) give the same update.

    The policy and KL terms only: the entropy bonus is a mean per micro-batch, averaged over the
    micro-batches (TRL's, as verl's), so with micro-batches of different token counts it weighs
    tokens a little differently; it is off here and checked on its own below."""
    whole = _one_step_weights(tmp_path / "whole", 10)
    halves = _one_step_weights(tmp_path / "halves", 5)
    start = load_file(str(Path(load_train_config(CONFIG).model.path) / "model.safetensors"))
    moved = [k for k in whole if not torch.equal(whole[k], start[k])]
    assert moved  # the step did change the weights
    for k in whole:
        assert torch.allclose(whole[k], halves[k], rtol=1e-4, atol=1e-6), k


def test_the_entropy_bonus_moves_the_step(tmp_path):
    plain = _one_step_weights(tmp_path / "plain", 10)
    bonus = _one_step_weights(tmp_path / "bonus", 10, entropy_coef=0.5)
    assert any(not torch.allclose(plain[k], bonus[k], rtol=1e-4, atol=1e-6) for k in plain)
