"""The demo's policy: a tiny model of a real architecture (Qwen2 from transformers).

Tied input/output embeddings on purpose: the policy answers by copying a name it read in a
retrieved passage, and with tied embeddings a name's own embedding is already the direction that
raises its logit, so copying needs no separate output mapping per rare name.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field
from transformers import Qwen2Config, Qwen2ForCausalLM

from research_rl.config import StrictModel

HEAD_SIZE = 32
# Weights drawn with this standard deviation: transformers' 0.02 suits widths near 1,000; at
# width 128 it leaves the embeddings of rare tokens (the world's names) too small to copy.
INITIALIZER_RANGE = 0.15


class PolicyConfig(StrictModel):
    """``configs/demo.yaml``: ``policy:``. Heads of 32 dimensions, an MLP four times as wide."""

    hidden_size: int = Field(ge=HEAD_SIZE, multiple_of=HEAD_SIZE)
    num_hidden_layers: int = Field(ge=1)


def create_policy(cfg: PolicyConfig, tokenizer, seed: int = 0):
    """A freshly initialised ``Qwen2ForCausalLM`` sized for ``tokenizer``."""

    heads = cfg.hidden_size // HEAD_SIZE
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=4 * cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        initializer_range=INITIALIZER_RANGE,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save_policy(model, tokenizer, out_dir: str | Path) -> None:
    """Model and tokenizer side by side, so every command loads the directory like any model."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
