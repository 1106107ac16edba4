"""Memory that fits: the micro-batch sized from the model and the configured lengths, and the
process's peak resident memory per step.

A GRPO step holds, besides the weights, their gradients and Adam's two moments (trainable
parameters only, float32), the frozen reference (a full copy unless LoRA, whose reference is the
base with the adapter off), and per micro-batch the activations kept for the backward pass plus the
completion positions' logits over the whole vocabulary (TRL keeps the float32 logits, their
log-softmax and, for the entropy term, the softmax: each of them ``tokens x vocab``). With a 49k
vocabulary the logits dominate; with the whole step as one micro-batch (TRL's layout when
``micro_batch_size`` is unset) 20 rollouts of 800 tokens need tens of GB.

``micro_batch_size: null`` is therefore sized here: the largest divisor of a device's completions
whose estimate fits ``memory_budget_gb`` (default: 60% of the memory available at start). A given
micro-batch whose estimate does not fit is refused, naming the estimate and the setting.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from research_rl.config import ConfigError
from research_rl.training.config import no_accelerator

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# Activations kept for the backward pass, per token and layer, in units of hidden / intermediate
# widths (norm inputs, q/k/v, attention output, residuals; gate, up, their product, the act).
# Calibrated on SmolLM2-135M (benchmarks/grpo_step.py): the formula holds within 25% there.
_HIDDEN_COPIES = 14
_INTERMEDIATE_COPIES = 5
_LOGIT_COPIES = 4  # float32 logits, log-softmax, softmax (entropy) and the gradient of one of them
_OVERHEAD = 1.25  # allocator slack, the optimizer's temporaries, the rollout's KV cache


@dataclass(frozen=True)
class Estimate:
    static_bytes: int  # weights, gradients, optimizer state, reference
    per_completion_bytes: int  # activations and logits of one completion
    micro_batch: int

    @property
    def total_bytes(self) -> int:
        return int((self.static_bytes + self.micro_batch * self.per_completion_bytes) * _OVERHEAD)


def gb(n: float) -> float:
    return n / 1e9


def available_bytes() -> int:
    """Memory the process can still take: MemAvailable on Linux, else the physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _params(config: Any) -> int:
    h, i, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads, kv = config.num_attention_heads, getattr(config, "num_key_value_heads", None)
    head_dim = getattr(config, "head_dim", None) or h // heads
    kv = kv or heads
    attn = h * heads * head_dim * 2 + h * kv * head_dim * 2
    embed = config.vocab_size * h * (1 if getattr(config, "tie_word_embeddings", False) else 2)
    return n * (attn + 3 * h * i + 2 * h) + embed


def estimate(
    config: Any,
    *,
    micro_batch: int,
    prompt_tokens: int,
    completion_tokens: int,
    dtype: str = "float32",
    lora: bool = False,
    reference: bool = True,
    gradient_checkpointing: bool = False,
) -> Estimate:
    """Bytes one training process needs for a micro-batch of completions of these lengths."""
    p = _params(config)
    wbytes = _DTYPE_BYTES[dtype]
    trainable = 0 if lora else p  # a LoRA adapter's parameters are a rounding error
    static = p * wbytes + trainable * (4 + 8)  # weights; gradients and Adam's moments
    if reference and not lora:
        static += p * wbytes
    tokens = prompt_tokens + completion_tokens
    h, i, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    act_bytes = 2 if dtype != "float32" else 4
    per_layer = (_HIDDEN_COPIES * h + _INTERMEDIATE_COPIES * i) * act_bytes
    layers_kept = 2 * int(n**0.5) if gradient_checkpointing else n
    activations = tokens * layers_kept * per_layer
    logits = completion_tokens * config.vocab_size * 4 * _LOGIT_COPIES
    return Estimate(static, activations + logits, micro_batch)


