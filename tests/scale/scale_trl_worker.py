"""One rank of the 2-process TRL run (launched by torchrun; see test_scale_trl_two_process.py).

The real TRL adapter (``research_rl.training.run.train``) on the tiny CPU config, two processes over
gloo. Generation is collective, as with a tensor-parallel colocated vLLM: requests are all-gathered
and every rank runs the same scripted "model" on the whole batch, wrapped in the lockstep. The train
set holds two questions and a step takes both, one per rank: one question is answered at once, the
other after two searches, so in every step one rank finishes its rollouts two turns before the
other.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from research_rl.backends.scripted import ScriptedBackend
from research_rl.questions import Question, write_questions
from research_rl.scale.distributed import GatheredBackend, LockstepBackend
from research_rl.training.run import load_train_config, train

ROOT = Path(__file__).resolve().parents[2]
FAST = Question("fast", "In which country was Boda Vilo born?", ["Radami"])
SLOW = Question("slow", "In which country was Bopu Miel born?", ["Elnobo"])
# Two behaviours per question (sample i plays script i % 2): right and wrong answers give the
# group a reward spread, so the policy gradient is not zero.
SCRIPTS = {
    FAST.question: [
        [" <think> known </think> <answer> \\boxed{Radami} </answer>"],
        [" <think> guess </think> <answer> \\boxed{Elnobo} </answer>"],
    ],
    SLOW.question: [
        [
            " <think> look </think> <search> Bopu Miel </search>",
            " <think> city </think> <search> Dariton </search>",
            " <think> found </think> <answer> \\boxed{Elnobo} </answer>",
        ],
        [
            " <think> look </think> <search> Bopu Miel </search>",
            " <think> again </think> <search> Bopu </search>",
            " <think> unsure </think> <answer> \\boxed{Radami} </answer>",
        ],
    ],
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    rank = int(os.environ["RANK"])

    train_file = out / "train.jsonl"
    cfg = load_train_config(ROOT / "configs" / "tiny-cpu.yaml")
    cfg = cfg.model_copy(deep=True)
    cfg.data.train = str(train_file)
    cfg.data.validation = None
    cfg.data.shuffle = True
    cfg.rollout.max_response_tokens = 400
    cfg.rollout.max_searches = 3
    cfg.grpo.max_steps = 2
    cfg.run.save_every = 100  # the final checkpoint only
    cfg.run.tensorboard = False
    cfg.run.progress = False
    if rank == 0:
        write_questions([FAST, SLOW], train_file)

    backends: list[LockstepBackend] = []

    def factory(trainer, model):
        # A fresh scripted model per rollout call, identical on both ranks (as TP ranks hold the
        # same weights); the lockstep keeps the collective calls matched, and the adapter's
        # rollout function drains it after each rollout.
        backend = LockstepBackend(
            GatheredBackend(ScriptedBackend(trainer.processing_class, SCRIPTS))
        )
        backends.append(backend)
        return backend

    import torch.distributed as dist

    # Test scaffolding only: the ranks wait here until rank 0 has written the train file. train()
    # itself sets up accelerate's CPU state (the bug this once had: a plain PartialState() under
    # torchrun without a GPU reported a single process).
    dist.init_process_group("gloo")
    dist.barrier()
    result = train(cfg, out / "run", backend_factory=factory)
    records = (
        [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
        if rank == 0
        else []
    )
    report = {
        "rank": rank,
        "final_step": result.final_step,
        "calls": [b.calls for b in backends],
        "padding": [b.padding_calls for b in backends],
        "metrics": records,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
