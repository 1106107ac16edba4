"""A test helper shared by the core and real-model tiers."""

from __future__ import annotations


def mask_spans(traj, value: int) -> list[list[int]]:
    """The maximal runs of completion ids whose loss mask is ``value``."""
    spans, cur = [], []
    for tok, m in zip(traj.completion_ids, traj.loss_mask, strict=True):
        if m == value:
            cur.append(tok)
        elif cur:
            spans.append(cur)
            cur = []
    return spans + ([cur] if cur else [])
