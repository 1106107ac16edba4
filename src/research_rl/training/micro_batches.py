"""Micro-batches without padding to the longest rollout of the step.

TRL pads a step's rollouts to the longest prompt (left) and the longest completion (right) of the
whole generation batch, shuffles them and cuts them into micro-batches, so every forward and
backward pass runs on that width. Search rollouts vary in length by several times, so most of a
pass was padding. Here each micro-batch is cut to its own longest row, and where the loss does not
depend on which rows share a micro-batch (:func:`partition_free`) the rollouts are first grouped by
length into the same number of micro-batches; TRL's entropy bonus, a token mean within each of its
own micro-batches, keeps its value through :func:`entropy_weights`. A column that is padding in
every row of a micro-batch changes nothing: it is masked out of attention, labels and loss, and
trailing columns come after every real token under causal attention. Dropped leading (prompt)
columns shift every position by the same amount, which rotary position embeddings do not see; for
a model with absolute positions (:func:`rotary` false) they are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

PROMPT_KEYS = ("prompt_ids", "prompt_mask")
# Per-row values of TRL 1.16's generation batch; a key outside these (images, for instance) keeps
# TRL's own micro-batches.
ROW_KEYS = frozenset(
    {
        *PROMPT_KEYS,
        "completion_ids",
        "completion_mask",
        "advantages",
        "old_per_token_logps",
        "sampling_per_token_logps",
        "ref_per_token_logps",
        "importance_sampling_ratio",
        "tool_mask",
        "entropy_weight",
    }
)
SHARED_KEYS = frozenset({"num_items_in_batch"})
# Losses that are a token sum over the step, or a mean over equal-sized micro-batches of per-row
# values: the same whichever rows share a micro-batch. (``bnpo`` divides by each micro-batch's
# token count.)
PARTITION_FREE_LOSSES = frozenset({"grpo", "dapo", "dr_grpo"})


def partition_free(loss_type: str) -> bool:
    """Whether the loss's policy and KL terms are the same whichever rows share a micro-batch."""
    return loss_type in PARTITION_FREE_LOSSES


def loss_mask(batch: dict[str, Any]) -> torch.Tensor:
    """The tokens TRL's loss counts: the completion's, less the tool (retrieved) ones."""
    mask = batch["completion_mask"]
    return mask * batch["tool_mask"] if "tool_mask" in batch else mask


def entropy_weights(batches: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL's micro-batches, each row tagged with 1 / the loss tokens of its micro-batch: the weight
    TRL's entropy bonus gives each of its tokens. :func:`entropy_scale` carries it into whichever
    micro-batch :func:`regroup` puts the row in, so the bonus, its gradient and the step's mean of
    the logged entropy stay TRL's."""
    out = []
    for b in batches:
        rows = len(b["completion_mask"])
        weight = _loss_tokens(b).reciprocal().expand(rows).clone()  # on the batch's device
        out.append({**b, "entropy_weight": weight})
    return out


def entropy_scale(batch: dict[str, Any]) -> torch.Tensor:
    """Per-row factor (rows x 1) for the entropies of ``batch``, so that its token mean, which TRL
    takes, equals the sum of each row's tokens at the weight of the micro-batch it came from."""
    return (batch["entropy_weight"] * _loss_tokens(batch))[:, None]


def _loss_tokens(batch: dict[str, Any]) -> torch.Tensor:
    """The loss tokens of ``batch``, at least 1: what TRL's token mean divides by."""
    return loss_mask(batch).sum().clamp(min=1).to(torch.float32)


def can_regroup(batch: dict[str, Any]) -> bool:
    """Whether every key of the batch is one this module knows how to cut."""
    return set(batch) <= ROW_KEYS | SHARED_KEYS and "completion_mask" in batch


def rotary(model_config: Any) -> bool:
    """Whether the model's positions are rotary (relative), so a uniform shift changes nothing."""
    return any(
        getattr(model_config, key, None) is not None for key in ("rope_parameters", "rope_theta")
    )


def trim(batch: dict[str, Any], cut_prompt_padding: bool = True) -> dict[str, Any]:
    """A micro-batch cut to its longest completion, and to its longest prompt if
    ``cut_prompt_padding``."""
    prompt_mask, completion_mask = batch["prompt_mask"], batch["completion_mask"]
    used = prompt_mask.any(dim=0).nonzero()
    lead = int(used[0]) if len(used) and cut_prompt_padding else 0
    used = completion_mask.any(dim=0).nonzero()
    width = int(used[-1]) + 1 if len(used) else 1
    out = dict(batch)
    for key in PROMPT_KEYS:
        out[key] = batch[key][:, lead:]
    completion_width = completion_mask.shape[1]
    for key, value in batch.items():
        if key in PROMPT_KEYS or key in SHARED_KEYS:
            continue
        if (
            isinstance(value, torch.Tensor)
            and value.ndim == 2
            and value.shape[1] == completion_width
        ):
            out[key] = value[:, :width]
    return out


def regroup(
    batches: Sequence[dict[str, Any]], cut_prompt_padding: bool = True
) -> list[dict[str, Any]]:
    """The same rows in as many micro-batches, the shortest together, each trimmed."""
    whole = {
        key: batches[0][key] if key in SHARED_KEYS else torch.cat([b[key] for b in batches])
        for key in batches[0]
    }
    lengths = whole["prompt_mask"].sum(dim=1) + whole["completion_mask"].sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    size = -(-len(order) // len(batches))
    out = []
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        part = {key: v if key in SHARED_KEYS else v[rows] for key, v in whole.items()}
        out.append(trim(part, cut_prompt_padding))
    return out


def trimmed_logps(
    forward: Callable[..., tuple[torch.Tensor, torch.Tensor | None, Any]],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    batch_size: int | None,
    compute_entropy: bool,
    cut_prompt_padding: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``forward`` (TRL's per-token log-prob pass over one chunk) run on chunks of rows of similar
    length, each cut to its own used columns; results padded back to ``logits_to_keep``."""
    rows = input_ids.shape[0]
    size = batch_size or rows
    order = torch.argsort(attention_mask.sum(dim=1), stable=True)
    prompt_width = input_ids.shape[1] - logits_to_keep
    logps, entropies = [], []
    for start in range(0, rows, size):
        idx = order[start : start + size]
        mask = attention_mask[idx]
        used = mask.any(dim=0).nonzero()
        lead = min(int(used[0]), prompt_width) if len(used) and cut_prompt_padding else 0
        end = max(int(used[-1]) + 1, prompt_width + 1) if len(used) else prompt_width + 1
        keep = end - prompt_width
        lp, ent, _ = forward(
            input_ids[idx, lead:end], mask[:, lead:end], keep, len(idx), compute_entropy
        )
        logps.append(F.pad(lp, (0, logits_to_keep - keep)))
        if compute_entropy:
            entropies.append(F.pad(ent, (0, logits_to_keep - keep)))
    back = torch.argsort(order)  # the chunks' rows back in the caller's order
    return (
        torch.cat(logps)[back],
        torch.cat(entropies)[back] if compute_entropy else None,
    )
