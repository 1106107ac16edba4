"""The reference GRPO objective (research_rl.grpo) against hand-derived values."""

from __future__ import annotations

import math

import pytest
import torch

from research_rl.grpo import group_advantages, grpo_loss, k3_kl, token_entropy


def test_group_advantages_normalise_within_each_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.5])
    adv = group_advantages(rewards, group_size=5, eps=0.0 + 1e-12)
    std = math.sqrt((0.8**2 + 4 * 0.2**2) / 4)  # unbiased std of the first group
    assert adv[0].item() == pytest.approx(0.8 / std)
    assert adv[1].item() == pytest.approx(-0.2 / std)
    # a group whose rewards are all equal carries no signal
    assert torch.all(adv[5:] == 0)
    # groups are independent: shifting one group's rewards leaves the other's advantages alone
    shifted = rewards.clone()
    shifted[5:] += 3.0
    assert torch.allclose(group_advantages(shifted, 5)[:5], group_advantages(rewards, 5)[:5])


def test_group_advantages_scaling_modes_and_errors():
    rewards = torch.tensor([2.0, 0.0, 1.0, 1.0])
    assert torch.allclose(
        group_advantages(rewards, 2, scale="none"), torch.tensor([1.0, -1.0, 0, 0])
    )
    batch = group_advantages(rewards, 2, scale="batch", eps=0.0)
    assert torch.allclose(batch, torch.tensor([1.0, -1.0, 0, 0]) / rewards.std())
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(rewards, 3)
    with pytest.raises(ValueError, match="unknown reward scaling"):
        group_advantages(rewards, 2, scale="sequence")  # type: ignore[arg-type]


def test_left_out_completions_count_in_no_group_statistic():
    nan = float("nan")
    # Group 0 keeps 3 of 4, group 1 keeps 1 (no spread left), group 2 keeps none, group 3 all.
    rewards = torch.tensor(
        [1.0, nan, 0.0, 0.1, nan, 0.7, nan, nan, nan, nan, nan, nan, 0.2, 0.9, 0.1, 0.0]
    )
    dropped = torch.isnan(rewards)
    adv = group_advantages(rewards, 4)
    assert torch.all(adv[dropped] == 0) and torch.isfinite(adv).all()
    # each group as if its left-out completions had never been sampled
    for g in range(4):
        rows = [i for i in range(4 * g, 4 * g + 4) if not dropped[i]]
        if rows:
            alone = group_advantages(rewards[rows], len(rows))
            assert torch.allclose(adv[rows], alone, atol=1e-6), g
    assert adv[5] == 0  # the only one left in its group
    kept = rewards[~dropped]
    centred = group_advantages(rewards, 4, scale="none")
    batch = group_advantages(rewards, 4, scale="batch", eps=0.0)
    assert torch.allclose(batch[~dropped], centred[~dropped] / kept.std())
    assert torch.all(centred[dropped] == 0) and torch.all(batch[dropped] == 0)
    assert centred[0].item() == pytest.approx(1.0 - 1.1 / 3)
    # with nothing left out, nothing changes: the plain per-group formula
    full = torch.nan_to_num(rewards, nan=0.5)
    std = full.view(-1, 4).std(dim=1, keepdim=True)
    plain = ((full.view(-1, 4) - full.view(-1, 4).mean(dim=1, keepdim=True)) / (std + 1e-4)).view(
        -1
    )
    assert torch.allclose(group_advantages(full, 4), plain, atol=1e-6)


def test_k3_is_an_unbiased_estimate_of_kl():
    torch.manual_seed(0)
    logp = torch.log_softmax(torch.randn(7), dim=0)
    ref = torch.log_softmax(torch.randn(7), dim=0)
    exact = torch.sum(logp.exp() * (logp - ref))
    # E_{x~p}[k3(x)] = sum_x p(x) k3(x) = KL(p || ref), exactly
    assert torch.sum(logp.exp() * k3_kl(logp, ref)).item() == pytest.approx(exact.item(), rel=1e-5)
    assert torch.all(k3_kl(logp, ref) >= 0)
    assert torch.all(k3_kl(logp, logp) == 0)


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(3, 6, generator=g) * 3
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 0, 0, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    return logp, mask


def test_token_mean_weighs_every_token_equally():
    logp, mask = _batch()
    logp.requires_grad_(True)
    adv = torch.tensor([1.0, -0.5, 2.0])
    out = grpo_loss(logp, logp.detach(), None, adv, mask, beta=0.0)
    # on-policy (ratio 1) the surrogate is -A per token; token-mean over the 14 unmasked tokens
    per_seq_tokens = mask.sum(1).float()
    expected = -(adv * per_seq_tokens).sum() / per_seq_tokens.sum()
    assert out.loss.item() == pytest.approx(expected.item())
    assert out.num_tokens.item() == 14
    out.loss.backward()
    # the gradient w.r.t. each unmasked token's log-prob is -A / num_tokens, zero elsewhere
    expected_grad = -adv.unsqueeze(1) * mask / 14
    assert torch.allclose(logp.grad, expected_grad)


