"""Micro-batches cut to their own longest rollout: the same rows, the same log-probs and gradients
as TRL's step-wide padding (training/micro_batches.py)."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from research_rl.training.micro_batches import (
    can_regroup,
    entropy_scale,
    entropy_weights,
    loss_mask,
    partition_free,
    regroup,
    rotary,
    trim,
    trimmed_logps,
)

PROMPTS = [5, 9, 3, 7, 9, 4]  # real prompt lengths (left-padded to 9)
COMPLETIONS = [2, 11, 4, 1, 6, 11]  # real completion lengths (right-padded to 11)


def _batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    rows = len(PROMPTS)
    p_w, c_w = max(PROMPTS), max(COMPLETIONS)
    prompt_mask = torch.zeros(rows, p_w, dtype=torch.long)
    completion_mask = torch.zeros(rows, c_w, dtype=torch.long)
    for i, (p, c) in enumerate(zip(PROMPTS, COMPLETIONS, strict=True)):
        prompt_mask[i, p_w - p :] = 1
        completion_mask[i, :c] = 1
    return {
        "prompt_ids": torch.randint(3, 90, (rows, p_w), generator=gen) * prompt_mask,
        "prompt_mask": prompt_mask,
        "completion_ids": torch.randint(3, 90, (rows, c_w), generator=gen) * completion_mask,
        "completion_mask": completion_mask,
        "tool_mask": torch.ones(rows, c_w, dtype=torch.long),
        "ref_per_token_logps": torch.randn(rows, c_w, generator=gen),
        "advantages": torch.randn(rows, generator=gen),
        "num_items_in_batch": torch.tensor(float(sum(COMPLETIONS))),
    }


def _rows(batches) -> list[tuple]:
    """Each row's real tokens and values, whatever the padding around them."""
    out = []
    for b in batches:
        for i in range(len(b["advantages"])):
            pm, cm = b["prompt_mask"][i].bool(), b["completion_mask"][i].bool()
            out.append(
                (
                    tuple(b["prompt_ids"][i][pm].tolist()),
                    tuple(b["completion_ids"][i][cm].tolist()),
                    tuple(b["ref_per_token_logps"][i][cm].tolist()),
                    float(b["advantages"][i]),
                )
            )
    return sorted(out)


def test_regroup_keeps_every_row_and_cuts_each_micro_batch_to_its_longest():
    whole = _batch()
    halves = [{k: v if v.ndim == 0 else v[i::2] for k, v in whole.items()} for i in range(2)]
    assert can_regroup(halves[0])
    out = regroup(halves)
    assert len(out) == 2 and [len(b["advantages"]) for b in out] == [3, 3]
    assert _rows(out) == _rows(halves)
    # grouped by length: the three shortest rows together, each part as wide as its longest row
    totals = sorted(p + c for p, c in zip(PROMPTS, COMPLETIONS, strict=True))
    first = out[0]["prompt_mask"].sum(1) + out[0]["completion_mask"].sum(1)
    assert sorted(first.tolist()) == totals[:3]
    for b in out:
        assert b["prompt_mask"][:, 0].any() and b["completion_mask"][:, -1].any()
        assert b["tool_mask"].shape == b["completion_mask"].shape
        assert b["num_items_in_batch"] is whole["num_items_in_batch"]
    assert sum(b["prompt_ids"].numel() + b["completion_ids"].numel() for b in out) < (
        whole["prompt_ids"].numel() + whole["completion_ids"].numel()
    )


def test_a_batch_with_images_keeps_trls_micro_batches():
    assert not can_regroup({**_batch(), "pixel_values": torch.zeros(1)})


def test_only_losses_that_ignore_the_partition_are_regrouped():
    assert partition_free("dapo") and partition_free("grpo") and partition_free("dr_grpo")
    assert not partition_free("bnpo")  # divides by each micro-batch's own token count


