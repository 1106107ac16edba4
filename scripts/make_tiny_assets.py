"""Make the small committed assets under examples/tiny/ that configs/tiny-cpu.yaml trains on.

The shared synthetic world at its smallest (people born in cities, cities in countries), its
corpus, train and validation questions ("Where was X born?"), a byte-level BPE tokenizer trained
on that text with ``tokenizers``, a 2-layer Qwen2 (~100k parameters), and a BM25 index. The model
is primed on the tag protocol (a short supervised pass on scripted rollouts of the training
questions, run through the real rollout engine and index) so that its GRPO rollouts search, answer
and earn varied rewards instead of being noise: a test fixture, not part of the method.
Deterministic on one machine; everything stays well under 3 MB.

    .venv/bin/python scripts/make_tiny_assets.py [--out examples/tiny]
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from research_rl.bpe import EOS, train_tokenizer
from research_rl.corpus import Passage, write_corpus
from research_rl.questions import Question, write_questions
from research_rl.synthetic_world import WorldConfig, generate_world

PROTOCOL_SAMPLES = [
    "<think> I need to find where the person was born. </think> <search> birthplace </search>",
    "<result>\nDoc 1 (Title: Example) text\n</result>",
    "<think> Now I know the city. </think> <answer> The answer is \\boxed{answer} </answer>",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


# The shared synthetic world (research_rl.synthetic_world) at its smallest: people, their cities
# and the cities' countries, no films and no distractors; only its birthplace questions are asked.
TINY_WORLD = WorldConfig(
    countries=6, cities=12, people=48, films=0, heldout_fraction=0.1, test_per_hops=1,
    distractors=0,
)  # fmt: skip


def make_world(seed: int = 0) -> tuple[list[Passage], list[Question]]:
    world = generate_world(TINY_WORLD, seed)
    questions = [q for q in world.questions() if q.metadata["kind"] == "born_in"]
    random.Random(seed).shuffle(questions)
    return world.passages(), questions


def make_model(tokenizer, seed: int = 0):
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
    return model


def scripted_rollouts(questions: list[Question], tokenizer, index: Path, prompt: Path):
    """The behaviour to prime: think, search the person, read the result, answer the city."""
    from research_rl.backends.scripted import ScriptedBackend
    from research_rl.retrieval.index import load_index
    from research_rl.rollout import RolloutConfig, RolloutEngine

    scripts = {
        q.question: [
            [
                f"<think> who is {q.metadata['subject']} </think> "
                f"<search> {q.metadata['subject']} </search>",
                f" <think> found it </think> <answer> \\boxed{{{q.golden_answers[0]}}} </answer>",
            ]
        ]
        for q in questions
    }
    config = RolloutConfig(**TINY_ROLLOUT, template_path=str(prompt))
    engine = RolloutEngine(
        ScriptedBackend(tokenizer, scripts), tokenizer, load_index(index), config
    )
    return engine.run(questions, n=1)


def prime(model, trajectories, steps: int = 300, seed: int = 0) -> float:
    """Supervised pass on the model's own tokens of the scripted rollouts (results masked)."""
    import torch

    torch.manual_seed(seed)
    rows = []
    for t in trajectories:
        ids = t.prompt_ids + t.completion_ids
        labels = [-100] * len(t.prompt_ids) + [
            tok if keep else -100 for tok, keep in zip(t.completion_ids, t.loss_mask, strict=True)
        ]
        rows.append((ids, labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    g = torch.Generator().manual_seed(seed)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        batch = [rows[i] for i in torch.randint(len(rows), (8,), generator=g).tolist()]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([ids + [0] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        attention = (
            torch.arange(width)[None, :] < torch.tensor([len(i) for i, _ in batch])[:, None]
        ).long()
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return loss.item()


# The rollout settings of configs/tiny-cpu.yaml (the priming rollouts must look like its rollouts).
TINY_ROLLOUT = dict(
    topk=2, max_passage_tokens=24, max_searches=2, max_response_tokens=128, max_prompt_tokens=128
)
TINY_ROLLOUT["profile"] = "strict"  # configs/tiny-cpu.yaml's profile (docs/history.md says why)


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
    tokenizer = train_tokenizer(
        texts, 384, min_frequency=0, pad_token=EOS, added_tokens=(), chat_template=CHAT_TEMPLATE
    )
    tokenizer.save_pretrained(out / "model")

    from research_rl.retrieval.index import build_index

    shutil.rmtree(out / "index", ignore_errors=True)
    build_index(out / "corpus.jsonl", out / "index", kind="bm25", show_progress=False)

    model = make_model(tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    trajectories = scripted_rollouts(questions[:40], tokenizer, out / "index", out / "prompt.txt")
    loss = prime(model, trajectories)
    print(f"primed on {len(trajectories)} scripted rollouts: final loss {loss:.3f}")
    model.save_pretrained(out / "model")

    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(
        f"{out}: {len(passages)} passages, {len(questions)} questions, vocab {len(tokenizer)}, "
        f"{n_params:,} parameters, {size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
