"""The demo's policy: a tiny model of a real architecture (Qwen2 from transformers).

Tied input/output embeddings on purpose: the policy answers by copying a name it read in a
retrieved passage, and with tied embeddings a name's own embedding is already the direction that
raises its logit, so copying needs no separate output mapping per rare name.
"""

from __future__ import annotations

from pathlib import Path

from research_rl.config import StrictModel


class PolicyConfig(StrictModel):
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 1024
    # Weights are drawn with this standard deviation. Transformers' 0.02 suits widths near 1,000;
    # at width 128 it leaves the embeddings of rare tokens (the world's names, each seen a few
    # times) too small to copy: on a copy-a-random-word probe (a name among two other words), 0.15
    # learnt to copy names within 600 steps where 0.02-0.06 had barely started.
    initializer_range: float = 0.15


def create_policy(cfg: PolicyConfig, tokenizer, seed: int = 0):
    """A freshly initialised ``Qwen2ForCausalLM`` sized for ``tokenizer``."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        initializer_range=cfg.initializer_range,
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
