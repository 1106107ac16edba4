"""The transformers backend on a tiny random Qwen2: batching and padding change nothing under
greedy decoding, each sequence stops at its own stop string and budget, log-probs are right."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from conftest import make_tokenizer
from research_rl.backends.base import GenerationRequest, SamplingParams
from research_rl.backends.hf import HFBackend
from research_rl.questions import Question
from research_rl.rollout import RolloutConfig, RolloutEngine

GREEDY = SamplingParams(temperature=0.0)
STOPS = ["</search>", "</answer>"]


@pytest.fixture(scope="module")
def tok():
    t = make_tokenizer()
    t.add_tokens(["<search>", "</search>", "<answer>", "</answer>"])
    return t


SEARCH_BOOST = 1.6


def build_model(tok, search_boost: float = SEARCH_BOOST) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        attn_implementation="eager",
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    m = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():  # make the random model search now and then
        m.lm_head.weight[tok.convert_tokens_to_ids("</search>")] *= search_boost
    return m


@pytest.fixture(scope="module")
def model(tok):
    return build_model(tok)


@pytest.fixture(scope="module")
def short_template(tmp_path_factory):
    """A short prompt: with the built-in ones the random model rarely reaches </search>."""
    path = tmp_path_factory.mktemp("template") / "prompt.txt"
    path.write_text("User: {question} Assistant:", encoding="utf-8")
    return str(path)


PROFILES = pytest.mark.parametrize("profile", ["research", "strict"])


def requests(tok, prompts, budgets, stops=None):
    return [
        GenerationRequest(tok.encode(p), b, list(stops[i]) if stops else list(STOPS))
        for i, (p, b) in enumerate(zip(prompts, budgets, strict=True))
    ]


PROMPTS = [
    "User: what is the capital of France? Assistant:",
    "User: who? Assistant:",
    "the quick brown fox jumps over the lazy dog and the quick brown fox",
    "0123",
    "Doc 1 (Title: Paris) Paris is the capital",
]


def test_batch_equals_each_request_alone(tok, model):
    backend = HFBackend(model, tok, max_batch_size=3)  # 5 requests: two chunks
    reqs = requests(tok, PROMPTS, [40, 7, 25, 60, 33])
    batch = backend.generate(reqs, GREEDY)
    for req, got in zip(reqs, batch, strict=True):
        (alone,) = HFBackend(model, tok).generate([req], GREEDY)
        assert got.token_ids == alone.token_ids
        assert (got.finish_reason, got.stop_string) == (alone.finish_reason, alone.stop_string)
        assert got.logprobs == pytest.approx(alone.logprobs, abs=1e-5)
    assert {o.finish_reason for o in batch} >= {"length", "stop"}
    assert [len(o.token_ids) for o in batch if o.finish_reason == "length"] == [
        r.max_new_tokens for r, o in zip(reqs, batch, strict=True) if o.finish_reason == "length"
    ]


def test_each_sequence_stops_at_its_own_stop_string(tok, model):
    backend = HFBackend(model, tok)
    free = backend.generate(requests(tok, PROMPTS[:3], [30] * 3, [[]] * 3), GREEDY)
    # Stop each request at a piece of what it writes when unconstrained (ends mid-output).
    stops = []
    for o in free:
        text = tok.decode(o.token_ids[:12])
        stops.append([text[-3:]])
    outs = backend.generate(requests(tok, PROMPTS[:3], [30] * 3, stops), GREEDY)
    for o, f, s in zip(outs, free, stops, strict=True):
        assert o.finish_reason == "stop" and o.stop_string == s[0]
        assert o.token_ids == f.token_ids[: len(o.token_ids)]  # same tokens, cut at its own stop
        text = tok.decode(o.token_ids)
        assert s[0] in text and s[0] not in tok.decode(o.token_ids[:-1])


def test_logprobs_match_a_full_forward_pass(tok, model):
    (out,) = HFBackend(model, tok).generate(requests(tok, PROMPTS[:1], [20]), GREEDY)
    prompt = tok.encode(PROMPTS[0])
    ids = torch.tensor([prompt + out.token_ids])
    with torch.no_grad():
        logp = model(ids).logits[0, len(prompt) - 1 : -1].log_softmax(-1)
    expected = logp.gather(-1, torch.tensor(out.token_ids)[:, None]).squeeze(-1)
    assert out.logprobs == pytest.approx(expected.tolist(), abs=1e-4)


def test_sampling_is_seeded_and_logprobs_are_temperature_scaled(tok, model):
    backend = HFBackend(model, tok)
    sampling = SamplingParams(temperature=0.7, top_p=0.9, top_k=50, seed=3)
    reqs = requests(tok, PROMPTS[:2], [15, 15], [[], []])
    a, b = backend.generate(reqs, sampling), backend.generate(reqs, sampling)
    assert [o.token_ids for o in a] == [o.token_ids for o in b]
    other = backend.generate(reqs, SamplingParams(temperature=0.7, seed=4))
    assert [o.token_ids for o in a] != [o.token_ids for o in other]
    prompt = tok.encode(PROMPTS[0])
    with torch.no_grad():
        logits = model(torch.tensor([prompt + a[0].token_ids])).logits[0, len(prompt) - 1 : -1]
    expected = (logits / 0.7).log_softmax(-1).gather(-1, torch.tensor(a[0].token_ids)[:, None])
    assert a[0].logprobs == pytest.approx(expected.squeeze(-1).tolist(), abs=1e-4)


@PROFILES
def test_greedy_rollouts_in_a_batch_equal_rollouts_alone(
    tok, model, retriever, short_template, profile
):
    questions = [Question(f"q{i}", p, ["Paris"]) for i, p in enumerate(PROMPTS)]
    cfg = RolloutConfig(
        profile=profile,
        template_path=short_template,
        max_response_tokens=120,
        max_searches=2,
        max_passage_tokens=10,
        topk=2,
    )
    batch = RolloutEngine(HFBackend(model, tok, max_batch_size=4), tok, retriever, cfg).run(
        questions, n=1, sampling=GREEDY
    )
    assert sum(t.num_searches for t in batch) >= 2  # the comparison crosses result insertions
    for q, got in zip(questions, batch, strict=True):
        (alone,) = RolloutEngine(HFBackend(model, tok), tok, copy.deepcopy(retriever), cfg).run(
            [q], n=1, sampling=GREEDY
        )
        assert got.completion_ids == alone.completion_ids
        assert got.loss_mask == alone.loss_mask
        assert (got.finish_reason, got.text, got.search_queries) == (
            alone.finish_reason,
            alone.text,
            alone.search_queries,
        )
        assert len(got.loss_mask) == len(got.completion_ids) <= 120


@PROFILES
def test_prefix_cache_reuse_changes_nothing(tok, model, retriever, short_template, profile):
    questions = [Question(f"q{i}", p, ["Paris"]) for i, p in enumerate(PROMPTS)]
    cfg = RolloutConfig(
        profile=profile,
        template_path=short_template,
        max_response_tokens=120,
        max_searches=3,
        max_passage_tokens=10,
        topk=2,
    )
    runs = []
    for reuse in (True, False):
        backend = HFBackend(model, tok, max_batch_size=4, reuse_prefix=reuse)
        runs.append(
            RolloutEngine(backend, tok, retriever, cfg).run(questions, n=1, sampling=GREEDY)
        )
        assert backend._prefixes == []  # the engine clears kept caches when a run ends
    cached, fresh = runs
    assert sum(t.num_searches for t in cached) >= 2
    for a, b in zip(cached, fresh, strict=True):
        assert a.completion_ids == b.completion_ids and a.loss_mask == b.loss_mask
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_kept_cache_is_used_for_a_continued_context(tok, model):
    backend = HFBackend(model, tok)
    (first,) = backend.generate(requests(tok, PROMPTS[:1], [10]), GREEDY)
    assert len(backend._prefixes) == 1
    context = tok.encode(PROMPTS[0]) + first.token_ids + tok.encode("\n<result>\nx\n</result>\n")
    assert backend._match(context, backend._prefixes) is backend._prefixes[0]
    (again,) = backend.generate([GenerationRequest(context, 10, STOPS)], GREEDY)
    (fresh,) = HFBackend(model, tok, reuse_prefix=False).generate(
        [GenerationRequest(context, 10, STOPS)], GREEDY
    )
    assert again.token_ids == fresh.token_ids
    assert again.logprobs == pytest.approx(fresh.logprobs, abs=1e-4)


def test_sampler_draws_from_the_filtered_distribution():
    from research_rl.backends.hf import sample_tokens

    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]]).repeat(100_000, 1)
    g = torch.Generator().manual_seed(0)
    tokens, lps = sample_tokens(logits, SamplingParams(temperature=2.0), g)
    expected = (logits[0] / 2.0).softmax(-1)
    assert (torch.bincount(tokens, minlength=4) / len(tokens)).tolist() == pytest.approx(
        expected.tolist(), abs=0.01
    )
    assert lps[0].item() == pytest.approx(expected.log()[tokens[0]].item(), abs=1e-6)
    top2, _ = sample_tokens(logits, SamplingParams(temperature=1.0, top_k=2), g)
    assert set(top2.tolist()) == {1, 2}
    nucleus, _ = sample_tokens(logits, SamplingParams(temperature=1.0, top_p=0.6), g)
    assert set(nucleus.tolist()) == {2}  # p(2) = 0.64 already reaches top_p


def test_a_group_shares_its_prompt_pass_and_still_samples_apart(
    tok, model, retriever, short_template
):
    questions = [Question(f"q{i}", p, ["Paris"]) for i, p in enumerate(PROMPTS[:2])]
    cfg = RolloutConfig(
        template_path=short_template,
        max_response_tokens=60,
        max_searches=2,
        max_passage_tokens=10,
        topk=2,
    )
    engine = RolloutEngine(HFBackend(model, tok), tok, retriever, cfg)
    group = engine.run(questions, n=3, sampling=GREEDY)
    single = engine.run(questions, n=1, sampling=GREEDY)
    for k, t in enumerate(group):
        assert t.completion_ids == single[k // 3].completion_ids
        assert t.logprobs == pytest.approx(single[k // 3].logprobs, abs=1e-4)
    sampled = engine.run(questions[:1], n=3, sampling=SamplingParams(temperature=1.0, seed=0))
    assert len({tuple(t.completion_ids) for t in sampled}) == 3


def test_kept_caches_respect_their_memory_budget(tok, model):
    reqs = requests(tok, PROMPTS, [5] * 5, [[]] * 5)
    backend = HFBackend(model, tok, max_kept_bytes=0)
    outs = backend.generate(reqs, GREEDY)
    assert backend._prefixes == []
    roomy = HFBackend(model, tok)
    assert [o.token_ids for o in roomy.generate(reqs, GREEDY)] == [o.token_ids for o in outs]
    assert len(roomy._prefixes) == 5 and 0 < roomy._kept_bytes <= roomy.max_kept_bytes


def test_sliding_window_models_keep_transformers_cache(tok):
    from research_rl.backends.hf import _roomy_cache

    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        use_sliding_window=True,
        sliding_window=8,
        max_window_layers=0,
        attn_implementation="eager",
    )
    assert _roomy_cache(cfg, 10) is None
    torch.manual_seed(0)
    m = Qwen2ForCausalLM(cfg).eval()
    reqs = requests(tok, PROMPTS[:3], [12, 5, 9], [[]] * 3)
    batch = HFBackend(m, tok).generate(reqs, GREEDY)
    for req, got in zip(reqs, batch, strict=True):
        assert got.token_ids == HFBackend(m, tok).generate([req], GREEDY)[0].token_ids


def test_continuing_and_extended_contexts_in_one_call(tok, model, monkeypatch):
    """Rows that only continue (one new token) and rows with a long insertion are prefilled apart
    and merged; the result equals running every context from scratch."""
    import research_rl.backends.hf as hf

    merges = []
    merge = hf._merge
    monkeypatch.setattr(hf, "_merge", lambda *a: merges.append(1) or merge(*a))
    backend = HFBackend(model, tok)
    first = backend.generate(requests(tok, PROMPTS, [6, 3, 8, 5, 4], [[]] * 5), GREEDY)
    block = tok.encode(
        "\n<result>\nDoc 1 (Title: Paris) Paris is the capital of France.\n</result>\n"
    )
    contexts = [
        tok.encode(p) + o.token_ids + (block if k % 2 else [])
        for k, (p, o) in enumerate(zip(PROMPTS, first, strict=True))
    ]
    second = backend.generate([GenerationRequest(c, 12, []) for c in contexts], GREEDY)
    assert merges
    fresh = HFBackend(model, tok, reuse_prefix=False)
    for c, got in zip(contexts, second, strict=True):
        (want,) = fresh.generate([GenerationRequest(c, 12, [])], GREEDY)
        assert got.token_ids == want.token_ids
        assert got.logprobs == pytest.approx(want.logprobs, abs=1e-4)
