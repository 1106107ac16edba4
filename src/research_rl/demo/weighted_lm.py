"""The weighted causal-LM step shared by the demo's copy pretraining and format training: rows of
(token ids, per-token loss weight), padded together, one optimiser step on the weighted mean; and
the learning-rate schedule both stages use."""

from __future__ import annotations

import math
from collections.abc import Sequence

Row = tuple[list[int], list[float]]


def collate(rows: Sequence[Row], pad_id: int):
    """(input ids, attention mask, per-token loss weights), right-padded with weight 0."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    weights = torch.zeros((len(rows), width), dtype=torch.float)
    for i, (ids, w) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        weights[i, : len(ids)] = torch.tensor(w, dtype=torch.float)
    return input_ids, attention, weights


def weighted_lm_loss(model, input_ids, attention, weights):
    """Next-token cross-entropy, each target token weighted; the weighted mean over the batch."""
    import torch

    logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), input_ids[:, 1:].reshape(-1), reduction="none"
    )
    w = weights[:, 1:].reshape(-1)
    return (nll * w).sum() / w.sum().clamp_min(1e-9)


def lm_step(model, optimizer, rows: Sequence[Row], pad_id: int, max_grad_norm: float = 1.0) -> float:
    """One optimiser step on ``rows``; returns the loss."""
    import torch

    loss = weighted_lm_loss(model, *collate(rows, pad_id))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


def cosine_schedule(optimizer, steps: int, warmup_steps: int = 0, floor: float = 0.1):
    """A ``LambdaLR``: linear warm-up over ``warmup_steps``, then cosine decay from the full rate to
    ``floor`` times it at ``steps`` (``floor=1``: constant)."""
    import torch

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, steps - warmup_steps)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