def test_clipping_stops_the_gradient_past_the_trust_region():
    logp = torch.zeros(2, 2, requires_grad=True)
    old = torch.log(torch.tensor([[1 / 1.5, 1 / 1.1], [1 / 0.5, 1.0]]))  # ratios 1.5, 1.1, 0.5, 1
    adv = torch.tensor([1.0, -1.0])
    out = grpo_loss(logp, old, None, adv, torch.ones(2, 2), clip_eps=0.2, beta=0.0)
    out.loss.backward()
    # ratio 1.5 with A>0 is clipped (no gradient); 1.1 is inside; 0.5 with A<0 is clipped
    assert logp.grad[0, 0].item() == 0.0
    assert logp.grad[0, 1].item() != 0.0
    assert logp.grad[1, 0].item() == 0.0
    assert logp.grad[1, 1].item() != 0.0
    assert out.clip_fraction.item() == pytest.approx(0.5)


def test_kl_term_is_beta_times_masked_token_mean_k3():
    logp, mask = _batch(1)
    ref, _ = _batch(2)
    adv = torch.zeros(3)
    out = grpo_loss(logp, logp, ref, adv, mask, beta=0.25)
    kl = k3_kl(logp, ref)
    expected = (kl * mask).sum() / mask.sum()
    assert out.kl.item() == pytest.approx(expected.item())
    assert out.loss.item() == pytest.approx(0.25 * expected.item())


def test_token_entropy_of_known_distributions():
    uniform = torch.zeros(2, 3, 8)  # 8 equally likely tokens: entropy log 8
    assert torch.allclose(token_entropy(uniform), torch.full((2, 3), math.log(8)))
    certain = torch.tensor([[0.0, -1e4, -1e4]])
    assert token_entropy(certain).item() == pytest.approx(0.0, abs=1e-6)
    p = torch.tensor([0.5, 0.25, 0.25])
    assert token_entropy(p.log()).item() == pytest.approx(-(p * p.log()).sum().item())


def test_entropy_bonus_is_minus_coef_times_masked_token_mean_entropy():
    logp, mask = _batch(6)
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(3, 6, 5, generator=g, requires_grad=True)
    entropy = token_entropy(logits)
    adv = torch.tensor([0.4, -0.3, 1.0])
    plain = grpo_loss(logp, logp, None, adv, mask, beta=0.0)
    out = grpo_loss(logp, logp, None, adv, mask, beta=0.0, entropy=entropy, entropy_coef=0.3)
    mean = (entropy * mask).sum() / mask.sum()
    assert out.entropy.item() == pytest.approx(mean.item())
    assert out.loss.item() == pytest.approx(plain.loss.item() - 0.3 * mean.item())
    # its gradient raises the entropy of unmasked positions only
    out.loss.backward()
    hidden = mask == 0
    assert torch.all(logits.grad[hidden] == 0) and logits.grad[~hidden].abs().sum() > 0
    with pytest.raises(ValueError, match="per-token entropies"):
        grpo_loss(logp, logp, None, adv, mask, beta=0.0, entropy_coef=0.1)


def test_masked_tokens_change_neither_loss_nor_gradient():
    logp, mask = _batch(3)
    old, _ = _batch(4)
    ref, _ = _batch(5)
    adv = torch.tensor([0.7, -1.2, 0.3])

    def run(lp, o, r):
        lp = lp.clone().requires_grad_(True)
        out = grpo_loss(lp, o, r, adv, mask, beta=1e-3)
        out.loss.backward()
        return out.loss.detach(), lp.grad

    base_loss, base_grad = run(logp, old, ref)
    hidden = mask == 0
    for tensor_index in range(3):
        inputs = [logp.clone(), old.clone(), ref.clone()]
        inputs[tensor_index][hidden] = torch.randn(int(hidden.sum())) * 50
        loss, grad = run(*inputs)
        assert torch.equal(loss, base_loss)
        assert torch.allclose(grad[~hidden], base_grad[~hidden])
        assert torch.all(grad[hidden] == 0)
    # even a NaN on an inserted token stays out
    poisoned = old.clone()
    poisoned[hidden] = float("nan")
    loss, _ = run(logp, poisoned, ref)
    assert torch.equal(loss, base_loss)


def test_shape_errors_name_the_inputs():
    logp, mask = _batch()
    with pytest.raises(ValueError, match="advantages must be"):
        grpo_loss(logp, logp, None, torch.zeros(2), mask, beta=0.0)
    with pytest.raises(ValueError, match="reference log-probs"):
        grpo_loss(logp, logp, None, torch.zeros(3), mask, beta=0.1)
