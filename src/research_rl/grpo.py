"""The GRPO objective, written out once in plain torch: the reference the trainers are tested
against.

For a batch of B completions (G per question, question-major) padded to T tokens:

- advantages: each reward minus its group's mean, divided by the group's std (unbiased) plus
  ``eps``; one scalar per completion, broadcast over its tokens. A completion left out of the step
  (its search failed on the retriever: reward NaN, mask all 0) is excluded from its group's mean
  and std and gets advantage 0, so its group is normalised over the completions that remain;
- policy term per token: ``-min(r * A, clip(r, 1 - eps_low, 1 + eps_high) * A)`` with
  ``r = exp(logp - old_logp)``;
- KL term per token: the k3 estimator ``exp(ref - logp) - (ref - logp) - 1`` against a frozen
  reference, weighted by ``beta`` (no importance-sampling correction);
- aggregation: token-mean, the sum over every unmasked token of the batch divided by their count;
- entropy bonus: minus ``entropy_coef`` times the token-mean entropy of the policy's next-token
  distribution over the same tokens (verl's ``loss = pg_loss - entropy_coeff * entropy``; ReSearch
  trains with verl's default coefficient, 0.001).

``mask`` is 1 on tokens the model generated and 0 on padding and on tokens the system inserted
(retrieved ``<result>`` passages): those never reach the loss, its gradient, the KL or any count.
No TRL import here: the core stays engine-agnostic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

RewardScaling = Literal["group", "batch", "none"]


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    scale: RewardScaling = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    """Group-normalised advantages, one per completion.

    ``rewards`` is 1-D, question-major (q0 s0..s(G-1), q1 s0..). ``eps`` keeps groups whose rewards
    are all equal at advantage 0 (TRL uses 1e-4, verl 1e-6: the difference only matters when a
    group's std is near zero). ``scale="none"`` only centres (Dr. GRPO), ``"batch"`` divides by the
    std of the whole batch. A NaN reward marks a completion left out: it counts in no mean or std
    and its advantage is 0 (a group with one completion left has no spread: advantage 0).
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D, got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"unknown reward scaling {scale!r}: expected group, batch or none")
    kept = ~torch.isnan(rewards)
    grouped = rewards.view(-1, group_size)
    keep = kept.view(-1, group_size)
    count = keep.sum(dim=1, keepdim=True)
    mean = torch.where(keep, grouped, 0.0).sum(dim=1, keepdim=True) / count.clamp(min=1)
    centred = torch.where(keep, grouped - mean, 0.0)
    if scale == "none":
        return centred.view(-1)
    if scale == "group":
        var = (centred**2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
        std = torch.where(count > 1, var.sqrt(), 0.0).expand_as(grouped)
    else:
        left = rewards[kept]
        std = left.std() if left.numel() > 1 else torch.zeros((), dtype=rewards.dtype)
    return (centred / (std + eps)).reshape(-1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference): non-negative, unbiased, low variance."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


@dataclass
class GRPOLoss:
    loss: torch.Tensor  # scalar, differentiable
    policy_loss: torch.Tensor  # token-mean of the clipped policy term alone (detached)
    kl: torch.Tensor  # token-mean k3 KL (detached)
    clip_fraction: torch.Tensor  # share of tokens whose ratio was clipped against their advantage
    num_tokens: torch.Tensor  # unmasked tokens the mean ran over
    entropy: torch.Tensor  # token-mean entropy (detached; 0 when none was given)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each position's next-token distribution: (..., V) logits -> (...)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # where(), not a product: a non-finite value on a masked token must not leak in as NaN.
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp(min=1)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    beta: float = 1e-3,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
) -> GRPOLoss:
    """The clipped GRPO surrogate plus ``beta`` times the k3 KL, token-mean over ``mask``, minus
    ``entropy_coef`` times the token-mean of ``entropy`` (per-token entropies, see
    :func:`token_entropy`).

    ``logp``, ``old_logp``, ``ref_logp``, ``entropy`` and ``mask`` are (B, T); ``advantages`` is
    (B,). ``ref_logp`` may be None only when ``beta`` is 0, ``entropy`` only when
    ``entropy_coef`` is 0.
    """
    if logp.shape != old_logp.shape or logp.shape != mask.shape:
        raise ValueError(
            f"shape mismatch: logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)}, "
            f"mask {tuple(mask.shape)}"
        )
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages must be ({logp.shape[0]},), got {tuple(advantages.shape)}")
    if beta != 0.0 and ref_logp is None:
        raise ValueError("beta != 0 needs the reference log-probs")
    if entropy_coef != 0.0 and entropy is None:
        raise ValueError("entropy_coef != 0 needs the per-token entropies")
    mask = mask.bool()
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    adv = advantages.unsqueeze(1)

    ratio = torch.exp(logp - old_logp)
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + eps_high)
    policy_term = -torch.min(ratio * adv, clipped * adv)
    per_token = policy_term
    kl = torch.zeros((), dtype=logp.dtype)
    if beta != 0.0:
        per_token_kl = k3_kl(logp, ref_logp)
        per_token = per_token + beta * per_token_kl
        kl = _masked_mean(per_token_kl, mask).detach()

    loss = _masked_mean(per_token, mask)
    mean_entropy = torch.zeros((), dtype=logp.dtype)
    if entropy is not None:
        mean_entropy = _masked_mean(entropy, mask)
        loss = loss - entropy_coef * mean_entropy

    was_clipped = ((ratio < 1 - clip_eps) & (adv < 0)) | ((ratio > 1 + eps_high) & (adv > 0))
    return GRPOLoss(
        loss=loss,
        policy_loss=_masked_mean(policy_term, mask).detach(),
        kl=kl,
        clip_fraction=_masked_mean(was_clipped.to(logp.dtype), mask).detach(),
        num_tokens=mask.sum(),
        entropy=mean_entropy.detach(),
    )
