"""Make the small committed assets under examples/tiny/ that configs/tiny-cpu.yaml trains on.

A synthetic two-hop world (people born in cities, cities in countries), its corpus, train and
validation questions, a byte-level BPE tokenizer trained on that text with ``tokenizers``, a
randomly initialised 2-layer Qwen2 (~100k parameters) and a BM25 index. Deterministic: running it
twice gives the same files. Everything stays well under 3 MB.

    .venv/bin/python scripts/make_tiny_assets.py [--out examples/tiny]
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from research_rl.corpus import Passage, write_corpus
from research_rl.questions import Question, write_questions

EOS = "<|endoftext|>"
SYLLABLES = ["ka", "lo", "mi", "ra", "te", "su", "no", "vi", "da", "ze", "pu", "ri", "bo", "el"]
PROTOCOL_SAMPLES = [
    "<think> I need to find where the person was born. </think> <search> birthplace </search>",
    "<result>\nDoc 1 (Title: Example) text\n</result>",
    "<think> Now I know the country. </think> <answer> The answer is \\boxed{answer} </answer>",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _name(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def make_world(seed: int = 0) -> tuple[list[Passage], list[Question]]:
    rng = random.Random(seed)
    countries = sorted({_name(rng, 3) for _ in range(6)})
    cities = {}
    while len(cities) < 12:
        cities[_name(rng, 2) + "ton"] = rng.choice(countries)
    people = {}
    while len(people) < 48:
        people[f"{_name(rng, 2)} {_name(rng, 2)}"] = rng.choice(sorted(cities))
    passages = [
        Passage.from_title_text(f"c{i}", city, f"{city} is a city in {country}.")
        for i, (city, country) in enumerate(sorted(cities.items()))
    ]
    passages += [
        Passage.from_title_text(f"p{i}", person, f"{person} was born in {city}.")
        for i, (person, city) in enumerate(sorted(people.items()))
    ]
    questions = [
        Question(
            id=f"q{i}",
            question=f"In which country was {person} born?",
            golden_answers=[cities[city]],
            metadata={"hops": 2, "city": city},
        )
        for i, (person, city) in enumerate(sorted(people.items()))
    ]
    return passages, questions


def make_tokenizer(texts: list[str], out: Path, vocab_size: int = 384):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def make_model(tokenizer, out: Path, seed: int = 0) -> int:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="examples/tiny", type=Path)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    passages, questions = make_world()
    write_corpus(passages, out / "corpus.jsonl")
    write_questions(questions[:40], out / "train.jsonl")
    write_questions(questions[40:], out / "val.jsonl")

    prompt = (out / "prompt.txt").read_text(encoding="utf-8")
    texts = [p.contents for p in passages] + [q.question for q in questions]
    texts += PROTOCOL_SAMPLES + [prompt] * 4
    tokenizer = make_tokenizer(texts, out / "model")
    n_params = make_model(tokenizer, out / "model")

    from research_rl.retrieval.index import build_index

    shutil.rmtree(out / "index", ignore_errors=True)
    build_index(out / "corpus.jsonl", out / "index", kind="bm25", show_progress=False)

    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(
        f"{out}: {len(passages)} passages, {len(questions)} questions, vocab {len(tokenizer)}, "
        f"{n_params:,} parameters, {size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