def fit_micro_batch(
    config: Any,
    per_device: int,
    prompt_tokens: int,
    completion_tokens: int,
    budget_bytes: int,
    given: int | None = None,
    **kwargs: Any,
) -> tuple[int, Estimate]:
    """The micro-batch to use: ``given`` if it fits, else the largest divisor of ``per_device``
    that does. Raises ConfigError with the estimate and the setting to change when none fits."""
    lengths = dict(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    if given is not None:
        est = estimate(config, micro_batch=given, **lengths, **kwargs)
        if est.total_bytes > budget_bytes:
            smallest = estimate(config, micro_batch=1, **lengths, **kwargs)
            hint = (
                "lower grpo.micro_batch_size (or leave it unset to size it)"
                if smallest.total_bytes <= budget_bytes
                else "lower rollout.max_response_tokens or rollout.max_prompt_tokens, or use "
                "LoRA (lora.enabled) or model.gradient_checkpointing"
            )
            raise ConfigError(
                f"grpo.micro_batch_size {given} needs about {gb(est.total_bytes):.1f} GB, over "
                f"the memory budget of {gb(budget_bytes):.1f} GB: {hint}"
            )
        return given, est
    for micro in sorted((d for d in range(1, per_device + 1) if per_device % d == 0), reverse=True):
        est = estimate(config, micro_batch=micro, **lengths, **kwargs)
        if est.total_bytes <= budget_bytes:
            return micro, est
    est = estimate(config, micro_batch=1, **lengths, **kwargs)
    raise ConfigError(
        f"one completion of {prompt_tokens}+{completion_tokens} tokens needs about "
        f"{gb(est.total_bytes):.1f} GB, over the memory budget of {gb(budget_bytes):.1f} GB: "
        "lower rollout.max_response_tokens or rollout.max_prompt_tokens, use LoRA "
        "(lora.enabled) or model.gradient_checkpointing, or raise grpo.memory_budget_gb"
    )


def fit_memory(cfg: Any, world_size: int | None = None) -> Any:
    """A copy of a TrainConfig whose ``grpo.micro_batch_size`` is set to what fits (CPU only: on
    a GPU the device's own memory and TRL's layout decide, and the config is returned as is)."""
    from transformers import AutoConfig

    if not no_accelerator():
        return cfg
    model_config = AutoConfig.from_pretrained(
        cfg.model.path, trust_remote_code=cfg.model.trust_remote_code
    )
    if not hasattr(model_config, "intermediate_size"):
        return cfg  # not a decoder this estimate knows: leave TRL's layout
    g = cfg.grpo
    world_size = world_size or int(os.environ.get("WORLD_SIZE", "1"))
    per_device = g.questions_per_step * g.group_size // max(world_size, 1)
    budget = (
        int(g.memory_budget_gb * 1e9)
        if g.memory_budget_gb is not None
        else int(0.6 * available_bytes())
    )
    micro, est = fit_micro_batch(
        model_config,
        per_device,
        cfg.rollout.max_prompt_tokens,
        cfg.rollout.effective().max_response_tokens,
        budget,
        given=g.micro_batch_size,
        dtype=cfg.model.dtype,
        lora=cfg.lora.enabled,
        reference=g.beta > 0,
        gradient_checkpointing=cfg.model.gradient_checkpointing,
    )
    if micro == g.micro_batch_size:
        return cfg
    print(
        f"note: grpo.micro_batch_size {micro} (of {per_device} completions per step; about "
        f"{gb(est.total_bytes):.1f} GB of a {gb(budget):.1f} GB budget)",
        file=sys.stderr,
    )
    cfg = cfg.model_copy(deep=True)
    cfg.grpo.micro_batch_size = micro
    return cfg


def peak_rss_gb(reset: bool = True) -> float:
    """The process's peak resident memory since the last reset (Linux: VmHWM, reset through
    /proc/self/clear_refs so each step reports its own peak); elsewhere the lifetime peak."""
    try:
        status = Path("/proc/self/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
        if reset:
            with contextlib.suppress(OSError):
                Path("/proc/self/clear_refs").write_text("5")
        return kb * 1024 / 1e9
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb * (1 if sys.platform == "darwin" else 1024) / 1e9
