"""Synthetic but realistic run directories in the documented formats (docs/contracts.md).

Rollouts follow the ReSearch protocol and drift over training the way the paper describes: early
steps answer without searching or break the format, later ones search, search again after an
unhelpful result and revise their claims. Rewards come from the real rule reward.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from research_rl.metrics import batch_metrics
from research_rl.reward import extract_prediction, score
from research_rl.trajectory import Trajectory

_SYLLABLES = [
    "mar",
    "el",
    "dor",
    "ann",
    "vel",
    "ko",
    "ris",
    "tal",
    "bren",
    "sa",
    "lu",
    "orn",
    "quin",
]
# Passages that must stay text: markup that would break a page that inlined them carelessly.
HOSTILE_PASSAGE = (
    'Mirror site http://example.invalid/logo.png <img src="http://example.invalid/x.png">'
    " </script><script>document.title='pwned'</script> <!-- end"
)


def _name(rng: random.Random, parts: int = 2) -> str:
    return " ".join("".join(rng.choice(_SYLLABLES) for _ in range(2)).title() for _ in range(parts))


def make_world(rng: random.Random, n: int) -> list[dict[str, str]]:
    """Two-hop facts: a film, its director, the director's birthplace."""
    return [
        {
            "film": f"The {_name(rng, 1)} {rng.choice(['River', 'Crown', 'Winter', 'Signal'])}",
            "director": _name(rng),
            "city": f"Port {_name(rng, 1)}",
        }
        for _ in range(n)
    ]


_FILLER = "the film premiered at a festival and was later released widely critics praised its \
score while the cast included several newcomers from the regional theatre scene"

_FILLER_WORDS = _FILLER.split()


def _result(rng: random.Random, passages: list[str], topk: int, filler: int) -> str:
    """Retrieved passages: the given ones, then distractors up to ``topk``, each padded with
    ``filler`` words so their length is like a real retriever's."""
    docs = passages + [
        f"{_name(rng)} was born in Port {_name(rng, 1)}." for _ in range(topk - len(passages))
    ]
    padded = [
        f"{d} {' '.join(rng.choice(_FILLER_WORDS) for _ in range(filler))}".rstrip() for d in docs
    ]
    return (
        "<result>\n" + "\n".join(f"Doc {i + 1}: {p}" for i, p in enumerate(padded)) + "\n</result>"
    )


def make_rollout(
    rng: random.Random,
    fact: dict[str, str],
    progress: float,
    hostile: bool = False,
    topk: int = 2,
    filler: int = 0,
) -> tuple[str, list[int], str]:
    """(completion text, loss mask, finish reason) for one rollout at ``progress`` in [0, 1]."""
    parts: list[tuple[str, bool]] = []  # (text, written by the model)
    think = lambda s: parts.append((f"<think>{s}</think>\n", True))  # noqa: E731
    distractor = f"{_name(rng)} was born in Port {_name(rng, 1)}."
    if (
        not hostile and rng.random() > 0.3 + 0.6 * progress
    ):  # early policy: answer from memory, often malformed
        guess = rng.choice([fact["city"], f"Port {_name(rng, 1)}"])
        if rng.random() < 0.5 * (1 - progress):
            text = f"I think it is {guess}. The answer is \\boxed{{{guess}}}"
            return text, [1] * len(text.split()), "eos"
        think(f"The director of {fact['film']} is probably from {guess}.")
        parts.append((f"<answer>\\boxed{{{guess}}}</answer>", True))
    else:
        think(f"I need the director of {fact['film']}, then where they were born.")
        parts.append((f"<search>director of {fact['film']}</search>\n", True))
        parts.append(
            (
                _result(
                    rng,
                    [
                        f"{fact['film']} is a film directed by {fact['director']}.",
                        HOSTILE_PASSAGE if hostile else distractor,
                    ],
                    topk,
                    filler,
                )
                + "\n",
                False,
            )
        )
        parts.append((f"<search>{fact['director']} birthplace</search>\n", True))
        if rng.random() < 0.3 + 0.4 * progress:  # an unhelpful result, then a refined query
            parts.append((_result(rng, [distractor], topk, filler) + "\n", False))
            think(
                rng.choice(
                    [
                        "Wait, this passage is about someone else. "
                        f"Let me search again for {fact['director']}.",
                        "The result does not mention the birthplace; I should refine the query.",
                    ]
                )
            )
            parts.append((f"<search>where was {fact['director']} born</search>\n", True))
        found = f"{fact['director']} (born in {fact['city']}) is a film director."
        parts.append((_result(rng, [found], topk, filler) + "\n", False))
        if rng.random() < 0.2 * progress:
            think(f"Earlier I assumed a different city, but actually it is {fact['city']}.")
        answer = fact["city"] if rng.random() < 0.4 + 0.5 * progress else f"Port {_name(rng, 1)}"
        think(f"So {fact['director']} was born in {answer}.")
        parts.append((f"<answer>The answer is \\boxed{{{answer}}}</answer>", True))
    if not hostile and rng.random() < 0.05 * (1 - progress):  # ran out of tokens mid-thought
        text = "".join(t for t, _ in parts[:1]) + "<think>Let me keep thinking about"
        return text, [1] * len(text.split()), "length"
    text = "".join(t for t, _ in parts)
    mask = [int(model) for t, model in parts for _ in t.split()]
    return text, mask, "answer"


