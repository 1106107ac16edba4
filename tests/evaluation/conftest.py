"""Shared evaluation fixtures: a tiny world, its BM25 index, a byte-level BPE tokenizer trained
with ``tokenizers`` and a randomly initialised 2-layer Qwen2, all built here, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from research_rl.corpus import Passage, write_corpus
from research_rl.questions import Question, write_questions

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
PASSAGES = [
    Passage.from_title_text("0", "Tepu Suno", "Tepu Suno was born in Suzeton."),
    Passage.from_title_text("1", "Suzeton", "Suzeton is a city in Nokate."),
    Passage.from_title_text("2", "Tesu Rivi", "Tesu Rivi was born in Miboton."),
    Passage.from_title_text("3", "Miboton", "Miboton is a city in Elnobo."),
]
QUESTIONS = [
    Question("q1", "In which country was Tepu Suno born?", ["Nokate"]),
    Question("q2", "In which country was Tesu Rivi born?", ["Elnobo"]),
    Question("q3", "Where was Tepu Suno born?", ["Suzeton"]),
]
SHORT_PROMPT = (
    "Think in <think> </think>, search with <search> </search>, answer as "
    "<answer> \\boxed{x} </answer>.\nQuestion: {question}\nAssistant:"
)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    """Corpus, questions, BM25 index, a short prompt file, and a tiny model directory."""
    from transformers import (
        GenerationConfig,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    from research_rl.bpe import EOS, train_tokenizer
    from research_rl.retrieval.index import build_index

    root = tmp_path_factory.mktemp("world")
    write_corpus(PASSAGES, root / "corpus.jsonl")
    write_questions(QUESTIONS, root / "questions.jsonl")
    (root / "prompt.txt").write_text(SHORT_PROMPT, encoding="utf-8")
    build_index(root / "corpus.jsonl", root / "index", kind="bm25", show_progress=False)

    texts = [p.contents for p in PASSAGES] + [q.question for q in QUESTIONS] + [SHORT_PROMPT] * 3
    fast = train_tokenizer(
        texts, 320, min_frequency=0, pad_token=EOS, added_tokens=(), chat_template=CHAT_TEMPLATE
    )
    model_dir = root / "model"
    fast.save_pretrained(model_dir)

    import torch

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=fast.eos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id
    )
    model.save_pretrained(model_dir)
    return {
        "root": root,
        "corpus": root / "corpus.jsonl",
        "questions": root / "questions.jsonl",
        "index": root / "index",
        "prompt": root / "prompt.txt",
        "model": model_dir,
    }


@pytest.fixture(scope="session")
def tokenizer(world):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(world["model"])


@pytest.fixture
def make_config(world):
    """``make_config(out_dir, **sections)``: a config mapping for the tiny world; keyword
    arguments replace top-level sections."""
    return lambda out, **overrides: _eval_config(world, out, **overrides)


def _eval_config(world, out: Path, **overrides) -> dict:
    cfg = {
        "model": {
            "backend": "hf",
            "path": str(world["model"]),
            "dtype": "float32",
            "device": "cpu",
            "batch_size": 2,
        },
        "datasets": [{"name": "tiny", "path": str(world["questions"])}],
        "methods": ["research", "direct", "rag"],
        "retriever": {"index": str(world["index"])},
        "rollout": {
            "template": "base",
            "template_path": str(world["prompt"]),
            "topk": 2,
            "max_passage_tokens": 16,
            "max_searches": 2,
            "max_response_tokens": 160,
            "max_prompt_tokens": 1024,
        },
        "prompts": {
            "direct_base": "Answer in \\boxed{}.\nQuestion: {question}\nAssistant:",
            "rag_base": "Docs:\n{passages}\nQuestion: {question}\nAssistant:",
        },
        "output_dir": str(out),
    }
    cfg.update(overrides)
    return cfg