def test_entropy_weights_follow_each_row_into_its_new_micro_batch():
    whole = _batch()
    whole["tool_mask"][0, 1] = 0  # a retrieved token: not one the loss (or the bonus) counts
    halves = [{k: v if v.ndim == 0 else v[i::2] for k, v in whole.items()} for i in range(2)]
    entropy = torch.rand(len(PROMPTS), max(COMPLETIONS), generator=torch.Generator().manual_seed(1))
    halves_entropy = [entropy[i::2] for i in range(2)]

    def bonus(parts, entropies):  # TRL's: a token mean within each micro-batch
        return sum(
            (e * loss_mask(p)).sum() / loss_mask(p).sum()
            for p, e in zip(parts, entropies, strict=True)
        )

    stock = bonus(halves, halves_entropy)
    tagged = entropy_weights(halves)
    parts = regroup(tagged)

    def real(ids):  # a row's completion tokens (padding is id 0 here), whatever its width
        return tuple(ids[ids != 0].tolist())

    by_row = {
        real(ids): e
        for h, he in zip(tagged, halves_entropy, strict=True)
        for ids, e in zip(h["completion_ids"], he, strict=True)
    }
    moved = [
        torch.stack([by_row[real(ids)][: len(ids)] for ids in p["completion_ids"]]) for p in parts
    ]
    # in micro-batches that regroup changed (grouped by length), the plain mean moves ...
    assert abs(float(bonus(parts, moved) - stock)) > 1e-3
    # ... and the scaled entropies give TRL's value back
    scaled = [e * entropy_scale(p) for p, e in zip(parts, moved, strict=True)]
    torch.testing.assert_close(bonus(parts, scaled), stock)


def test_prompt_padding_is_kept_for_absolute_positions():
    from transformers import GPT2Config

    assert rotary(LlamaConfig()) and not rotary(GPT2Config())
    kept = trim(_batch(), cut_prompt_padding=False)
    assert kept["prompt_ids"].shape[1] == _batch()["prompt_ids"].shape[1]


def test_trim_of_an_unpadded_batch_changes_nothing():
    b = trim(_batch())
    assert b["prompt_ids"].shape[1] == max(PROMPTS)
    assert b["completion_ids"].shape[1] == max(COMPLETIONS)


def _model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaForCausalLM(cfg)


def _logps(model, ids, mask, keep, size, entropy):
    """The full-width pass, as TRL runs it: every chunk at the batch's width."""
    out, ents = [], []
    for s in range(0, len(ids), size):
        logits = model(input_ids=ids[s : s + size], attention_mask=mask[s : s + size]).logits
        logits = logits[:, -keep - 1 : -1].float()
        lp = logits.log_softmax(-1)
        out.append(lp.gather(-1, ids[s : s + size, -keep:, None])[..., 0])
        ents.append(-(lp.exp() * lp).sum(-1))
    return torch.cat(out), torch.cat(ents) if entropy else None, None


def test_trimmed_log_probs_and_gradients_equal_the_full_width_ones():
    b = _batch()
    ids = torch.cat([b["prompt_ids"], b["completion_ids"]], dim=1)
    mask = torch.cat([b["prompt_mask"], b["completion_mask"]], dim=1)
    keep = b["completion_ids"].shape[1]
    loss_mask = b["completion_mask"].float()
    model = _model()

    def run(fn):
        model.zero_grad()
        logps, ents = fn()
        ((logps + 0.1 * ents) * loss_mask).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        return logps.detach() * loss_mask, ents.detach() * loss_mask, grads

    def full():
        return _logps(model, ids, mask, keep, 2, True)[:2]

    def trimmed():
        def chunk(i, m, k, s, e):
            return _logps(model, i, m, k, s, e)

        return trimmed_logps(chunk, ids, mask, keep, 2, True)

    lp_full, ent_full, g_full = run(full)
    lp_trim, ent_trim, g_trim = run(trimmed)
    torch.testing.assert_close(lp_trim, lp_full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent_trim, ent_full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_trim, g_full, atol=1e-5, rtol=1e-4)


def test_entropy_weights_stay_on_the_batchs_device():
    """Built from the batch's own tensors, never on the default (CPU) device: the meta device
    stands in for a GPU."""
    meta = {k: v.to("meta") for k, v in _batch().items()}
    (tagged,) = entropy_weights([meta])
    assert tagged["entropy_weight"].device.type == "meta"
    assert tagged["entropy_weight"].shape == (len(PROMPTS),)
    assert entropy_scale(tagged).device.type == "meta"
