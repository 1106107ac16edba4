"""The BPE tokenizer and the demo policy load back as any Hugging Face model directory."""

from __future__ import annotations

import pytest

from research_rl.bpe import PROTOCOL_TOKENS, train_tokenizer
from research_rl.demo.policy import PolicyConfig, create_policy, save_policy
from research_rl.synthetic_world import WorldConfig, generate_world

SIZES = dict(countries=3, cities=8, people=30, films=30, heldout_fraction=0.2, test_per_hops=5)
WORLD = generate_world(WorldConfig(**SIZES, distractors=1), seed=1)
SMALL_POLICY = PolicyConfig(hidden_size=32, num_hidden_layers=1)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(WORLD.vocabulary_text() + [" ".join(PROTOCOL_TOKENS)], vocab_size=2000)


def test_round_trip_is_exact_even_for_unseen_text(tokenizer):
    texts = [
        WORLD.passages()[5].contents,
        "<think> ok </think> <search> Where was Zyx born? </search>\n<result>\nDoc 1 (Title: A) b\n"
        "</result>\n<answer> The final answer is \\boxed{ Émile 42 } </answer>",
    ]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
        assert tokenizer.decode(ids, skip_special_tokens=True) == text  # tags are not special


def test_protocol_tags_and_world_names_are_single_tokens(tokenizer):
    for tag in PROTOCOL_TOKENS:
        assert len(tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1
    names = list(WORLD.person_city)[:10]
    for name in names:
        assert len(tokenizer(" " + name, add_special_tokens=False)["input_ids"]) == 1


def test_saved_policy_loads_with_auto_classes(tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = create_policy(SMALL_POLICY, tokenizer)
    save_policy(model, tokenizer, tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path))
    assert tok.eos_token_id is not None and tok.pad_token_id is not None
    assert tok.pad_token_id != tok.eos_token_id
    assert loaded.config.model_type == "qwen2"
    assert loaded.config.vocab_size == len(tok)
    assert (
        loaded.get_input_embeddings().weight.data_ptr()
        == loaded.get_output_embeddings().weight.data_ptr()
    )


def test_tokenizer_loaded_beside_the_policy_encodes_like_the_trained_one(tmp_path):
    """Beside a Qwen2 config, AutoTokenizer builds a Qwen2Tokenizer with its own pre-tokeniser:
    the trained tokenizer must split text the same way, or format training (in memory) and GRPO,
    evaluation and ``research ask`` (from disk) would see different token ids for the same text."""
    from transformers import AutoTokenizer

    texts = [p.contents for p in WORLD.passages()] + [
        "<result>\nDoc 1 (Title: A) b 2024, it's 3.5\n</result>\n<think> ok </think> "
        "<answer> The final answer is \\boxed{ Émile } </answer>",
    ]
    # The texts themselves are in the training data, so merges across Qwen2's split points
    # (" 1", "'s", "2024") would exist if the trainer's split allowed them.
    tokenizer = train_tokenizer(texts * 20, vocab_size=2000)
    model = create_policy(SMALL_POLICY, tokenizer)
    save_policy(model, tokenizer, tmp_path)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    for text in texts:
        assert (
            loaded(text, add_special_tokens=False)["input_ids"]
            == tokenizer(text, add_special_tokens=False)["input_ids"]
        ), text
