"""The weighted causal-LM step shared by the demo's copy pretraining and format training: rows of
(token ids, per-token loss weight), padded together, one optimiser step on the weighted mean; and
the learning-rate schedule both stages use.

A format-training batch mixes transcripts (about 200 tokens) with passages and copy rows (about
30): padded into one tensor, half the compute would go to padding. The step therefore splits the
rows, sorted by length, into a few buckets that waste the least padding, and accumulates the
gradient bucket by bucket; every bucket's loss is divided by the weight of the whole batch, so the
step optimises exactly the weighted mean over all rows, as one padded batch would.
"""

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


def length_buckets(rows: Sequence[Row], max_buckets: int = 3) -> list[list[Row]]:
    """``rows`` sorted by length and cut into at most ``max_buckets`` runs of consecutive rows so
    that the padded size (rows x longest row, summed over buckets) is smallest."""
    ordered = sorted(rows, key=lambda r: len(r[0]))
    n = len(ordered)
    if n == 0:
        return []
    lengths = [len(ids) for ids, _ in ordered]
    # cost[k][j]: least padded size of the first j rows in k buckets (a bucket's cost is its row
    # count times its last, longest row).
    inf = float("inf")
    cost = [[inf] * (n + 1) for _ in range(max_buckets + 1)]
    cut = [[0] * (n + 1) for _ in range(max_buckets + 1)]
    cost[0][0] = 0
    for k in range(1, max_buckets + 1):
        for j in range(1, n + 1):
            for i in range(j):
                c = cost[k - 1][i] + (j - i) * lengths[j - 1]
                if c < cost[k][j]:
                    cost[k][j], cut[k][j] = c, i
    k = min(range(1, max_buckets + 1), key=lambda b: cost[b][n])
    buckets, j = [], n
    while k > 0 and j > 0:
        i = cut[k][j]
        buckets.append(ordered[i:j])
        j, k = i, k - 1
    return [b for b in reversed(buckets) if b]


def weighted_nll_sum(model, input_ids, attention, weights):
    """(sum of the weighted next-token cross-entropy, sum of the target weights)."""
    import torch

    logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), input_ids[:, 1:].reshape(-1), reduction="none"
    )
    w = weights[:, 1:].reshape(-1)
    return (nll * w).sum(), w.sum()


def weighted_lm_loss(model, input_ids, attention, weights):
    """Next-token cross-entropy, each target token weighted; the weighted mean over the batch."""
    total, weight = weighted_nll_sum(model, input_ids, attention, weights)
    return total / weight.clamp_min(1e-9)


def lm_step(
    model,
    optimizer,
    rows: Sequence[Row],
    pad_id: int,
    max_grad_norm: float = 1.0,
    max_buckets: int = 3,
) -> float:
    """One optimiser step on the weighted mean loss of ``rows``; returns that loss."""
    import torch

    total_weight = max(sum(sum(w[1:]) for _, w in rows), 1e-9)  # targets: every token but the first
    optimizer.zero_grad(set_to_none=True)
    loss = 0.0
    for bucket in length_buckets(rows, max_buckets):
        part, _ = weighted_nll_sum(model, *collate(bucket, pad_id))
        (part / total_weight).backward()
        loss += part.item() / total_weight
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss


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
