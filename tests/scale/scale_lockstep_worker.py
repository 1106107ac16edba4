"""One rank of the 2-process lockstep test (run by torchrun; see test_scale_lockstep.py).

Each rank rolls out its own question with the core's RolloutEngine on a collective backend
(requests all-gathered across ranks, as TRL's colocated tensor-parallel vLLM does). Rank 0's
rollouts answer at once; rank 1's search twice first, so rank 1 needs three generation calls and
rank 0 one. After the rollouts, each rank does what a trainer does next: an all-reduce (the
gradient sync) and an all-gather of rewards. Argument ``--no-lockstep`` leaves the backend
unwrapped, to show what goes wrong then.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from scale_fakes import make_tokenizer

from research_rl.backends.base import SamplingParams
from research_rl.backends.scripted import ScriptedBackend
from research_rl.corpus import Passage
from research_rl.questions import Question
from research_rl.retrieval.base import Hit
from research_rl.rollout import RolloutConfig, RolloutEngine
from research_rl.scale.distributed import GatheredBackend, LockstepBackend

QUESTIONS = [
    Question("q0", "What is the capital of France?", ["Paris"]),
    Question("q1", "Who wrote Dune?", ["Frank Herbert"]),
]
SCRIPTS = {
    QUESTIONS[0].question: [[" <think> I know it. </think> <answer> \\boxed{Paris} </answer>"]],
    QUESTIONS[1].question: [
        [
            " <think> search </think> <search> Dune </search>",
            " <think> again </think> <search> Dune author </search>",
            " <think> found </think> <answer> \\boxed{Frank Herbert} </answer>",
        ]
    ],
}


class TitleRetriever:
    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        passage = Passage.from_title_text("d", "Dune", "Dune is a novel by Frank Herbert.")
        return [[Hit(passage, 1.0)] for _ in queries]

    def close(self) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--no-lockstep", action="store_true")
    parser.add_argument("--timeout-s", type=float, default=60.0)  # a hang becomes an error
    args = parser.parse_args()

    dist.init_process_group("gloo", timeout=timedelta(seconds=args.timeout_s))
    rank = dist.get_rank()
    tokenizer = make_tokenizer()
    template = Path(args.out) / "template.txt"
    if rank == 0:
        template.write_text("Question: {question}\nAssistant:")
    dist.barrier()
    config = RolloutConfig(template_path=str(template), max_response_tokens=600, max_searches=3)
    sampling = SamplingParams(temperature=0.0)
    report: dict = {"rank": rank, "steps": []}
    try:
        for _ in range(args.steps):
            # One scripted "model" per step: every rank holds the same one, as TP ranks hold the
            # same weights, and runs the whole gathered batch.
            inner = ScriptedBackend(tokenizer, SCRIPTS)
            backend = GatheredBackend(inner)
            if not args.no_lockstep:
                backend = LockstepBackend(backend)
            engine = RolloutEngine(backend, tokenizer, TitleRetriever(), config)
            trajs = engine.run([QUESTIONS[rank]], n=2, sampling=sampling)  # drains at its end
            padding = getattr(backend, "padding_calls", 0)
            # The trainer's next collectives: gradient all-reduce, then gathering rewards.
            grad = torch.ones(3) * (rank + 1)
            dist.all_reduce(grad)
            rewards = [t.reward.value for t in trajs]
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, rewards)
            report["steps"].append(
                {
                    "calls": getattr(backend, "calls", None),
                    "padding": padding,
                    "finish": [t.finish_reason for t in trajs],
                    "searches": [t.num_searches for t in trajs],
                    "masked": [t.loss_mask.count(0) for t in trajs],
                    "rewards": rewards,
                    "gathered_rewards": gathered,
                    "grad": grad.tolist(),
                }
            )
    except Exception as err:  # reported, so the test can show what failed
        report["error"] = f"{type(err).__name__}: {err}"
    Path(args.out, f"rank{rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()
    return 1 if "error" in report else 0


if __name__ == "__main__":
    sys.exit(main())