def make_trajectory(
    rng: random.Random,
    fact: dict[str, str],
    qid: str,
    sample: int,
    progress: float,
    hostile: bool = False,
    **passages: int,
) -> Trajectory:
    text, mask, finish = make_rollout(rng, fact, progress, hostile, **passages)
    traj = Trajectory(
        question_id=qid,
        question=f"Where was the director of {fact['film']} born?",
        golden_answers=[fact["city"]],
        sample_index=sample,
        prompt_ids=[],
        text=text,
        loss_mask=mask,
        num_searches=text.count("<search>"),
        search_queries=[q.split("</search>")[0] for q in text.split("<search>")[1:]],
        finish_reason=finish,
    )
    traj.reward = score(text, traj.golden_answers, truncated=finish == "length")
    return traj


def step_metrics(trajectories: list[Trajectory], prefix: str = "") -> dict[str, float]:
    """The figures the trainer logs for a batch (the core's own batch_metrics)."""
    return {prefix + k: v for k, v in batch_metrics(trajectories).items()}


def write_training_run(
    root: Path,
    steps: int = 12,
    questions: int = 4,
    group: int = 5,
    val_every: int = 4,
    seed: int = 0,
    topk: int = 2,
    filler: int = 0,
) -> Path:
    """A training run directory: config.yaml, metrics.jsonl and rollouts/step_N.jsonl; ``topk``
    passages per search, each ``filler`` words longer than its fact."""
    rng = random.Random(seed)
    world = make_world(rng, max(questions, 8))
    root.mkdir(parents=True, exist_ok=True)
    (root / "rollouts").mkdir(exist_ok=True)
    (root / "config.yaml").write_text(
        f"model: tiny\ngrpo:\n  group_size: {group}\n  clip: 0.2\n  beta: 0.001\nsteps: {steps}\n"
    )
    with (root / "metrics.jsonl").open("w") as metrics:
        for step in range(1, steps + 1):
            progress = (step - 1) / max(steps - 1, 1)
            trajs = [
                make_trajectory(
                    rng,
                    world[(step * questions + q) % len(world)],
                    f"q{q}",
                    s,
                    progress,
                    hostile=(step, q, s) == (1, 0, 0),
                    topk=topk,
                    filler=filler,
                )
                for q in range(questions)
                for s in range(group)
            ]
            rows = [{**t.to_json(with_ids=False), "step": step} for t in trajs]
            entry: dict[str, Any] = {"step": step, **step_metrics(trajs)}
            entry.update(
                epoch=step / steps,
                loss=0.01 * rng.random(),
                kl=0.002 * step * (1 + 0.2 * rng.random()),
                entropy=1.9 - 1.2 * progress,
                clip_fraction=0.05 * rng.random(),
                learning_rate=1e-6,
            )
            if step % val_every == 0:  # greedy validation rollouts, kept under rollouts/val/
                val = [
                    make_trajectory(rng, world[i], f"v{i}", 0, progress) for i in range(len(world))
                ]
                entry.update(step_metrics(val, prefix="val/"))
                (root / "rollouts" / "val").mkdir(exist_ok=True)
                with (root / "rollouts" / "val" / f"step_{step}.jsonl").open("w") as f:
                    for t in val:
                        f.write(json.dumps({**t.to_json(with_ids=False), "step": step}) + "\n")
            metrics.write(json.dumps(entry) + "\n")
            with (root / "rollouts" / f"step_{step}.jsonl").open("w") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
    return root


