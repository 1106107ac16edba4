"""Copy pretraining: the one generic skill a pretrained LM brings and a fresh tiny model lacks.

A pretrained language model can repeat text it has just read (induction heads); a freshly
initialised one cannot, and without that it can never put the question's entity into its query,
whatever the format transcripts show it. Measured on the demo's policy: after 600 steps of format
training alone, sampled first queries held the question's subject in 1% of rollouts; with this
stage first (about 30 s), in 34% (the default format training) to 55% (a variant of it).

Each row is a random sequence of words from the world's text, said twice; the loss is on the
second saying only. The words are drawn independently at random, so no fact of the world survives
into the rows: the model learns to copy, not what is true.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from pydantic import Field

from research_rl.config import StrictModel
from research_rl.corpus import Passage
from research_rl.demo.weighted_lm import cosine_schedule, lm_step

_EDGE_PUNCT = re.compile(r"^[^\w]+|[^\w]+$")


class CopyTrainingConfig(StrictModel):
    steps: int = Field(250, ge=0)  # the copying skill appears abruptly, near step 100-150
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(5e-3, gt=0)
    words_per_row: int = Field(12, ge=1)  # each row: these words, then the same words again
    # Cosine decay of the learning rate to this fraction of it by the last step (1: constant).
    # At a constant rate (the default) the copy loss of some seeds stays at 0.2-0.5 after 250
    # steps; 400 steps decaying to 0.1 reach 0.01-0.06 for every seed measured, but the demo's
    # seed-0 run then learnt one-hop questions less well (docs/demo.md), so it is not the default.
    min_lr_fraction: float = Field(1.0, gt=0, le=1)
    seed: int = 0


def trimmed_words(text: str) -> list[str]:
    """Whitespace words with punctuation trimmed from their edges; empty ones dropped."""
    return [w for w in (_EDGE_PUNCT.sub("", raw) for raw in text.split()) if w]


def world_words(passages: Sequence[Passage]) -> list[str]:
    """The distinct words of the corpus, sorted for determinism."""
    return sorted({w for p in passages for w in trimmed_words(p.contents)})


def copy_row(
    tokenizer, rng: random.Random, vocab: Sequence[str], n_words: int
) -> tuple[list[int], list[float]]:
    """(ids, loss weights) of ``n_words`` random words said twice; loss on the second saying,
    from its second token (its first is not predictable from the first saying)."""
    if not vocab:
        raise ValueError("copy_row: empty vocabulary")
    ids = tokenizer(
        " " + " ".join(rng.choice(vocab) for _ in range(n_words)), add_special_tokens=False
    )["input_ids"]
    return ids + ids, [0.0] * (len(ids) + 1) + [1.0] * (len(ids) - 1)


def copy_train(
    model,
    tokenizer,
    passages: Sequence[Passage],
    cfg: CopyTrainingConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` in place on copy rows; returns the loss per step."""
    import torch

    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    vocab = world_words(passages)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    sched = cosine_schedule(opt, cfg.steps, floor=cfg.min_lr_fraction)
    losses: list[float] = []
    for step in range(cfg.steps):
        rows = [copy_row(tokenizer, rng, vocab, cfg.words_per_row) for _ in range(cfg.batch_size)]
        losses.append(lm_step(model, opt, rows, tokenizer.pad_token_id))
        sched.step()
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses
