"""Pre-training teaches copying and the protocol only: queries and answers are names drawn at
random from what was read, never from the golden answer; the weighted LM step is one padded
batch's loss."""

from __future__ import annotations

import dataclasses
import random

import pytest

from research_rl import tags
from research_rl.bpe import PROTOCOL_TOKENS, train_tokenizer
from research_rl.demo.pretraining import (
    CHOICE_WEIGHT,
    FINAL_THOUGHT,
    FIRST_THOUGHT,
    NEXT_THOUGHT,
    TranscriptSampler,
    collate,
    copy_row,
    encode_transcript,
    length_buckets,
    lm_step,
    names,
    untagged,
    weighted_nll_sum,
)
from research_rl.reward import check_format
from research_rl.rollout import format_passages, result_block
from research_rl.synthetic_world import WorldConfig, generate_world, split_questions, write_world

SIZES = dict(countries=4, cities=12, people=40, films=40, heldout_fraction=0.2, test_per_hops=10)
CFG = WorldConfig(**SIZES, distractors=1)
SEED = 2
PROMPT = "Answer with search.\nUser: {question}\nAssistant:"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from research_rl.retrieval.index import build_index, load_index

    root = tmp_path_factory.mktemp("world")
    files = write_world(CFG, root, SEED)
    build_index(files.corpus, root / "index", show_progress=False)
    retriever = load_index(root / "index")
    world = generate_world(CFG, SEED)
    tok = train_tokenizer(world.vocabulary_text() + [PROMPT, " ".join(PROTOCOL_TOKENS)], 2000)
    sampler = TranscriptSampler(
        retriever,
        topk=2,
        render_prompt=lambda q: PROMPT.replace("{question}", q),
        render_result=lambda hits: result_block(format_passages(hits, tok, 32)),
    )
    train, _ = split_questions(world, CFG, SEED)
    yield sampler, tok, train
    retriever.close()


def test_transcripts_follow_the_protocol(setup):
    sampler, _, train = setup
    rng = random.Random(0)
    counts = set()
    for q in train[:200]:
        t = sampler.sample(q, rng)
        valid, why = check_format(t.completion)
        assert valid, why
        counts.add(len(t.queries))
        inserted = [text for text, by_model in t.segments if not by_model]
        assert len(inserted) == len(t.queries)
        assert all(s.startswith("\n" + tags.RESULT_OPEN) for s in inserted)
        assert tags.last_boxed(t.completion).strip() == t.answer
        thoughts = [c.split(tags.THINK_CLOSE)[0].strip() for c in t.completion.split("<think>")[1:]]
        k = len(t.queries)
        assert thoughts == ([FIRST_THOUGHT] + [NEXT_THOUGHT] * (k - 1) + [FINAL_THOUGHT])[: k + 1]
    assert counts == {0, 1, 2, 3}


def test_queries_are_names_read_so_far_and_later_ones_are_new(setup):
    sampler, _, train = setup
    rng = random.Random(5)
    for q in train:
        t = sampler.sample(q, rng)
        asked = names(q.question)
        read = list(asked)
        for i, (query, (text, _)) in enumerate(zip(t.queries, t.segments[1::2], strict=True)):
            if i == 0:
                assert query in asked
            else:
                assert query in read, (query, read)
                fresh = [n for n in read[len(asked) :] if n not in t.queries[:i]]
                assert query in (fresh or read[len(asked) :]), (query, fresh)
            read += names(untagged(text))


def test_answers_are_names_the_last_result_added_and_hit_the_gold_at_chance(setup):
    """The boxed answer is uniform over the names the last result block added (else that block's
    names): the gold is boxed at the rate a uniform pick among them gives, no more."""
    sampler, _, train = setup
    rng = random.Random(6)
    hits, chance, n, narrower = 0, 0.0, 0, 0
    for q in train:
        for _ in range(20):
            t = sampler.sample(q, rng)
            blocks = [names(untagged(text)) for text, by_model in t.segments if not by_model]
            if not blocks:
                assert t.answer in names(q.question)
                continue
            earlier = set(names(q.question)).union(*blocks[:-1])
            pool = [name for name in blocks[-1] if name not in earlier] or blocks[-1]
            assert t.answer in pool, (t.answer, pool)
            n += 1
            narrower += len(pool) < len(set().union(*blocks))
            hits += t.answer == q.golden_answers[0]
            chance += (q.golden_answers[0] in pool) / len(pool)
    assert n > 2000 and chance > 100
    assert narrower > n / 4  # the pool is often smaller than all names read: the test can tell
    assert 0.8 * chance < hits < 1.2 * chance


def test_sampling_never_looks_at_the_golden_answer(setup):
    sampler, _, train = setup
    for i, q in enumerate(train[:100]):
        decoy = dataclasses.replace(q, golden_answers=["something else entirely"])
        assert sampler.sample(q, random.Random(i)) == sampler.sample(decoy, random.Random(i))


def test_encoding_matches_the_rollout_engine_and_masks_results(setup):
    sampler, tok, train = setup
    t = sampler.sample(train[0], random.Random(4))
    while not t.queries:
        t = sampler.sample(train[0], random.Random(len(t.completion)))
    ids, mask = encode_transcript(tok, t)
    assert tok.decode(ids) == t.prompt + t.completion
    prompt_len = len(tok(t.prompt, add_special_tokens=False)["input_ids"])
    assert mask[:prompt_len] == [0] * prompt_len
    # The masked completion tokens decode to exactly the inserted result blocks.
    masked = tok.decode(
        [i for i, m in zip(ids[prompt_len:], mask[prompt_len:], strict=True) if not m]
    )
    assert masked == "".join(text for text, by_model in t.segments if not by_model)
    # Each inserted block is tokenised alone, as the engine does.
    block = t.segments[1][0]
    block_ids = tok(block, add_special_tokens=False)["input_ids"]
    first = len(tok(t.prompt + t.segments[0][0], add_special_tokens=False)["input_ids"])
    assert ids[first : first + len(block_ids)] == block_ids


def test_choice_tokens_weigh_choice_weight_and_nothing_else_does(setup):
    sampler, tok, train = setup
    rng = random.Random(5)
    for q in train[:50]:
        t = sampler.sample(q, rng)
        ids, weights = encode_transcript(tok, t)
        chosen = tok.decode([i for i, w in zip(ids, weights, strict=True) if w == CHOICE_WEIGHT])
        assert "".join(chosen.split()) == "".join(" ".join([*t.queries, t.answer]).split())
        assert set(weights) <= {0.0, 1.0, CHOICE_WEIGHT}


def test_copy_rows_say_random_words_twice_with_loss_on_the_second_saying(setup):
    _, tok, _ = setup
    ids, weights = copy_row(tok, random.Random(0), ["Kemora", "born", "city", "Ulaga"], 6)
    half = len(ids) // 2
    assert ids[:half] == ids[half:]
    assert weights[: half + 1] == [0.0] * (half + 1) and weights[half + 1 :] == [1.0] * (half - 1)
    with pytest.raises(ValueError, match="empty vocabulary"):
        copy_row(tok, random.Random(0), [], 3)


def test_weighted_loss_ignores_weight_zero_tokens_and_scales_with_weights():
    import torch

    class Fixed(torch.nn.Module):  # the same logits whatever the input: next token 1 is likely
        def forward(self, input_ids, attention_mask):
            logits = torch.zeros(*input_ids.shape, 4)
            logits[..., 1] = 2.0
            return type("Out", (), {"logits": logits})()

    def mean_loss(rows):
        total, weight = weighted_nll_sum(Fixed(), *collate(rows, pad_id=0))
        return total / weight

    nll_1 = torch.log(torch.exp(torch.tensor(2.0)) + 3) - 2.0  # -log softmax for target 1
    assert torch.isclose(mean_loss([([0, 1, 2], [0.0, 1.0, 0.0]), ([0, 3], [0.0, 0.0])]), nll_1)
    nll_2 = torch.log(torch.exp(torch.tensor(2.0)) + 3)  # target 2 has logit 0
    assert torch.isclose(mean_loss([([0, 1, 2], [0.0, 3.0, 1.0])]), (3 * nll_1 + nll_2) / 4)


def test_length_buckets_keep_every_row_and_cut_padding():
    rows = [([0] * n, [1.0] * n) for n in (200, 30, 210, 25, 28, 190, 31, 205)]
    buckets = length_buckets(rows, max_buckets=3)
    assert sorted(len(ids) for b in buckets for ids, _ in b) == sorted(len(ids) for ids, _ in rows)
    padded = sum(len(b) * max(len(ids) for ids, _ in b) for b in buckets)
    assert padded < 0.6 * len(rows) * 210  # one padded batch would cost 8 x 210
    assert len(buckets) <= 3
    assert sorted(len(ids) for ids, _ in buckets[0]) == [25, 28, 30, 31]  # the short rows alone
    assert length_buckets(rows, max_buckets=1) == [sorted(rows, key=lambda r: len(r[0]))]
    assert length_buckets([]) == []


def test_bucketed_step_matches_one_padded_batch():
    """The bucketed step optimises the same weighted mean as one padded batch: same loss, same
    gradient (up to float rounding)."""
    import copy

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    model = Qwen2ForCausalLM(config)
    rng = random.Random(0)
    rows = [
        ([rng.randrange(50) for _ in range(n)], [rng.choice([0.0, 1.0, 3.0]) for _ in range(n)])
        for n in (40, 6, 38, 5, 7, 39)
    ]
    grads = []
    losses = []
    for buckets in (1, 3):
        m = copy.deepcopy(model)
        opt = torch.optim.SGD(m.parameters(), lr=0.0)  # a step that moves nothing
        losses.append(lm_step(m, opt, rows, pad_id=0, max_grad_norm=1e9, max_buckets=buckets))
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