def prediction_row(traj: dict[str, Any], dataset: str, method: str, judged: bool) -> dict[str, Any]:
    """A row as the evaluator writes it: scores beside the full trajectory."""
    reward = traj["reward"]
    row = {
        "id": traj["question_id"],
        "dataset": dataset,
        "method": method,
        "question": traj["question"],
        "golden_answers": traj["golden_answers"],
        "prediction": extract_prediction(traj["text"]),
        "em": reward["em"],
        "f1": reward["f1"],
        "cover_em": reward["em"],
        "num_searches": traj["num_searches"],
        "response_tokens": traj["num_model_tokens"],
        "finish_reason": traj["finish_reason"],
        "valid_format": reward["valid_format"],
        "reward": reward["value"],
        "trajectory": traj,
    }
    if judged:
        row["judge"] = {"correct": reward["em"] == 1.0, "raw": "yes" if reward["em"] else "no"}
    return row


def write_eval_dir(root: Path, seed: int = 1, per_dataset: int = 6) -> Path:
    """An evaluation output directory: predictions/<dataset>__<method>.jsonl and results.json
    ({"results": one row per dataset and method, "config": ...})."""
    rng = random.Random(seed)
    (root / "predictions").mkdir(parents=True, exist_ok=True)
    table = []
    for dataset in ("synthetic_hop", "synthetic_bridge"):
        world = make_world(rng, per_dataset)
        for method, progress in (("naive", 0.0), ("research", 1.0)):
            trajs = [
                make_trajectory(rng, fact, f"{dataset}-{i}", 0, progress)
                for i, fact in enumerate(world)
            ]
            rows = [
                prediction_row(
                    t.to_json(with_ids=False), dataset, method, judged=method == "research"
                )
                for t in trajs
            ]
            with (root / "predictions" / f"{dataset}__{method}.jsonl").open("w") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
            m = step_metrics(trajs)
            table.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "n": len(rows),
                    "em": m["em"],
                    "f1": m["f1"],
                    "searches": m["searches_per_rollout"],
                }
            )
    results = {"results": table, "config": {"datasets": ["synthetic_hop", "synthetic_bridge"]}}
    (root / "results.json").write_text(json.dumps(results, indent=1))
    return root


def write_demo_dir(root: Path, seed: int = 2) -> Path:
    """A demo run as ``research demo`` lays it out: the GRPO run at the top, held-out
    trajectories in eval/before.jsonl and eval/after.jsonl, the world's question files, and
    summary.json with metrics per question type before and after training."""
    write_training_run(root, steps=4, questions=2, val_every=2, seed=seed)
    rng = random.Random(seed)
    world = make_world(rng, 6)
    (root / "world").mkdir()
    with (root / "world" / "test.jsonl").open("w") as f:
        for i, fact in enumerate(world):
            f.write(
                json.dumps(
                    {
                        "id": f"t{i}",
                        "question": f"Who directed {fact['film']}?",
                        "golden_answers": [fact["director"]],
                    }
                )
                + "\n"
            )
    (root / "eval").mkdir()
    summary: dict[str, Any] = {"steps": 4, "seed": seed}
    for phase, progress in (("before", 0.0), ("after", 1.0)):
        trajs = [make_trajectory(rng, fact, f"t{i}", 0, progress) for i, fact in enumerate(world)]
        with (root / "eval" / f"{phase}.jsonl").open("w") as f:
            for t in trajs:
                f.write(json.dumps(t.to_json(with_ids=False)) + "\n")
        m = batch_metrics(trajs)
        summary[phase] = {"two-hop": {"em": m["em"], "f1": m["f1"], "n": len(trajs)}}
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    return root
